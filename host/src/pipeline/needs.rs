//! What a request needs from the model that serves it (tools, vision, JSON, streaming, context).
//! Not to be confused with [`crate::routing::classifier`], which says what kind of task a prompt is.

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
