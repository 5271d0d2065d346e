//! Per-recipient rate limits at ingest: the counters are conditional writes in the acceptance, so over the
//! limit a notification is `rate_limited` and never queued, concurrent events never overshoot, a replay
//! uses up nothing, and a critical event type is never limited. The limit is the event type's, else the
//! tenant's, else the deployment's. Each API key has an ingest budget: past it a request is 429, unrecorded.

use super::*;
use crate::domain::tenant::TenantLimit;
use crate::ports::TenantSettingsStore;

/// Waits out the last two seconds of a minute, so the events of one test fall in one counter window.
async fn away_from_a_minute_boundary() {
    let second = Timestamp::now().epoch_seconds().rem_euclid(60);
    if second >= 58 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(61 - second).unwrap())).await;
    }
}

fn statuses(answer: &Answer) -> Vec<String> {
    answer.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap().to_owned())
        .collect()
}

fn queued_copies(ingest: &MemoryIngest) -> usize {
    Channel::ALL
        .into_iter()
        .map(|channel| ingest.outbox.queue().enqueued(channel).len())
        .sum()
}

#[tokio::test]
async fn the_sixth_event_of_a_minute_to_one_recipient_is_rate_limited_on_every_channel() {
    away_from_a_minute_boundary().await;
    let ingest = ingest().await;
    let mut answers = Vec::new();
    for n in 0..8 {
        let answer = call(&ingest, post(&order(n), None)).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        answers.push(answer);
    }
    for (n, answer) in answers.iter().enumerate() {
        let expected = if n < 5 { "queued" } else { "rate_limited" };
        assert_eq!(statuses(answer), vec![expected; 3], "event {n}");
    }
    assert_eq!(
        queued_copies(&ingest),
        15,
        "only the first five events were queued"
    );
    let limited: Vec<NotificationId> = answers[7].notifications().into_values().collect();
    for stored in ingest.activity().notifications(&acme(), &limited).await.unwrap() {
        assert_eq!(stored.status, NotificationStatus::RateLimited);
        assert_eq!(stored.reason.as_deref(), Some("rate_limited"));
    }
    let event = ingest
        .activity()
        .event(&acme(), &answers[7].event_id())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !event.fanout_pending,
        "an event with nothing to queue has no fan-out to finish"
    );
}

#[tokio::test]
async fn sixteen_concurrent_events_for_one_recipient_queue_exactly_five() {
    away_from_a_minute_boundary().await;
    let ingest = ingest().await;
    let answers =
        futures::future::join_all((0..16).map(|n| call(&ingest, post(&order(100 + n), None)))).await;
    let queued = answers
        .iter()
        .filter(|answer| statuses(answer).iter().all(|status| status == "queued"))
        .count();
    assert_eq!(
        queued,
        5,
        "{:?}",
        answers.iter().map(statuses).collect::<Vec<_>>()
    );
    assert_eq!(queued_copies(&ingest), 15);
}

#[tokio::test]
async fn a_replay_uses_up_nothing_and_other_recipients_have_their_own_limit() {
    away_from_a_minute_boundary().await;
    let ingest = ingest().await;
    for _ in 0..6 {
        let answer = call(&ingest, post(&order(1), Some("same-key"))).await;
        assert!(matches!(answer.status, 200 | 202));
    }
    for n in 0..4 {
        let answer = call(&ingest, post(&order(2 + n), None)).await;
        assert_eq!(
            statuses(&answer),
            vec!["queued"; 3],
            "event {n} after five replays of one"
        );
    }
    let sixth = call(&ingest, post(&order(9), None)).await;
    assert_eq!(statuses(&sixth), vec!["rate_limited"; 3]);
    let mut someone_else = order(10);
    someone_else["recipient"] = json!({"email": "grace@example.com"});
    let answer = call(&ingest, post(&someone_else, None)).await;
    assert_eq!(statuses(&answer), vec!["queued", "skipped", "skipped"]);
}

#[tokio::test]
async fn a_critical_event_type_is_never_rate_limited() {
    away_from_a_minute_boundary().await;
    let ingest = ingest_with_event_type(json!({"critical": true})).await;
    for n in 0..8 {
        let answer = call(&ingest, post(&order(n), None)).await;
        assert_eq!(statuses(&answer), vec!["queued"; 3], "event {n}");
    }
}

#[tokio::test]
async fn a_store_that_loses_the_answer_of_a_limited_round_still_records_once() {
    away_from_a_minute_boundary().await;
    let ingest = ingest().await;
    for n in 0..5 {
        call(&ingest, post(&order(n), None)).await;
    }
    ingest
        .activity()
        .failpoints
        .set("record_acceptance", Fault::TimeOutAfterCommit, 2);
    let answer = call(&ingest, post(&order(6), Some("k-6"))).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(statuses(&answer), vec!["rate_limited"; 3]);
    let again = call(&ingest, post(&order(6), Some("k-6"))).await;
    assert_eq!((again.status, again.body.clone()), (200, answer.body.clone()));
    assert_eq!(queued_copies(&ingest), 15);
}

async fn set_tenant_limit(ingest: &MemoryIngest, limit: TenantLimit, value: Option<u32>) {
    ingest
        .catalog
        .store()
        .set_limit(&acme(), limit, value, Timestamp::now())
        .await
        .unwrap();
}

/// How many of `events` events to one recipient were queued on each channel, by the first channel.
async fn queued_of(ingest: &MemoryIngest, events: u64) -> usize {
    let mut queued = 0;
    for n in 0..events {
        let answer = call(ingest, post(&order(n), None)).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        queued += usize::from(statuses(&answer)[0] == "queued");
    }
    queued
}

#[tokio::test]
async fn the_event_types_limit_wins_over_the_tenants_which_wins_over_the_deployments() {
    away_from_a_minute_boundary().await;
    let tenant_limited = ingest().await;
    set_tenant_limit(&tenant_limited, TenantLimit::RatePerMinute, Some(2)).await;
    assert_eq!(
        queued_of(&tenant_limited, 4).await,
        2,
        "the tenant's 2, not the deployment's 5"
    );

    let type_limited = ingest_with_event_type(json!({"rate_limit_per_minute": 3})).await;
    set_tenant_limit(&type_limited, TenantLimit::RatePerMinute, Some(2)).await;
    assert_eq!(
        queued_of(&type_limited, 6).await,
        3,
        "the event type's 3, not the tenant's 2"
    );

    let unlimited = ingest_with_event_type(json!({"rate_limit_per_minute": 0})).await;
    assert_eq!(queued_of(&unlimited, 8).await, 8, "0 on the event type: no limit");
    let tenant_unlimited = ingest().await;
    set_tenant_limit(&tenant_unlimited, TenantLimit::RatePerMinute, Some(0)).await;
    assert_eq!(
        queued_of(&tenant_unlimited, 8).await,
        8,
        "0 for the tenant: no limit"
    );
}

/// An order to a recipient of its own, so no recipient limit is met.
fn order_to_someone(n: u64) -> Value {
    let mut event = order(n);
    event["recipient"] = json!({"email": format!("buyer{n}@example.com")});
    event
}

fn batch_of(events: &[Value]) -> Request {
    let mut request = post(&json!({ "events": events }), None);
    *request.uri_mut() = "/v1/events/batch".parse().unwrap();
    request
}

#[tokio::test]
async fn past_its_keys_budget_a_request_is_429_with_retry_after_and_nothing_is_recorded() {
    away_from_a_minute_boundary().await;
    let ingest = ingest().await;
    set_tenant_limit(&ingest, TenantLimit::IngestBudgetPerMinute, Some(4)).await;
    let first = call(&ingest, post(&order_to_someone(0), Some("order-0"))).await;
    assert_eq!(first.status, 202);
    let batch = call(&ingest, batch_of(&[order_to_someone(1), order_to_someone(2)])).await;
    assert_eq!(batch.status, 207, "a batch spends one per event");
    let replay = call(&ingest, post(&order_to_someone(0), Some("order-0"))).await;
    assert_eq!(
        (replay.status, &replay.body),
        (200, &first.body),
        "a replay is a request: it spends one"
    );

    let refused = call(&ingest, post(&order_to_someone(3), None)).await;
    assert_eq!(
        (refused.status, refused.problem_code()),
        (429, "rate_limited"),
        "{}",
        refused.body
    );
    let wait: u32 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let refused_batch = call(&ingest, batch_of(&[order_to_someone(4)])).await;
    assert_eq!(refused_batch.status, 429, "{}", refused_batch.body);
    assert_eq!(
        ingest.activity().event_ids(&acme()).len(),
        3,
        "the refused events are not recorded"
    );
    assert_eq!(queued_copies(&ingest), 3, "nor queued");

    let too_big = call(&ingest, batch_of(&vec![order_to_someone(9); 5])).await;
    assert_eq!(
        (too_big.status, too_big.problem_code()),
        (422, "validation_failed"),
        "{}",
        too_big.body
    );
}

#[tokio::test]
async fn a_budget_that_cannot_be_spent_is_a_503_and_records_nothing() {
    let ingest = ingest().await;
    ingest.activity().failpoints.set("spend", Fault::Fail, 1);
    let failed = call(&ingest, post(&order_to_someone(1), None)).await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    assert!(ingest.activity().event_ids(&acme()).is_empty());
    assert_eq!(call(&ingest, post(&order_to_someone(1), None)).await.status, 202);
}

#[tokio::test]
async fn a_budget_of_zero_is_none() {
    away_from_a_minute_boundary().await;
    let ingest = ingest().await;
    set_tenant_limit(&ingest, TenantLimit::IngestBudgetPerMinute, Some(0)).await;
    for n in 0..10 {
        assert_eq!(call(&ingest, post(&order_to_someone(n), None)).await.status, 202);
    }
}
