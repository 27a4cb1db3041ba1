//! The task classes a prompt is sorted into, as the policy world names them.

/// Task classes, as the policy world names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    General,
    Code,
    Math,
    Reasoning,
    Creative,
    Extraction,
    Vision,
    ToolUse,
}

impl Task {
    pub const ALL: [Task; 8] = [
        Task::General,
        Task::Code,
        Task::Math,
        Task::Reasoning,
        Task::Creative,
        Task::Extraction,
        Task::Vision,
        Task::ToolUse,
    ];

    /// Position in [`Task::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Task::General => "general",
            Task::Code => "code",
            Task::Math => "math",
            Task::Reasoning => "reasoning",
            Task::Creative => "creative",
            Task::Extraction => "extraction",
            Task::Vision => "vision",
            Task::ToolUse => "tool-use",
        }
    }

    pub fn parse(s: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.as_str() == s || (s == "tool_use" && *t == Task::ToolUse))
    }

    /// Classes the keyword scorer decides between (vision and tool use come from the request's
    /// shape, not its words).
    pub(super) const SCORED: [Task; 6] =
        [Task::General, Task::Code, Task::Math, Task::Reasoning, Task::Creative, Task::Extraction];

    pub(super) fn slot(self) -> usize {
        Task::SCORED.iter().position(|t| *t == self).unwrap_or(0)
    }
}
