//! The task classes a prompt is sorted into, as the policy world names them: the classifier
//! produces them, `[[routing_rules]]` name them, the decide step and policies rank by them.

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
}
