//! Structured logging with `tracing` (human or JSON lines), and with the `otlp` cargo feature
//! an OpenTelemetry exporter for traces.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogArgs, LogFormat};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("RUST_LOG is not a valid filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error(
        "OTEL_EXPORTER_OTLP_ENDPOINT is set but this binary was built without the `otlp` feature"
    )]
    OtlpNotBuilt,
    #[error("cannot start the OTLP exporter: {0}")]
    Otlp(String),
    #[error("logging is already initialised")]
    AlreadyInitialised,
}

/// Keeps the exporter alive; dropping it flushes pending spans.
pub struct TelemetryGuard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

pub fn init(args: &LogArgs) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&args.log_filter)?;
    let fmt = match args.log_format {
        LogFormat::Human => tracing_subscriber::fmt::layer().with_target(true).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt);

    #[cfg(feature = "otlp")]
    {
        use opentelemetry::trace::TracerProvider as _;
        use opentelemetry_otlp::WithExportConfig as _;
        let provider = match &args.otlp_endpoint {
            Some(endpoint) => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.clone())
                    .build()
                    .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
                Some(
                    opentelemetry_sdk::trace::SdkTracerProvider::builder()
                        .with_batch_exporter(exporter)
                        .build(),
                )
            }
            None => None,
        };
        let otel = provider
            .as_ref()
            .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("potentia")));
        registry
            .with(otel)
            .try_init()
            .map_err(|_| TelemetryError::AlreadyInitialised)?;
        Ok(TelemetryGuard { provider })
    }

    #[cfg(not(feature = "otlp"))]
    {
        if args.otlp_endpoint.is_some() {
            return Err(TelemetryError::OtlpNotBuilt);
        }
        registry
            .try_init()
            .map_err(|_| TelemetryError::AlreadyInitialised)?;
        Ok(TelemetryGuard {})
    }
}
