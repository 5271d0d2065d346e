//! Request validation on ingest: an `order_created` body through `EventSubmission::parse_at`, then its
//! payload through the event type's compiled JSON Schema, as `POST /v1/events` does for each event.

mod fixtures;

use criterion::{Criterion, criterion_group, criterion_main};
use fixtures::{fixture, order_created, order_schema};
use herald::domain::address::WebhookPolicy;
use herald::domain::event::EventSubmission;
use herald::domain::event_type::{compile_schema, payload_violations};
use std::hint::black_box;

fn validation(c: &mut Criterion) {
    let policy = WebhookPolicy::new(["hooks.slack.com".to_owned()], false);
    let validator = fixture(compile_schema(&order_schema()), "the demo schema");
    let body = order_created(1234);
    let mut group = c.benchmark_group("validation");
    group.bench_function("parse_at", |b| {
        b.iter(|| EventSubmission::parse_at(black_box(&body), "", &policy));
    });
    let submission = fixture(EventSubmission::parse_at(&body, "", &policy), "the demo event");
    group.bench_function("payload schema", |b| {
        b.iter(|| payload_violations(&validator, black_box(&submission.payload), "/payload"));
    });
    group.bench_function("parse_at + payload schema", |b| {
        b.iter(|| {
            let submission = fixture(
                EventSubmission::parse_at(black_box(&body), "", &policy),
                "the demo event",
            );
            payload_violations(&validator, &submission.payload, "/payload")
        });
    });
    group.bench_function("compile the schema (once per cache miss)", |b| {
        b.iter(|| compile_schema(black_box(&order_schema())));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = fixtures::criterion();
    targets = validation
}
criterion_main!(benches);
