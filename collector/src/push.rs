//! Pushing sealed control messages to one or more appliances over UDP:
//! the sending side shared by the collector, `emulator serve --report-to`
//! and `emulator wire --report-to`.
//!
//! Each message is sealed once ([`control::Sender`], one sequence number)
//! and the same datagram goes to every appliance: each keeps its own
//! replay window per peer, so one increasing sequence serves them all.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;

use control::{Key, Message, Sender};

/// A peer's sender and one connected UDP socket per appliance.
pub struct Pusher {
    sender: Sender,
    sockets: Vec<UdpSocket>,
    /// Datagrams handed to the kernel, over all appliances.
    pub sent: u64,
    /// Messages that could not be sealed, and sends the kernel refused (an
    /// appliance not up yet answers with ICMP, seen as a refused send).
    pub failed: u64,
}

impl Pusher {
    /// A pusher for peer `key_id` with the key in `key_file` (as for
    /// `intellinode ctl`) to the control addresses `to`.
    pub fn new(key_file: &Path, key_id: u32, to: &[SocketAddr]) -> io::Result<Pusher> {
        let key = Key::from_file(key_file)
            .map_err(|e| io::Error::other(format!("key file {}: {e}", key_file.display())))?;
        Pusher::with_key(key, key_id, to)
    }

    /// [`Pusher::new`] with the key in hand.
    pub fn with_key(key: Key, key_id: u32, to: &[SocketAddr]) -> io::Result<Pusher> {
        if to.is_empty() {
            return Err(io::Error::other("no appliance to push to"));
        }
        let sockets = to
            .iter()
            .map(|addr| {
                let s = UdpSocket::bind(if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                })?;
                s.connect(addr)?;
                Ok(s)
            })
            .collect::<io::Result<Vec<_>>>()?;
        // Sequence numbers start from the wall clock in microseconds, as
        // `intellinode ctl` does, so a restarted pusher starts above the
        // appliance's replay window.
        let sender = Sender::new(key_id, key, control::realtime_ns() / 1000);
        Ok(Pusher {
            sender,
            sockets,
            sent: 0,
            failed: 0,
        })
    }

    /// Seals `message` now and sends it to every appliance; returns how
    /// many took it. Failures are counted, never fatal: the next push is
    /// the retry.
    pub fn push(&mut self, message: &Message) -> usize {
        let datagram = match self.sender.seal(message, control::realtime_ns()) {
            Ok(d) => d,
            Err(_) => {
                self.failed += 1;
                return 0;
            }
        };
        let mut took = 0;
        for s in &self.sockets {
            if s.send(&datagram).is_ok() {
                took += 1;
            } else {
                self.failed += 1;
            }
        }
        self.sent += took as u64;
        took
    }
}
