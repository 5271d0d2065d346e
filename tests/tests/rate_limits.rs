//! Per-recipient rate limits against the emulator: the counters are conditional updates inside the
//! acceptance transaction, so sixteen concurrent events for one user queue exactly five per channel.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::domain::{Channel, Timestamp};
use herald_integration_tests::{ApiRequest, Stack, order_created};
use std::time::Duration;

/// Waits out the last three seconds of a minute, so the events of the test fall in one counter window.
async fn away_from_a_minute_boundary() {
    let second = Timestamp::now().epoch_seconds().rem_euclid(60);
    if second >= 57 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(61 - second).unwrap())).await;
    }
}

#[tokio::test]
async fn sixteen_concurrent_events_for_one_user_queue_exactly_five_per_channel() {
    let stack = Stack::new().await.with_rate_limit(5);
    stack.seed_order_created().await;
    let ingest = stack.ingest();
    away_from_a_minute_boundary().await;
    let requests: Vec<ApiRequest> = (0..16)
        .map(|n| {
            ApiRequest::new("POST", "/v1/events")
                .key(&stack.api_key)
                .json(&order_created(n))
        })
        .collect();
    let answers =
        futures::future::join_all(requests.iter().map(|request| stack.call_ingest(&ingest, request))).await;
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
    for channel in Channel::ALL {
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
