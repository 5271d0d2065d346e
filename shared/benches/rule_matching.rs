//! Rule matching on ingest: an event type's rules, compiled into one quamina matcher (`RuleSet`), against
//! an `order_created` payload and recipient. The demo's three unconditional rules, and fifty rules (the
//! most an event type may have) each with a condition, a fifth of which match.

mod fixtures;

use criterion::{Criterion, criterion_group, criterion_main};
use fixtures::order_created;
use herald::domain::rule::{MAX_RULES_PER_EVENT_TYPE, Rule, RuleSet, RuleSpec};
use herald::domain::{Channel, Timestamp};
use serde_json::{Value, json};
use std::hint::black_box;

fn rule(id: usize, channel: Channel, condition: Option<Value>) -> Rule {
    Rule {
        id: format!("rule-{id}"),
        spec: RuleSpec {
            event: "order_created".into(),
            channel,
            template: format!("template-{id}"),
            condition,
            enabled: true,
        },
        created_at: Timestamp::from_millis(0),
        updated_at: Timestamp::from_millis(0),
    }
}

/// Conditions of the kinds tenants write: a numeric range, a prefix, a value list, an `exists`.
fn condition(index: usize) -> Value {
    match index % 5 {
        0 => json!({"payload": {"total": [{"numeric": [">", 100]}]}}),
        1 => json!({"recipient": {"locale": [{"prefix": "fr"}]}}),
        2 => json!({"payload": {"currency": ["EUR", "USD"]}}),
        3 => json!({"payload": {"total": [{"numeric": [">=", 1000, "<", 5000]}]}}),
        _ => json!({"payload": {"coupon": [{"exists": true}]}}),
    }
}

fn rule_matching(c: &mut Criterion) {
    let event = order_created(1234);
    let (payload, recipient) = (&event["payload"], &event["recipient"]);
    let demo = RuleSet::new(vec![
        rule(0, Channel::Email, None),
        rule(1, Channel::Sms, None),
        rule(2, Channel::Slack, None),
    ]);
    let conditional: Vec<Rule> = (0..MAX_RULES_PER_EVENT_TYPE)
        .map(|index| rule(index, Channel::Email, Some(condition(index))))
        .collect();
    let fifty = RuleSet::new(conditional.clone());
    assert_eq!(
        fifty.matching(payload, recipient).len(),
        MAX_RULES_PER_EVENT_TYPE / 5
    );

    let mut group = c.benchmark_group("rule matching");
    group.bench_function("3 unconditional rules (the demo)", |b| {
        b.iter(|| demo.matching(black_box(payload), black_box(recipient)).len());
    });
    group.bench_function("50 conditional rules, 10 match", |b| {
        b.iter(|| fifty.matching(black_box(payload), black_box(recipient)).len());
    });
    group.bench_function("compile 50 conditional rules (once per cache miss)", |b| {
        b.iter(|| RuleSet::new(black_box(conditional.clone())));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = fixtures::criterion();
    targets = rule_matching
}
criterion_main!(benches);
