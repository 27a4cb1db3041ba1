//! A duration histogram recorded with atomics only: one `fetch_add` for the bucket and one for
//! the sum, no lock, no allocation. `prometheus-client`'s own histogram takes a mutex per
//! observation; this one is read (not reset) by the registry at scrape time, where the count is
//! the sum of the buckets so that `_count` and `le="+Inf"` always agree.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds (seconds) for whole requests, upstream answers and time to first token: 5 ms
/// to 2 minutes.
pub const REQUEST_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Upper bounds (seconds) for guest calls: a warm plan takes microseconds, a slow policy
/// milliseconds, a runaway guest is stopped by its budget.
pub const GUEST_BUCKETS: &[f64] =
    &[0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5];

struct Inner {
    bounds: &'static [f64],
    /// one per bound, then the overflow (`+Inf`) bucket; not cumulative
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

/// A histogram of durations over fixed buckets; clones share their counts.
#[derive(Clone)]
pub struct Histogram(Arc<Inner>);

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram").field("count", &self.count()).finish_non_exhaustive()
    }
}

impl Histogram {
    /// `bounds` must be sorted ascending (the constants above are).
    pub fn new(bounds: &'static [f64]) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self(Arc::new(Inner { bounds, counts, sum_ns: AtomicU64::new(0) }))
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.0.bounds.partition_point(|b| *b < secs);
        if let Some(c) = self.0.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &self.0;
        let mut buckets = Vec::with_capacity(inner.counts.len());
        let mut count = 0u64;
        for (i, c) in inner.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            buckets.push((inner.bounds.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        let sum = inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_holds_them() {
        let h = Histogram::new(&[0.01, 0.1, 1.0]);
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(10));
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_secs(3));
        let counts: Vec<u64> = h.0.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, [2, 1, 0, 1], "a bound is inclusive (le), the last bucket is +Inf");
        assert_eq!(h.count(), 4);
        assert_eq!(h.0.sum_ns.load(Ordering::Relaxed), 3_065_000_000);
        let clone = h.clone();
        clone.observe(Duration::ZERO);
        assert_eq!(h.count(), 5, "clones share their counts");
    }
}
