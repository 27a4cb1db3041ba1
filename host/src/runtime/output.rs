//! Guest stdout/stderr: a small ring buffer that keeps the latest output (a panic message, say)
//! and never fails a write, so a chatty guest cannot trap itself by printing.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Bytes of output kept per instance.
const KEEP: usize = 4096;

#[derive(Clone, Default)]
pub struct GuestOutput(Arc<Mutex<VecDeque<u8>>>);

impl GuestOutput {
    fn push(&self, bytes: &[u8]) {
        let mut buf = self.0.lock();
        let bytes = &bytes[bytes.len().saturating_sub(KEEP)..];
        let overflow = (buf.len() + bytes.len()).saturating_sub(KEEP);
        buf.drain(..overflow);
        buf.extend(bytes);
    }

    /// The output so far, cleared.
    pub fn take(&self) -> String {
        let mut buf = self.0.lock();
        let bytes: Vec<u8> = buf.drain(..).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn clear(&self) {
        self.0.lock().clear();
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_output_and_never_fails() {
        let mut out = GuestOutput::default();
        for _ in 0..100 {
            OutputStream::write(&mut out, Bytes::from(vec![b'a'; 1000])).unwrap();
        }
        OutputStream::write(&mut out, Bytes::from_static(b"panicked at the end")).unwrap();
        let text = out.take();
        assert_eq!(text.len(), KEEP);
        assert!(text.ends_with("panicked at the end"));
        assert!(out.take().is_empty());
    }
}
