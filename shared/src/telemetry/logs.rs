//! The logs' subscriber.
//!
//! With the function's `LoggingConfig.LogFormat` set to `JSON` (the template sets it), each line is one JSON
//! object whose `message` and event fields are at the top level, with the current span's fields (`tenant`,
//! `notification_id`, `correlation_id`, …) under `span`, so a Logs Insights query reads `message` and
//! `span.notification_id` rather than `fields.message`. Lambda adds the timestamp and request id.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the subscriber for this process, writing to stdout. Honours `AWS_LAMBDA_LOG_LEVEL`, then
/// `RUST_LOG`, else INFO; JSON when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, as Lambda's logging controls set them.
pub fn init() {
    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    if format.eq_ignore_ascii_case("json") {
        tracing::subscriber::set_global_default(json_subscriber(level.as_deref(), std::io::stdout)).ok();
    } else {
        tracing_subscriber::fmt()
            .with_target(false)
            .without_time()
            .with_env_filter(filter(level.as_deref()))
            .init();
    }
}

fn filter(level: Option<&str>) -> EnvFilter {
    let level = level
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy()
}

/// One JSON object per line: the event's message and fields at the top level, the current span's fields
/// under `span`.
fn json_subscriber<W>(level: Option<&str>, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_env_filter(filter(level))
        .with_writer(writer)
        .finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_json_line_has_its_message_at_the_top_and_its_span_fields_beside() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = json_subscriber(Some("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("deliver", notification_id = "ntf_1", correlation_id = "c-1");
            let _entered = span.enter();
            tracing::info!(status = "sent", "settled");
            tracing::debug!("below the level");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["message"], "settled", "{line}");
        assert_eq!(line["status"], "sent", "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["span"]["notification_id"], "ntf_1", "{line}");
        assert_eq!(line["span"]["correlation_id"], "c-1", "{line}");
        assert!(line.get("fields").is_none(), "{line}");
    }
}
