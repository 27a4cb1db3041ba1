//! The fleet `auto` routes over: every routable free chat model of every provider, listed once
//! per reload.

use std::sync::Arc;

use super::{ModelEntry, ProviderEntry, Route};

/// Model ids that are not chat models (never offered to `auto`).
const NOT_CHAT: &[&str] =
    &["embed", "whisper", "tts", "guard", "rerank", "moderation", "-transcribe", "dall-e", "stable-diffusion", "flux"];

fn chat_model(m: &ModelEntry) -> bool {
    if m.embedding.is_some() {
        return false;
    }
    let id = m.info.id.to_ascii_lowercase();
    !NOT_CHAT.iter().any(|n| id.contains(n))
}

/// Every routable free chat model of every provider (built once per reload).
pub fn fleet_of(providers: &[Arc<ProviderEntry>], free_only: bool) -> Vec<(Route, usize)> {
    let mut out = Vec::new();
    for p in providers {
        for (i, m) in p.models.iter().enumerate().filter(|(_, m)| m.routable() && chat_model(m)) {
            let free = p.local || m.info.free != Some(false) && m.catalog.as_ref().is_none_or(|c| c.free);
            if free || !free_only {
                out.push((Route { provider: p.clone(), model: m.info.id.clone() }, i));
            }
        }
    }
    out
}
