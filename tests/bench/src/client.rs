//! A minimal HTTP/1.1 keep-alive client on one connection (hyper's connection API): as little
//! client work per request as possible, so the numbers are the servers'.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// read the whole body
    Full,
    /// stop at the first body bytes (then drain the rest)
    FirstByte,
}

pub struct Conn {
    port: u16,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(port: u16) -> Conn {
        loop {
            match Self::try_open(port).await {
                Some(c) => return c,
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    async fn try_open(port: u16) -> Option<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.set_nodelay(true).ok()?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Some(Conn { port, sender })
    }

    /// One POST to /v1/chat/completions; its latency (to the end, or to the first body bytes).
    pub async fn request(&mut self, body: &'static str, kind: Kind) -> Duration {
        self.request_as(body, kind, "Bearer sk-bench").await
    }

    /// [`Conn::request`] with `authorization` as given.
    pub async fn request_as(&mut self, body: &'static str, kind: Kind, authorization: &str) -> Duration {
        self.exchange(body, kind, authorization).await.0
    }

    /// [`Conn::request_as`], with the response's status (0 when no request could be built).
    pub async fn exchange(&mut self, body: &'static str, kind: Kind, authorization: &str) -> (Duration, u16) {
        loop {
            if self.sender.ready().await.is_err() {
                *self = Self::open(self.port).await;
                continue;
            }
            let req = hyper::Request::post("/v1/chat/completions")
                .header("host", "127.0.0.1")
                .header("content-type", "application/json")
                .header("authorization", authorization)
                .body(Full::new(Bytes::from_static(body.as_bytes())));
            let Ok(req) = req else { return (Duration::ZERO, 0) };
            let started = Instant::now();
            let Ok(resp) = self.sender.send_request(req).await else {
                *self = Self::open(self.port).await;
                continue;
            };
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut first = None;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) if f.is_data() => {
                        if first.is_none() {
                            first = Some(started.elapsed());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let total = started.elapsed();
            let latency = match kind {
                Kind::Full => total,
                Kind::FirstByte => first.unwrap_or(total),
            };
            return (latency, status);
        }
    }
}
