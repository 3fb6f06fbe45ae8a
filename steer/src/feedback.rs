//! Passive latency measurement (draft §5d, "actual latency data is fed
//! back to optimise subsequent scheduling").
//!
//! The appliance sees both directions of every steered flow, so it can time
//! each request without the agent's or the node's help:
//!
//! * **TTFT**: from the request's last payload packet to the first
//!   response payload packet. The request is known to be complete when the
//!   answer starts, so "last" is the last request payload seen before the
//!   first response payload.
//! * **Completion**: from that same request packet to the last response
//!   payload packet, known when the server ends the flow (FIN or RST), the
//!   client sends its next request on the same connection (HTTP
//!   keep-alive), or the flow ages out.
//!
//! Both are as seen at the appliance, so they include the round trip
//! between appliance and node, which is what the decision predicts too.
//! Handshake and pure ACK packets carry no payload and are ignored.

/// Where a flow's current request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// No request payload yet.
    #[default]
    Idle,
    /// Request payload seen, no response yet.
    Requesting,
    /// Response under way.
    Responding,
    /// Measured and reported.
    Done,
}

/// One request's measured latency, µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Time to first token.
    pub ttft_us: f64,
    /// Completion.
    pub completion_us: f64,
    /// Response payload packets.
    pub response_packets: u32,
}

/// Per-flow timing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestTiming {
    /// Current phase.
    pub phase: Phase,
    last_request_ns: u64,
    first_response_ns: u64,
    last_response_ns: u64,
    response_packets: u32,
}

impl RequestTiming {
    /// A request payload packet at `now_ns`. When it starts a new request
    /// on a connection whose previous answer was under way, that answer is
    /// complete: it is returned.
    pub fn on_request_payload(&mut self, now_ns: u64) -> Option<Measured> {
        let finished = if self.phase == Phase::Responding {
            self.finish()
        } else {
            None
        };
        self.phase = Phase::Requesting;
        self.last_request_ns = now_ns;
        finished
    }

    /// A response payload packet at `now_ns`.
    pub fn on_response_payload(&mut self, now_ns: u64) {
        match self.phase {
            Phase::Requesting => {
                self.phase = Phase::Responding;
                self.first_response_ns = now_ns;
                self.last_response_ns = now_ns;
                self.response_packets = 1;
            }
            Phase::Responding => {
                self.last_response_ns = now_ns;
                self.response_packets = self.response_packets.saturating_add(1);
            }
            Phase::Idle | Phase::Done => {}
        }
    }

    /// The flow ends (server FIN or RST, or ageing): the answer under way,
    /// if any, is complete.
    pub fn on_end(&mut self) -> Option<Measured> {
        if self.phase == Phase::Responding {
            self.finish()
        } else {
            None
        }
    }

    fn finish(&mut self) -> Option<Measured> {
        self.phase = Phase::Done;
        let ttft = self.first_response_ns.checked_sub(self.last_request_ns)?;
        let completion = self.last_response_ns.checked_sub(self.last_request_ns)?;
        Some(Measured {
            ttft_us: ttft as f64 / 1000.0,
            completion_us: completion as f64 / 1000.0,
            response_packets: self.response_packets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn times_one_request() {
        let mut t = RequestTiming::default();
        t.on_response_payload(1); // before any request: ignored
        assert_eq!(t.on_request_payload(10 * MS), None);
        assert_eq!(t.on_request_payload(11 * MS), None); // last request segment
        t.on_response_payload(31 * MS);
        t.on_response_payload(50 * MS);
        t.on_response_payload(91 * MS);
        let m = t.on_end().unwrap();
        assert_eq!(m.ttft_us, 20_000.0);
        assert_eq!(m.completion_us, 80_000.0);
        assert_eq!(m.response_packets, 3);
        assert_eq!(t.on_end(), None, "reported once");
    }

    #[test]
    fn keep_alive_reports_the_previous_answer() {
        let mut t = RequestTiming::default();
        t.on_request_payload(0);
        t.on_response_payload(5 * MS);
        let m = t.on_request_payload(9 * MS).unwrap();
        assert_eq!((m.ttft_us, m.completion_us), (5_000.0, 5_000.0));
        assert_eq!(t.phase, Phase::Requesting);
        t.on_response_payload(12 * MS);
        assert_eq!(t.on_end().unwrap().ttft_us, 3_000.0);
    }

    #[test]
    fn no_answer_no_measurement() {
        let mut t = RequestTiming::default();
        t.on_request_payload(0);
        assert_eq!(t.on_end(), None);
    }
}
