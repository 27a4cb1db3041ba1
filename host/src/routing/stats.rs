//! Live performance statistics per (provider, model): recent times to first byte (p50 for
//! policies, p95 for hedging), a latency EWMA, an output tokens-per-second EWMA and a success
//! rate EWMA. Updated off the hot path where possible (usage records feed latency and speed),
//! saved every few seconds when changed and at shutdown, and restored at start, so a restarted
//! gateway keeps routing on what it learned.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Times to first byte kept per (provider, model).
const SAMPLES: usize = 64;
/// Fewer samples than this: no p95 yet (hedging waits for it).
const MIN_P95_SAMPLES: usize = 8;
/// Never hedge sooner than this.
const MIN_HEDGE_DELAY: Duration = Duration::from_millis(20);
/// Weight of the newest observation in the moving averages.
const ALPHA: f32 = 0.2;
/// How often changed statistics are written.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ModelStats {
    provider: String,
    model: String,
    /// milliseconds, oldest first
    ttft_ms: VecDeque<f32>,
    /// whole response times in milliseconds, oldest first
    #[serde(default)]
    latency_ms: VecDeque<f32>,
    latency_ewma_ms: Option<f32>,
    tokens_per_second: Option<f32>,
    success_rate: Option<f32>,
}

fn ewma(old: Option<f32>, x: f32) -> Option<f32> {
    Some(old.map_or(x, |o| o + ALPHA * (x - o)))
}

/// What a policy is told about a (provider, model).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    pub latency_ewma_ms: Option<f32>,
    pub ttft_p50_ms: Option<f32>,
    pub tokens_per_second: Option<f32>,
    pub success_rate: Option<f32>,
}

/// A (provider, model)'s recent figures, as the status view shows them (over the last
/// [`SAMPLES`] responses; rates are moving averages).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    pub model: String,
    pub latency_p50_ms: Option<f32>,
    pub latency_p95_ms: Option<f32>,
    pub ttft_p50_ms: Option<f32>,
    pub ttft_p95_ms: Option<f32>,
    pub tokens_per_second: Option<f32>,
    pub success_rate: Option<f32>,
    /// how many finished responses the latency percentiles are drawn from
    pub samples: usize,
}

#[derive(Default)]
pub struct Stats {
    /// provider -> model -> figures (looked up by `&str`, no allocation once known)
    by_key: Mutex<HashMap<String, HashMap<String, ModelStats>>>,
    dirty: AtomicBool,
    path: Option<PathBuf>,
}

impl Stats {
    /// Statistics restored from `path` (missing or unreadable: empty, with a warning).
    pub fn load(path: Option<PathBuf>) -> Stats {
        let mut map = HashMap::new();
        if let Some(p) = &path {
            match std::fs::read(p) {
                Ok(bytes) => match serde_json::from_slice::<Vec<ModelStats>>(&bytes) {
                    Ok(list) => {
                        for s in list {
                            map.entry(s.provider.clone()).or_insert_with(HashMap::new).insert(s.model.clone(), s);
                        }
                    }
                    Err(e) => tracing::warn!("ignoring unreadable route statistics {}: {e}", p.display()),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot read route statistics {}: {e}", p.display()),
            }
        }
        Stats { by_key: Mutex::new(map), dirty: AtomicBool::new(false), path }
    }

    fn with<R>(&self, provider: &str, model: &str, f: impl FnOnce(&mut ModelStats) -> R) -> R {
        let mut map = self.by_key.lock();
        let models = match map.get_mut(provider) {
            Some(m) => m,
            None => map.entry(provider.to_owned()).or_default(),
        };
        let entry = match models.get_mut(model) {
            Some(s) => s,
            None => models.entry(model.to_owned()).or_insert_with(|| ModelStats {
                provider: provider.to_owned(),
                model: model.to_owned(),
                ..ModelStats::default()
            }),
        };
        self.dirty.store(true, Ordering::Relaxed);
        f(entry)
    }

    /// A response started arriving (headers, or the whole body for JSON) after `ttfb`.
    pub fn first_byte(&self, provider: &str, model: &str, ttfb: Duration) {
        self.with(provider, model, |s| {
            if s.ttft_ms.len() == SAMPLES {
                s.ttft_ms.pop_front();
            }
            s.ttft_ms.push_back(ttfb.as_secs_f32() * 1000.0);
            s.success_rate = ewma(s.success_rate, 1.0);
        });
    }

    /// An attempt failed on the provider's side (5xx, timeout, broken response).
    pub fn failure(&self, provider: &str, model: &str) {
        self.with(provider, model, |s| s.success_rate = ewma(s.success_rate, 0.0));
    }

    /// A response ended: its whole duration and how many tokens it produced.
    pub fn finished(
        &self,
        provider: &str,
        model: &str,
        total: Duration,
        first_byte: Option<Duration>,
        tokens: Option<u64>,
    ) {
        self.with(provider, model, |s| {
            let ms = total.as_secs_f32() * 1000.0;
            s.latency_ewma_ms = ewma(s.latency_ewma_ms, ms);
            if s.latency_ms.len() == SAMPLES {
                s.latency_ms.pop_front();
            }
            s.latency_ms.push_back(ms);
            let generating = total.saturating_sub(first_byte.unwrap_or_default()).as_secs_f32();
            if let Some(t) = tokens.filter(|t| *t > 0)
                && generating > 0.0
            {
                #[allow(clippy::cast_precision_loss)]
                let tps = t as f32 / generating;
                s.tokens_per_second = ewma(s.tokens_per_second, tps);
            }
        });
    }

    pub fn get(&self, provider: &str, model: &str) -> Snapshot {
        let map = self.by_key.lock();
        let Some(s) = map.get(provider).and_then(|m| m.get(model)) else { return Snapshot::default() };
        Snapshot {
            latency_ewma_ms: s.latency_ewma_ms,
            ttft_p50_ms: percentile(&s.ttft_ms, 50, 1),
            tokens_per_second: s.tokens_per_second,
            success_rate: s.success_rate,
        }
    }

    /// Every model of `provider` with figures, for `/admin/status` (model order).
    pub fn detail(&self, provider: &str) -> Vec<Detail> {
        let map = self.by_key.lock();
        let Some(models) = map.get(provider) else { return Vec::new() };
        let mut out: Vec<Detail> = models
            .values()
            .map(|s| Detail {
                model: s.model.clone(),
                latency_p50_ms: percentile(&s.latency_ms, 50, 1),
                latency_p95_ms: percentile(&s.latency_ms, 95, 1),
                ttft_p50_ms: percentile(&s.ttft_ms, 50, 1),
                ttft_p95_ms: percentile(&s.ttft_ms, 95, 1),
                tokens_per_second: s.tokens_per_second,
                success_rate: s.success_rate,
                samples: s.latency_ms.len(),
            })
            .collect();
        out.sort_by(|a, b| a.model.cmp(&b.model));
        out
    }

    /// p95 time to first byte, once there are enough samples (for hedging).
    pub fn p95(&self, provider: &str, model: &str) -> Option<Duration> {
        let map = self.by_key.lock();
        let s = map.get(provider)?.get(model)?;
        let ms = percentile(&s.ttft_ms, 95, MIN_P95_SAMPLES)?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let us = (ms * 1000.0).round().max(0.0) as u64;
        Some(Duration::from_micros(us).max(MIN_HEDGE_DELAY))
    }

    /// Write the statistics if they changed (atomically).
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let list: Vec<ModelStats> = self.by_key.lock().values().flat_map(|m| m.values().cloned()).collect();
        if let Err(e) = write(path, &list) {
            self.dirty.store(true, Ordering::Relaxed);
            tracing::warn!("cannot save route statistics to {}: {e}", path.display());
        }
    }
}

fn write(path: &Path, list: &[ModelStats]) -> Result<(), String> {
    let bytes = serde_json::to_vec(list).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    crate::vault::key::write_atomic(path, &bytes).map_err(|e| e.to_string())
}

fn percentile(samples: &VecDeque<f32>, pct: usize, min: usize) -> Option<f32> {
    if samples.len() < min.max(1) {
        return None;
    }
    let mut sorted: Vec<f32> = samples.iter().copied().collect();
    sorted.sort_unstable_by(f32::total_cmp);
    let i = (sorted.len() * pct).div_ceil(100).saturating_sub(1);
    sorted.get(i).copied()
}

/// Save every [`SAVE_EVERY`] while the gateway runs.
pub fn spawn_saver(stats: std::sync::Arc<Stats>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAVE_EVERY);
        loop {
            tick.tick().await;
            let s = stats.clone();
            let _ = tokio::task::spawn_blocking(move || s.save()).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_what_was_observed() {
        let s = Stats::default();
        for ms in [100, 200, 300] {
            s.first_byte("p", "m", Duration::from_millis(ms));
        }
        s.failure("p", "m");
        s.finished("p", "m", Duration::from_secs(2), Some(Duration::from_secs(1)), Some(50));
        let g = s.get("p", "m");
        assert_eq!(g.ttft_p50_ms, Some(200.0));
        assert_eq!(g.tokens_per_second, Some(50.0));
        assert_eq!(g.latency_ewma_ms, Some(2000.0));
        let rate = g.success_rate.unwrap();
        assert!(rate < 1.0 && rate > 0.7, "{rate}");
        assert_eq!(s.p95("p", "m"), None, "three samples are too few to hedge on");
        assert_eq!(s.get("p", "other"), Snapshot::default());
    }

    #[test]
    fn detail_gives_latency_and_first_byte_percentiles_per_model() {
        let s = Stats::default();
        for ms in 1..=100 {
            s.first_byte("p", "b", Duration::from_millis(ms));
            s.finished("p", "b", Duration::from_millis(ms * 10), None, None);
        }
        s.first_byte("p", "a", Duration::from_millis(7));
        let d = s.detail("p");
        assert_eq!(d.iter().map(|x| x.model.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let b = &d[1];
        assert_eq!(b.samples, SAMPLES, "the latest {SAMPLES} only");
        // the last 64 of 1..=100 are 37..=100
        let near = |x: Option<f32>, want: f32| x.is_some_and(|x| (x - want).abs() < 0.01);
        assert!(near(b.ttft_p50_ms, 68.0), "{b:?}");
        assert!(near(b.ttft_p95_ms, 97.0), "{b:?}");
        assert!(near(b.latency_p95_ms, 970.0), "{b:?}");
        assert_eq!(d[0].latency_p50_ms, None);
        assert!(s.detail("nobody").is_empty());
    }

    #[test]
    fn p95_needs_enough_samples_keeps_the_latest_and_has_a_floor() {
        let l = Stats::default();
        for ms in 1..MIN_P95_SAMPLES as u64 {
            l.first_byte("p", "m", Duration::from_millis(ms * 100));
        }
        assert_eq!(l.p95("p", "m"), None, "too few samples to hedge on");
        for ms in 1..=20 {
            l.first_byte("p", "m", Duration::from_millis(ms));
        }
        // 27 samples: 7 slow ones (100..700 ms) are the top quarter
        assert_eq!(l.p95("p", "m").map(|d| d.as_millis()), Some(600));
        for _ in 0..SAMPLES {
            l.first_byte("p", "m", Duration::from_millis(1));
        }
        assert_eq!(l.p95("p", "m"), Some(MIN_HEDGE_DELAY), "old samples leave; never below the floor");
        assert_eq!(l.p95("p", "other"), None);
    }

    #[test]
    fn statistics_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        let s = Stats::load(Some(path.clone()));
        for _ in 0..10 {
            s.first_byte("groq", "llama", Duration::from_millis(80));
        }
        s.save();
        let back = Stats::load(Some(path));
        assert_eq!(back.get("groq", "llama").ttft_p50_ms, Some(80.0));
        assert_eq!(back.p95("groq", "llama"), Some(Duration::from_millis(80)));
    }
}
