//! Native provider APIs: profiles whose upstream does not speak OpenAI's API (Gemini's
//! `generateContent`, and later Cohere, Anthropic, Cloudflare, ...).
//!
//! `provider.rs` does everything every profile shares, whatever the API: routing by prefix,
//! recording and stats, the key check against `keys`, and the scripted `status`, `rate_limit`,
//! `hang` and `delay` actions (their bodies come from the profile's error style in
//! `profiles.rs`). For a native profile it asks [`Api`] three things on the way (the caller's
//! key, the model, the answer to a bad key) and then hands the request over to [`Api::serve`]
//! with the remaining scripted action (`reply`, `drop_after`, `stall_after`, `malformed`,
//! `mid_stream_error`), which the module applies in its own wire format.
//!
//! Adding a native API:
//! 1. a `Profile` variant with its config name and error style (`profiles.rs`);
//! 2. a module here (see `gemini.rs`) with `key`, `model`, `unauthorized` and `serve`;
//! 3. an [`Api`] variant and one arm in each method below.
//!
//! The module builds on the shared pieces: [`Ctx`] (the request, its upstream and counters),
//! `chat::plan` (the deterministic `tok0 tok1 ...` reply, tool calls, `reply` overrides),
//! `Upstream::acquire` (the upstream's or the model's limits) with `provider::rate_limited`
//! (429s in the profile's shape),
//! `provider::deliver_json` (JSON bodies with their scripted breakage), [`Frames`] (paced
//! stream events with the scripted endings) and [`query_param`].

pub mod anthropic;
pub mod cloudflare;
pub mod cohere;
pub mod gemini;

use std::borrow::Cow;
use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream;
use serde_json::Value;

use crate::profiles::Profile;
use crate::provider::Ctx;
use crate::script::Action;
use crate::stream::{FLUSH_GRACE, HOLD, Shape};

/// A native API, by profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `profile = "gemini"`: `models/{model}:generateContent` and friends.
    Gemini,
    /// `profile = "cloudflare"`: `accounts/{id}/ai/v1/chat/completions`, `ai/models/search`.
    Cloudflare,
    /// `profile = "cohere"`: `/v2/chat` (JSON and SSE events) and `/v1/models`.
    Cohere,
    /// `profile = "anthropic"`: `/messages` (JSON and named SSE events) and `/models`.
    Anthropic,
}

impl Api {
    /// The native API a profile speaks; `None` for the OpenAI-compatible ones.
    pub fn of(profile: Profile) -> Option<Api> {
        match profile {
            Profile::Gemini => Some(Api::Gemini),
            Profile::Cloudflare => Some(Api::Cloudflare),
            Profile::Cohere => Some(Api::Cohere),
            Profile::Anthropic => Some(Api::Anthropic),
            _ => None,
        }
    }

    /// The caller's key, where this API carries it (recorded as the request's `key`).
    pub fn key(self, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
        match self {
            Api::Gemini => gemini::key(headers, query),
            Api::Cloudflare => cloudflare::key(headers, query),
            Api::Cohere => cohere::key(headers, query),
            Api::Anthropic => anthropic::key(headers, query),
        }
    }

    /// The model a request is for (`suffix` is the path after the upstream prefix).
    pub fn model<'a>(self, suffix: &'a str, body: Option<&'a Value>) -> Option<&'a str> {
        match self {
            Api::Gemini => gemini::model(suffix, body),
            Api::Cloudflare => cloudflare::model(suffix, body),
            Api::Cohere => cohere::model(suffix, body),
            Api::Anthropic => anthropic::model(suffix, body),
        }
    }

    /// The answer to a missing or unknown key.
    pub fn unauthorized(self, key: Option<&str>) -> Response {
        match self {
            Api::Gemini => gemini::unauthorized(key),
            Api::Cloudflare => cloudflare::unauthorized(key),
            Api::Cohere => cohere::unauthorized(key),
            Api::Anthropic => anthropic::unauthorized(key),
        }
    }

    /// Serve an authenticated request that no `status` / `rate_limit` / `hang` rule answered.
    pub async fn serve(self, ctx: &Ctx<'_>, action: Option<Action>) -> Response {
        match self {
            Api::Gemini => gemini::serve(ctx, action).await,
            Api::Cloudflare => cloudflare::serve(ctx, action).await,
            Api::Cohere => cohere::serve(ctx, action).await,
            Api::Anthropic => anthropic::serve(ctx, action).await,
        }
    }
}

/// The stream shape a scripted action asks for; `default_error` is the provider's own
/// mid-stream error, used when the rule gives none.
pub fn stream_shape(action: Option<Action>, default_error: impl FnOnce() -> Value) -> Shape {
    match action {
        Some(Action::DropAfter { chunks }) => Shape::DropAfter(chunks),
        Some(Action::StallAfter { chunks }) => Shape::StallAfter(chunks),
        Some(Action::MidStreamError { chunks, error }) => {
            Shape::MidStreamError(chunks, error.unwrap_or_else(default_error))
        }
        Some(Action::Malformed) => Shape::Malformed,
        _ => Shape::Normal,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Clean,
    Abort,
    Stall,
}

/// A stream of pre-rendered frames (SSE events, NDJSON lines, pieces of a JSON array), sent with
/// a pause between them and ended the way the scripted [`Shape`] says.
#[derive(Debug)]
pub struct Frames {
    frames: Vec<Bytes>,
    delay: Duration,
    ending: Ending,
}

/// How a native API writes the frames a [`Shape`] needs besides its normal events.
pub trait Framing {
    /// The provider's mid-stream error (`Shape::MidStreamError`), as frames.
    fn error(&self, error: &Value) -> Vec<Bytes>;
    /// A frame that does not parse (`Shape::Malformed`).
    fn malformed(&self) -> Bytes;
    /// What ends a clean stream (`data: [DONE]`, `]`, ...), if anything.
    fn done(&self) -> Option<Bytes>;
}

impl Frames {
    /// `events` are a normal answer's frames; `shape` decides how many are sent and what follows.
    pub fn new(events: Vec<Bytes>, delay: Duration, shape: Shape, framing: &dyn Framing) -> Self {
        let mut frames = events;
        let ending = match shape {
            Shape::Normal => {
                frames.extend(framing.done());
                Ending::Clean
            }
            Shape::DropAfter(n) => {
                frames.truncate(n);
                Ending::Abort
            }
            Shape::StallAfter(n) => {
                frames.truncate(n);
                Ending::Stall
            }
            Shape::MidStreamError(n, error) => {
                frames.truncate(n);
                frames.extend(framing.error(&error));
                frames.extend(framing.done());
                Ending::Clean
            }
            Shape::Malformed => {
                frames = vec![framing.malformed()];
                frames.extend(framing.done());
                Ending::Clean
            }
        };
        Self { frames, delay, ending }
    }

    /// The frames that will be sent, in order.
    #[cfg(test)]
    pub fn frames(&self) -> &[Bytes] {
        &self.frames
    }

    pub fn into_body(self) -> Body {
        let Frames { frames, delay, ending } = self;
        let state = (frames.into_iter(), 0usize, false);
        Body::from_stream(stream::unfold(state, move |(mut frames, sent, finished)| async move {
            if let Some(frame) = frames.next() {
                if sent > 0 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                return Some((Ok(frame), (frames, sent + 1, finished)));
            }
            if finished {
                return None;
            }
            match ending {
                Ending::Clean => None,
                Ending::Abort => {
                    tokio::time::sleep(FLUSH_GRACE).await;
                    Some((Err(aborted()), (frames, sent, true)))
                }
                Ending::Stall => {
                    tokio::time::sleep(HOLD).await;
                    Some((Err(aborted()), (frames, sent, true)))
                }
            }
        }))
    }
}

fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "freeway-sim: scripted connection drop")
}

/// `data: <json>\n\n`.
pub fn sse_frame(data: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(data.len() + 8);
    framed.extend_from_slice(b"data: ");
    framed.extend_from_slice(data);
    framed.extend_from_slice(b"\n\n");
    Bytes::from(framed)
}

/// A query parameter, percent-decoded (`+` as a space).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<Cow<'a, str>> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use serde_json::json;

    struct Sse;

    impl Framing for Sse {
        fn error(&self, error: &Value) -> Vec<Bytes> {
            vec![sse_frame(error.to_string().as_bytes())]
        }
        fn malformed(&self) -> Bytes {
            Bytes::from_static(b"data: {nope\n\n")
        }
        fn done(&self) -> Option<Bytes> {
            Some(Bytes::from_static(b"data: [DONE]\n\n"))
        }
    }

    fn events(n: usize) -> Vec<Bytes> {
        (0..n).map(|i| sse_frame(format!("{{\"i\":{i}}}").as_bytes())).collect()
    }

    async fn collect(body: Body) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        let mut s = body.into_data_stream();
        while let Some(frame) = s.next().await {
            match frame {
                Ok(b) => out.push(String::from_utf8(b.to_vec()).unwrap()),
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    #[test]
    fn shapes_pick_the_frames() {
        let f = Frames::new(events(3), Duration::ZERO, Shape::Normal, &Sse);
        assert_eq!(f.frames().len(), 4);
        assert_eq!(f.frames()[3], "data: [DONE]\n\n");
        let f = Frames::new(events(3), Duration::ZERO, Shape::MidStreamError(1, json!({"e": 1})), &Sse);
        assert_eq!(f.frames().len(), 3);
        assert_eq!(f.frames()[1], "data: {\"e\":1}\n\n");
        let f = Frames::new(events(3), Duration::ZERO, Shape::Malformed, &Sse);
        assert_eq!(f.frames()[0], "data: {nope\n\n");
        assert_eq!(Frames::new(events(3), Duration::ZERO, Shape::DropAfter(2), &Sse).frames().len(), 2);
    }

    #[tokio::test]
    async fn endings() {
        let (frames, errored) = collect(Frames::new(events(2), Duration::ZERO, Shape::Normal, &Sse).into_body()).await;
        assert_eq!((frames.len(), errored), (3, false));
        let (frames, errored) =
            collect(Frames::new(events(3), Duration::ZERO, Shape::DropAfter(1), &Sse).into_body()).await;
        assert_eq!((frames.len(), errored), (1, true));
    }

    #[tokio::test(start_paused = true)]
    async fn paced_and_stalled() {
        let started = tokio::time::Instant::now();
        let (frames, _) =
            collect(Frames::new(events(3), Duration::from_millis(50), Shape::Normal, &Sse).into_body()).await;
        assert_eq!(frames.len(), 4);
        assert_eq!(started.elapsed(), Duration::from_millis(150));
        let started = tokio::time::Instant::now();
        let (frames, errored) =
            collect(Frames::new(events(3), Duration::ZERO, Shape::StallAfter(1), &Sse).into_body()).await;
        assert_eq!((frames.len(), errored), (1, true));
        assert!(started.elapsed() >= HOLD);
    }

    #[test]
    fn query_params_decode() {
        assert_eq!(query_param(Some("alt=sse&key=AIza%2Bx+y"), "key").as_deref(), Some("AIza+x y"));
        assert_eq!(query_param(Some("alt=sse"), "alt").as_deref(), Some("sse"));
        assert_eq!(query_param(Some("alt=sse"), "key"), None);
        assert_eq!(query_param(None, "key"), None);
        assert_eq!(query_param(Some("key=100%"), "key").as_deref(), Some("100%"));
    }
}
