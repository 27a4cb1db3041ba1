//! The words the classifier reads: the last user message and the system prompt, from the
//! request's `messages` (string contents and the text parts of multi-part contents).

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    role: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    text: Option<String>,
}

fn append_content(out: &mut String, content: &RawValue) {
    let raw = content.get();
    if raw.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(raw) {
            push(out, &s);
        }
    } else if raw.starts_with('[')
        && let Ok(parts) = serde_json::from_str::<Vec<Part<'_>>>(raw)
    {
        for p in parts {
            if p.kind.as_deref().is_none_or(|k| k == "text")
                && let Some(t) = p.text
            {
                push(out, &t);
            }
        }
    }
}

fn push(out: &mut String, s: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(s);
}

/// (last user message, system prompt) as plain text; empty when the messages cannot be read.
pub fn prompt_text(messages: &RawValue) -> (String, String) {
    let Ok(list) = serde_json::from_str::<Vec<Message<'_>>>(messages.get()) else {
        return (String::new(), String::new());
    };
    let mut system = String::new();
    let mut user = String::new();
    for m in &list {
        if matches!(m.role.as_deref(), Some("system" | "developer"))
            && let Some(c) = m.content
        {
            append_content(&mut system, c);
        }
    }
    if let Some(c) = list.iter().rev().find(|m| m.role.as_deref() == Some("user")).and_then(|m| m.content) {
        append_content(&mut user, c);
    }
    (user, system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_user_message_and_the_system_prompt_are_read() {
        let raw = RawValue::from_string(
            r#"[{"role":"system","content":"You are terse."},{"role":"user","content":"first"},
               {"role":"assistant","content":"ok"},
               {"role":"user","content":[{"type":"text","text":"solve x+1=2"},{"type":"image_url","image_url":{"url":"data:"}}]}]"#
                .to_owned(),
        )
        .unwrap();
        let (user, system) = prompt_text(&raw);
        assert_eq!(user, "solve x+1=2");
        assert_eq!(system, "You are terse.");
    }
}
