//! Secret scrubbing: every byte read back from an upstream (bodies, stream events, headers,
//! error text, what a guest's `http.send` returns) passes through one [`Scrubber`] holding
//! every credential the gateway has, so no key reaches a client, a log line or a guest even
//! when a provider echoes it ("Incorrect API key provided: sk-abc…wxyz").
//!
//! Cost: one Aho-Corasick pass over the text looking for each key's first and last 8
//! characters, whatever the number of keys; only where one of those anchors appears is the key
//! compared further (forward from its head, backward from its tail) and the matching run
//! replaced. A key shorter than 8 characters is not a credential (test fixtures, "none") and is
//! left alone, since scrubbing it from free text would mangle unrelated words.

use std::borrow::Cow;
use std::ops::Range;

use aho_corasick::{AhoCorasick, MatchKind};
use bytes::Bytes;

use crate::secret::SecretString;

/// Characters of a key that identify it (its first and last 8); a run of the key at least this
/// long is removed wherever it appears.
pub const MIN_CHARS: usize = 8;

const REDACTED: &str = "[redacted]";

/// The keys to remove and the automaton that finds them.
#[derive(Default)]
pub struct Scrubber {
    keys: Vec<SecretString>,
    /// pattern i is the head (even i) or tail (odd i) of key i / 2
    finder: Option<AhoCorasick>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} keys)", self.keys.len())
    }
}

/// Byte offset of the `n`th character of `s` from the start (`s.len()` if it has fewer).
fn char_offset(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

impl Scrubber {
    pub fn new<'s>(secrets: impl IntoIterator<Item = &'s SecretString>) -> Self {
        let mut keys: Vec<SecretString> = Vec::new();
        for s in secrets {
            if s.expose().chars().count() >= MIN_CHARS && !keys.iter().any(|k| k.expose() == s.expose()) {
                keys.push(s.clone());
            }
        }
        let mut patterns: Vec<&str> = Vec::with_capacity(keys.len() * 2);
        for k in &keys {
            let s = k.expose();
            let head = &s[..char_offset(s, MIN_CHARS)];
            let tail_chars = s.chars().count() - MIN_CHARS;
            let tail = &s[char_offset(s, tail_chars)..];
            patterns.push(head);
            patterns.push(tail);
        }
        let finder = if patterns.is_empty() {
            None
        } else {
            AhoCorasick::builder().match_kind(MatchKind::Standard).build(&patterns).ok()
        };
        Self { keys, finder }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The byte ranges of `text` that hold a run of some key of at least [`MIN_CHARS`]
    /// characters, sorted and merged.
    fn ranges(&self, text: &str) -> Vec<Range<usize>> {
        let Some(finder) = &self.finder else { return Vec::new() };
        let bytes = text.as_bytes();
        let mut found: Vec<Range<usize>> = Vec::new();
        for m in finder.find_overlapping_iter(text) {
            let key = self.keys[m.pattern().as_usize() / 2].expose().as_bytes();
            if m.pattern().as_usize() % 2 == 0 {
                // the key's head: extend forward while the text goes on like the key
                let start = m.start();
                let mut n = bytes[start..].iter().zip(key).take_while(|(a, b)| a == b).count();
                while n > 0 && !is_char_start(key, n) {
                    n -= 1;
                }
                found.push(start..start + n);
            } else {
                // the key's tail: extend backward
                let end = m.end();
                let mut n = bytes[..end].iter().rev().zip(key.iter().rev()).take_while(|(a, b)| a == b).count();
                while n > 0 && !is_char_start(key, key.len() - n) {
                    n -= 1;
                }
                found.push(end - n..end);
            }
        }
        found.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(found.len());
        for r in found {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        merged
    }

    /// `text` with every key (and every run of 8+ characters of one) replaced by `[redacted]`.
    pub fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let ranges = self.ranges(text);
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for r in ranges {
            out.push_str(&text[at..r.start]);
            out.push_str(REDACTED);
            at = r.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// Bytes read from an upstream, scrubbed; the same buffer when nothing was found. Bytes that
    /// are not UTF-8 are scrubbed in their valid stretches.
    pub fn scrub_bytes(&self, bytes: Bytes) -> Bytes {
        // the common case, one pass over raw bytes: no key anchor anywhere
        if !self.finder.as_ref().is_some_and(|f| f.is_match(&bytes[..])) {
            return bytes;
        }
        match std::str::from_utf8(&bytes) {
            Ok(text) => match self.scrub(text) {
                Cow::Borrowed(_) => bytes,
                Cow::Owned(s) => Bytes::from(s),
            },
            Err(_) => {
                let lossy = String::from_utf8_lossy(&bytes);
                match self.scrub(&lossy) {
                    Cow::Borrowed(_) => bytes,
                    Cow::Owned(s) => Bytes::from(s),
                }
            }
        }
    }
}

/// Whether byte `i` of `s` starts a character (or is its end).
fn is_char_start(s: &[u8], i: usize) -> bool {
    i >= s.len() || (s[i] & 0xC0) != 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|k| SecretString::new(k)).collect()
    }

    #[test]
    fn whole_keys_and_long_runs_of_them_are_removed() {
        let s = Scrubber::new(&keys(&["sk-live-0123456789abcdef"]));
        let msg =
            "Incorrect API key provided: sk-live-0123456789abcdef. Also sk-live-01******cdef and 0123456789abcdef";
        let out = s.scrub(msg);
        assert!(!out.contains("0123456789abcdef"), "{out}");
        assert!(!out.contains("sk-live-01"), "{out}");
        assert!(out.starts_with("Incorrect API key provided: [redacted]."), "{out}");
        assert!(matches!(s.scrub("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_key_goes_in_one_pass_and_odd_keys_never_panic() {
        let s = Scrubber::new(&keys(&[
            "gsk_one_0123456789abcdef",
            "sk-two-ffffeeeeddddcccc",
            "ключ-ключ-ключ-ключ",
            "é".repeat(12).as_str(),
            "aé".repeat(6).as_str(),
        ]));
        let text = "a gsk_one_0123456789abcdef b sk-two-ffffeeeedd c ключ-ключ-ключ d éééééééééè aéaéaéaéaé";
        let out = s.scrub(text);
        assert!(!out.contains("0123456789") && !out.contains("ffffeeee") && !out.contains("ключ-ключ"), "{out}");
        assert!(!out.contains("éééééééé"), "{out}");
        assert!(!out.contains("aéaéaéaé"), "{out}");
    }

    #[test]
    fn short_keys_are_not_credentials() {
        let s = Scrubber::new(&keys(&["k", "1234567"]));
        assert_eq!(s.scrub("a keep and a k 1234567"), "a keep and a k 1234567");
        let s = Scrubber::new(&keys(&["12345678"]));
        assert_eq!(s.scrub("exactly 12345678 here"), "exactly [redacted] here");
    }

    #[test]
    fn bytes_are_scrubbed_and_left_alone_when_clean() {
        let s = Scrubber::new(&keys(&["sk-bytes-0000000000000001"]));
        let clean = Bytes::from_static(b"data: {\"x\":1}\n\n");
        assert_eq!(s.scrub_bytes(clean.clone()).as_ptr(), clean.as_ptr(), "no copy when clean");
        let dirty = Bytes::from_static(b"data: {\"echo\":\"sk-bytes-0000000000000001\"}\n\n");
        assert_eq!(&s.scrub_bytes(dirty)[..], &b"data: {\"echo\":\"[redacted]\"}\n\n"[..]);
        let invalid = Bytes::from(b"\xff sk-bytes-0000000000000001".to_vec());
        assert!(!String::from_utf8_lossy(&s.scrub_bytes(invalid)).contains("sk-bytes"));
    }

    #[test]
    fn many_keys_cost_one_pass_over_the_text() {
        let many: Vec<SecretString> =
            (0..2_000).map(|i| SecretString::new(&format!("sk-many-{i:016}-tail{i:06}"))).collect();
        let s = Scrubber::new(&many);
        let text = "lorem ipsum ".repeat(100_000);
        let started = std::time::Instant::now();
        assert!(matches!(s.scrub(&text), Cow::Borrowed(_)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(s.scrub("x sk-many-0000000000001999-tail001999 y"), "x [redacted] y");
    }
}
