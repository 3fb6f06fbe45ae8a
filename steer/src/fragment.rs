//! Fragments of steered datagrams: the first fragment decides, the others
//! follow (`docs/wire-format.md` §6).
//!
//! Only a datagram's first fragment (offset 0) carries the transport
//! header, so only it can be keyed to a flow and decided like an
//! unfragmented packet. What it was decided — pass, send by this port in
//! this band with this address rewrite, or drop — is remembered in a
//! [`Fragments`] table under the datagram's identity, [`FragmentKey`]:
//! source, destination, protocol and Identification (16 bits in IPv4, the
//! Fragment header's 32 in IPv6), as RFC 791 and RFC 8200 identify a
//! datagram. Every later fragment looks its datagram up and gets the same
//! [`Treatment`].
//!
//! A later fragment that arrives before its first one (reordered on the
//! way, or by two RX queues and a handoff) is **held**: its slot number is
//! returned to the caller, which keeps the packet, and when the first
//! fragment decides, the datagram's held slots are handed back with the
//! decision ([`Fragments::next_unheld`]). Holding is bounded per datagram
//! ([`FragmentLimits::held_per_datagram`]) and in total
//! ([`FragmentLimits::held`]); a fragment beyond either bound, or one
//! whose datagram cannot get an entry because the table is full, is
//! refused, and the caller drops it under its own reason. A datagram
//! whose first fragment has not come within [`FragmentLimits::timeout_ns`]
//! of its last fragment is forgotten and its held fragments are handed
//! back as timed out, to be dropped: without the first fragment the
//! receiver could not reassemble them anyway.
//!
//! A datagram's entry goes once its fragments' data adds up to the length
//! the last fragment announces (offset × 8 + its data), or after the
//! timeout. The table is a [`flowtab::Table`], seeded like the flow table
//! since senders choose every field of the key. Everything is allocated
//! in [`Fragments::new`]; per fragment nothing allocates or panics.

use std::collections::VecDeque;
use std::net::IpAddr;

use classifier::{FragmentInfo, IpVersion, ParsedPacket};

use crate::engine::Refusal;

/// A datagram's identity, the same in all of its fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FragmentKey {
    /// Source address (IPv4 in mapped form).
    pub src: [u8; 16],
    /// Destination address (IPv4 in mapped form).
    pub dst: [u8; 16],
    /// Identification: 16 bits in IPv4, 32 in IPv6.
    pub ident: u32,
    /// The protocol (IPv6: the Fragment header's Next Header).
    pub protocol: u8,
    /// IPv6 rather than IPv4.
    pub v6: bool,
}

impl FragmentKey {
    /// The key of a parsed fragment; `None` when it is not a piece of a
    /// fragmented datagram.
    pub fn of(p: &ParsedPacket) -> Option<FragmentKey> {
        let info = p.fragment.filter(|_| p.is_fragment())?;
        let flow = p.flow?;
        Some(FragmentKey {
            src: flow.src_addr,
            dst: flow.dst_addr,
            ident: info.ident,
            protocol: flow.protocol.0,
            v6: flow.version == IpVersion::V6,
        })
    }
}

impl flowtab::TableKey for FragmentKey {
    #[inline]
    fn hash(&self, seed: u64) -> u32 {
        let word = |b: &[u8; 16], half: usize| {
            let mut w = [0u8; 8];
            if let Some(s) = b.get(half * 8..half * 8 + 8) {
                w.copy_from_slice(s);
            }
            u64::from_le_bytes(w)
        };
        let tail =
            u64::from(self.ident) | u64::from(self.protocol) << 32 | u64::from(self.v6) << 40;
        flowtab::hash_words(
            seed,
            [
                word(&self.src, 0),
                word(&self.src, 1),
                word(&self.dst, 0),
                word(&self.dst, 1),
                tail,
            ],
        )
    }
}

/// The address rewrite a decision applies to every fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// A request: Ethernet destination `mac`, IP destination `ip`.
    Destination {
        /// The next hop towards the instance.
        mac: [u8; 6],
        /// The instance.
        ip: IpAddr,
    },
    /// A response: IP source `ip` (the service's VIP).
    Source {
        /// The VIP.
        ip: IpAddr,
    },
}

/// What a decision does to a packet, and to every later fragment of the
/// datagram it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Not steering's: the ingress port's default route, unchanged.
    Pass,
    /// Rewritten with `nat`, leaving by `port` (`None`: the ingress
    /// port's default route) in egress band `band`.
    Send {
        /// Egress port.
        port: Option<u16>,
        /// Egress band.
        band: u8,
        /// The rewrite.
        nat: Nat,
    },
    /// Refused.
    Drop(Refusal),
}

/// Bounds and timeout of one worker's fragment table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentLimits {
    /// Datagrams remembered at once.
    pub datagrams: usize,
    /// Fragments held, waiting for their first fragment, in total.
    pub held: usize,
    /// Fragments held for one datagram.
    pub held_per_datagram: u16,
    /// A datagram with no fragment for this long is forgotten (and its
    /// held fragments timed out).
    pub timeout_ns: u64,
}

impl Default for FragmentLimits {
    /// 1,024 datagrams, 256 held fragments (at most 64 of one datagram,
    /// more than the 45 fragments of the largest IPv4 datagram at a
    /// 1,500-byte MTU), and 100 ms: a sender emits a datagram's fragments
    /// back to back, so a fragment that waits longer for its first is
    /// most likely waiting for a lost one, and holds a slot others need.
    fn default() -> Self {
        FragmentLimits {
            datagrams: 1024,
            held: 256,
            held_per_datagram: 64,
            timeout_ns: 100_000_000,
        }
    }
}

/// What becomes of a fragment that is not the first of its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Its datagram was decided: treat it so.
    Decided(Treatment),
    /// Held in this slot until its first fragment decides.
    Held(u32),
    /// Refused: [`Refusal::FragmentHoldFull`] or
    /// [`Refusal::FragmentTableFull`].
    Refused(Refusal),
}

/// What became of a held fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhold {
    /// Its first fragment decided: treat it so.
    Released(Treatment),
    /// Its first fragment did not come in time: drop it.
    TimedOut,
}

/// A held fragment handed back: its slot and its fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unheld {
    /// The slot [`Follow::Held`] named.
    pub slot: u32,
    /// What to do with it.
    pub fate: Unhold,
}

/// What the table knows of one datagram.
#[derive(Debug, Clone, Copy, Default)]
struct Datagram {
    /// The first fragment's decision, once it came.
    decided: Option<Treatment>,
    /// Held fragments, oldest first: `head`, then `next[head]`, …
    head: u32,
    tail: u32,
    held: u16,
    /// Data bytes of the fragments seen so far.
    seen: u32,
    /// The datagram's data length, once its last fragment came (0 before).
    total: u32,
}

/// Counts of what [`Fragments::expire`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Datagrams forgotten.
    pub datagrams: u64,
    /// Held fragments timed out.
    pub held: u64,
}

/// One worker's fragment table and held-fragment slots.
pub struct Fragments {
    table: flowtab::Table<FragmentKey, Datagram>,
    /// Per slot: the next held fragment of the same datagram.
    next: Vec<u32>,
    /// Slots not holding anything.
    free: Vec<u32>,
    /// Held fragments handed back, not yet taken by the caller; their
    /// slots are freed when taken.
    unheld: VecDeque<Unheld>,
    limits: FragmentLimits,
}

impl Fragments {
    /// A table within `limits`, keyed by `seed`.
    pub fn new(limits: FragmentLimits, seed: u64) -> Fragments {
        let held = limits.held.min(u32::MAX as usize);
        Fragments {
            table: flowtab::Table::new(limits.datagrams, seed),
            next: vec![0; held],
            free: (0..held as u32).rev().collect(),
            unheld: VecDeque::with_capacity(held),
            limits,
        }
    }

    /// Slots there are: the caller keeps a held packet per slot.
    pub fn slots(&self) -> usize {
        self.next.len()
    }

    /// Datagrams remembered.
    pub fn datagrams(&self) -> usize {
        self.table.len()
    }

    /// Fragments held now (handed back but not yet taken included).
    pub fn held(&self) -> usize {
        self.next.len() - self.free.len()
    }

    /// The key's hash under the table's seed.
    #[inline]
    pub fn hash(&self, key: &FragmentKey) -> u32 {
        self.table.hash(key)
    }

    /// The index slot a lookup of `hash` reads first
    /// ([`flowtab::Table::prefetch_slot`]).
    #[inline]
    pub fn prefetch_slot(&self, hash: u32, prefetch: impl FnOnce(*const u8)) {
        self.table.prefetch_slot(hash, prefetch);
    }

    /// The lines of the entry that slot names
    /// ([`flowtab::Table::prefetch_entry`]).
    #[inline]
    pub fn prefetch_entry(&self, hash: u32, prefetch: impl FnMut(*const u8)) {
        self.table.prefetch_entry(hash, 2, prefetch);
    }

    /// Records the first fragment's decision for its datagram, and hands
    /// back the fragments held for it with that decision. Returns how many
    /// were released, or `None` when the table had no room (later
    /// fragments will then be refused).
    pub fn decide(
        &mut self,
        key: &FragmentKey,
        hash: u32,
        info: FragmentInfo,
        data_len: u32,
        treatment: Treatment,
        now_ns: u64,
    ) -> Option<u16> {
        let (d, _) = self.table.entry_hashed(key, hash, now_ns).ok()?;
        d.decided = Some(treatment);
        let released = d.held;
        let mut slot = d.head;
        d.held = 0;
        account(d, info, data_len);
        let complete = is_complete(d);
        for _ in 0..released {
            if self.unheld.len() < self.unheld.capacity() {
                self.unheld.push_back(Unheld {
                    slot,
                    fate: Unhold::Released(treatment),
                });
            }
            slot = self.next.get(slot as usize).copied().unwrap_or(0);
        }
        if complete {
            self.table.remove(key);
        }
        Some(released)
    }

    /// A fragment other than the first: its datagram's decision, or a slot
    /// to hold it in until the decision comes, or a refusal.
    pub fn follow(
        &mut self,
        key: &FragmentKey,
        hash: u32,
        info: FragmentInfo,
        data_len: u32,
        now_ns: u64,
    ) -> Follow {
        let Ok((d, _)) = self.table.entry_hashed(key, hash, now_ns) else {
            return Follow::Refused(Refusal::FragmentTableFull);
        };
        if let Some(t) = d.decided {
            account(d, info, data_len);
            if is_complete(d) {
                self.table.remove(key);
            }
            return Follow::Decided(t);
        }
        if d.held >= self.limits.held_per_datagram {
            return Follow::Refused(Refusal::FragmentHoldFull);
        }
        let Some(slot) = self.free.pop() else {
            return Follow::Refused(Refusal::FragmentHoldFull);
        };
        if d.held == 0 {
            d.head = slot;
        } else if let Some(n) = self.next.get_mut(d.tail as usize) {
            *n = slot;
        }
        d.tail = slot;
        d.held += 1;
        account(d, info, data_len);
        Follow::Held(slot)
    }

    /// The next held fragment handed back (released by its first
    /// fragment's decision, or timed out); its slot is free again.
    pub fn next_unheld(&mut self) -> Option<Unheld> {
        let u = self.unheld.pop_front()?;
        self.free.push(u.slot);
        Some(u)
    }

    /// Forgets datagrams idle for the timeout, visiting at most `budget`
    /// entries; their held fragments are handed back as timed out.
    pub fn expire(&mut self, now_ns: u64, budget: usize) -> Expired {
        let Fragments {
            table,
            next,
            unheld,
            limits,
            ..
        } = self;
        let mut held = 0u64;
        let datagrams = table.expire(now_ns, limits.timeout_ns, budget, |_, d| {
            let mut slot = d.head;
            for _ in 0..d.held {
                if unheld.len() < unheld.capacity() {
                    unheld.push_back(Unheld {
                        slot,
                        fate: Unhold::TimedOut,
                    });
                }
                held += 1;
                slot = next.get(slot as usize).copied().unwrap_or(0);
            }
        });
        Expired {
            datagrams: datagrams as u64,
            held,
        }
    }
}

/// Adds a fragment's data to its datagram's count and, for the last
/// fragment, notes the datagram's length.
fn account(d: &mut Datagram, info: FragmentInfo, data_len: u32) {
    d.seen = d.seen.saturating_add(data_len);
    if !info.more {
        d.total = (u32::from(info.offset) * 8).saturating_add(data_len);
    }
}

/// Every fragment decided and its data all seen: nothing more will come.
fn is_complete(d: &Datagram) -> bool {
    d.decided.is_some() && d.total > 0 && d.seen >= d.total
}

/// The data bytes a fragment carries: from its transport header (first
/// fragment) or the end of its Fragment header / IPv4 header (later ones)
/// to the end of the IP packet.
pub fn data_len(p: &ParsedPacket) -> u32 {
    let start = p.l4_offset.unwrap_or(p.payload.start);
    let end = usize::from(p.l3_offset) + usize::from(p.l3_len);
    end.saturating_sub(usize::from(start)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(ident: u32) -> FragmentKey {
        FragmentKey {
            src: Ipv4Addr::new(10, 0, 1, 11).to_ipv6_mapped().octets(),
            dst: Ipv4Addr::new(10, 0, 100, 1).to_ipv6_mapped().octets(),
            ident,
            protocol: 17,
            v6: false,
        }
    }

    fn at(offset_bytes: u16, more: bool) -> FragmentInfo {
        FragmentInfo {
            offset: offset_bytes / 8,
            more,
            ident: 0,
        }
    }

    const SEND: Treatment = Treatment::Send {
        port: Some(2),
        band: 1,
        nat: Nat::Source {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 100, 1)),
        },
    };

    fn limits() -> FragmentLimits {
        FragmentLimits {
            datagrams: 4,
            held: 3,
            held_per_datagram: 2,
            timeout_ns: 100,
        }
    }

    #[test]
    fn every_key_field_and_the_seed_change_the_hash() {
        use flowtab::TableKey;
        let k = key(1);
        let h = k.hash(9);
        for other in [
            FragmentKey { ident: 2, ..k },
            FragmentKey { protocol: 6, ..k },
            FragmentKey { v6: true, ..k },
            FragmentKey { src: [1; 16], ..k },
            FragmentKey { dst: [1; 16], ..k },
        ] {
            assert_ne!(other.hash(9), h, "{other:?}");
        }
        assert_ne!(k.hash(10), h);
    }

    #[test]
    fn later_fragments_follow_and_the_entry_goes_when_the_data_is_all_seen() {
        let mut f = Fragments::new(limits(), 1);
        let k = key(7);
        let h = f.hash(&k);
        assert_eq!(f.decide(&k, h, at(0, true), 800, SEND, 0), Some(0));
        assert_eq!(
            f.follow(&k, h, at(800, true), 800, 1),
            Follow::Decided(SEND)
        );
        assert_eq!(f.datagrams(), 1);
        assert_eq!(
            f.follow(&k, h, at(1600, false), 100, 2),
            Follow::Decided(SEND)
        );
        assert_eq!(f.datagrams(), 0, "all 1,700 bytes seen");
    }

    #[test]
    fn early_fragments_are_held_in_order_and_released_by_the_first() {
        let mut f = Fragments::new(limits(), 1);
        let k = key(8);
        let h = f.hash(&k);
        let Follow::Held(a) = f.follow(&k, h, at(1600, false), 100, 0) else {
            panic!("held")
        };
        let Follow::Held(b) = f.follow(&k, h, at(800, true), 800, 1) else {
            panic!("held")
        };
        assert_ne!(a, b);
        assert_eq!(f.held(), 2);
        assert_eq!(f.next_unheld(), None);
        assert_eq!(f.decide(&k, h, at(0, true), 800, SEND, 2), Some(2));
        assert_eq!(f.datagrams(), 0, "complete once the first came");
        let released = [f.next_unheld(), f.next_unheld(), f.next_unheld()];
        assert_eq!(
            released,
            [
                Some(Unheld {
                    slot: a,
                    fate: Unhold::Released(SEND)
                }),
                Some(Unheld {
                    slot: b,
                    fate: Unhold::Released(SEND)
                }),
                None
            ]
        );
        assert_eq!(f.held(), 0, "slots free again once taken");
    }

    #[test]
    fn holding_is_bounded_per_datagram_and_in_total() {
        let mut f = Fragments::new(limits(), 1);
        let (k1, k2) = (key(1), key(2));
        let (h1, h2) = (f.hash(&k1), f.hash(&k2));
        assert!(matches!(
            f.follow(&k1, h1, at(8, true), 8, 0),
            Follow::Held(_)
        ));
        assert!(matches!(
            f.follow(&k1, h1, at(16, true), 8, 0),
            Follow::Held(_)
        ));
        assert_eq!(
            f.follow(&k1, h1, at(24, true), 8, 0),
            Follow::Refused(Refusal::FragmentHoldFull),
            "two per datagram"
        );
        assert!(matches!(
            f.follow(&k2, h2, at(8, true), 8, 0),
            Follow::Held(_)
        ));
        assert_eq!(
            f.follow(&k2, h2, at(16, true), 8, 0),
            Follow::Refused(Refusal::FragmentHoldFull),
            "three in total"
        );
        assert_eq!(f.held(), 3);
    }

    #[test]
    fn a_full_table_refuses_new_datagrams_but_not_known_ones() {
        let mut f = Fragments::new(limits(), 1);
        for i in 0..4 {
            let k = key(i);
            let h = f.hash(&k);
            assert_eq!(f.decide(&k, h, at(0, true), 8, SEND, 0), Some(0));
        }
        let k = key(99);
        let h = f.hash(&k);
        assert_eq!(f.decide(&k, h, at(0, true), 8, SEND, 0), None);
        assert_eq!(
            f.follow(&k, h, at(8, false), 8, 0),
            Follow::Refused(Refusal::FragmentTableFull)
        );
        let k0 = key(0);
        let h0 = f.hash(&k0);
        assert_eq!(f.follow(&k0, h0, at(8, false), 8, 0), Follow::Decided(SEND));
    }

    #[test]
    fn held_fragments_time_out_and_decided_datagrams_age_out() {
        let mut f = Fragments::new(limits(), 1);
        let (k1, k2) = (key(1), key(2));
        let (h1, h2) = (f.hash(&k1), f.hash(&k2));
        let Follow::Held(s) = f.follow(&k1, h1, at(8, true), 8, 0) else {
            panic!("held")
        };
        f.decide(&k2, h2, at(0, true), 8, SEND, 50);
        assert_eq!(f.expire(99, 64), Expired::default(), "not idle long enough");
        assert_eq!(
            f.expire(100, 64),
            Expired {
                datagrams: 1,
                held: 1
            }
        );
        assert_eq!(
            f.next_unheld(),
            Some(Unheld {
                slot: s,
                fate: Unhold::TimedOut
            })
        );
        assert_eq!(f.datagrams(), 1);
        assert_eq!(
            f.expire(150, 64),
            Expired {
                datagrams: 1,
                held: 0
            }
        );
        assert_eq!(f.datagrams(), 0);
        // Too late: the first fragment now starts a new entry, and the
        // timed-out fragment is not released twice.
        assert_eq!(f.decide(&k1, h1, at(0, true), 8, SEND, 200), Some(0));
        assert_eq!(f.next_unheld(), None);
    }
}
