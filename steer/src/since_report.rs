//! Flows this appliance steered to each instance since its node's last
//! load report: what the report cannot show yet.
//!
//! NODE_STATE arrives every few tens of milliseconds. Between two reports
//! every decision reads the same queue length, so a burst of new flows
//! would all pick the instance that looked emptiest (herding), and a node
//! that has just died keeps looking as idle as its last report until that
//! report goes stale. Counting our own decisions since the report closes
//! both gaps: the token-aware decision adds the flows that cannot have
//! found a free batch slot to the reported queue (see
//! [`crate::decision`]). A new report resets the count, because it already
//! includes them.
//!
//! Fixed size, no allocation; one per worker, like the models.

use control::view::DataplaneView;
use control::NodeMetrics;

use crate::service::{ServiceTable, MAX_INSTANCES};

/// Per-instance count of flows steered since the node's latest report.
#[derive(Debug, Clone)]
pub struct SinceReport {
    /// The report each count is relative to (`updated_ns`, 0 = none).
    report_ns: [u64; MAX_INSTANCES],
    steered: [u32; MAX_INSTANCES],
}

impl Default for SinceReport {
    fn default() -> Self {
        SinceReport {
            report_ns: [0; MAX_INSTANCES],
            steered: [0; MAX_INSTANCES],
        }
    }
}

impl SinceReport {
    /// Brings the counts of `service`'s instances up to `view`: an
    /// instance whose node has reported since restarts from 0.
    pub fn refresh(&mut self, table: &ServiceTable, view: &DataplaneView, service: u8) {
        self.refresh_with(table, view, service, |_, _| {});
    }

    /// [`SinceReport::refresh`], and `on_report` sees each instance's new
    /// report (what else a report carries, the prefix-cache counters, is
    /// then read once per report, not per decision).
    pub fn refresh_with(
        &mut self,
        table: &ServiceTable,
        view: &DataplaneView,
        service: u8,
        mut on_report: impl FnMut(u8, &NodeMetrics),
    ) {
        let Some(svc) = table.services().get(usize::from(service)) else {
            return;
        };
        for &ii in svc.instance_indices() {
            let i = usize::from(ii);
            let (Some(inst), Some(seen), Some(count)) = (
                table.instances().get(i),
                self.report_ns.get_mut(i),
                self.steered.get_mut(i),
            ) else {
                continue;
            };
            let report = view.node_report(inst.spec.node);
            let latest = report.map_or(0, |t| t.updated_ns);
            if latest != *seen {
                *seen = latest;
                *count = 0;
                if let Some(t) = report {
                    on_report(ii, &t.value);
                }
            }
        }
    }

    /// Counts a new flow steered to `instance`.
    pub fn steered(&mut self, instance: u8) {
        if let Some(c) = self.steered.get_mut(usize::from(instance)) {
            *c = c.saturating_add(1);
        }
    }

    /// The counts, indexed like [`ServiceTable::instances`].
    pub fn counts(&self) -> &[u32] {
        &self.steered
    }
}
