//! Server-sent-event streams of `chat.completion.chunk`s, with scripted endings.

use std::io;
use std::ops::Range;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;
use serde::Serialize;
use serde_json::{Value, json};

use crate::chat::{FINGERPRINT, FunctionOut, Reply, TOOL_ARGUMENTS, ToolCallOut, XSim, encode, pieces};

/// How long a hang or stall holds a connection.
pub const HOLD: Duration = Duration::from_secs(600);
/// Pause before an abort so the events sent so far are flushed to the socket first.
pub const FLUSH_GRACE: Duration = Duration::from_millis(10);

/// How a stream (or a body) ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Every event, then `[DONE]`.
    Normal,
    /// The first n events, then the connection is aborted.
    DropAfter(usize),
    /// The first n events, then nothing until the client leaves (or [`HOLD`] passes).
    StallAfter(usize),
    /// The first n events, an OpenRouter-style error event, then `[DONE]`.
    MidStreamError(usize, Value),
    /// An event whose data is not JSON, then `[DONE]`.
    Malformed,
}

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Role,
    Reasoning,
    Text(Range<usize>),
    ToolHeader,
    ToolArgs,
    Finish,
    Usage,
    Error(Value),
    Malformed,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Clean,
    Abort,
    Stall,
}

/// A planned stream: the events to send, the pause between them and how it ends.
#[derive(Debug)]
pub struct StreamPlan {
    reply: Reply,
    include_usage: bool,
    delay: Duration,
    events: Vec<Event>,
    ending: Ending,
}

impl StreamPlan {
    pub fn new(reply: Reply, include_usage: bool, delay: Duration, shape: Shape) -> Self {
        let mut events = Vec::with_capacity(8);
        events.push(Event::Role);
        if reply.reasoning.is_some() {
            events.push(Event::Reasoning);
        }
        if reply.tool_call.is_some() {
            events.push(Event::ToolHeader);
            events.push(Event::ToolArgs);
        } else {
            events.extend(pieces(&reply.content).into_iter().map(Event::Text));
        }
        events.push(Event::Finish);
        if include_usage {
            events.push(Event::Usage);
        }
        let ending = match shape {
            Shape::Normal => {
                events.push(Event::Done);
                Ending::Clean
            }
            Shape::DropAfter(n) => {
                events.truncate(n);
                Ending::Abort
            }
            Shape::StallAfter(n) => {
                events.truncate(n);
                Ending::Stall
            }
            Shape::MidStreamError(n, error) => {
                events.truncate(n);
                events.push(Event::Error(error));
                events.push(Event::Done);
                Ending::Clean
            }
            Shape::Malformed => {
                events = vec![Event::Malformed, Event::Done];
                Ending::Clean
            }
        };
        Self { reply, include_usage, delay, events, ending }
    }

    /// The SSE bytes of event `index`.
    fn render(&self, index: usize) -> Bytes {
        let Some(event) = self.events.get(index) else {
            return Bytes::new();
        };
        let data = match event {
            Event::Done => return Bytes::from_static(b"data: [DONE]\n\n"),
            Event::Malformed => {
                return Bytes::from_static(
                    b"data: {\"id\":\"chatcmpl-sim\",\"choices\":[{\"delta\":{\"content\":\"tok0\n\n",
                );
            }
            Event::Role => {
                self.chunk(Delta { role: Some("assistant"), content: Some(""), ..Delta::default() }, None, None)
            }
            Event::Reasoning => {
                self.chunk(Delta { reasoning_content: self.reply.reasoning.as_deref(), ..Delta::default() }, None, None)
            }
            Event::Text(range) => {
                self.chunk(Delta { content: self.reply.content.get(range.clone()), ..Delta::default() }, None, None)
            }
            Event::ToolHeader | Event::ToolArgs => {
                let header = *event == Event::ToolHeader;
                let call = self.reply.tool_call.as_ref();
                self.chunk(
                    Delta {
                        tool_calls: Some([ToolCallOut {
                            index: Some(0),
                            id: call.filter(|_| header).map(|c| c.id.as_str()),
                            kind: header.then_some("function"),
                            function: FunctionOut {
                                name: call.filter(|_| header).map(|c| c.name.as_str()),
                                arguments: if header { "" } else { TOOL_ARGUMENTS },
                            },
                        }]),
                        ..Delta::default()
                    },
                    None,
                    None,
                )
            }
            Event::Finish => self.chunk(Delta::default(), Some(&self.reply.finish_reason), None),
            Event::Usage => self.encode_chunk(&[], Some(Some(&self.reply.usage)), None),
            Event::Error(error) => {
                self.chunk(Delta { content: Some(""), ..Delta::default() }, Some("error"), Some(error))
            }
        };
        let mut framed = Vec::with_capacity(data.len() + 8);
        framed.extend_from_slice(b"data: ");
        framed.extend_from_slice(&data);
        framed.extend_from_slice(b"\n\n");
        Bytes::from(framed)
    }

    fn chunk(&self, delta: Delta<'_>, finish_reason: Option<&str>, error: Option<&Value>) -> Bytes {
        let choices = [ChunkChoice { index: 0, delta, logprobs: None, finish_reason }];
        let usage = self.include_usage.then_some(None);
        self.encode_chunk(&choices, usage, error)
    }

    fn encode_chunk(&self, choices: &[ChunkChoice<'_>], usage: Option<Option<&Value>>, error: Option<&Value>) -> Bytes {
        let chunk = Chunk {
            id: &self.reply.id,
            object: "chat.completion.chunk",
            created: self.reply.created,
            model: &self.reply.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage,
            error,
            x_sim: XSim { request: self.reply.seq },
        };
        encode(&chunk, self.reply.extra.as_ref())
    }

    /// The response body: events paced by the delay, then the planned ending.
    pub fn into_body(self) -> Body {
        let cursor = Cursor { plan: self, next: 0, finished: false };
        Body::from_stream(stream::unfold(cursor, Cursor::step))
    }
}

struct Cursor {
    plan: StreamPlan,
    next: usize,
    finished: bool,
}

impl Cursor {
    async fn step(mut self) -> Option<(io::Result<Bytes>, Cursor)> {
        if self.next < self.plan.events.len() {
            if self.next > 0 && !self.plan.delay.is_zero() {
                tokio::time::sleep(self.plan.delay).await;
            }
            let bytes = self.plan.render(self.next);
            self.next += 1;
            return Some((Ok(bytes), self));
        }
        if self.finished {
            return None;
        }
        self.finished = true;
        match self.plan.ending {
            Ending::Clean => None,
            Ending::Abort => {
                tokio::time::sleep(FLUSH_GRACE).await;
                Some((Err(aborted()), self))
            }
            Ending::Stall => {
                tokio::time::sleep(HOLD).await;
                Some((Err(aborted()), self))
            }
        }
    }
}

fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "freeway-sim: scripted connection drop")
}

/// A non-stream body that sends `head`, then aborts (`hold` = false) or stalls (`hold` = true).
pub fn broken_body(head: Bytes, hold: bool) -> Body {
    let wait = if hold { HOLD } else { FLUSH_GRACE };
    let first = (!head.is_empty()).then_some(head);
    let tail = stream::once(async move {
        tokio::time::sleep(wait).await;
        Err::<Bytes, io::Error>(aborted())
    });
    Body::from_stream(futures_util::StreamExt::chain(stream::iter(first.map(Ok)), tail))
}

/// Default error of a `mid_stream_error` action.
pub fn default_stream_error() -> Value {
    json!({"code": "server_error", "message": "Provider disconnected unexpectedly"})
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a Value>,
    x_sim: XSim,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatRequest, plan};
    use futures_util::StreamExt;

    fn reply(tool: Option<&str>, tokens: u32) -> Reply {
        let req =
            ChatRequest { model: "m", stream: true, include_usage: false, max_tokens: None, prompt_tokens: 2, tool };
        plan(&req, tokens, 9, 100, None)
    }

    /// The frames of a body, and whether it ended with an error.
    async fn collect(body: Body) -> (Vec<String>, bool) {
        let mut frames = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(bytes) => frames.push(String::from_utf8(bytes.to_vec()).unwrap()),
                Err(_) => return (frames, true),
            }
        }
        (frames, false)
    }

    fn data(frame: &str) -> Value {
        let payload = frame.strip_prefix("data: ").unwrap().strip_suffix("\n\n").unwrap();
        serde_json::from_str(payload).unwrap()
    }

    #[tokio::test]
    async fn normal_stream_with_usage() {
        let plan = StreamPlan::new(reply(None, 3), true, Duration::ZERO, Shape::Normal);
        let (frames, errored) = collect(plan.into_body()).await;
        assert!(!errored);
        // role, 3 tokens, finish, usage, [DONE]
        assert_eq!(frames.len(), 7);
        assert_eq!(frames[6], "data: [DONE]\n\n");
        let first = data(&frames[0]);
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        assert!(first["usage"].is_null() && first.get("usage").is_some());
        assert_eq!(first["x_sim"]["request"], 9);
        assert_eq!(first["system_fingerprint"], "fp_sim");
        let text: String = frames[1..4]
            .iter()
            .map(|f| data(f)["choices"][0]["delta"]["content"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, "tok0 tok1 tok2");
        let finish = data(&frames[4]);
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage = data(&frames[5]);
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 5);
    }

    #[tokio::test]
    async fn without_include_usage_there_is_no_usage_field() {
        let plan = StreamPlan::new(reply(None, 1), false, Duration::ZERO, Shape::Normal);
        let (frames, _) = collect(plan.into_body()).await;
        assert_eq!(frames.len(), 4);
        assert!(data(&frames[0]).get("usage").is_none());
    }

    #[tokio::test]
    async fn tool_call_stream() {
        let plan = StreamPlan::new(reply(Some("f"), 3), false, Duration::ZERO, Shape::Normal);
        let (frames, _) = collect(plan.into_body()).await;
        assert_eq!(frames.len(), 5);
        let header = data(&frames[1]);
        let call = &header["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert_eq!(call["id"], "call_sim_9");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"], json!({"name": "f", "arguments": ""}));
        let args = data(&frames[2]);
        assert_eq!(args["choices"][0]["delta"]["tool_calls"][0]["function"], json!({"arguments": TOOL_ARGUMENTS}));
        assert_eq!(data(&frames[3])["choices"][0]["finish_reason"], "tool_calls");
    }

    #[tokio::test]
    async fn drop_after_ends_with_an_error() {
        let plan = StreamPlan::new(reply(None, 5), false, Duration::ZERO, Shape::DropAfter(3));
        let (frames, errored) = collect(plan.into_body()).await;
        assert_eq!(frames.len(), 3);
        assert!(errored);
    }

    #[tokio::test(start_paused = true)]
    async fn stall_after_holds_then_aborts() {
        let plan = StreamPlan::new(reply(None, 5), false, Duration::ZERO, Shape::StallAfter(2));
        let started = tokio::time::Instant::now();
        let (frames, errored) = collect(plan.into_body()).await;
        assert_eq!(frames.len(), 2);
        assert!(errored);
        assert!(started.elapsed() >= HOLD);
    }

    #[tokio::test]
    async fn mid_stream_error_then_done() {
        let plan =
            StreamPlan::new(reply(None, 5), false, Duration::ZERO, Shape::MidStreamError(2, default_stream_error()));
        let (frames, errored) = collect(plan.into_body()).await;
        assert!(!errored);
        assert_eq!(frames.len(), 4);
        let error = data(&frames[2]);
        assert_eq!(error["error"]["code"], "server_error");
        assert_eq!(error["choices"][0]["finish_reason"], "error");
        assert_eq!(frames[3], "data: [DONE]\n\n");
    }

    #[tokio::test]
    async fn malformed_stream() {
        let plan = StreamPlan::new(reply(None, 5), false, Duration::ZERO, Shape::Malformed);
        let (frames, _) = collect(plan.into_body()).await;
        assert_eq!(frames.len(), 2);
        let payload = frames[0].strip_prefix("data: ").unwrap();
        assert!(serde_json::from_str::<Value>(payload.trim()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn events_are_paced() {
        let plan = StreamPlan::new(reply(None, 2), false, Duration::from_millis(100), Shape::Normal);
        let started = tokio::time::Instant::now();
        let (frames, _) = collect(plan.into_body()).await;
        assert_eq!(frames.len(), 5);
        assert_eq!(started.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test]
    async fn broken_body_sends_head_then_errors() {
        let (frames, errored) = collect(broken_body(Bytes::from_static(b"{\"id\":"), false)).await;
        assert_eq!(frames, ["{\"id\":"]);
        assert!(errored);
    }
}
