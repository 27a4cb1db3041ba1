//! Anthropic Messages (`POST /v1/messages`) over the chat pipeline: the request
//! ([`request`]), the answer ([`reply`]), its stream ([`stream`]) and errors ([`error`]).

pub mod error;
pub mod reply;
pub mod request;
pub mod stream;

pub use reply::MessagesReply;
pub use request::{Translated, to_chat};
