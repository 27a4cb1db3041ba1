//! The Responses API subset (`POST /v1/responses`) over the chat pipeline: the request
//! ([`request`]; `previous_response_id` is resolved by the caller's conversation store), the
//! answer ([`reply`]) and its stream of typed events ([`stream`]).

pub mod reply;
pub mod request;
pub mod stream;

pub use reply::ResponsesReply;
pub use request::{Echo, Translated, to_chat};

/// Called when an answer is complete: the response id and the whole conversation it ends
/// (the chat messages without the instructions, the answer's message last), for the next
/// request's `previous_response_id`.
pub type Keep = Box<dyn FnOnce(String, Vec<serde_json::Value>) + Send>;
