//! OpenTelemetry traces over OTLP/HTTP (protobuf), built with the `otel` cargo feature (on by
//! default) and started only when the standard variables ask for it:
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as given) or `OTEL_EXPORTER_OTLP_ENDPOINT` (with
//! `/v1/traces` appended). `OTEL_SDK_DISABLED=true` turns it off; the exporter's own variables
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`, `OTEL_BSP_*`, `OTEL_TRACES_SAMPLER[_ARG]`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) are read by the SDK.
//!
//! Only the spans of [`super::trace`] (target `freeway::trace`) and warnings or errors logged
//! inside them are exported; spans are batched and sent by the SDK's own thread, never on a
//! request's path. An incoming W3C `traceparent` makes the request's span a child of the
//! caller's trace.

use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// The longest a shutdown waits for the last spans to be sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Keeps the exporter running; [`Exporter::shutdown`] sends what is left.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Send the spans still queued (bounded by [`FLUSH_TIMEOUT`]) and stop. Blocks: call it off
    /// the async runtime.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            eprintln!("freeway: OpenTelemetry: the last spans could not be sent: {e}");
        }
    }
}

/// Where traces go, when the environment asks for them (`None`: not asked, or disabled).
pub fn endpoint_from_env() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT").map(|base| format!("{}/v1/traces", base.trim_end_matches('/'))))
}

/// The tracing layer that exports [`super::trace`]'s spans, and the exporter behind it; `Err`
/// says why it could not start (a bad endpoint, an unsupported protocol).
pub fn layer<S>(endpoint: &str) -> Result<(impl Layer<S> + use<S>, Exporter), String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default();
    if !protocol.is_empty() && protocol != "http/protobuf" {
        return Err(format!(
            "OTLP protocol `{protocol}` is not built in: Freeway exports traces over http/protobuf (unset \
             OTEL_EXPORTER_OTLP_PROTOCOL or set it to http/protobuf)"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
    let mut resource =
        Resource::builder().with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("freeway");
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    let tracer = provider.tracer("freeway");
    let only_ours = Targets::new()
        .with_target(super::trace::TARGET, tracing::Level::TRACE)
        .with_target("freeway", tracing::Level::WARN);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_tracked_inactivity(false)
        .with_filter(only_ours);
    Ok((layer, Exporter { provider }))
}

/// Headers as the W3C trace-context propagator reads them.
struct Headers<'h>(&'h http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Make `span` a child of the trace named by the request's `traceparent` (and `tracestate`),
/// when there is one and it is valid.
pub fn adopt_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    // a malformed header gives an empty context: the span stays a root
    let _ = span.set_parent(cx);
}
