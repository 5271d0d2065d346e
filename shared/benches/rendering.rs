//! Template rendering on delivery: the demo's templates (infra/cli/src/local/seed.rs) rendered with the
//! context delivery builds (`payload`, `recipient`, `event`), one render, and a batch of ten as one SQS
//! batch brings them (ten notifications, each its own event, each rendered on its own).

mod fixtures;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fixtures::{fixture, order_created};
use herald::domain::template::TemplateContent;
use serde_json::{Value, json};
use std::hint::black_box;

/// The demo's templates, copied rather than shared: the figures recorded in docs/benchmarks.md stay
/// comparable when the demo changes.
fn templates() -> [(&'static str, Value); 3] {
    [
        (
            "email",
            json!({"channel": "email", "locale": "en",
            "subject": "Order #{{ payload.order_id }} confirmed",
            "text": "Thanks for your order #{{ payload.order_id }}. Total: {{ payload.total }}.",
            "html": "<h1>Thanks!</h1><p>Your order <b>#{{ payload.order_id }}</b> is confirmed. Total: {{ payload.total }}.</p>"}),
        ),
        (
            "sms",
            json!({"channel": "sms", "locale": "en",
            "text": "Order #{{ payload.order_id }} confirmed. Total: {{ payload.total }}."}),
        ),
        (
            "slack",
            json!({"channel": "slack", "locale": "en",
            "text": "New order #{{ payload.order_id }} ({{ payload.total }})",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*New order* #{{ payload.order_id }} — total {{ payload.total }}"}}]}),
        ),
    ]
}

/// What delivery renders a template with (delivery/mod.rs).
fn context(order_id: u64) -> Value {
    let event = order_created(order_id);
    json!({
        "payload": event["payload"],
        "recipient": event["recipient"],
        "event": {"name": "order_created", "id": format!("evt_{order_id}"), "received_at": "2026-12-01T12:00:00.000Z"},
    })
}

fn rendering(c: &mut Criterion) {
    let one = context(1234);
    let batch: Vec<Value> = (0..10).map(|n| context(1000 + n)).collect();
    let mut group = c.benchmark_group("rendering");
    for (channel, body) in templates() {
        let template = fixture(TemplateContent::from_json(&body), "a demo template");
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("one render", channel), &one, |b, context| {
            b.iter(|| fixture(template.render(black_box(context)), "the render"));
        });
        group.throughput(Throughput::Elements(10));
        group.bench_with_input(BenchmarkId::new("batch of 10", channel), &batch, |b, batch| {
            b.iter(|| {
                for context in batch {
                    black_box(fixture(template.render(black_box(context)), "the render"));
                }
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = fixtures::criterion();
    targets = rendering
}
criterion_main!(benches);
