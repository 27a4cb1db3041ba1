//! Server-sent events: an incremental framer that cuts a byte stream into whole events without
//! re-scanning what it has already seen, and a reader for one event's fields.
//!
//! Events end at a blank line (`\n\n` or `\r\n\r\n`). Bytes are copied once into the framer's
//! buffer and handed out as `Bytes` slices of it.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

/// Cuts a stream of byte chunks into complete SSE events (raw bytes, terminator included).
#[derive(Debug, Default)]
pub struct SseFramer {
    buf: BytesMut,
    /// bytes of `buf` already searched for a terminator
    scanned: usize,
    /// NDJSON framing: one event per line
    lines: bool,
}

impl SseFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Newline-delimited JSON instead of SSE.
    pub fn ndjson() -> Self {
        Self { lines: true, ..Self::default() }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the buffer holds one.
    pub fn next_event(&mut self) -> Option<Bytes> {
        let start = self.scanned.saturating_sub(3);
        let hay = &self.buf[start..];
        let end = if self.lines {
            memchr::memchr(b'\n', hay).map(|i| start + i + 1)
        } else {
            find_blank_line(hay).map(|i| start + i)
        };
        match end {
            Some(end) => {
                self.scanned = 0;
                Some(self.buf.split_to(end).freeze())
            }
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// Bytes received that do not yet form a complete event.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// At end of stream: whatever is left, if it holds anything but whitespace.
    pub fn finish(&mut self) -> Option<Bytes> {
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            self.buf.clear();
            return None;
        }
        self.scanned = 0;
        Some(self.buf.split().freeze())
    }
}

/// Index just past the first blank line (`\n\n`, `\r\n\r\n`, `\n\r\n`, `\r\n\n`).
fn find_blank_line(hay: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &hay[from..]) {
        let nl = from + i;
        let rest = &hay[nl + 1..];
        if rest.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        from = nl + 1;
    }
    None
}

/// The fields of one event.
#[derive(Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub event: Option<&'a str>,
    /// `data` lines joined with `\n`; empty when the event has none (comments, keep-alives)
    pub data: Cow<'a, str>,
    pub has_data: bool,
}

impl<'a> Event<'a> {
    /// Read an event's lines. Non-UTF-8 lines are skipped. Linear in the event's size, however
    /// many `data:` lines it has.
    pub fn parse(raw: &'a [u8]) -> Self {
        let mut event = None;
        let mut data: Option<Cow<'a, str>> = None;
        for line in raw.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || line[0] == b':' {
                continue;
            }
            let Ok(line) = std::str::from_utf8(line) else { continue };
            let (field, value) = match line.find(':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(' ').unwrap_or(v))
                }
                None => (line, ""),
            };
            match field {
                "data" => match &mut data {
                    None => data = Some(Cow::Borrowed(value)),
                    Some(joined) => {
                        let joined = joined.to_mut();
                        joined.push('\n');
                        joined.push_str(value);
                    }
                },
                "event" => event = Some(value),
                _ => {}
            }
        }
        let has_data = data.is_some();
        Self { event, data: data.unwrap_or(Cow::Borrowed("")), has_data }
    }

    /// A bare NDJSON line as an event.
    pub fn from_line(raw: &'a [u8]) -> Self {
        let text = std::str::from_utf8(raw).unwrap_or("").trim();
        Self { event: None, data: Cow::Borrowed(text), has_data: !text.is_empty() }
    }
}

/// Frame one JSON payload as an SSE event.
pub fn data_event(json: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(json.len() + 8);
    b.extend_from_slice(b"data: ");
    b.extend_from_slice(json.as_bytes());
    b.extend_from_slice(b"\n\n");
    b.freeze()
}

pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn all(framer: &mut SseFramer) -> Vec<Bytes> {
        std::iter::from_fn(|| framer.next_event()).collect()
    }

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n";
        // every possible split point gives the same events
        for cut in 0..stream.len() {
            let mut f = SseFramer::new();
            f.push(&stream[..cut]);
            let mut got = all(&mut f);
            f.push(&stream[cut..]);
            got.extend(all(&mut f));
            assert_eq!(got.len(), 4, "cut at {cut}");
            assert_eq!(Event::parse(&got[0]).data, "{\"a\":1}");
            assert_eq!(Event::parse(&got[1]).data, "{\"b\":2}");
            assert!(!Event::parse(&got[2]).has_data);
            assert_eq!(Event::parse(&got[3]).data, "[DONE]");
            assert!(f.finish().is_none());
        }
    }

    #[test]
    fn byte_at_a_time_works() {
        let stream = b"event: message_start\ndata: {\"x\":1}\n\n";
        let mut f = SseFramer::new();
        let mut got = Vec::new();
        for b in stream {
            f.push(&[*b]);
            got.extend(all(&mut f));
        }
        assert_eq!(got.len(), 1);
        let e = Event::parse(&got[0]);
        assert_eq!(e.event, Some("message_start"));
        assert_eq!(e.data, "{\"x\":1}");
    }

    #[test]
    fn multi_line_data_is_joined() {
        let e = Event::parse(b"data: a\ndata: b\n\n");
        assert_eq!(e.data, "a\nb");
    }

    #[test]
    fn many_data_lines_are_joined_in_linear_time() {
        let raw = "data: x\n".repeat(200_000) + "\n";
        let started = std::time::Instant::now();
        let e = Event::parse(raw.as_bytes());
        assert_eq!(e.data.len(), 200_000 * 2 - 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn incomplete_tail_is_reported_at_finish() {
        let mut f = SseFramer::new();
        f.push(b"data: {\"a\":1}\n\ndata: {\"tru");
        assert_eq!(all(&mut f).len(), 1);
        assert_eq!(f.finish().as_deref(), Some(&b"data: {\"tru"[..]));
    }

    #[test]
    fn ndjson_lines_are_events() {
        let mut f = SseFramer::ndjson();
        f.push(b"{\"a\":1}\n{\"b\"");
        let got = all(&mut f);
        assert_eq!(got.len(), 1);
        assert_eq!(Event::from_line(&got[0]).data, "{\"a\":1}");
        f.push(b":2}\n");
        assert_eq!(Event::from_line(&all(&mut f)[0]).data, "{\"b\":2}");
    }
}
