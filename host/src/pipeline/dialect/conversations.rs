//! The Responses API's kept answers, for `previous_response_id`: each client's conversations
//! by response id, in memory, bounded in bytes and age (least recently used go first). They are
//! the gateway process's own: with several gateways behind one address, a follow-up that lands on
//! another gateway gets a 400 (send the whole input, or `store: false` and your own history).

use std::sync::Arc;
use std::time::Duration;

use freeway_core::dialect::responses::Keep;
use moka::sync::Cache;
use serde_json::Value;

use crate::principal::Principal;

#[derive(Clone)]
pub struct Conversations {
    kept: Cache<String, Arc<Vec<Value>>>,
}

impl Conversations {
    /// At most `max_bytes` of conversations (as JSON text), each for `ttl` after its last use.
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        let kept = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Arc<Vec<Value>>| {
                let size = k.len() + v.iter().map(|m| m.to_string().len()).sum::<usize>();
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .time_to_idle(ttl)
            .build();
        Self { kept }
    }

    fn key(client: &str, id: &str) -> String {
        format!("{client}\u{0}{id}")
    }

    /// `client`'s conversation that ended with response `id`.
    pub fn get(&self, client: &Principal, id: &str) -> Option<Vec<Value>> {
        self.kept.get(&Self::key(&client.id().unwrap_or_default(), id)).map(|c| c.as_ref().clone())
    }

    /// What keeps a finished answer's conversation for `client`.
    pub fn keeper(&self, client: &Principal) -> Keep {
        let kept = self.kept.clone();
        let client = client.id().unwrap_or_default();
        Box::new(move |id: String, conversation: Vec<Value>| {
            kept.insert(Self::key(&client, &id), Arc::new(conversation));
        })
    }
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations").field("entries", &self.kept.entry_count()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_conversation_is_found_only_by_the_client_that_kept_it() {
        let c = Conversations::new(1 << 20, Duration::from_secs(60));
        (c.keeper(&Principal::Key { index: 0 }))("resp_1".into(), vec![json!({"role": "user", "content": "hi"})]);
        assert_eq!(c.get(&Principal::Key { index: 0 }, "resp_1").unwrap().len(), 1);
        assert!(c.get(&Principal::Key { index: 1 }, "resp_1").is_none());
        assert!(c.get(&Principal::Anyone, "resp_1").is_none());
        assert!(c.get(&Principal::Key { index: 0 }, "resp_2").is_none());
    }

    #[test]
    fn the_store_is_bounded_in_bytes() {
        let c = Conversations::new(10_000, Duration::from_secs(60));
        for i in 0..200 {
            (c.keeper(&Principal::Anyone))(
                format!("resp_{i}"),
                vec![json!({"role": "user", "content": "x".repeat(500)})],
            );
        }
        c.kept.run_pending_tasks();
        assert!(c.kept.weighted_size() <= 10_000, "{}", c.kept.weighted_size());
        assert!(c.kept.entry_count() < 200);
    }
}
