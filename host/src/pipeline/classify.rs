//! Classification: what a request needs from the model that serves it.

use crate::wire::chat::ChatBody;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    pub tools: bool,
    pub vision: bool,
    pub json: bool,
    pub stream: bool,
    pub prompt_tokens: u32,
    pub max_tokens: Option<u32>,
}

pub fn needs(req: &ChatBody<'_>) -> Needs {
    Needs {
        tools: req.has_tools,
        vision: req.has_images,
        json: req.json_mode,
        stream: req.stream,
        prompt_tokens: req.estimated_prompt_tokens(),
        max_tokens: req.max_tokens,
    }
}
