//! One request as its access log line sees it: its id, and what the steps learn on the way
//! (the client, the model asked, where it went, the attempts, tokens, time to first token).
//!
//! The server's edge makes it when the request arrives and writes the line when the response's
//! last byte has gone (for a stream, when the stream ends, not when its headers are sent); the
//! steps fill it in as they go. A stream's relay holds it until then.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::route::Candidate;
use crate::principal::Principal;
use crate::telemetry::RequestId;
use crate::usage::Outcome;
use crate::wire::types::Usage;

/// Longest model name kept for the log line (clients may send anything).
const MAX_MODEL: usize = 256;

/// What is known of one request so far.
#[derive(Default)]
pub struct Served {
    /// who sent it, once authenticated
    pub client: Option<Principal>,
    /// the model the client asked for
    pub model: Option<String>,
    pub stream: bool,
    /// the candidate that answered, or the last one tried when none did
    pub route: Option<Candidate>,
    pub attempts: u32,
    pub usage: Option<Usage>,
    /// when the first byte of a stream reached the client, from the request's start
    pub first_byte: Option<Duration>,
    /// how a stream ended (`None` until it has)
    pub outcome: Option<Outcome>,
    /// the error code the client was given
    pub error: Option<&'static str>,
    /// the request's body, kept only when `[body_log]` is on
    pub request_body: Option<bytes::Bytes>,
    /// what the response cache did (`hit`, `miss`, `bypass`), when it is on for the request
    pub cache: Option<&'static str>,
    /// the request's `Cache-Control` directives (read by the edge)
    pub directives: crate::cache::Directives,
    /// a virtual key's reservation, settled when the response has ended
    pub key_hold: Option<crate::keys::budget::KeyHold>,
    /// how long the request waited in the queue for capacity, when it did
    pub waited: Option<Duration>,
    /// the wait the client asked for (`x-freeway-max-wait-ms`, read by the edge)
    pub max_wait: Option<Duration>,
}

/// One request in flight, shared by the edge and the steps that serve it.
pub struct Exchange {
    pub id: RequestId,
    served: Mutex<Served>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Exchange {
    pub fn new(id: RequestId) -> Arc<Self> {
        Arc::new(Self { id, served: Mutex::new(Served::default()) })
    }

    /// An exchange with a fresh id (callers that serve a request without the edge: tests,
    /// benchmarks).
    pub fn detached() -> Arc<Self> {
        Self::new(RequestId::generate())
    }

    /// Read what is known (the edge, at the end).
    pub fn take(&self) -> Served {
        std::mem::take(&mut *self.served.lock())
    }

    pub fn client(&self, client: Principal) {
        self.served.lock().client = Some(client);
    }

    /// Hold a virtual key's reservation until the response has ended.
    pub fn hold_key(&self, hold: crate::keys::budget::KeyHold) {
        self.served.lock().key_hold = Some(hold);
    }

    /// Keep the request's body for the body log (a reference to the bytes already read).
    pub fn keep_request_body(&self, body: &bytes::Bytes) {
        self.served.lock().request_body = Some(body.clone());
    }

    /// The request's `Cache-Control` directives, as the edge read them.
    pub fn set_directives(&self, d: crate::cache::Directives) {
        self.served.lock().directives = d;
    }

    pub fn directives(&self) -> crate::cache::Directives {
        self.served.lock().directives
    }

    /// The client's `x-freeway-max-wait-ms`, as the edge read it.
    pub fn set_max_wait(&self, wait: Option<Duration>) {
        self.served.lock().max_wait = wait;
    }

    pub fn max_wait(&self) -> Option<Duration> {
        self.served.lock().max_wait
    }

    /// The request waited `d` in the queue (served or refused after it).
    pub fn set_waited(&self, d: Duration) {
        self.served.lock().waited = Some(d);
    }

    /// How long the request waited in the queue, if it did (for `x-freeway-waited-ms`).
    pub fn waited(&self) -> Option<Duration> {
        self.served.lock().waited
    }

    /// What the response cache did.
    pub fn cache(&self, verdict: &'static str) {
        self.served.lock().cache = Some(verdict);
    }

    /// A cache hit: the tokens the stored answer took.
    pub fn cached_usage(&self, usage: Option<&Usage>) {
        self.served.lock().usage = usage.cloned();
    }

    /// Who answered so far: the provider, the model, the usage of a JSON reply.
    pub fn answered(&self) -> Option<(String, String, Option<Usage>)> {
        let s = self.served.lock();
        let c = s.route.as_ref()?;
        Some((c.route.provider.id.clone(), c.route.model.clone(), s.usage.clone()))
    }

    /// The request parsed: what it asked for.
    pub fn asked(&self, model: &str, stream: bool) {
        let mut end = model.len().min(MAX_MODEL);
        while !model.is_char_boundary(end) {
            end -= 1;
        }
        let mut s = self.served.lock();
        s.model = Some(model[..end].to_owned());
        s.stream = stream;
    }

    /// `cand` answered after `attempts` attempts (a JSON reply: with `usage`).
    pub fn routed(&self, cand: &Candidate, attempts: u32, usage: Option<&Usage>) {
        let mut s = self.served.lock();
        s.route = Some(cand.clone());
        s.attempts = attempts;
        s.usage = usage.cloned();
        // an earlier try may have failed before the request waited for capacity
        s.error = None;
    }

    /// Nothing answered: the last candidate tried (if any), the attempts, the error code.
    pub fn failed(&self, last: Option<&Candidate>, attempts: u32, error: &'static str) {
        let mut s = self.served.lock();
        s.route = last.cloned();
        s.attempts = attempts;
        s.error = Some(error);
    }

    /// The request failed with `error` before (or without) any attempt.
    pub fn error(&self, error: &'static str) {
        let mut s = self.served.lock();
        if s.error.is_none() {
            s.error = Some(error);
        }
    }

    /// A stream ended (or was dropped): its usage, first byte and outcome.
    pub fn stream_ended(
        &self,
        usage: Option<Usage>,
        first_byte: Option<Duration>,
        outcome: Outcome,
        error: Option<&'static str>,
    ) {
        let mut s = self.served.lock();
        s.usage = usage;
        s.first_byte = first_byte;
        s.outcome = Some(outcome);
        if error.is_some() {
            s.error = error;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_model_name_is_cut_on_a_character_boundary() {
        let x = Exchange::detached();
        let long = format!("{}é-and-more", "m".repeat(MAX_MODEL - 1));
        x.asked(&long, true);
        let s = x.take();
        assert_eq!(s.model.as_deref(), Some("m".repeat(MAX_MODEL - 1).as_str()));
        assert!(s.stream);
        assert!(x.take().model.is_none(), "taken once");
    }
}
