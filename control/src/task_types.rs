//! The kinds of request a model serves (token-aware steering draft §4).

use core::fmt;
use core::str::FromStr;

use crate::metric::UnknownName;

/// A bitmask of task types (TASK_TYPES record, u32).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TaskTypes(u32);

impl TaskTypes {
    /// Short, latency-critical commands.
    pub const IMMEDIATE_CONTROL: TaskTypes = TaskTypes(1 << 0);
    /// Conversational turns.
    pub const CHAT: TaskTypes = TaskTypes(1 << 1);
    /// Code generation.
    pub const CODE_GENERATION: TaskTypes = TaskTypes(1 << 2);
    /// Summarisation of long inputs.
    pub const SUMMARISATION: TaskTypes = TaskTypes(1 << 3);
    /// Long multi-step reasoning.
    pub const COMPLEX_REASONING: TaskTypes = TaskTypes(1 << 4);
    /// Every bit this version defines.
    pub const DEFINED: u32 = 0b1_1111;

    const NAMED: [(TaskTypes, &'static str); 5] = [
        (TaskTypes::IMMEDIATE_CONTROL, "immediate_control"),
        (TaskTypes::CHAT, "chat"),
        (TaskTypes::CODE_GENERATION, "code_generation"),
        (TaskTypes::SUMMARISATION, "summarisation"),
        (TaskTypes::COMPLEX_REASONING, "complex_reasoning"),
    ];

    /// The raw bitmask.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The bitmask if it is not empty and sets only defined bits.
    pub const fn from_bits(bits: u32) -> Option<TaskTypes> {
        if bits == 0 || bits & !TaskTypes::DEFINED != 0 {
            None
        } else {
            Some(TaskTypes(bits))
        }
    }

    /// True if every type in `other` is in `self`.
    pub const fn contains(self, other: TaskTypes) -> bool {
        self.0 & other.0 == other.0
    }

    /// Names of the types set, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        TaskTypes::NAMED
            .into_iter()
            .filter(move |(t, _)| self.contains(*t))
            .map(|(_, n)| n)
    }
}

impl core::ops::BitOr for TaskTypes {
    type Output = TaskTypes;
    fn bitor(self, rhs: TaskTypes) -> TaskTypes {
        TaskTypes(self.0 | rhs.0)
    }
}

impl fmt::Display for TaskTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.names().collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for TaskTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskTypes({self})")
    }
}

/// Parses a comma-separated list such as `chat,code_generation`.
impl FromStr for TaskTypes {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<TaskTypes, UnknownName> {
        s.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .try_fold(TaskTypes(0), |acc, n| {
                TaskTypes::NAMED
                    .iter()
                    .find(|(_, name)| *name == n)
                    .map(|(t, _)| acc | *t)
                    .ok_or_else(|| UnknownName {
                        what: "task type",
                        name: n.to_string(),
                    })
            })
    }
}
