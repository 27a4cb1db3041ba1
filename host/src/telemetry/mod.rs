//! What the gateway tells its operators about itself: Prometheus metrics ([`metrics`], with
//! state read at scrape time in [`state`]) and the request id every response and log line
//! carries ([`request_id`]), and the spans a request leaves ([`trace`]; exported over OTLP with the
//! `otel` feature). A leaf: it knows nothing of the pipeline, the registry or the
//! runtime, which call it through small handles.

pub mod histogram;
pub mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
pub mod request_id;
pub mod state;
pub mod trace;

pub use metrics::{Endpoint, GuestFn, GuestMetrics, Metrics, ProviderMetrics, QueueMetrics};
pub use request_id::RequestId;
pub use state::Scrape;
