//! What an operator reads of a local run: the functions' EMF metrics and their JSON logs.

use super::{API_KEY, CORRELATION_ID, RunningStack};
use serde_json::Value;
use std::time::Duration;

/// What `function` counted of `metric` with these dimension values, over every document it wrote (a
/// histogram counts its values).
fn metric_total(
    documents: &[(String, Value)],
    function: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
) -> u64 {
    documents
        .iter()
        .filter(|(by, document)| {
            by == function && dimensions.iter().all(|(name, value)| document[*name] == *value)
        })
        .map(|(_, document)| match &document[metric] {
            Value::Array(values) => values.len() as u64,
            value => value.as_u64().unwrap_or(0),
        })
        .sum()
}

/// A function, a metric, and its dimension values.
type Wanted<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

/// Issue 10's metrics, read from the functions' own output as `herald local up` prints it: every
/// document in the stack's namespace with the catalogue's dimensions, and what the scenarios before did
/// counted where it happened.
pub(super) async fn the_functions_write_their_metrics_as_emf(stack: &RunningStack) {
    let wanted: [Wanted; 9] = [
        ("ingest", "Events", vec![("Outcome", "accepted")]),
        ("ingest", "Events", vec![("Outcome", "replayed")]),
        (
            "email",
            "Notifications",
            vec![("Channel", "email"), ("Outcome", "sent")],
        ),
        (
            "sms",
            "Notifications",
            vec![("Channel", "sms"), ("Outcome", "sent")],
        ),
        (
            "slack",
            "Notifications",
            vec![("Channel", "slack"), ("Outcome", "dead_lettered")],
        ),
        (
            "slack",
            "NotificationFailures",
            vec![
                ("Channel", "slack"),
                ("Outcome", "retried"),
                ("Reason", "provider_error"),
            ],
        ),
        ("slack", "ProviderLatency", vec![("Channel", "slack")]),
        ("email", "EndToEndLatency", vec![("Channel", "email")]),
        ("ingest", "ColdStarts", vec![("Function", "ingest")]),
    ];
    // The lines reach the log through `herald local up`'s own output: give them a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let documents = loop {
        let documents = stack.function_metrics();
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(function, metric, dimensions)| {
                metric_total(&documents, function, metric, dimensions) == 0
            })
            .collect();
        if missing.is_empty() {
            break documents;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not in the functions' output: {missing:?}\n{}",
            stack.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for (function, document) in &documents {
        let mismatch = herald::telemetry::catalogue::emf_mismatch(document, "Herald/herald-local");
        assert!(mismatch.is_none(), "[{function}] {mismatch:?}");
    }
    for function in ["email", "sms", "slack"] {
        let channel = [("Channel", function)];
        assert!(
            metric_total(&documents, function, "ProviderLatency", &channel) > 0,
            "{function}"
        );
        assert!(
            metric_total(&documents, function, "EndToEndLatency", &channel) > 0,
            "{function}"
        );
        assert!(
            metric_total(&documents, function, "ColdStarts", &[("Function", function)]) > 0,
            "{function}"
        );
    }
}

/// The logs of the whole run, read as an operator reads them: JSON lines with the message at the top; the
/// first scenario's correlation id on its ingest line and on a line of each channel's delivery; and not one
/// full address, webhook path or API key of the run anywhere.
pub(super) fn the_logs_trace_requests_and_keep_recipients_secret(stack: &RunningStack) {
    let lines = stack.function_log_lines();
    assert!(lines.len() > 100, "{} function lines", lines.len());
    for (function, line) in &lines {
        assert!(line["message"].is_string(), "[{function}] {line}");
        assert!(line.get("fields").is_none(), "[{function}] {line}");
    }
    for function in ["ingest", "email", "sms", "slack"] {
        let traced = lines
            .iter()
            .any(|(name, line)| name == function && line["span"]["correlation_id"] == CORRELATION_ID);
        assert!(traced, "no {function} line carries the correlation id");
    }
    // A delivery's lines also carry its event's id once it is claimed: the saved trace-by-id query's way from
    // an event id to every attempt.
    for function in ["email", "sms", "slack"] {
        let with_event = lines.iter().any(|(name, line)| {
            name == function
                && line["message"] == "delivery attempt"
                && line["span"]["event_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("evt_"))
        });
        assert!(with_event, "no {function} delivery attempt carries its event id");
    }

    let log = std::fs::read_to_string(&stack.log).unwrap();
    let functions_only: String = log
        .lines()
        .filter(|line| line.starts_with('[') && line.contains("] {"))
        .collect::<Vec<_>>()
        .join("\n");
    let leaks = leaked_secrets(&functions_only);
    assert!(leaks.is_empty(), "logged in full: {leaks:?}");
}

/// Full email addresses, phone numbers (8 or more digits after `+`), Slack webhook paths and the API key
/// in `text`; masked forms (`a***@example.com`, `+1555*****01`, `http://host/***`) are not leaks.
fn leaked_secrets(text: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    let bytes = text.as_bytes();
    for (at, _) in text.match_indices('@') {
        let local_ends_masked = at > 0 && bytes[at - 1] == b'*';
        let local_is_address = at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'.');
        if local_is_address && !local_ends_masked {
            let start = text[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || "._%+-".contains(c)))
                .map_or(0, |i| i + 1);
            let end = text[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || ".-@".contains(c)))
                .map_or(text.len(), |i| at + i);
            leaks.push(text[start..end].to_owned());
        }
    }
    for (plus, _) in text.match_indices('+') {
        let digits = text[plus + 1..].chars().take_while(char::is_ascii_digit).count();
        if digits >= 8 {
            leaks.push(text[plus..plus + 1 + digits].to_owned());
        }
    }
    for secret in ["/services/T000/", API_KEY] {
        if let Some(at) = text.find(secret) {
            leaks.push(text[at..(at + 60).min(text.len())].to_owned());
        }
    }
    leaks
}

#[test]
fn the_leak_check_finds_full_addresses_and_passes_masked_ones() {
    let masked = r#"{"to":"a***@example.com","phone":"+1555*****01","url":"http://127.0.0.1/***","at":"2026-12-01T06:00:00+00:00"}"#;
    assert_eq!(leaked_secrets(masked), Vec::<String>::new());
    let full =
        r#"{"to":"ada@example.com","phone":"+15555550101","error":"for url (http://h/services/T000/B1/X)"}"#;
    assert_eq!(
        leaked_secrets(full),
        ["ada@example.com", "+15555550101", "/services/T000/B1/X)\"}"]
    );
}
