//! The chat pipeline's answer, turned into a dialect's by its [`Reply`]: a JSON body whole, a
//! stream event by event as each arrives (nothing is held back beyond the partial event).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use freeway_core::dialect::Reply;
use freeway_core::wire::sse::{Event, SseFramer};
use http::{HeaderMap, HeaderValue, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde_json::{Value, json};

use crate::errors::{ErrorKind, GatewayError};

/// The most a whole answer may be (the pipeline's JSON replies are already in memory).
const MAX_JSON: usize = 64 * 1024 * 1024;

pub async fn reply(resp: Response, mut reply: Box<dyn Reply>) -> Result<Response, GatewayError> {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if is_event_stream(&parts.headers) {
        let body = Body::new(Translated {
            inner: body,
            framer: SseFramer::new(),
            reply,
            out: Vec::new(),
            ended: false,
            inner_done: false,
        });
        return Ok(Response::from_parts(parts, body));
    }
    let bytes = axum::body::to_bytes(body, MAX_JSON).await.map_err(|e| {
        GatewayError::new(ErrorKind::UpstreamInvalidResponse, format!("could not read the answer: {e}"))
    })?;
    let chat: Value = serde_json::from_slice(&bytes).map_err(|e| {
        GatewayError::new(ErrorKind::UpstreamInvalidResponse, format!("the answer is not a chat completion: {e}"))
    })?;
    let out = crate::cpu::run(bytes.len(), || reply.complete(&chat));
    let body = serde_json::to_vec(&out).map_err(|e| GatewayError::internal(e.to_string()))?;
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"))
}

/// A chat stream's body, translated event by event.
struct Translated {
    inner: Body,
    framer: SseFramer,
    reply: Box<dyn Reply>,
    /// the events translated from what has arrived, not yet handed out
    out: Vec<u8>,
    ended: bool,
    /// the chat stream has ended (it is not polled again)
    inner_done: bool,
}

impl Translated {
    /// Translate every whole event the framer holds.
    fn drain(&mut self) {
        while let Some(raw) = self.framer.next_event() {
            let event = Event::parse(&raw);
            if !event.has_data {
                continue;
            }
            let data = event.data.trim();
            if data == "[DONE]" {
                self.end();
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            match v.get("error").filter(|_| v.get("choices").is_none()) {
                Some(err) => {
                    self.reply.failed(err, &mut self.out);
                    self.ended = true;
                }
                None => self.reply.chunk(&v, &mut self.out),
            }
        }
    }

    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            self.reply.finish(&mut self.out);
        }
    }

    fn take(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| Bytes::from(std::mem::take(&mut self.out)))
    }
}

impl HttpBody for Translated {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.take() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.inner_done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.framer.push(&data);
                        this.drain();
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    if !this.ended {
                        this.ended = true;
                        let err = json!({ "message": format!("the stream failed: {e}"), "type": "upstream_error",
                                          "code": ErrorKind::UpstreamStreamInterrupted.spec().code });
                        this.reply.failed(&err, &mut this.out);
                    }
                }
                Poll::Ready(None) => {
                    this.inner_done = true;
                    if let Some(rest) = this.framer.finish() {
                        this.framer.push(&rest);
                        this.framer.push(b"\n\n");
                        this.drain();
                    }
                    this.end();
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_done && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
