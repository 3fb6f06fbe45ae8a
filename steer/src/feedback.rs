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

use classifier::TokenFeatures;
use predictor::{InstanceModel, InstancePrior, ModelConfig, Observation};

use crate::decision::Predicted;
use crate::ServiceTable;

/// Every instance's latency model, starting from its configured priors
/// (base TTFT, prefill and decode rates) and `per_queued_request_us` of
/// added TTFT per request its node reports queued. The data plane and the
/// simulator both start from these.
pub fn instance_models(
    table: &ServiceTable,
    per_queued_request_us: f64,
) -> Result<Vec<InstanceModel>, String> {
    table
        .instances()
        .iter()
        .map(|i| {
            let c = &i.spec.capability;
            let prior = InstancePrior {
                base_ttft_us: c.base_ttft_us,
                prefill_tokens_per_s: c.prefill_tokens_per_s,
                per_queued_request_us,
                decode_tokens_per_s: c.decode_tokens_per_s,
            };
            InstanceModel::new(prior, ModelConfig::default())
                .map_err(|e| format!("instance {}: latency model: {e}", i.spec.name))
        })
        .collect()
}

/// Answers shorter than this many output tokens teach no decode time: the
/// fixed costs of an answer (its last chunk, the close, a late wake-up)
/// spread over a few tokens read as a slow decode, and a node that served
/// only short answers would then look slow for every long one.
pub const MIN_DECODE_LEARN_TOKENS: u32 = 64;

/// What a measured request teaches its instance's model: the measured
/// times minus the network round trip the decision predicted (the model
/// predicts compute only), next to what it predicted at decision time.
/// The prompt is the tokens the decision expected prefilled: those it
/// expected the node's prefix cache to hold are left out, as they were
/// left out of the prediction. The completion is left out below
/// [`MIN_DECODE_LEARN_TOKENS`] output tokens.
pub fn observation(
    features: &TokenFeatures,
    predicted: &Predicted,
    measured: &Measured,
) -> Observation {
    let net = predicted.net_us;
    Observation {
        prompt_tokens: features
            .prompt_tokens
            .saturating_sub(predicted.cached_tokens.max(0.0) as u32),
        output_tokens: features.output_tokens,
        queue_len: predicted.queue_len,
        predicted_compute_ttft_us: predicted.compute_ttft_us,
        observed_compute_ttft_us: (measured.ttft_us - net).max(0.0),
        predicted_completion_us: Some((predicted.completion_us - net).max(0.0)),
        observed_completion_us: (features.output_tokens >= MIN_DECODE_LEARN_TOKENS)
            .then(|| (measured.completion_us - net).max(0.0)),
    }
}

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

/// Per-flow timing state. In declaration order (`repr(C)`): what a request
/// packet reads and writes first, so that with [`crate::flow_table::FlowEntry`]'s
/// order it shares the flow-table entry's first cache line with the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
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
    use classifier::TaskType;

    const MS: u64 = 1_000_000;

    #[test]
    fn an_observation_is_compute_only_next_to_the_decision_s_prediction() {
        let features = TokenFeatures {
            prompt_tokens: 100,
            output_tokens: 40,
            task: TaskType::Chat,
            urgency: TaskType::Chat.default_urgency(),
            explicit_urgency: false,
            prefix: None,
        };
        let predicted = Predicted {
            net_us: 2_000.0,
            compute_ttft_us: 30_000.0,
            ttft_us: 32_000.0,
            completion_us: 132_000.0,
            queue_len: 3.0,
            cached_tokens: 0.0,
        };
        let measured = Measured {
            ttft_us: 41_000.0,
            completion_us: 150_000.0,
            response_packets: 10,
        };
        let o = observation(&features, &predicted, &measured);
        assert_eq!((o.prompt_tokens, o.output_tokens), (100, 40));
        assert_eq!(o.queue_len, 3.0);
        assert_eq!(o.predicted_compute_ttft_us, 30_000.0);
        assert_eq!(o.observed_compute_ttft_us, 39_000.0);
        assert_eq!(o.predicted_completion_us, Some(130_000.0));
        // 40 output tokens teach no decode time; 64 do.
        assert_eq!(o.observed_completion_us, None);
        let long = TokenFeatures {
            output_tokens: MIN_DECODE_LEARN_TOKENS,
            ..features
        };
        let o = observation(&long, &predicted, &measured);
        assert_eq!(o.observed_completion_us, Some(148_000.0));
        // Faster than the predicted round trip: nothing negative.
        let quick = Measured {
            ttft_us: 1_000.0,
            completion_us: 1_500.0,
            ..measured
        };
        let o = observation(&long, &predicted, &quick);
        assert_eq!(o.observed_compute_ttft_us, 0.0);
        assert_eq!(o.observed_completion_us, Some(0.0));
    }

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
