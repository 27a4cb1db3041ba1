//! The shapes of text (code fences, stack traces, equations...) as dense DFAs, determinised when
//! the gateway starts: a search never builds states, so the first sight of a text costs what
//! any other does (a lazy DFA's first look at new text costs hundreds of microseconds).
//!
//! One DFA per pattern: together they would multiply into tens of megabytes, alone each is a few
//! kilobytes and builds in about a millisecond. A pattern is only searched for where it can
//! start: one that needs a byte (`(`, a digit, `%`) is skipped when the text has none, and one
//! that starts with a word (`if`, `should`, `select`) is tried only where one of its words is,
//! found by one Aho-Corasick pass. A text costs a byte scan, that pass, and the few patterns
//! left (a unit test holds this to a full search of every pattern).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind as AcKind};
use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

/// Bound on one pattern's automaton (the largest needs about 170 KiB).
const SIZE_LIMIT: usize = 4 << 20;

/// Where a pattern can match.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    /// anywhere (patterns the DFA skips through quickly: a literal start, a line anchor)
    Always,
    /// only in a text holding one of these bytes
    Bytes(&'static [u8]),
    /// only starting at one of these words (the pattern starts with a word boundary and them)
    Words(&'static [&'static str]),
}

const DIGITS: &[u8] = b"0123456789";

/// What each named shape needs (see [`Trigger`]); a shape not named here is searched anywhere.
pub fn trigger(name: &str) -> Trigger {
    match name {
        "definition" | "call" => Trigger::Bytes(b"("),
        "stack trace" => Trigger::Bytes(b":["),
        "source file name" => Trigger::Bytes(b"."),
        "arithmetic" | "equation" | "quantity with unit" | "quantity question" => Trigger::Bytes(DIGITS),
        // √ ∫ ∑ ≤ ≥ all start with the byte 0xE2 in UTF-8
        "math notation" => Trigger::Bytes(b"^\\/(\xE2"),
        "percent or money" => Trigger::Bytes(b"%$"),
        "file path" => Trigger::Bytes(b"/"),
        "SQL" => Trigger::Words(&["select", "insert", "create", "group"]),
        "function of x" => Trigger::Words(&["sin", "cos", "tan", "log", "ln", "exp"]),
        "asks for code" => Trigger::Words(&["write", "give me", "create", "generate", "make"]),
        "given material" => {
            Trigger::Words(&["this", "these", "the following", "below", "here's", "here is", "from this"])
        }
        "choice between options" => Trigger::Words(&["should"]),
        "given text" => Trigger::Words(&["from", "in"]),
        "if-then" => Trigger::Words(&["if"]),
        "syllogism" => Trigger::Words(&["all", "some", "no"]),
        _ => Trigger::Always,
    }
}

pub struct Shapes {
    dfas: Vec<dense::DFA<Vec<u32>>>,
    triggers: Vec<Trigger>,
    /// the words of every `Words` trigger, and the pattern each belongs to
    words: AhoCorasick,
    owner: Vec<usize>,
}

fn build(pattern: &str) -> Result<dense::DFA<Vec<u32>>, String> {
    dense::Builder::new()
        // bytes, not Unicode: `[^?]*` is one byte class instead of every UTF-8 sequence (the
        // patterns' classes are ASCII; a non-ASCII literal matches its UTF-8 bytes)
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .configure(
            dense::DFA::config()
                .match_kind(MatchKind::LeftmostFirst)
                .dfa_size_limit(Some(SIZE_LIMIT))
                .determinize_size_limit(Some(SIZE_LIMIT)),
        )
        .build(pattern)
        .map_err(|e| format!("{pattern}: {e}"))
}

impl Shapes {
    /// `patterns`: (pattern, trigger) each.
    pub fn new(patterns: &[(String, Trigger)]) -> Result<Shapes, String> {
        let dfas = patterns.iter().map(|(p, _)| build(p)).collect::<Result<Vec<_>, _>>()?;
        let triggers: Vec<Trigger> = patterns.iter().map(|(_, t)| *t).collect();
        let mut owner = Vec::new();
        let mut words = Vec::new();
        for (i, t) in triggers.iter().enumerate() {
            if let Trigger::Words(list) = t {
                for w in *list {
                    words.push(*w);
                    owner.push(i);
                }
            }
        }
        let words = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(AcKind::Standard)
            .build(&words)
            .map_err(|e| e.to_string())?;
        Ok(Shapes { dfas, triggers, words, owner })
    }

    pub fn len(&self) -> usize {
        self.dfas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dfas.is_empty()
    }

    pub fn memory_usage(&self) -> usize {
        self.dfas.iter().map(|d| d.memory_usage()).sum::<usize>() + self.words.memory_usage()
    }

    /// The patterns that match somewhere in `text`, as a bit set (bit i: pattern i).
    pub fn matches(&self, text: &str) -> u64 {
        let hay = text.as_bytes();
        let mut present = [false; 256];
        for &b in hay {
            present[usize::from(b)] = true;
        }
        let mut found = 0u64;
        let unanchored = Input::new(hay).anchored(Anchored::No).earliest(true);
        for (i, (dfa, trigger)) in self.dfas.iter().zip(&self.triggers).enumerate() {
            let run = match trigger {
                Trigger::Always => true,
                Trigger::Bytes(bytes) => bytes.iter().any(|b| present[usize::from(*b)]),
                Trigger::Words(_) => false,
            };
            // a search only fails on a quit byte, which these DFAs do not have
            if run && matches!(dfa.try_search_fwd(&unanchored), Ok(Some(_))) {
                found |= 1 << i;
            }
        }
        for hit in self.words.find_overlapping_iter(hay) {
            let Some(&i) = self.owner.get(hit.pattern().as_usize()) else { continue };
            if found & (1 << i) != 0 {
                continue;
            }
            let Some(dfa) = self.dfas.get(i) else { continue };
            let at = Input::new(hay).range(hit.start()..).anchored(Anchored::Yes).earliest(true);
            if matches!(dfa.try_search_fwd(&at), Ok(Some(_))) {
                found |= 1 << i;
            }
        }
        found
    }

    /// Every pattern searched everywhere: what [`Shapes::matches`] must agree with.
    #[cfg(test)]
    pub fn matches_everywhere(&self, text: &str) -> u64 {
        let input = Input::new(text.as_bytes()).earliest(true);
        let mut found = 0u64;
        for (i, dfa) in self.dfas.iter().enumerate() {
            if matches!(dfa.try_search_fwd(&input), Ok(Some(_))) {
                found |= 1 << i;
            }
        }
        found
    }
}
