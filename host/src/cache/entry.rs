//! One stored response, and its bytes in a shared store: a magic, a JSON header (who answered,
//! the usage, the names purging by model matches), then the body's parts, each length-prefixed
//! (a JSON reply: one part; a stream: its events as they were relayed, one part each).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::wire::types::Usage;

const MAGIC: &[u8; 4] = b"FWC1";

/// The body of a stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// a `chat.completion` JSON body
    Json(Bytes),
    /// a stream's events, in the chunks the client received them in
    Stream(Vec<Bytes>),
}

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub stored: Stored,
    /// the provider and model that produced it
    pub provider: String,
    pub model: String,
    /// the tokens it took (what a hit saves)
    pub usage: Option<Usage>,
    /// the model names `DELETE /admin/cache?model=` matches: the name asked for, the model
    /// that answered (bare and `provider/model`)
    pub tags: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    stream: bool,
    provider: String,
    model: String,
    usage: Option<Usage>,
    tags: Vec<String>,
}

impl Entry {
    /// Bytes it holds (the memory bound counts this).
    pub fn weight(&self) -> usize {
        let body = match &self.stored {
            Stored::Json(b) => b.len(),
            Stored::Stream(parts) => parts.iter().map(|p| p.len() + 16).sum(),
        };
        body + self.provider.len() + self.model.len() + self.tags.iter().map(|t| t.len() + 16).sum::<usize>() + 128
    }

    /// Whether `model` names it (purge by model).
    pub fn tagged(&self, model: &str) -> bool {
        self.tags.iter().any(|t| t == model)
    }

    pub fn encode(&self) -> Vec<u8> {
        let header = Header {
            stream: matches!(self.stored, Stored::Stream(_)),
            provider: self.provider.clone(),
            model: self.model.clone(),
            usage: self.usage.clone(),
            tags: self.tags.clone(),
        };
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(self.weight() + header.len());
        out.extend_from_slice(MAGIC);
        push_part(&mut out, &header);
        match &self.stored {
            Stored::Json(b) => push_part(&mut out, b),
            Stored::Stream(parts) => {
                for p in parts {
                    push_part(&mut out, p);
                }
            }
        }
        out
    }

    /// The entry `bytes` encode; `None` for anything else (another version, a cut value).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut rest = bytes.strip_prefix(MAGIC)?;
        let header: Header = serde_json::from_slice(take_part(&mut rest)?).ok()?;
        let mut parts = Vec::new();
        while !rest.is_empty() {
            parts.push(Bytes::copy_from_slice(take_part(&mut rest)?));
        }
        let stored = if header.stream {
            Stored::Stream(parts)
        } else {
            match <[Bytes; 1]>::try_from(parts) {
                Ok([b]) => Stored::Json(b),
                Err(_) => return None,
            }
        };
        Some(Self { stored, provider: header.provider, model: header.model, usage: header.usage, tags: header.tags })
    }
}

fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&part[..len as usize]);
}

fn take_part<'b>(rest: &mut &'b [u8]) -> Option<&'b [u8]> {
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    if tail.len() < len {
        return None;
    }
    let (part, tail) = tail.split_at(len);
    *rest = tail;
    Some(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stored: Stored) -> Entry {
        Entry {
            stored,
            provider: "groq".into(),
            model: "llama".into(),
            usage: Some(Usage { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8, ..Usage::default() }),
            tags: vec!["chat".into(), "llama".into(), "groq/llama".into()],
        }
    }

    #[test]
    fn an_entry_survives_its_encoding_json_and_stream_alike() {
        for stored in [
            Stored::Json(Bytes::from_static(b"{\"id\":\"x\"}")),
            Stored::Stream(vec![
                Bytes::from_static(b"data: {}\n\n"),
                Bytes::new(),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ]),
            Stored::Stream(Vec::new()),
        ] {
            let e = entry(stored);
            assert_eq!(Entry::decode(&e.encode()), Some(e));
        }
    }

    #[test]
    fn anything_else_decodes_to_nothing() {
        let bytes = entry(Stored::Json(Bytes::from_static(b"{}"))).encode();
        assert!(Entry::decode(&bytes[..bytes.len() - 1]).is_none(), "cut");
        assert!(Entry::decode(b"FWC0").is_none());
        assert!(Entry::decode(b"").is_none());
    }
}
