//! The words the classifier reads: a message `content` (a string, or the text parts of an
//! array) as plain text, and for long contents only its head and tail. Long strings are never
//! unescaped whole: the two windows are cut from the raw JSON at spaces (never inside an escape
//! sequence) and unescaped on their own, so a 200 KB prompt costs what an 8 KB one does.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Bytes read from the start and from the end of a long text.
pub const HEAD: usize = 3_000;
pub const TAIL: usize = 1_000;

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

/// The classifier's view of a `content`: all of it when short, else head + "\n…\n" + tail.
pub fn content_text(content: Option<&RawValue>) -> String {
    let Some(content) = content else { return String::new() };
    let raw = content.get();
    let mut out = String::new();
    if raw.starts_with('"') {
        push_string(&mut out, raw);
    } else if raw.starts_with('[')
        && let Ok(parts) = serde_json::from_str::<Vec<Part<'_>>>(raw)
    {
        for p in parts {
            if p.kind.as_deref().is_none_or(|k| k == "text")
                && let Some(t) = p.text.filter(|t| t.get().starts_with('"'))
            {
                if !out.is_empty() {
                    out.push('\n');
                }
                push_string(&mut out, t.get());
            }
        }
    }
    out
}

/// The context the classifier reads a conversation's last message in: the user message before
/// it and the assistant's last reply.
pub fn context_of(earlier_user: &str, last_assistant: &str) -> String {
    match (earlier_user.is_empty(), last_assistant.is_empty()) {
        (true, _) => last_assistant.to_owned(),
        (_, true) => earlier_user.to_owned(),
        _ => format!("{earlier_user}\n\n{last_assistant}"),
    }
}

/// Append the JSON string literal `raw` (quotes included), windowed when long.
fn push_string(out: &mut String, raw: &str) {
    let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or("");
    if inner.len() <= HEAD + TAIL + 64 {
        unescape_into(out, inner);
        return;
    }
    // cut at spaces: a space is never part of an escape sequence
    let head_end = floor_char(inner, HEAD);
    let head_end = inner[..head_end].rfind(' ').unwrap_or(head_end);
    let tail_start = ceil_char(inner, inner.len() - TAIL);
    let tail_start = inner[tail_start..].find(' ').map_or(tail_start, |i| tail_start + i + 1);
    unescape_into(out, &inner[..head_end]);
    out.push_str("\n…\n");
    unescape_into(out, &inner[tail_start..]);
}

/// The char boundary at or before `i` (at most `s.len()`).
pub(super) fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The char boundary at or after `i`.
pub(super) fn ceil_char(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// JSON string escapes -> text. A sequence cut short at the end of a fragment is dropped.
fn unescape_into(out: &mut String, s: &str) {
    out.reserve(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let esc = &rest[i + 1..];
        let mut chars = esc.chars();
        let (c, used) = match chars.next() {
            Some('n') => (Some('\n'), 1),
            Some('t') => (Some('\t'), 1),
            Some('r') => (Some('\r'), 1),
            Some('b' | 'f') => (Some(' '), 1),
            Some(c @ ('"' | '\\' | '/')) => (Some(c), 1),
            Some('u') => match esc.get(1..5).and_then(|h| u32::from_str_radix(h, 16).ok()) {
                // a surrogate pair
                Some(hi @ 0xD800..=0xDBFF) => {
                    let lo = esc.get(5..7).filter(|p| *p == "\\u").and_then(|_| esc.get(7..11));
                    match lo.and_then(|h| u32::from_str_radix(h, 16).ok()) {
                        Some(lo @ 0xDC00..=0xDFFF) => {
                            (char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)), 11)
                        }
                        _ => (Some('\u{FFFD}'), 5),
                    }
                }
                Some(code) => (Some(char::from_u32(code).unwrap_or('\u{FFFD}')), 5),
                None => (None, esc.len()),
            },
            Some(other) => (Some(other), other.len_utf8()),
            None => (None, 0),
        };
        if let Some(c) = c {
            out.push(c);
        }
        rest = esc.get(used..).unwrap_or("");
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn strings_and_text_parts_are_read_and_unescaped() {
        assert_eq!(
            content_text(Some(&raw(r#""solve x+1=2\nnow \"quoted\" caf\u00e9 \ud83d\ude00""#))),
            "solve x+1=2\nnow \"quoted\" café 😀"
        );
        let parts = raw(
            r#"[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:"}},{"type":"text","text":"here"}]"#,
        );
        assert_eq!(content_text(Some(&parts)), "look\nhere");
        assert_eq!(content_text(None), "");
    }

    #[test]
    fn long_strings_are_read_at_both_ends_only() {
        let body = format!("\"write a poem\\n{} the end about cats\"", "word\\\"s ".repeat(20_000));
        let text = content_text(Some(&raw(&body)));
        assert!(text.len() < HEAD + TAIL + 16, "{}", text.len());
        assert!(text.starts_with("write a poem\nword\"s"));
        assert!(text.ends_with("the end about cats"));
        assert!(!text.contains('\\'), "no escape was cut in half");
    }
}
