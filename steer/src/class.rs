//! Traffic classes: what a request's token features say about how it must
//! be treated, on the way to a node and on the egress port.
//!
//! The draft (§3.1–3.3) separates two kinds of agent work. *Interactive*
//! work ("turn on the light") is short or urgent: it must reach the node
//! with the lowest time to first token and must never queue behind bulk
//! transfers. *Bulk* work (code, long summaries, reasoning) is long: it
//! needs ample compute and short node queues, and shares what the
//! interactive class leaves by weight. Bulk work is split by task type so
//! an operator can weight, say, reasoning above summarisation.

use classifier::{TaskType, TokenFeatures, Urgency};

/// Scheduling and decision class of a flow. The discriminant is the
/// egress scheduler band and the POLICY class-weight id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrafficClass {
    /// Short or urgent LLM requests: minimise TTFT, strict priority.
    Interactive = 0,
    /// Long chat.
    BulkChat = 1,
    /// Long code generation.
    BulkCode = 2,
    /// Long summarisation.
    BulkSummarisation = 3,
    /// Long complex reasoning.
    BulkReasoning = 4,
    /// Everything that is not a steered LLM request (responses of bulk
    /// flows excepted: a flow's responses keep its class).
    Other = 5,
}

impl TrafficClass {
    /// Every class, by band.
    pub const ALL: [TrafficClass; 6] = [
        TrafficClass::Interactive,
        TrafficClass::BulkChat,
        TrafficClass::BulkCode,
        TrafficClass::BulkSummarisation,
        TrafficClass::BulkReasoning,
        TrafficClass::Other,
    ];
    /// Number of classes (and egress bands).
    pub const COUNT: usize = 6;

    /// The class of a request: interactive when its estimated total tokens
    /// are at most `short_task_tokens`, when it is an immediate-control
    /// task, when its urgency is `immediate`, or when the agent explicitly
    /// flagged it `interactive`; otherwise bulk by task type. (An inferred
    /// `interactive` urgency, the chat default, does not make a long chat
    /// interactive: the agent did not ask for it.)
    pub const fn of(f: &TokenFeatures, short_task_tokens: u32) -> TrafficClass {
        let urgent = matches!(f.urgency, Urgency::Immediate)
            || (f.explicit_urgency && matches!(f.urgency, Urgency::Interactive));
        if urgent || f.is_short(short_task_tokens) || matches!(f.task, TaskType::ImmediateControl) {
            return TrafficClass::Interactive;
        }
        match f.task {
            TaskType::ImmediateControl => TrafficClass::Interactive,
            TaskType::Chat => TrafficClass::BulkChat,
            TaskType::CodeGeneration => TrafficClass::BulkCode,
            TaskType::Summarisation => TrafficClass::BulkSummarisation,
            TaskType::ComplexReasoning => TrafficClass::BulkReasoning,
        }
    }

    /// Egress band (0 is served first).
    pub const fn band(self) -> usize {
        self as usize
    }

    /// Short work minimises time to first token; the rest completion time.
    pub const fn is_interactive(self) -> bool {
        matches!(self, TrafficClass::Interactive)
    }

    /// Stable name for counters and reports.
    pub const fn name(self) -> &'static str {
        match self {
            TrafficClass::Interactive => "interactive",
            TrafficClass::BulkChat => "bulk_chat",
            TrafficClass::BulkCode => "bulk_code",
            TrafficClass::BulkSummarisation => "bulk_summarisation",
            TrafficClass::BulkReasoning => "bulk_reasoning",
            TrafficClass::Other => "other",
        }
    }
}

impl core::fmt::Display for TrafficClass {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(prompt: u32, output: u32, task: TaskType, urgency: Urgency) -> TokenFeatures {
        TokenFeatures {
            prompt_tokens: prompt,
            output_tokens: output,
            task,
            urgency,
            explicit_urgency: false,
            prefix: None,
        }
    }

    #[test]
    fn short_urgent_or_control_is_interactive() {
        let c = |f| TrafficClass::of(&f, 256);
        assert_eq!(
            c(features(20, 30, TaskType::Chat, Urgency::Normal)),
            TrafficClass::Interactive
        );
        assert_eq!(
            c(features(2000, 400, TaskType::Chat, Urgency::Immediate)),
            TrafficClass::Interactive
        );
        assert_eq!(
            c(features(2000, 400, TaskType::Chat, Urgency::Interactive)),
            TrafficClass::BulkChat
        );
        let mut flagged = features(2000, 400, TaskType::Chat, Urgency::Interactive);
        flagged.explicit_urgency = true;
        assert_eq!(c(flagged), TrafficClass::Interactive);
        assert_eq!(
            c(features(
                900,
                10,
                TaskType::ImmediateControl,
                Urgency::Background
            )),
            TrafficClass::Interactive
        );
        assert_eq!(
            c(features(
                2000,
                400,
                TaskType::ComplexReasoning,
                Urgency::Normal
            )),
            TrafficClass::BulkReasoning
        );
        assert_eq!(
            c(features(
                2000,
                400,
                TaskType::Summarisation,
                Urgency::Background
            )),
            TrafficClass::BulkSummarisation
        );
    }
}
