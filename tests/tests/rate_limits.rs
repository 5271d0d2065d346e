//! Per-recipient rate limits against the emulator: the counters are conditional updates inside the
//! acceptance transaction, so sixteen concurrent events for one user queue exactly five per channel; an event
//! type's own limit wins over the deployment's, and an API key's ingest budget refuses what passes it (429).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::domain::Timestamp;
use herald::domain::tenant::TenantLimit;
use herald::ports::TenantSettingsStore;
use herald_integration_tests::{Answer, ApiRequest, ORDER_CHANNELS, Stack, TestIngest, order_created};
use std::time::Duration;

/// Waits out the last three seconds of a minute, so the events of the test fall in one counter window.
async fn away_from_a_minute_boundary() {
    let second = Timestamp::now().epoch_seconds().rem_euclid(60);
    if second >= 57 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(61 - second).unwrap())).await;
    }
}

/// Sixteen events for one user, sent at once with the stack's key.
async fn sixteen_at_once(stack: &Stack, ingest: &TestIngest) -> Vec<Answer> {
    let requests: Vec<ApiRequest> = (0..16)
        .map(|n| {
            ApiRequest::new("POST", "/v1/events")
                .key(&stack.api_key)
                .json(&order_created(n))
        })
        .collect();
    futures::future::join_all(requests.iter().map(|request| stack.call_ingest(ingest, request))).await
}

#[tokio::test]
async fn sixteen_concurrent_events_for_one_user_queue_exactly_five_per_channel() {
    let stack = Stack::new().await.with_rate_limit(5);
    stack.seed_order_created().await;
    let ingest = stack.ingest();
    away_from_a_minute_boundary().await;
    let answers = sixteen_at_once(&stack, &ingest).await;
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    for answer in &answers {
        assert_eq!(answer.status, 202, "{answer:?}");
        for notification in answer.body["notifications"].as_array().unwrap() {
            *by_status
                .entry(notification["status"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(
        by_status,
        [("queued".to_owned(), 15), ("rate_limited".to_owned(), 33)].into(),
        "five of the sixteen events per channel"
    );
    for channel in ORDER_CHANNELS {
        assert_eq!(stack.drain(channel).await.len(), 5, "{channel}");
    }
    let limited = answers
        .iter()
        .flat_map(|answer| answer.body["notifications"].as_array().unwrap().clone())
        .find(|n| n["status"] == "rate_limited")
        .unwrap();
    let stored = stack
        .call_ingest(
            &ingest,
            &ApiRequest::get(&format!("/v1/notifications/{}", limited["id"].as_str().unwrap()))
                .key(&stack.api_key),
        )
        .await;
    assert_eq!(
        (stored.body["status"].as_str(), stored.body["reason"].as_str()),
        (Some("rate_limited"), Some("rate_limited"))
    );
}

#[tokio::test]
async fn an_event_types_own_limit_and_a_keys_ingest_budget_hold_under_concurrency() {
    let stack = Stack::new().await.with_rate_limit(5);
    stack.seed_order_created().await;
    let config = stack.config_store();
    config
        .set_limit(
            &stack.tenant,
            TenantLimit::IngestBudgetPerMinute,
            Some(10),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let put_type = ApiRequest::new("PUT", "/v1/event-types/order_created")
        .key(&stack.api_key)
        .json(&serde_json::json!({"rate_limit_per_minute": 2,
            "schema": {"type": "object", "required": ["order_id"]}}));
    assert_eq!(stack.call_api(&stack.api(), &put_type).await.status, 200);
    let ingest = stack.ingest();
    away_from_a_minute_boundary().await;
    let answers = sixteen_at_once(&stack, &ingest).await;
    let accepted: Vec<_> = answers.iter().filter(|answer| answer.status == 202).collect();
    let refused: Vec<_> = answers.iter().filter(|answer| answer.status == 429).collect();
    assert_eq!(
        (accepted.len(), refused.len()),
        (10, 6),
        "the key's budget of 10: {answers:?}"
    );
    for answer in &refused {
        assert_eq!(answer.problem_code(), "rate_limited");
        let wait: u32 = answer.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    for channel in ORDER_CHANNELS {
        assert_eq!(
            stack.drain(channel).await.len(),
            2,
            "{channel}: the event type's 2, not the deployment's 5"
        );
    }
    let events = stack
        .activity_items()
        .await
        .into_iter()
        .filter(|item| {
            item.get("sk")
                .and_then(|sk| sk.as_s().ok())
                .is_some_and(|sk| sk == "EVENT")
        })
        .count();
    assert_eq!(events, 10, "a refused event is not recorded");
}
