//! The routing decision for one policy-routed request (see the module doc of [`super`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::context::RequestCtx;
use super::decision::{Decision, Dropped, Entry};
use crate::accounts::Health;
use crate::routing::classifier::{self, Classification};
use crate::routing::rules::{self, Actions};
use crate::routing::{AutoKind, auto_kind};
use crate::task::Task;
use crate::telemetry::trace;
use tracing::Instrument as _;

use super::needs::Needs;

use crate::accounts::Account;
use crate::bindings::wit::Capabilities;
use crate::quota::now_ms;
use crate::registry::{ModelEntry, Route, Snapshot};
use crate::runtime::component::{PolicyCandidate, PolicyChoice, PolicyFeatures, PolicyHeadroom, TaskClass};
use crate::wire::chat::ChatBody;

/// Prompts this long (estimated tokens) are flagged as long-context in the evidence.
const LONG_CONTEXT: u32 = 8_000;

/// How a request is routed by a policy: which policy, which routes, which built-in alias.
pub struct PolicyRoute<'s> {
    pub policy: String,
    pub kind: Option<AutoKind>,
    pub routes: Routes<'s>,
}

/// (route, index of its model in the provider's `models`)
pub enum Routes<'s> {
    /// every free chat model (the snapshot's list)
    Fleet(&'s [(Route, usize)]),
    /// an alias's own list
    Listed(Vec<(Route, usize)>),
}

impl Routes<'_> {
    fn as_slice(&self) -> &[(Route, usize)] {
        match self {
            Routes::Fleet(r) => r,
            Routes::Listed(r) => r,
        }
    }
}

/// Preferences from a virtual key's `prefer` list rank after a routing rule's own.
const KEY_PREFERENCE_BASE: u32 = 1 << 16;

/// Whether `model` is routed by a policy, and how.
pub fn policy_route<'s>(snapshot: &'s Snapshot, model: &str) -> Option<PolicyRoute<'s>> {
    let kind = auto_kind(model);
    let configured = snapshot.config.routes.iter().find(|r| r.model == model);
    let policy = match (configured.and_then(|r| r.policy.clone()), kind) {
        (Some(p), _) => p,
        (None, Some(_)) => snapshot.config.routing.policy.clone(),
        (None, None) => return None,
    };
    let routes = match snapshot.routes(model) {
        Some(r) if configured.is_some() => Routes::Listed(
            r.iter()
                .filter_map(|r| Some((r.clone(), r.provider.models.iter().position(|m| m.info.id == r.model)?)))
                .collect(),
        ),
        _ => Routes::Fleet(&snapshot.fleet),
    };
    Some(PolicyRoute { policy, kind, routes })
}

/// How the decision is asked for.
pub struct Call {
    /// the request's `messages` JSON, for the policy's `request` import (a slice of the body)
    pub messages: bytes::Bytes,
    /// the decision will be shown: the policy should give every choice a reason
    pub explain: bool,
}

/// The classifier's view of the request, with the alias and the rules applied.
struct Classified {
    class: Classification,
    language: Option<&'static str>,
    actions: Actions,
    needs_vision: bool,
}

fn classify_request(
    snapshot: &Snapshot,
    req: &ChatBody<'_>,
    needs: &Needs,
    kind: Option<AutoKind>,
    tags: &[String],
    explain: bool,
) -> Classified {
    let user = crate::routing::text::content_text(req.last_user);
    let system = crate::routing::text::content_text(req.system);
    let context = if req.earlier_user.is_none() && req.last_assistant.is_none() {
        String::new()
    } else {
        crate::routing::text::context_of(
            &crate::routing::text::content_text(req.earlier_user),
            &crate::routing::text::content_text(req.last_assistant),
        )
    };
    let mut class = classifier::classify_with(
        classifier::current().as_deref(),
        &classifier::Input {
            prompt: &user,
            system: &system,
            context: &context,
            images: needs.vision,
            tools: needs.tools,
            json: needs.json,
        },
        explain,
    );
    let forced = match kind {
        Some(AutoKind::Code) => Some(Task::Code),
        Some(AutoKind::Reasoning) if !matches!(class.task, Task::Math) => Some(Task::Reasoning),
        Some(AutoKind::Vision) => Some(Task::Vision),
        _ => None,
    };
    if let Some(t) = forced.filter(|t| *t != class.task && !needs.tools) {
        class.signals.insert(0, format!("alias {} (classifier said {})", req.model, class.task.as_str()));
        class.task = t;
        class.confidence = 1.0;
    }
    if needs.prompt_tokens >= LONG_CONTEXT {
        class
            .signals
            .push(format!("long context (~{} tokens)", crate::config::catalog::group(u64::from(needs.prompt_tokens))));
    }
    // rules read lower-cased text; nothing to lower-case when there are none
    let lower = if snapshot.rules.is_empty() { String::new() } else { user.to_lowercase() };
    let actions = rules::evaluate(
        &snapshot.rules,
        &rules::Subject {
            text_lower: &lower,
            text: &user,
            tokens: needs.prompt_tokens,
            tools: needs.tools,
            images: needs.vision,
            alias: &req.model,
            client_tags: tags,
        },
    );
    if let Some(t) = actions.task {
        class.signals.insert(0, format!("routing rule `{}`", actions.matched.first().map_or("", String::as_str)));
        class.task = t;
        class.confidence = 1.0;
    }
    let language = crate::routing::language::detect(&user);
    Classified { class, language, actions, needs_vision: needs.vision || kind == Some(AutoKind::Vision) }
}

fn lacking(entry: &ModelEntry, needs: &Needs, needs_vision: bool) -> Option<&'static str> {
    let caps = entry.info.capabilities;
    // `auto` only picks models known to have what the request needs
    if needs.tools && !caps.contains(Capabilities::TOOLS) {
        return Some("tool calling");
    }
    if needs_vision && !caps.contains(Capabilities::VISION) {
        return Some("image input");
    }
    None
}

fn task_class(t: Task) -> TaskClass {
    match t {
        Task::General => TaskClass::General,
        Task::Code => TaskClass::Code,
        Task::Math => TaskClass::Math,
        Task::Reasoning => TaskClass::Reasoning,
        Task::Creative => TaskClass::Creative,
        Task::Extraction => TaskClass::Extraction,
        Task::Vision => TaskClass::Vision,
        Task::ToolUse => TaskClass::ToolUse,
    }
}

fn headroom(account: &Account, route: &Route) -> Vec<PolicyHeadroom> {
    account
        .quota_pool
        .headroom(&route.provider.quota_plan, &route.model, now_ms())
        .into_iter()
        .map(|h| PolicyHeadroom {
            dimension: crate::quota::spec::short_name(h.dim, h.window).to_owned(),
            remaining: h.limit.saturating_sub(h.used),
            limit: h.limit,
            reset_in_ms: h.reset_in_ms,
        })
        .collect()
}

/// (pool, its accounts that can take a request now in rotation order, the shortest rest among
/// accounts only tried as a last resort)
type Pools = Vec<(String, Vec<Arc<Account>>, Duration)>;

/// Pools of a route's accounts that can take a request now, in rotation order; and why the
/// others cannot.
fn pools(route: &Route, now: Instant) -> (Pools, Option<Dropped>) {
    let mut out: Pools = Vec::new();
    let mut why = None;
    let accounts = route.provider.accounts_in_order(&route.model, now);
    if accounts.is_empty() {
        return (out, Some(Dropped::NoAccounts));
    }
    for a in accounts {
        let cooling = if a.health.available(now) {
            Duration::ZERO
        } else if a.health.last_resort(now) {
            a.health
                .available_at()
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
                .max(Duration::from_millis(1))
        } else {
            match a.health.get() {
                Health::Cooling { until, .. } => {
                    let d = until.saturating_duration_since(now);
                    if !matches!(why, Some(Dropped::Cooling(w)) if w < d) {
                        why = Some(Dropped::Cooling(d));
                    }
                }
                Health::Disabled { reason, .. } => {
                    if why.is_none() {
                        why = Some(Dropped::Disabled(reason));
                    }
                }
                Health::Ok => {
                    if why.is_none() {
                        why = Some(Dropped::Probing);
                    }
                }
            }
            continue;
        };
        match out.iter_mut().find(|(p, _, _)| *p == a.pool) {
            Some((_, list, c)) => {
                *c = (*c).min(cooling);
                list.push(a);
            }
            None => out.push((a.pool.clone(), vec![a], cooling)),
        }
    }
    (out, why)
}

/// Decide the order for a policy-routed request.
pub async fn decide(ctx: &RequestCtx<'_>, mut route: PolicyRoute<'_>, call: Call) -> Decision {
    let started = Instant::now();
    // a virtual key may pin its own policy and prefer providers, and holds what may be picked
    let key = ctx.principal.virtual_key();
    if let Some(p) = key.and_then(|k| k.doc.policy.as_ref()) {
        route.policy.clone_from(p);
    }
    let key_preference = |provider: &str| {
        key.and_then(|k| k.doc.prefer.iter().position(|p| p == provider))
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX).saturating_add(KEY_PREFERENCE_BASE))
    };
    let (snapshot, req, needs) = (ctx.snapshot, ctx.req, &ctx.needs);
    let (client_id, tags) = (ctx.principal.id(), ctx.principal.tags(&snapshot.config.server).to_vec());
    let c = {
        let span = trace::classify();
        let _in = span.enter();
        let c = classify_request(snapshot, req, needs, route.kind, &tags, call.explain);
        span.record("freeway.task", c.class.task.as_str());
        span.record("freeway.confidence", f64::from(c.class.confidence));
        c
    };
    let classify_cost = started.elapsed();
    let needed_context = needs.prompt_tokens.saturating_add(needs.max_tokens.unwrap_or(0));
    let now = Instant::now();
    let mut entries = Vec::new();
    let mut offered: Vec<PolicyCandidate> = Vec::new();
    let mut offered_entry: Vec<usize> = Vec::new();
    for (r, mi) in route.routes.as_slice() {
        let Some(model) = r.provider.models.get(*mi) else { continue };
        let q = model.quality.get(c.class.task.index()).copied().unwrap_or(50);
        let base = |pool: String, dropped: Option<Dropped>| Entry {
            provider: r.provider.id.clone(),
            model: r.model.clone(),
            pool,
            quality: q,
            context_window: model.info.context_window,
            dropped,
            rank: None,
            score: None,
            reason: String::new(),
            headroom: Vec::new(),
            stats: crate::routing::stats::Snapshot::default(),
            route: None,
            accounts: Vec::new(),
            blocked: None,
        };
        let static_drop = if let Some(what) = lacking(model, needs, c.needs_vision) {
            Some(Dropped::Lacks(what))
        } else if let Some(w) = model.info.context_window.filter(|w| needed_context > *w) {
            Some(Dropped::Context { window: w, need: needed_context })
        } else if !c.actions.fallback_chain.is_empty() && c.actions.preference(&r.provider.id, &r.model).is_none() {
            Some(Dropped::NotInRule)
        } else if key.is_some_and(|k| !k.allow.picks(&r.provider.id, &r.model)) {
            Some(Dropped::NotForKey)
        } else {
            None
        };
        if let Some(d) = static_drop {
            entries.push(base(String::new(), Some(d)));
            continue;
        }
        let (pools, why) = pools(r, now);
        if pools.is_empty() {
            entries.push(base(String::new(), why.or(Some(Dropped::NoAccounts))));
            continue;
        }
        let stats = ctx.services.stats.get(&r.provider.id, &r.model);
        for (pool, accounts, cooling) in pools {
            let Some(first) = accounts.first() else { continue };
            let mut e = base(pool.clone(), None);
            let plan = &r.provider.quota_plan;
            let cost = super::cost::estimate(ctx, &r.provider, &r.model);
            if let Err(b) = first.quota_pool.check(plan, &r.model, &cost, now_ms()) {
                e.dropped = Some(Dropped::Quota(b.reason.clone()));
                e.blocked = Some(b);
                entries.push(e);
                continue;
            }
            e.headroom = headroom(first, r);
            e.stats = stats;
            e.route = Some(r.clone());
            offered.push(PolicyCandidate {
                provider: r.provider.id.clone(),
                model: r.model.clone(),
                pool,
                accounts: u32::try_from(accounts.len()).unwrap_or(u32::MAX),
                capabilities: model.info.capabilities,
                context_window: model.info.context_window,
                quality: q,
                preference: c.actions.preference(&r.provider.id, &r.model).or_else(|| key_preference(&r.provider.id)),
                headroom: e.headroom.clone(),
                latency_ewma_ms: stats.latency_ewma_ms,
                ttft_p50_ms: stats.ttft_p50_ms,
                tokens_per_second: stats.tokens_per_second,
                success_rate: stats.success_rate,
                cooldown_ms: u64::try_from(cooling.as_millis()).unwrap_or(u64::MAX),
                free: r.provider.local || model.info.free != Some(false),
                local: r.provider.local,
            });
            e.accounts = accounts;
            offered_entry.push(entries.len());
            entries.push(e);
        }
    }
    shortlist(&mut offered, &mut offered_entry, &mut entries, snapshot.config.routing.max_candidates);
    let mut decision = Decision {
        requested: req.model.to_string(),
        policy: route.policy.clone(),
        policy_error: None,
        classification: c.class,
        language: c.language,
        rules: c.actions,
        needed_context,
        needs: *needs,
        entries,
        cost: Duration::ZERO,
        classify_cost,
        policy_cost: Duration::ZERO,
    };
    if offered.is_empty() {
        decision.cost = started.elapsed();
        return decision;
    }
    let features = PolicyFeatures {
        task: task_class(decision.classification.task),
        task_confidence: decision.classification.confidence,
        estimated_prompt_tokens: needs.prompt_tokens,
        max_tokens: needs.max_tokens,
        needed_context,
        needs: needs_caps(needs, c.needs_vision),
        streaming: needs.stream,
        requested_model: req.model.to_string(),
        client_key_id: client_id,
        client_tags: tags,
        time_of_day_s: u32::try_from((now_ms() / 1000) % 86_400).unwrap_or(0),
        language: decision.language.map(str::to_owned),
        signals: decision.classification.signals.clone(),
        rules: decision.rules.matched.clone(),
        explain: call.explain,
    };
    let asked = Instant::now();
    let span = trace::policy(&route.policy, offered.len());
    let ranked = run_policy(snapshot, &route.policy, &features, &offered, call.messages).instrument(span.clone()).await;
    decision.policy_cost = asked.elapsed();
    if let Err(why) = &ranked {
        span.record("freeway.policy_error", why.as_str());
    }
    let order = match ranked {
        Ok(choices) => choices,
        Err(why) => {
            tracing::warn!("routing policy `{}` failed, using the host's order: {why}", route.policy);
            decision.policy_error = Some(why);
            host_order(&offered)
        }
    };
    for (rank, ch) in order.iter().enumerate() {
        let Some(&ei) = usize::try_from(ch.index).ok().and_then(|i| offered_entry.get(i)) else { continue };
        if let Some(e) = decision.entries.get_mut(ei) {
            e.rank = Some(rank);
            e.score = Some(ch.score);
            e.reason.clone_from(&ch.reason);
        }
    }
    for &ei in &offered_entry {
        if let Some(e) = decision.entries.get_mut(ei).filter(|e| e.rank.is_none()) {
            e.dropped = Some(Dropped::LeftOut);
        }
    }
    decision.cost = started.elapsed();
    decision
}

/// The host's own order, smaller first: rule preference, then not resting, then quality for the
/// task. Used to shortlist candidates and when a policy's answer cannot be used.
fn host_rank(c: &PolicyCandidate) -> (u32, bool, std::cmp::Reverse<u8>) {
    (c.preference.unwrap_or(u32::MAX), c.cooldown_ms > 0, std::cmp::Reverse(c.quality))
}

/// Keep the `max` best candidates for the task (rule preference, not resting, quality); the
/// rest are dropped with the reason. A policy call costs per candidate offered.
fn shortlist(offered: &mut Vec<PolicyCandidate>, offered_entry: &mut Vec<usize>, entries: &mut [Entry], max: usize) {
    if max == 0 || offered.len() <= max {
        return;
    }
    let mut order: Vec<usize> = (0..offered.len()).collect();
    order.sort_by_key(|&i| offered.get(i).map(host_rank));
    let mut keep = vec![false; offered.len()];
    for &i in order.iter().take(max) {
        if let Some(k) = keep.get_mut(i) {
            *k = true;
        }
    }
    let mut i = 0;
    offered.retain(|_| {
        let k = keep.get(i).copied().unwrap_or(false);
        i += 1;
        k
    });
    let mut i = 0;
    offered_entry.retain(|&e| {
        let k = keep.get(i).copied().unwrap_or(false);
        i += 1;
        if !k && let Some(entry) = entries.get_mut(e) {
            entry.dropped = Some(Dropped::Shortlist(max));
            entry.route = None;
            entry.accounts.clear();
        }
        k
    });
}

fn needs_caps(needs: &Needs, vision: bool) -> Capabilities {
    let mut c = Capabilities::empty();
    if needs.tools {
        c |= Capabilities::TOOLS;
    }
    if vision {
        c |= Capabilities::VISION;
    }
    if needs.json {
        c |= Capabilities::JSON_MODE;
    }
    if needs.stream {
        c |= Capabilities::STREAMING;
    }
    c
}

/// Ask the policy; its answer checked: indices in range, each once.
async fn run_policy(
    snapshot: &Snapshot,
    name: &str,
    features: &PolicyFeatures,
    offered: &[PolicyCandidate],
    messages: bytes::Bytes,
) -> Result<Vec<PolicyChoice>, String> {
    let Some(policy) = snapshot.policies.iter().find(|p| p.name == name) else {
        return Err(format!("no policy component named `{name}` is loaded from the policies folder"));
    };
    let choices = policy.rank(features, offered, messages).await.map_err(|f| f.to_string())?;
    let mut seen = vec![false; offered.len()];
    for ch in &choices {
        let i = usize::try_from(ch.index).unwrap_or(usize::MAX);
        match seen.get_mut(i) {
            Some(s) if !*s => *s = true,
            Some(_) => return Err(format!("it returned candidate {i} twice")),
            None => return Err(format!("it returned candidate {i} of {}", offered.len())),
        }
        if !ch.score.is_finite() {
            return Err(format!("it scored candidate {i} as {}", ch.score));
        }
    }
    Ok(choices)
}

/// The order used when the policy cannot give one: rule preference, no cooldown, then quality.
fn host_order(offered: &[PolicyCandidate]) -> Vec<PolicyChoice> {
    let mut idx: Vec<usize> = (0..offered.len()).collect();
    idx.sort_by_key(|&i| offered.get(i).map(host_rank));
    idx.into_iter()
        .filter_map(|i| {
            let c = offered.get(i)?;
            Some(PolicyChoice {
                index: u32::try_from(i).ok()?,
                score: f32::from(c.quality),
                reason: format!("host order: quality {}", c.quality),
            })
        })
        .collect()
}
