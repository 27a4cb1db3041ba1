//! The running gateway's shared state.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::config::LoadedConfig;
use crate::pipeline::account::UsageSink;
use crate::registry::{Registry, Reloader, ReloaderHandle};
use crate::runtime::Runtime;
use crate::upstream::UpstreamClient;

pub struct App {
    pub registry: Arc<Registry>,
    pub reloader: ReloaderHandle,
    pub http: UpstreamClient,
    pub usage: UsageSink,
    pub runtime: Arc<Runtime>,
    pub store: crate::store::Store,
    /// every quota pool's counters
    pub ledger: Arc<crate::quota::Ledger>,
    /// the gateway's limits on its own clients
    pub client_limits: crate::pipeline::client_limits::ClientLimits,
    /// live latency / speed / success per (provider, model): for policies and hedging
    pub stats: Arc<crate::routing::stats::Stats>,
    /// what `/metrics` shows
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// set when shutdown begins: `/ready` turns 503
    pub shutting_down: AtomicBool,
    /// API requests served at once (`[server] max_in_flight`, sized at start)
    pub admission: crate::admission::Admission,
    /// when the gateway started (monotonic, and as Unix ms)
    pub started: std::time::Instant,
    pub started_at_ms: u64,
    /// copies the audit journal into the store
    pub audit: crate::store::AuditMirror,
    /// stores request and response bodies when `[body_log]` is on
    pub body_log: crate::body_log::BodyLog,
    /// the Responses API's kept answers (`previous_response_id`)
    pub conversations: crate::pipeline::dialect::Conversations,
    /// the exact response cache (`[cache]`; its store is chosen at start)
    pub cache: Arc<crate::cache::ResponseCache>,
    /// the virtual client keys, as this gateway holds them (refreshed from the store)
    pub keys: Arc<crate::keys::KeyRing>,
    /// which of the keys' budget levels were already told
    pub key_alerts: Arc<crate::keys::budget::Alerts>,
    /// requests waiting for capacity (`[queue]`)
    pub queue: Arc<crate::queue::WaitQueue>,
    /// `[[webhooks]]`: events queued for their endpoints, and the deliveries log
    pub webhooks: Arc<crate::webhooks::Webhooks>,
}

/// How often the audit journal is copied into the store (the CLI's changes arrive this way; the
/// admin API's are copied at once).
const AUDIT_SYNC: std::time::Duration = std::time::Duration::from_secs(5);

impl App {
    /// What the request pipeline uses of the running gateway, borrowed for one request.
    pub fn services(&self) -> crate::pipeline::Services<'_> {
        crate::pipeline::Services {
            http: &self.http,
            usage: &self.usage,
            ledger: &self.ledger,
            client_limits: &self.client_limits,
            stats: &self.stats,
            metrics: &self.metrics,
            conversations: &self.conversations,
            cache: &self.cache,
            key_alerts: &self.key_alerts,
            queue: &self.queue,
            webhooks: &self.webhooks,
        }
    }

    /// Build the engine, load every configured component and publish the first snapshot.
    pub async fn start(config: LoadedConfig) -> Result<Arc<Self>, String> {
        let http = UpstreamClient::new(&config.config.upstream).map_err(|e| e.message.into_owned())?;
        let admission = crate::admission::Admission::new(config.config.server.max_in_flight);
        let store = crate::store::Store::open(&config.config.storage.effective_url()).await?;
        let body_log = crate::body_log::BodyLog::start(store.clone());
        let server = &config.config.server;
        let conversations = crate::pipeline::dialect::Conversations::new(
            server.responses_store_bytes,
            std::time::Duration::from_secs(server.responses_store_ttl_secs.max(1)),
        );
        let metrics = Arc::new(crate::telemetry::Metrics::new(crate::bindings::WIT_VERSION));
        let runtime = Runtime::new(&config.config.runtime, metrics.clone())?;
        let quota = &config.config.quota;
        let ledger = crate::quota::Ledger::start(Some(quota.state_file.clone()), quota.effective_redis_url()).await;
        let config_stats_file = config.config.routing.stats_file.clone();
        let cache = Arc::new(crate::cache::ResponseCache::start(&config.config));
        // the keys are loaded before the gateway serves: a store that cannot be read stops the
        // start rather than leave the gateway open to anyone
        let keys = Arc::new(crate::keys::KeyRing::new());
        keys.refresh(&store, &config.config.keys.zone(), &ledger)
            .await
            .map_err(|e| format!("client keys could not be read: {e}"))?;
        let webhooks = crate::webhooks::Webhooks::start(
            &config.config.webhooks,
            config.config.upstream.proxy_from_env,
            metrics.clone(),
        )?;
        let key_alerts = Arc::new(crate::keys::budget::Alerts::default());
        key_alerts.on_crossing(budget_sink(&webhooks));
        let reloader =
            Reloader::start(config, runtime.clone(), http.clone(), ledger.clone(), metrics.clone(), webhooks.clone())
                .await;
        crate::registry::recheck::spawn(reloader.registry.clone(), webhooks.clone());
        // build the classifier's matchers now, not on the first `auto` request
        crate::routing::classifier::warm_up();
        let stats = Arc::new(crate::routing::stats::Stats::load(Some(config_stats_file)));
        crate::routing::stats::spawn_saver(stats.clone());
        let queue = crate::queue::WaitQueue::new(metrics.queue());
        Ok(Arc::new(Self {
            registry: reloader.registry.clone(),
            reloader,
            http,
            usage: UsageSink::start(Some(store.clone()), Some(stats.clone())),
            store,
            ledger,
            client_limits: crate::pipeline::client_limits::ClientLimits::default(),
            stats,
            metrics,
            runtime,
            shutting_down: AtomicBool::new(false),
            admission,
            started: std::time::Instant::now(),
            started_at_ms: crate::clock::now_ms(),
            audit: crate::store::AuditMirror::default(),
            body_log,
            conversations,
            cache,
            keys,
            key_alerts,
            queue,
            webhooks,
        }))
        .inspect(spawn_audit_sync)
        .inspect(spawn_key_refresh)
    }

    /// Copy the audit journal's new lines into the store; a failure is logged, and the lines are
    /// copied on a later try (the journal keeps them).
    pub async fn sync_audit(&self) {
        let journal = self.registry.snapshot().config.vault.audit_log.clone();
        if let Err(e) = self.audit.sync(&self.store, &journal).await {
            tracing::warn!("audit log: {e}");
        }
    }
}

/// A key's budget crossing (80 %, 100 %), told to the webhooks as `key.budget`.
fn budget_sink(webhooks: &Arc<crate::webhooks::Webhooks>) -> crate::keys::budget::CrossingSink {
    let webhooks = Arc::downgrade(webhooks);
    Arc::new(move |c: crate::keys::budget::BudgetCrossing| {
        if let Some(w) = webhooks.upgrade() {
            w.emit(crate::webhooks::Event::KeyBudget {
                key_id: c.key_id,
                key_name: c.key_name,
                limit: c.limit,
                used: c.used,
                limit_value: c.limit_value,
                percent: c.percent,
            });
        }
    })
}

/// Keep the keys' view current: the store's change counter is read every `[keys] refresh_ms`
/// (a failed read keeps the last view and is logged).
fn spawn_key_refresh(app: &Arc<App>) {
    let app = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let Some(a) = app.upgrade() else { return };
            let keys = a.registry.snapshot().config.keys.clone();
            match a.keys.refresh(&a.store, &keys.zone(), &a.ledger).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("client keys are read from the store again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("client keys could not be refreshed (the last ones read stay in force): {e}");
                }
                Err(_) => {}
            }
            drop(a);
            tokio::time::sleep(keys.refresh()).await;
        }
    });
}

fn spawn_audit_sync(app: &Arc<App>) {
    let app = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(AUDIT_SYNC);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(app) = app.upgrade() else { return };
            app.sync_audit().await;
        }
    });
}
