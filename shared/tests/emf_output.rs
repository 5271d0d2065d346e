//! What the metrics look like on stdout: CloudWatch Embedded Metric Format documents, one a line, each
//! with the stack's namespace and exactly the dimensions and unit the catalogue gives its metrics.
//!
//! One test in its own binary: the recorder is the process's, installed once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use herald::domain::{Channel, ProblemCode};
use herald::telemetry::catalogue::{self, EventOutcome, Function, NotificationOutcome};
use herald::telemetry::{flush_into, flushing, install, record};
use lambda_runtime::Service;
use serde_json::Value;
use std::time::Duration;

const NAMESPACE: &str = "Herald/test-stack";

fn flushed_documents() -> Vec<Value> {
    let mut lines = Vec::new();
    flush_into(&mut lines).unwrap();
    String::from_utf8(lines)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON document"))
        .collect()
}

/// The document holding `metric` with these dimension values.
fn document<'d>(documents: &'d [Value], metric: &str, dimensions: &[(&str, &str)]) -> &'d Value {
    documents
        .iter()
        .find(|document| {
            !document[metric].is_null() && dimensions.iter().all(|(name, value)| document[*name] == *value)
        })
        .unwrap_or_else(|| panic!("no {metric} {dimensions:?} in {documents:#?}"))
}

/// Every document is in the namespace, and each metric in it has the catalogue's dimensions and unit.
fn check_against_the_catalogue(documents: &[Value]) {
    for document in documents {
        assert!(document["_aws"]["Timestamp"].is_u64(), "{document}");
        if let Some(mismatch) = catalogue::emf_mismatch(document, NAMESPACE) {
            panic!("{mismatch}");
        }
    }
}

#[tokio::test]
async fn metrics_are_written_as_emf_documents_with_the_catalogues_dimensions_and_units() {
    install(NAMESPACE).unwrap();
    assert!(install(NAMESPACE).is_err(), "one recorder per process");

    record::cold_start(Function::Sms);
    record::event(EventOutcome::Accepted);
    record::event_refused(ProblemCode::Unauthorized);
    record::notification(Channel::Sms, NotificationOutcome::Sent, None);
    record::notification(Channel::Sms, NotificationOutcome::Sent, None);
    record::notification(Channel::Sms, NotificationOutcome::Retried, Some("throttled"));
    record::provider_call(Channel::Sms, tokio::time::sleep(Duration::from_millis(20))).await;
    record::end_to_end_latency(Channel::Sms, Duration::from_millis(1500));
    record::fanout_recovered();
    let documents = flushed_documents();
    check_against_the_catalogue(&documents);

    let sent = document(
        &documents,
        "Notifications",
        &[("Channel", "sms"), ("Outcome", "sent")],
    );
    assert_eq!(sent["Notifications"], 2, "counted since the last flush: {sent}");
    let throttled = document(
        &documents,
        "NotificationFailures",
        &[
            ("Channel", "sms"),
            ("Outcome", "retried"),
            ("Reason", "throttled"),
        ],
    );
    assert_eq!(throttled["NotificationFailures"], 1);
    let latencies = document(&documents, "ProviderLatency", &[("Channel", "sms")]);
    let provider = latencies["ProviderLatency"].as_array().unwrap();
    assert_eq!(provider.len(), 1, "a histogram's values: {latencies}");
    assert!(provider[0].as_f64().unwrap() >= 20.0, "{latencies}");
    assert_eq!(latencies["EndToEndLatency"][0], 1500.0);
    assert_eq!(
        document(&documents, "ColdStarts", &[("Function", "sms")])["ColdStarts"],
        1
    );
    assert_eq!(
        document(&documents, "EventsRefused", &[("Reason", "unauthorized")])["EventsRefused"],
        1
    );
    let recovered = document(&documents, "FanoutsRecovered", &[]);
    assert_eq!(
        recovered["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([[]]),
        "no dimensions: {recovered}"
    );

    assert!(
        flushed_documents().is_empty(),
        "nothing new, nothing written: {:?}",
        flushed_documents()
    );

    // A handler served through `flushing` writes what its invocation gathered (to stdout) before it
    // answers, so nothing is left for the next flush.
    let mut handler = flushing(lambda_runtime::service_fn(|()| async {
        record::event(EventOutcome::Replayed);
        Ok::<_, std::convert::Infallible>("answer")
    }));
    assert_eq!(handler.call(()).await.unwrap(), "answer");
    assert!(flushed_documents().is_empty(), "flushed by the handler");
}
