//! How the CLI reaches a running gateway: its address (`--url`, else the configuration's
//! `server.listen` on loopback) and the admin key (`FREEWAY_ADMIN_KEY`, else the configuration's
//! `server.admin_key`). Used by the commands that talk to the gateway over HTTP like any client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::config::LoadedConfig;

/// How long one admin call to the gateway may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a streamed answer may stay silent before the CLI gives up on it.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// A running gateway, as the CLI calls it.
pub struct Gateway {
    pub url: String,
    admin_key: Option<String>,
    /// a client key (`FREEWAY_API_KEY`, else the configuration's first `[server] api_keys`)
    api_key: Option<String>,
    client: reqwest::Client,
    /// for answers: no limit on the whole call, only on silence
    streaming: reqwest::Client,
}

/// Why a call to the gateway failed.
#[derive(Debug)]
pub enum CallError {
    /// nothing answered (connection refused, timeout)
    Unreachable(String),
    /// it answered with an error: status and the error's message
    Refused(u16, String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(m) => write!(f, "{m}"),
            CallError::Refused(status, m) => write!(f, "HTTP {status}: {m}"),
        }
    }
}

/// `http://` + a listen address a client can dial (an unspecified address means this machine).
pub fn url_for(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

impl Gateway {
    /// `url` if given, else the configuration's address; the admin key from the environment or
    /// the configuration.
    pub fn new(url: Option<&str>, loaded: Option<&LoadedConfig>) -> Result<Gateway, String> {
        let url = match url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => url_for(loaded.map_or(SocketAddr::from(([127, 0, 0, 1], 8000)), |l| l.config.server.listen)),
        };
        let admin_key = std::env::var("FREEWAY_ADMIN_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
            .or_else(|| loaded.and_then(|l| l.config.server.admin_key.as_ref()).map(|k| k.expose().to_owned()));
        let api_key = std::env::var("FREEWAY_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
            .or_else(|| loaded.and_then(|l| l.config.server.api_keys.first()).map(|k| k.expose().to_owned()));
        let built = |b: reqwest::ClientBuilder| {
            b.connect_timeout(Duration::from_secs(3))
                .no_proxy()
                .build()
                .map_err(|e| format!("cannot build an HTTP client: {e}"))
        };
        let client = built(reqwest::Client::builder().timeout(CALL_TIMEOUT))?;
        let streaming = built(reqwest::Client::builder().read_timeout(READ_TIMEOUT))?;
        Ok(Gateway { url, admin_key, api_key, client, streaming })
    }

    /// `POST path` with the client key, as any client would; the response as it comes.
    pub async fn client_post(&self, path: &str, body: &serde_json::Value) -> Result<reqwest::Response, CallError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::Unreachable(e.to_string()))?;
        let mut req = self
            .streaming
            .post(format!("{}{path}", self.url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(bytes);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        req.send().await.map_err(|e| CallError::Unreachable(describe(&e)))
    }

    /// `POST path` with the admin key, as JSON.
    pub async fn admin_post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, CallError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::Unreachable(e.to_string()))?;
        let req = self
            .client
            .post(format!("{}{path}", self.url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(bytes);
        self.admin_call(req).await
    }

    /// `GET /ready`: its status code (200 ready, 503 not), with no key.
    pub async fn ready(&self) -> Result<u16, CallError> {
        let resp = self
            .client
            .get(format!("{}/ready", self.url))
            .send()
            .await
            .map_err(|e| CallError::Unreachable(describe(&e)))?;
        Ok(resp.status().as_u16())
    }

    /// `GET path` with the admin key, as JSON.
    pub async fn admin_get(&self, path: &str) -> Result<serde_json::Value, CallError> {
        self.admin_call(self.client.get(format!("{}{path}", self.url))).await
    }

    async fn admin_call(&self, mut req: reqwest::RequestBuilder) -> Result<serde_json::Value, CallError> {
        if let Some(k) = &self.admin_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| CallError::Unreachable(describe(&e)))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| CallError::Unreachable(describe(&e)))?;
        let body: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| CallError::Refused(status, format!("the answer is not JSON ({e})")))?;
        if status >= 400 {
            let message = body.pointer("/error/message").and_then(|m| m.as_str()).unwrap_or("(no message)");
            let hint = if status == 401 && self.admin_key.is_none() {
                " (set FREEWAY_ADMIN_KEY or server.admin_key)"
            } else {
                ""
            };
            return Err(CallError::Refused(status, format!("{message}{hint}")));
        }
        Ok(body)
    }
}

/// An HTTP error without the URL's query or anything else reqwest may append.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut root = None;
    while let Some(s) = source {
        root = Some(s.to_string());
        source = s.source();
    }
    match root {
        Some(r) => format!("{kind}: {r}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_dialled_on_loopback() {
        assert_eq!(url_for("0.0.0.0:8000".parse().unwrap()), "http://127.0.0.1:8000");
        assert_eq!(url_for("[::]:9000".parse().unwrap()), "http://[::1]:9000");
        assert_eq!(url_for("10.0.0.5:80".parse().unwrap()), "http://10.0.0.5:80");
    }
}
