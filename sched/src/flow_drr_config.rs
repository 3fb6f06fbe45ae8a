//! [`FlowDrrConfig`], the sizes and base quantum of a
//! [`FlowDrr`](crate::FlowDrr).

use crate::config::ConfigError;

/// Largest flow table accepted.
pub const MAX_FLOWS: usize = 1 << 20;
/// Largest packet buffer accepted.
pub const MAX_PACKETS: usize = 1 << 22;

/// Sizes and base quantum of a [`FlowDrr`](crate::FlowDrr).
///
/// Memory is `O(max_flows + max_packets)`, all allocated in `new`: packets
/// of all flows share one pool of `max_packets` slots, so a few busy flows
/// can use the whole buffer while idle flows cost nothing but a table slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowDrrConfig {
    /// Bytes per round of a weight-1 flow; a flow of weight `w` gets
    /// `base_quantum × w`. At least 1; the largest frame size is a good
    /// choice.
    pub base_quantum: u32,
    /// Flows that can be known at once (queued or with a weight set), in
    /// `1..=MAX_FLOWS`.
    pub max_flows: usize,
    /// Packets queued over all flows, in `1..=MAX_PACKETS`.
    pub max_packets: usize,
    /// Packets one flow may hold, in `1..=max_packets`, so one flow cannot
    /// starve the others of buffer.
    pub max_packets_per_flow: usize,
}

impl FlowDrrConfig {
    /// Checks every rule documented on the fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.base_quantum == 0 {
            return Err(ConfigError::ZeroBaseQuantum);
        }
        if self.max_flows == 0 || self.max_flows > MAX_FLOWS {
            return Err(ConfigError::BadCapacity { what: "max_flows" });
        }
        if self.max_packets == 0 || self.max_packets > MAX_PACKETS {
            return Err(ConfigError::BadCapacity {
                what: "max_packets",
            });
        }
        if self.max_packets_per_flow == 0 || self.max_packets_per_flow > self.max_packets {
            return Err(ConfigError::BadCapacity {
                what: "max_packets_per_flow",
            });
        }
        Ok(())
    }
}
