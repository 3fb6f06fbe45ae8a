//! The fixed-capacity table of queue pairs a worker keeps.
//!
//! A RoCEv2 QP is identified by its flow key *plus* its destination QPN:
//! one pair of RDMA hosts multiplexes many QPs over a few UDP ports, and the
//! state machine of [`crate::qp_state`] is per QP. [`classifier::FlowKey`]
//! already carries `dest_qpn`, so it is the key here as it stands.
//!
//! The table is [`flowtab::Table`], the one the steering pipeline keeps its
//! flows in: steering and tensor scheduling need the same bounded,
//! allocation-free table, so there is one. Addresses, ports and QPNs all
//! come from remote senders, so the key's hash is keyed by the table's
//! seed, drawn at random per process.
//!
//! When the table is full an insert is refused ([`InsertError::Full`]): the
//! QP still goes through, best effort, and the caller counts it, rather than
//! every worker slowing down under a table it cannot grow. The time each QP was last seen
//! lives in the table: [`QpTable::entry_hashed`] and
//! [`QpTable::touch_hashed`] mark it, and [`QpTable::expire`] ages idle QPs
//! out a bounded number at a time.

use classifier::FlowKey;

pub use flowtab::InsertError;

/// Fixed-capacity table from QP keys to `V`.
pub type QpTable<V> = flowtab::Table<FlowKey, V>;
