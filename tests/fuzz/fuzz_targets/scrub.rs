//! The `Scrubber`: arbitrary Unicode keys over text that holds them whole, in pieces (prefixes and
//! suffixes, as providers echo them), and around arbitrary other text.
//!
//! Properties: no panic; no key of 8 characters or more is left whole in the output. Keys that
//! contain `[` or `]`, or are `redacted`, are left out of that check: the `[redacted]` marker
//! itself may spell them.

#![no_main]

use arbitrary::Arbitrary;
use freeway_core::secret::SecretString;
use freeway_core::scrub::Scrubber;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Piece {
    Text(String),
    Key(u8),
    /// the first n characters of a key
    Prefix(u8, u8),
    /// the last n characters of a key
    Suffix(u8, u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    keys: Vec<String>,
    pieces: Vec<Piece>,
}

const MIN_CHARS: usize = 8;

fn checkable(key: &str) -> bool {
    key.chars().count() >= MIN_CHARS && !key.contains(['[', ']']) && key != "redacted"
}

fuzz_target!(|input: Input| {
    if input.keys.is_empty() {
        return;
    }
    let key = |i: u8| &input.keys[usize::from(i) % input.keys.len()];
    let mut text = String::new();
    for p in &input.pieces {
        match p {
            Piece::Text(t) => text.push_str(t),
            Piece::Key(i) => text.push_str(key(*i)),
            Piece::Prefix(i, n) => text.extend(key(*i).chars().take(usize::from(*n))),
            Piece::Suffix(i, n) => {
                let k = key(*i);
                let skip = k.chars().count().saturating_sub(usize::from(*n));
                text.extend(k.chars().skip(skip));
            }
        }
    }
    let secrets: Vec<SecretString> = input.keys.iter().map(|k| SecretString::new(k)).collect();
    let out = Scrubber::new(&secrets).scrub(&text);
    for k in input.keys.iter().filter(|k| checkable(k)) {
        assert!(!out.contains(k.as_str()), "key {k:?} survived in {out:?} (text {text:?})");
    }
});
