//! What a routing decision found: every (provider, model, pool) looked at, whether it was
//! offered to the policy and where it ranked, or why it was dropped; and the walk's candidates
//! (or the client's error) that follow from it.

use std::sync::Arc;
use std::time::Duration;

use super::needs::Needs;
use super::route::Candidate;
use crate::accounts::Account;
use crate::errors::{ErrorKind, GatewayError};
use crate::quota::Blocked;
use crate::registry::Route;
use crate::routing::classifier::Classification;
use crate::routing::rules::Actions;
use crate::routing::stats;
use crate::runtime::component::PolicyHeadroom;

/// Why a (provider, model, pool) was not offered to the policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Dropped {
    Lacks(&'static str),
    Context {
        window: u32,
        need: u32,
    },
    NotInRule,
    /// the client's virtual key may not use it
    NotForKey,
    NoAccounts,
    Disabled(String),
    Cooling(Duration),
    /// another request is probing the account after a rest
    Probing,
    Quota(String),
    /// not among the `max_candidates` best for the task, so not offered
    Shortlist(usize),
    /// offered, but the policy left it out
    LeftOut,
}

impl Dropped {
    pub fn describe(&self) -> String {
        match self {
            Dropped::Lacks(what) => format!("no {what} support"),
            Dropped::Context { window, need } => {
                format!(
                    "context {} < {} needed",
                    crate::config::catalog::group(u64::from(*window)),
                    crate::config::catalog::group(u64::from(*need))
                )
            }
            Dropped::NotInRule => "not in the matching routing rule's fallback chain".to_owned(),
            Dropped::NotForKey => "not in this API key's model list".to_owned(),
            Dropped::NoAccounts => "no account configured".to_owned(),
            Dropped::Disabled(why) => format!("disabled: {why}"),
            Dropped::Cooling(d) => format!("cooldown {} s", d.as_secs().max(1)),
            Dropped::Probing => "another request is probing it after a rest".to_owned(),
            Dropped::Quota(why) => why.clone(),
            Dropped::Shortlist(n) => format!("not among the {n} best for this task ([routing] max_candidates)"),
            Dropped::LeftOut => "left out by the policy".to_owned(),
        }
    }
}

/// One (provider, model, pool) the decision looked at.
pub struct Entry {
    pub provider: String,
    pub model: String,
    pub pool: String,
    pub quality: u8,
    pub context_window: Option<u32>,
    /// `None` when offered to the policy
    pub dropped: Option<Dropped>,
    /// place in the final order (0 = first)
    pub rank: Option<usize>,
    pub score: Option<f32>,
    pub reason: String,
    pub headroom: Vec<PolicyHeadroom>,
    pub stats: stats::Snapshot,
    pub(super) route: Option<Route>,
    pub(super) accounts: Vec<Arc<Account>>,
    pub(super) blocked: Option<Blocked>,
}

/// Everything one routing decision found.
pub struct Decision {
    pub requested: String,
    pub policy: String,
    /// why the policy's order was not used, if it was not
    pub policy_error: Option<String>,
    pub classification: Classification,
    pub language: Option<&'static str>,
    pub rules: Actions,
    pub needed_context: u32,
    pub needs: Needs,
    pub entries: Vec<Entry>,
    /// time spent on the whole decision
    pub cost: Duration,
    /// of which: classifying the request (text, classifier, language, rules)
    pub classify_cost: Duration,
    /// of which: the policy component's `rank` call
    pub policy_cost: Duration,
}

impl Decision {
    /// The walk's candidates, best first; the error for the client when there are none.
    pub fn candidates(&self) -> Result<Vec<Candidate>, GatewayError> {
        if self.entries.iter().all(|e| e.rank.is_none()) {
            return Err(self.nothing_left());
        }
        let mut ranked: Vec<&Entry> = self.entries.iter().filter(|e| e.rank.is_some()).collect();
        ranked.sort_by_key(|e| e.rank);
        let mut out = Vec::new();
        for e in ranked {
            if let Some(route) = &e.route {
                out.extend(e.accounts.iter().map(|a| Candidate { route: route.clone(), account: a.clone() }));
            }
        }
        Ok(out)
    }

    /// The label `x-freeway-route` carries: the policy's name, or `host-order` when it failed.
    pub fn label(&self) -> String {
        match &self.policy_error {
            None => self.policy.clone(),
            Some(_) => format!("{} (failed; host order)", self.policy),
        }
    }

    /// The classifier's summary `x-freeway-route` carries: `task=reasoning; classes=reasoning
    /// 0.62, general 0.31` (the classes above 2 %, in a header-safe form).
    pub fn task_summary(&self) -> String {
        let c = &self.classification;
        // the classifier already wrote the list into its evidence
        match c.signals.iter().find_map(|s| s.strip_prefix("classes: ")) {
            Some(classes) => format!("task={}; classes={classes}", c.task.as_str()),
            None => format!("task={}; classes={}", c.task.as_str(), c.probabilities_text()),
        }
    }

    /// The error for a request no candidate is left for.
    pub fn nothing_left(&self) -> GatewayError {
        if !self.entries.is_empty() && self.entries.iter().all(|e| e.dropped == Some(Dropped::NotForKey)) {
            return GatewayError::new(
                ErrorKind::ModelNotAllowed,
                format!("None of the models this API key may use can serve `{}`.", self.requested),
            )
            .with_param("model");
        }
        if self.entries.iter().any(|e| e.dropped == Some(Dropped::LeftOut)) {
            return GatewayError::new(
                ErrorKind::NoProvider,
                format!("The routing policy `{}` chose none of the candidates for this request.", self.policy),
            );
        }
        let blocked: Vec<(String, Blocked)> = self
            .entries
            .iter()
            .filter_map(|e| Some((format!("{}/{} [{}]", e.provider, e.model, e.pool), e.blocked.clone()?)))
            .collect();
        if !blocked.is_empty() {
            return crate::pipeline::limit::exhausted(&self.requested, &blocked);
        }
        let cooling = self.entries.iter().filter_map(|e| match e.dropped {
            Some(Dropped::Cooling(d)) => Some(d),
            _ => None,
        });
        if let Some(wait) = cooling.min() {
            let wait = wait.max(Duration::from_secs(1));
            return GatewayError::new(
                ErrorKind::UpstreamRateLimited,
                format!(
                    "Every model `{}` could use is resting after a rate limit; try again in {} s.",
                    self.requested,
                    wait.as_secs()
                ),
            )
            .with_retry_after(Some(wait));
        }
        let mut reasons: Vec<String> = self
            .entries
            .iter()
            .filter_map(|e| Some(format!("{}/{}: {}", e.provider, e.model, e.dropped.as_ref()?.describe())))
            .take(4)
            .collect();
        if reasons.is_empty() {
            reasons.push("no provider serves a free chat model".to_owned());
        }
        let (kind, status_hint) = if self.entries.iter().any(|e| matches!(e.dropped, Some(Dropped::Disabled(_)))) {
            (ErrorKind::NoProvider, "")
        } else {
            (ErrorKind::InvalidValue, " Ask for a specific model, or change what the request needs.")
        };
        GatewayError::new(
            kind,
            format!("No model can serve this `{}` request: {}.{status_hint}", self.requested, reasons.join("; ")),
        )
        .with_param("model")
    }
}
