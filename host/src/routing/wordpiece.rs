//! BERT's uncased WordPiece tokenizer, as the learned classifier's embedding table was built
//! with (all-MiniLM-L6-v2): clean the text, space out CJK ideographs, strip accents, lower-case,
//! split on whitespace and punctuation, then match each word greedily against the vocabulary
//! (`##` marks a piece inside a word). A golden test holds it to the reference tokenizer's ids.
//!
//! Cost is linear in the text: one hash lookup for a word the vocabulary holds whole, a few for
//! one it splits. Callers bound the text and the number of pieces.

use std::collections::HashMap;

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

/// Words longer than this (in chars) are one unknown token, as in BERT.
const MAX_WORD_CHARS: usize = 100;

type Map = HashMap<Box<str>, u32, foldhash::fast::FixedState>;

pub struct WordPiece {
    whole: Map,
    /// pieces that continue a word, without their `##`
    inner: Map,
    unk: u32,
    longest: usize,
}

impl WordPiece {
    /// From the vocabulary in id order. `None` without an `[UNK]` token.
    pub fn new<'a>(vocab: impl IntoIterator<Item = &'a str>) -> Option<WordPiece> {
        let mut whole = Map::default();
        let mut inner = Map::default();
        let mut longest = 0;
        for (i, tok) in vocab.into_iter().enumerate() {
            let id = u32::try_from(i).ok()?;
            longest = longest.max(tok.len());
            match tok.strip_prefix("##") {
                Some(rest) if !rest.is_empty() => inner.insert(rest.into(), id),
                _ => whole.insert(tok.into(), id),
            };
        }
        let unk = *whole.get("[UNK]")?;
        Some(WordPiece { whole, inner, unk, longest })
    }

    pub fn len(&self) -> usize {
        self.whole.len() + self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Token ids of `text`, at most `max` of them, through `out` (cleared first).
    pub fn encode(&self, text: &str, max: usize, out: &mut Vec<u32>) {
        out.clear();
        let mut word = String::with_capacity(32);
        for c in text.chars() {
            if out.len() >= max {
                return;
            }
            if c.is_ascii() {
                match c {
                    'a'..='z' | '0'..='9' => word.push(c),
                    'A'..='Z' => word.push(c.to_ascii_lowercase()),
                    ' ' | '\t' | '\n' | '\r' => self.flush(&mut word, max, out),
                    c if c.is_ascii_punctuation() => {
                        self.flush(&mut word, max, out);
                        word.push(c);
                        self.flush(&mut word, max, out);
                    }
                    // other control characters are dropped
                    _ => {}
                }
                continue;
            }
            self.push_unicode(c, &mut word, max, out);
        }
        self.flush(&mut word, max, out);
        out.truncate(max);
    }

    fn push_unicode(&self, c: char, word: &mut String, max: usize, out: &mut Vec<u32>) {
        if c == '\u{fffd}' || c == '\0' {
            return;
        }
        let cat = get_general_category(c);
        if c.is_whitespace() || cat == GeneralCategory::SpaceSeparator {
            self.flush(word, max, out);
            return;
        }
        if matches!(
            cat,
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::PrivateUse
                | GeneralCategory::Unassigned
        ) {
            return;
        }
        if is_cjk(c) || is_punctuation(cat) {
            self.flush(word, max, out);
            word.extend(c.to_lowercase());
            self.flush(word, max, out);
            return;
        }
        // strip accents: decompose, drop combining marks, then lower-case
        for d in c.nfd() {
            if get_general_category(d) == GeneralCategory::NonspacingMark {
                continue;
            }
            word.extend(d.to_lowercase());
        }
    }

    /// The pieces of the word in `word` (then cleared).
    fn flush(&self, word: &mut String, max: usize, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if out.len() < max {
            self.pieces(word, out);
        }
        word.clear();
    }

    fn pieces(&self, word: &str, out: &mut Vec<u32>) {
        if let Some(&id) = self.whole.get(word) {
            out.push(id);
            return;
        }
        if word.chars().count() > MAX_WORD_CHARS {
            out.push(self.unk);
            return;
        }
        let mark = out.len();
        let mut start = 0;
        while start < word.len() {
            let map = if start == 0 { &self.whole } else { &self.inner };
            let mut end = word.len().min(start + self.longest);
            let found = loop {
                while !word.is_char_boundary(end) {
                    end -= 1;
                }
                if end <= start {
                    break None;
                }
                if let Some(&id) = map.get(&word[start..end]) {
                    break Some(id);
                }
                end -= 1;
            };
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(mark);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }
}

/// CJK ideographs: each is a word of its own, as in BERT.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

fn is_punctuation(cat: GeneralCategory) -> bool {
    matches!(
        cat,
        GeneralCategory::ConnectorPunctuation
            | GeneralCategory::DashPunctuation
            | GeneralCategory::OpenPunctuation
            | GeneralCategory::ClosePunctuation
            | GeneralCategory::InitialPunctuation
            | GeneralCategory::FinalPunctuation
            | GeneralCategory::OtherPunctuation
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let vocab = ["[PAD]", "[UNK]", "un", "##aff", "##able", "hello", "!", ",", "cafe", "中", "文", "run", "##ning"];
        WordPiece::new(vocab).expect("vocab")
    }

    fn ids(wp: &WordPiece, s: &str) -> Vec<u32> {
        let mut out = Vec::new();
        wp.encode(s, 64, &mut out);
        out
    }

    #[test]
    fn words_split_greedily_into_the_longest_known_pieces() {
        let wp = tiny();
        assert_eq!(ids(&wp, "Unaffable running"), vec![2, 3, 4, 11, 12]);
        assert_eq!(ids(&wp, "hello, unknownword!"), vec![5, 7, 1, 6]);
    }

    #[test]
    fn accents_are_stripped_and_ideographs_stand_alone() {
        let wp = tiny();
        assert_eq!(ids(&wp, "CAFÉ"), vec![8]);
        assert_eq!(ids(&wp, "中文"), vec![9, 10]);
    }

    /// Ids from the reference tokenizer (Hugging Face `tokenizers`, all-MiniLM-L6-v2's
    /// tokenizer.json) for text with accents, CJK, Cyrillic, Greek, Hangul, emoji, zero-width
    /// and control characters, punctuation of every kind and an over-long word.
    #[test]
    fn ids_match_the_reference_tokenizer() {
        let model = crate::routing::model::Model::parse(crate::routing::model::EMBEDDED).expect("model");
        let golden: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("wordpiece_golden.json")).expect("golden file");
        assert!(golden.len() >= 20);
        let mut got = Vec::new();
        for case in golden {
            let text = case["text"].as_str().expect("text");
            let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).expect("ids");
            model.tokenizer.encode(text, 10_000, &mut got);
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn the_count_is_bounded() {
        let wp = tiny();
        let mut out = Vec::new();
        wp.encode(&"hello ".repeat(1000), 10, &mut out);
        assert_eq!(out.len(), 10);
        wp.encode(&"x".repeat(10_000), 10, &mut out);
        assert_eq!(out, vec![1]);
    }
}
