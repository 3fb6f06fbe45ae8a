//! The unit every workload produces.

/// One frame and the time it is sent, as a pcap record would hold it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The Ethernet frame, without FCS.
    pub data: Vec<u8>,
}

impl Packet {
    /// A packet sent at `ts_ns`.
    pub fn new(ts_ns: u64, data: Vec<u8>) -> Self {
        Packet { ts_ns, data }
    }
}
