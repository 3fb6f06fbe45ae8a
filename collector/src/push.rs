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

#[cfg(test)]
mod tests {
    use super::*;
    use control::{PeerConfig, Receiver, ReceiverConfig, Roles};

    #[test]
    fn every_appliance_gets_each_message_sealed_once_in_sequence() {
        let key = Key::generate();
        let appliances: Vec<UdpSocket> = (0..2)
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                    .unwrap();
                s
            })
            .collect();
        let to: Vec<SocketAddr> = appliances.iter().map(|s| s.local_addr().unwrap()).collect();
        let mut pusher = Pusher::with_key(key.clone(), 9, &to).unwrap();
        let state = |queue| control::NodeStateFields {
            node: 4,
            gpu_util: None,
            mem_util: None,
            queue: Some(queue),
            ttft_ms: None,
            source: control::Source::Measured,
        };
        assert_eq!(pusher.push(&state(1.0).message().unwrap()), 2);
        assert_eq!(pusher.push(&state(2.0).message().unwrap()), 2);
        assert_eq!((pusher.sent, pusher.failed), (4, 0));
        for s in &appliances {
            let mut rx = Receiver::new(
                vec![PeerConfig::new(9, "collector", key.clone(), Roles::STATE)],
                ReceiverConfig::default(),
            )
            .unwrap();
            let mut seqs = Vec::new();
            for want in [1.0, 2.0] {
                let mut buf = [0u8; 2048];
                let n = s.recv(&mut buf).unwrap();
                let got = rx.accept(&buf[..n], control::realtime_ns()).unwrap();
                let Message::NodeState(ns) = got.message else {
                    panic!("not a NODE_STATE")
                };
                assert_eq!(ns.metrics[0].value, want);
                seqs.push(got.seq);
            }
            assert_eq!(seqs[1], seqs[0] + 1);
        }
        assert!(Pusher::with_key(key, 9, &[]).is_err());
    }
}
