//! How an egress port queues steered traffic: the `sched` bands a port has
//! and the band each class's packets join.
//!
//! The data plane builds every egress port's [`sched::Scheduler`] from
//! [`band_config`], and the simulator builds its shaped links from the same
//! function, so what the evaluation shows about queueing at the appliance
//! is what the appliance does.
//!
//! With strict priority (the product) the interactive class is one strict
//! band, served whenever it holds a packet, and the bulk classes and
//! `other` share what it leaves by DRR, each with a quantum of one full
//! frame per unit of its weight: short work never waits behind long work
//! for more than the frame on the wire. Without it (kept for comparison)
//! the port is one FIFO band in arrival order.

use sched::SchedConfig;

use crate::TrafficClass;

/// Bytes of one full Ethernet frame: the DRR quantum per unit of weight.
const FULL_FRAME_BYTES: u32 = 1514;

/// DRR quantum of a bulk class with this weight (0 counts as 1).
pub fn class_quantum(weight: u16) -> u32 {
    FULL_FRAME_BYTES * u32::from(weight.max(1))
}

/// The bands of an egress port. `class_weight` gives each bulk class's
/// (and `other`'s) DRR weight; `band_limit_packets` is every band's limit
/// (the single FIFO band holds as many as all of them together).
pub fn band_config(
    strict_priority: bool,
    class_weight: impl Fn(TrafficClass) -> u16,
    band_limit_packets: u32,
) -> SchedConfig {
    if strict_priority {
        let quanta = TrafficClass::ALL
            .into_iter()
            .filter(|c| !c.is_interactive())
            .map(|c| class_quantum(class_weight(c)))
            .collect();
        SchedConfig::uniform(1, quanta, band_limit_packets)
    } else {
        SchedConfig::uniform(
            0,
            vec![FULL_FRAME_BYTES],
            band_limit_packets.saturating_mul(TrafficClass::COUNT as u32),
        )
    }
}

/// The band a packet of class band `class_band` ([`TrafficClass::band`])
/// joins under [`band_config`]: its own, or the one FIFO band.
pub const fn scheduler_band(strict_priority: bool, class_band: usize) -> usize {
    if strict_priority {
        class_band
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sched::Scheduler;

    /// A port where a long request's frames are already queued, then a
    /// short request's frame arrives: what leaves first?
    fn first_out_after_backlog(strict_priority: bool) -> Vec<TrafficClass> {
        let cfg = band_config(strict_priority, |_| 1, 64);
        let mut port = Scheduler::new(&cfg).unwrap();
        for c in [TrafficClass::BulkCode; 4]
            .into_iter()
            .chain([TrafficClass::Interactive])
        {
            let band = scheduler_band(strict_priority, c.band());
            assert!(port.enqueue(band, c, 1514).is_ok());
        }
        std::iter::from_fn(|| port.dequeue().map(|(_, c, _)| c)).collect()
    }

    #[test]
    fn strict_priority_sends_interactive_work_before_queued_bulk_work() {
        let order = first_out_after_backlog(true);
        assert_eq!(order.first(), Some(&TrafficClass::Interactive));
        assert_eq!(order.len(), 5);
    }

    #[test]
    fn without_strict_priority_the_port_is_one_fifo() {
        let order = first_out_after_backlog(false);
        assert_eq!(order.last(), Some(&TrafficClass::Interactive));
        assert_eq!(order.len(), 5);
    }

    #[test]
    fn every_class_has_a_valid_band_and_weights_set_the_quanta() {
        let cfg = band_config(true, |c| c as u16, 8);
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.bands(), TrafficClass::COUNT);
        assert_eq!(cfg.strict_bands, 1);
        // Bulk chat (weight 1) then code (2) ... other (5).
        assert_eq!(cfg.drr_quanta, vec![1514, 3028, 4542, 6056, 7570]);
        let fifo = band_config(false, |_| 1, 8);
        assert!(fifo.validate().is_ok());
        assert_eq!(
            fifo.band_limit_packets,
            vec![8 * TrafficClass::COUNT as u32]
        );
        for c in TrafficClass::ALL {
            assert!(c.band() < cfg.bands());
            assert_eq!(scheduler_band(false, c.band()), 0);
        }
    }
}
