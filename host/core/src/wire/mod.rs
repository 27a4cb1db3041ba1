//! The OpenAI wire format as the gateway sees it: a borrowed view of request bodies that keeps
//! every field the gateway does not know (`chat`), SSE framing (`sse`), and the few response
//! shapes the gateway reads (`types`).

pub mod chat;
pub mod embeddings;
pub mod shape;
pub mod sse;
pub mod types;
