//! `SseFramer` (SSE and NDJSON framing) fed the same bytes in different chunkings, and
//! `Event::parse` / `Event::from_line` on what comes out.
//!
//! Input: one byte `n`, then `n` chunk lengths (one byte each, cycled; 0 is an empty chunk),
//! then the stream. Seeds are `\0` followed by an SSE stream.
//!
//! Properties: no panic; the events and the pending tail are the same whatever the chunking
//! (all at once, byte by byte, the fuzzer's lengths); the events followed by the pending tail
//! are exactly the input; every SSE event ends at its first blank line, every NDJSON event at
//! its first newline; `finish` returns the tail unless it is only whitespace; an event parses
//! the same with or without its terminator.

#![no_main]

use bytes::Bytes;
use freeway_core::wire::sse::{Event, SseFramer};
use libfuzzer_sys::fuzz_target;

fn framer(ndjson: bool) -> SseFramer {
    if ndjson { SseFramer::ndjson() } else { SseFramer::new() }
}

/// Feed `stream` in chunks of the given lengths (cycled); events, and the framer at the end.
fn run(stream: &[u8], lengths: &[usize], ndjson: bool) -> (Vec<Bytes>, SseFramer) {
    let mut f = framer(ndjson);
    let mut events = Vec::new();
    let mut at = 0;
    let mut i = 0;
    let mut empty_in_a_row = 0;
    while at < stream.len() {
        let n = lengths[i % lengths.len()].min(stream.len() - at);
        i += 1;
        // a cycle of empty chunks would never end
        empty_in_a_row = if n == 0 { empty_in_a_row + 1 } else { 0 };
        let n = if empty_in_a_row > lengths.len() { 1 } else { n };
        f.push(&stream[at..at + n]);
        at += n;
        while let Some(e) = f.next_event() {
            events.push(e);
        }
    }
    while let Some(e) = f.next_event() {
        events.push(e);
    }
    (events, f)
}

/// Where the first event of `buf` ends (just past its terminator), as the framer's contract says.
fn first_end(buf: &[u8], ndjson: bool) -> Option<usize> {
    if ndjson {
        return buf.iter().position(|b| *b == b'\n').map(|i| i + 1);
    }
    (1..=buf.len()).find(|&end| buf[..end].ends_with(b"\n\n") || buf[..end].ends_with(b"\n\r\n"))
}

fn check(stream: &[u8], lengths: &[usize], ndjson: bool) {
    let (events, mut f) = run(stream, lengths, ndjson);
    let (whole, whole_f) = run(stream, &[stream.len().max(1)], ndjson);
    let (bytewise, byte_f) = run(stream, &[1], ndjson);
    assert_eq!(events, whole, "chunking {lengths:?} changed the events");
    assert_eq!(events, bytewise, "byte-at-a-time changed the events");
    assert_eq!(f.pending(), whole_f.pending());
    assert_eq!(f.pending(), byte_f.pending());

    let mut joined: Vec<u8> = events.iter().flat_map(|e| e.iter().copied()).collect();
    joined.extend_from_slice(f.pending());
    assert_eq!(joined, stream, "events + pending != input");

    let mut rest = stream;
    for e in &events {
        assert_eq!(first_end(rest, ndjson), Some(e.len()), "an event does not end at its first terminator");
        rest = &rest[e.len()..];
        if ndjson {
            let parsed = Event::from_line(e);
            assert_eq!(parsed.has_data, !parsed.data.is_empty());
        } else {
            let parsed = Event::parse(e);
            assert!(parsed.has_data || parsed.data.is_empty());
            let body = e.strip_suffix(b"\n\r\n".as_slice()).or_else(|| e.strip_suffix(b"\n\n".as_slice())).unwrap_or(e);
            assert_eq!(Event::parse(body), parsed, "the terminator changed the event");
        }
    }
    assert_eq!(first_end(rest, ndjson), None, "a complete event was left pending");

    let pending = f.pending().to_vec();
    let tail = f.finish();
    if pending.iter().all(u8::is_ascii_whitespace) {
        assert!(tail.is_none());
    } else {
        assert_eq!(tail.as_deref(), Some(pending.as_slice()));
    }
    assert!(f.pending().is_empty());
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n).min(rest.len());
    let (lengths, stream) = rest.split_at(n);
    let mut lengths: Vec<usize> = lengths.iter().map(|b| usize::from(*b)).collect();
    if lengths.iter().all(|l| *l == 0) {
        lengths.push(7);
    }
    check(stream, &lengths, false);
    check(stream, &lengths, true);
    // the whole input as one event, whatever it holds
    let _ = Event::parse(data);
    let _ = Event::from_line(data);
});
