//! The host functions guests import: `http`, `credentials`, `rate-limit`, `log`, `clock`.
//!
//! `http.send` reaches only the hosts the component's manifest allows and attaches credentials
//! itself; what comes back is scrubbed of the secret before the guest sees it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures_util::StreamExt;

use super::state::GuestState;
use crate::bindings::provider::freeway::gateway::{clock, credentials, http as whttp, log, rate_limit, types};
use crate::bindings::wit;
use crate::egress;

/// Cap on a guest's `http.send` response body.
const GUEST_HTTP_MAX_BODY: usize = 8 * 1024 * 1024;
const GUEST_HTTP_DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const GUEST_HTTP_MAX_TIMEOUT: Duration = Duration::from_secs(120);

impl types::Host for GuestState {}

impl whttp::Host for GuestState {
    async fn send(
        &mut self,
        req: wit::HttpRequest,
        auth: Option<wit::Credential>,
    ) -> Result<wit::HttpResponse, wit::HttpError> {
        self.clock.enter_host();
        let result = self.send_inner(req, auth).await;
        self.clock.leave_host();
        result
    }
}

impl GuestState {
    /// Count one `http.send` of `bytes` (request body) against this call's bounds; the refusal
    /// marks the instance as having asked for too much.
    fn take_http_call(&mut self, bytes: usize) -> Result<(), wit::HttpError> {
        let bounds = self.http_bounds;
        self.http.calls = self.http.calls.saturating_add(1);
        self.http.bytes = self.http.bytes.saturating_add(bytes);
        if self.http.calls > bounds.calls {
            return Err(self.refuse(format!(
                "it made more than {} http calls in one guest call ([runtime] guest_http_calls)",
                bounds.calls
            )));
        }
        if self.http.bytes > bounds.bytes {
            return Err(self.refuse(format!(
                "it moved more than {} bytes through http calls in one guest call ([runtime] guest_http_bytes)",
                bounds.bytes
            )));
        }
        Ok(())
    }

    /// A call the egress policy refused, as the guest sees it.
    fn refused(&mut self, component: &str, provider: &str, r: &egress::Refusal) -> wit::HttpError {
        match r {
            egress::Refusal::InvalidUrl(e) => wit::HttpError::InvalidUrl(e.clone()),
            egress::Refusal::NotAllowed { .. } => {
                let msg = format!("component '{component}' tried {}", r.describe());
                tracing::warn!(provider = %provider, "{msg}");
                self.denied = Some(msg.clone());
                wit::HttpError::Denied(msg)
            }
            egress::Refusal::Forbidden { .. } => self.refuse(format!("it tried {}", r.describe())),
            egress::Refusal::OutsideEgress { host } => {
                wit::HttpError::Connect(format!("{host} is outside [upstream] egress_hosts"))
            }
            _ => wit::HttpError::Other(r.describe()),
        }
    }

    fn refuse(&mut self, why: String) -> wit::HttpError {
        let component = self.io.as_ref().map_or("policy", |io| io.component.as_str());
        let msg = format!("component '{component}' was stopped: {why}");
        self.denied = Some(msg.clone());
        wit::HttpError::Denied(msg)
    }
}

impl GuestState {
    async fn send_inner(
        &mut self,
        req: wit::HttpRequest,
        auth: Option<wit::Credential>,
    ) -> Result<wit::HttpResponse, wit::HttpError> {
        let Some(io) = self.io.clone() else {
            return Err(wit::HttpError::Denied("this component may not make HTTP requests".into()));
        };
        let account = match auth {
            Some(handle) => match self.account(handle) {
                Some(a) => Some(a.clone()),
                None => {
                    let msg =
                        format!("component '{}' used credential handle {handle}, which it was not given", io.component);
                    self.denied = Some(msg.clone());
                    return Err(wit::HttpError::Denied(msg));
                }
            },
            None => None,
        };
        let sender = egress::Sender {
            allowed: &io.allowed,
            http: &io.http,
            auth: &io.auth,
            secret: account.as_ref().and_then(|a| a.secret.as_ref()),
        };
        let out = match egress::prepare(&sender, &req.url, &req.method, &req.headers) {
            Ok(out) => out,
            Err(r) => return Err(self.refused(&io.component, &io.provider_id, &r)),
        };
        self.take_http_call(req.body.len())?;
        // what this call may still read back
        let room = self.http_bounds.bytes.saturating_sub(self.http.bytes);
        let timeout = req
            .timeout_ms
            .map_or(GUEST_HTTP_DEFAULT_TIMEOUT, |ms| Duration::from_millis(u64::from(ms)))
            .min(GUEST_HTTP_MAX_TIMEOUT);
        let mut builder = io.http.client().request(out.method, out.url).headers(out.headers).timeout(timeout);
        if !req.body.is_empty() {
            builder = builder.body(req.body);
        }
        let resp = builder.send().await.map_err(map_send_error)?;
        let status = resp.status().as_u16();
        let mut out_headers = Vec::with_capacity(resp.headers().len());
        for (k, v) in resp.headers() {
            let value = String::from_utf8_lossy(v.as_bytes());
            out_headers.push((k.as_str().to_owned(), io.secrets.scrub(&value).into_owned()));
        }
        let cap = GUEST_HTTP_MAX_BODY.min(room);
        let mut body = BytesMut::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(map_send_error)?;
            if body.len() + chunk.len() > cap {
                if cap < GUEST_HTTP_MAX_BODY {
                    // this call's byte allowance is spent, not just this response too large
                    return Err(self.refuse(format!(
                        "it moved more than {} bytes through http calls in one guest call ([runtime] guest_http_bytes)",
                        self.http_bounds.bytes
                    )));
                }
                return Err(wit::HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        self.http.bytes = self.http.bytes.saturating_add(body.len());
        // scrubbed of every key the gateway holds (this account's included)
        let body = io.secrets.scrub_bytes(body.freeze()).to_vec();
        Ok(wit::HttpResponse { status, headers: out_headers, body })
    }
}

/// The URL is dropped from the message: it may carry a query-string key.
fn map_send_error(e: reqwest::Error) -> wit::HttpError {
    if e.is_timeout() {
        wit::HttpError::Timeout
    } else if e.is_connect() {
        wit::HttpError::Connect(e.without_url().to_string())
    } else {
        wit::HttpError::Other(e.without_url().to_string())
    }
}

impl credentials::Host for GuestState {
    fn setting(&mut self, account: wit::Credential, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.account(account).and_then(|a| a.settings.get(&key).cloned()))
    }

    fn label(&mut self, account: wit::Credential) -> wasmtime::Result<String> {
        Ok(self.account(account).map(|a| a.label.clone()).unwrap_or_default())
    }
}

impl rate_limit::Host for GuestState {
    fn acquire(&mut self, bucket: String, per_minute: u32, cost: u32) -> wasmtime::Result<Result<(), u64>> {
        let Some(io) = &self.io else { return Ok(Err(u64::MAX)) };
        Ok(io.buckets.acquire(&io.component, &bucket, per_minute, cost))
    }

    fn report(&mut self, account: wit::Credential, updates: Vec<wit::QuotaUpdate>) -> wasmtime::Result<()> {
        if let Some(a) = self.account(account) {
            let mut q = a.quota.lock();
            for u in updates.into_iter().take(32) {
                q.retain(|old| !(old.dimension == u.dimension && old.window == u.window && old.scope == u.scope));
                q.push(u);
            }
        }
        Ok(())
    }
}

/// Log lines one guest call may write; the rest are dropped (with one notice).
pub const MAX_LOG_LINES: u32 = 64;
/// Characters of one guest log line kept.
const MAX_LOG_CHARS: usize = 2048;

/// A guest's log text made safe for the gateway's log: control characters (line breaks, ANSI
/// escapes, NUL) are shown escaped, so a guest cannot forge log lines or drive a terminal.
pub fn sanitize_log(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_LOG_CHARS));
    for c in text.chars().take(MAX_LOG_CHARS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl log::Host for GuestState {
    fn log(&mut self, level: wit::LogLevel, message: String) -> wasmtime::Result<()> {
        let component = self.io.as_ref().map_or("policy", |io| io.component.as_str());
        self.log_lines = self.log_lines.saturating_add(1);
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(target: "freeway::guest", component, "more than {MAX_LOG_LINES} log lines in one call; the rest are dropped");
            }
            return Ok(());
        }
        let message = sanitize_log(&message);
        match level {
            wit::LogLevel::Trace => tracing::trace!(target: "freeway::guest", component, "{message}"),
            wit::LogLevel::Debug => tracing::debug!(target: "freeway::guest", component, "{message}"),
            wit::LogLevel::Info => tracing::info!(target: "freeway::guest", component, "{message}"),
            wit::LogLevel::Warn => tracing::warn!(target: "freeway::guest", component, "{message}"),
            wit::LogLevel::Error => tracing::error!(target: "freeway::guest", component, "{message}"),
        }
        Ok(())
    }
}

impl crate::bindings::policy::freeway::gateway::request::Host for GuestState {
    fn messages_json(&mut self) -> wasmtime::Result<String> {
        let bytes = self.request_messages.as_deref().unwrap_or(b"[]");
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

impl clock::Host for GuestState {
    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Ok(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    fn monotonic_ns(&mut self) -> wasmtime::Result<u64> {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        Ok(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_log_text_cannot_forge_lines_or_drive_a_terminal() {
        let out = sanitize_log("ok\n2026-01-01T00:00:00Z ERROR freeway: forged\r\x1b[2J\x1b[31mred\0end");
        assert!(!out.chars().any(char::is_control), "{out:?}");
        assert!(out.contains("\\n2026-01-01"), "{out}");
        assert!(out.contains("\\u{1b}[2J"), "{out}");
        assert_eq!(sanitize_log(&"é".repeat(5000)).chars().count(), MAX_LOG_CHARS);
        assert_eq!(sanitize_log("plain text, tabs\tescaped"), "plain text, tabs\\tescaped");
    }
}
