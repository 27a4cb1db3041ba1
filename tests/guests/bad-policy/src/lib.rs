//! A routing policy that misbehaves when the requested alias says so: it spins forever, traps,
//! allocates without end, or answers with indices it was never offered. Anything else is
//! ranked in the order given. The gateway must fall back to its own order for that request and
//! keep serving.

use freeway_sdk::policy::{Candidate, Choice, Features};

pub struct Bad;

impl freeway_sdk::Policy for Bad {
    fn rank(request: Features, candidates: Vec<Candidate>) -> Vec<Choice> {
        match request.requested_model.as_str() {
            "auto-loop" => loop {
                std::hint::black_box(&candidates);
            },
            "auto-trap" => std::process::abort(),
            "auto-alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "auto-garbage" => vec![Choice { index: 999, score: 1.0, reason: "bad-policy: out of range".to_owned() }],
            _ => (0..candidates.len())
                .map(|i| Choice {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    score: 0.0,
                    reason: "bad-policy: as offered".to_owned(),
                })
                .collect(),
        }
    }
}

freeway_sdk::export_policy!(Bad);
