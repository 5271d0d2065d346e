//! The outbox against the emulator, with faults between Herald and AWS: a write that commits but answers
//! too late (the SDK retries it), SQS failing after the write, a request that dies holding its fan-out.
//! Each case ends with one message per notification on its queue, or more only where the delivery loop's
//! claim makes the extra one a no-op, nothing left in the sweeper's index, and then every message
//! delivered and the audit of the run: every notification sent, once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::similar_names)] // test code: a panic is a failed test

use herald::adapters::dynamodb::DynamoActivityStore;
use herald::adapters::sqs::SqsNotificationQueue;
use herald::config::QueueUrls;
use herald::domain::{Channel, Timestamp};
use herald::ingest::Ingest;
use herald::outbox::{FANOUT_LEASE, Outbox};
use herald::ports::NotificationQueue;
use herald_integration_tests::delivery_fixture::{seeded_stack, slack_that_accepts};
use herald_integration_tests::fault_proxy::{Fault, FaultProxy};
use herald_integration_tests::{Answer, ApiRequest, ORDER_CHANNELS, Stack, TestIngest};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use wiremock::MockServer;

/// An SDK attempt timeout far below the proxy's late answer, so every late answer is a timed-out attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(700);

/// A stack seeded with the order_created example, whose events go to one email address, one phone and
/// a Slack webhook of the test's own, so the audit can count what each received.
async fn audited_stack() -> (MockServer, Stack, Value) {
    let slack = slack_that_accepts().await;
    let (stack, event) = seeded_stack(&slack).await;
    (slack, stack, event)
}

fn post(stack: &Stack, event: &Value, order: u64, key: Option<&str>) -> ApiRequest {
    let mut event = event.clone();
    event["payload"]["order_id"] = json!(order);
    let request = ApiRequest::new("POST", "/v1/events")
        .key(&stack.api_key)
        .json(&event);
    match key {
        Some(key) => request.header("Idempotency-Key", key),
        None => request,
    }
}

/// Delivers everything on the queues, then audits the run: every notification sent, and once.
async fn deliver_and_audit(stack: &Stack, slack: &MockServer, events: usize) {
    stack.deliver_everything().await;
    let audit = stack.audit(Some(slack)).await;
    assert_eq!(audit.notifications.len(), 3 * events, "{audit:#?}");
    assert!(
        audit.notifications.iter().all(|n| n.status == "sent"),
        "{audit:#?}"
    );
    audit.assert_nothing_lost_or_doubled(&[]);
}

fn ingest_with(stack: &Stack, dynamodb: aws_sdk_dynamodb::Client, queues: QueueUrls) -> TestIngest {
    Ingest::new(
        stack.config_store(),
        stack.config_store(),
        DynamoActivityStore::new(dynamodb, &stack.tables.activity),
        SqsNotificationQueue::new(stack.sqs.clone(), queues),
        stack.settings(),
    )
}

fn sweeper(stack: &Stack) -> Outbox<DynamoActivityStore, SqsNotificationQueue> {
    Outbox::new(
        stack.activity_store(),
        SqsNotificationQueue::new(stack.sqs.clone(), stack.queues.clone()),
    )
}

/// A sweep as the schedule runs it once every lease taken so far has run out.
async fn sweep_after_the_lease(stack: &Stack) -> herald::outbox::SweepReport {
    let later = Timestamp::from_millis(
        Timestamp::now().millis() + 1_000 + i64::try_from(FANOUT_LEASE.as_millis()).unwrap(),
    );
    sweeper(stack)
        .sweep(later, || Duration::from_secs(60))
        .await
        .unwrap()
}

/// Messages on each channel's queue per notification id of `answer` (others' are not counted); they are
/// all put back as they were.
async fn messages_per_notification(stack: &Stack, answer: &Answer) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = answer.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap().to_owned(), 0))
        .collect();
    let queue = SqsNotificationQueue::new(stack.sqs.clone(), stack.queues.clone());
    for channel in Channel::ALL {
        let envelopes = stack.drain(channel).await;
        for envelope in &envelopes {
            if let Some(count) = counts.get_mut(envelope.notification_id.as_str()) {
                *count += 1;
            }
        }
        queue.enqueue(channel, &envelopes).await.unwrap();
    }
    counts
}

fn once_each(counts: &BTreeMap<String, usize>) -> bool {
    counts.len() == 3 && counts.values().all(|&n| n == 1)
}

#[tokio::test]
async fn a_write_that_commits_but_answers_too_late_is_fanned_out_once_with_or_without_a_key() {
    let (slack, stack, event) = audited_stack().await;
    let proxy = FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    let ingest = ingest_with(
        &stack,
        proxy.dynamodb_client(ATTEMPT_TIMEOUT).await,
        stack.queues.clone(),
    );

    for (order, key) in [(1, Some("late-commit")), (2, None)] {
        proxy.fail_next(Fault::answered_late("TransactItems", ATTEMPT_TIMEOUT * 3));
        let answer = stack
            .call_ingest(&ingest, &post(&stack, &event, order, key))
            .await;

        assert_eq!(
            answer.status, 202,
            "its own write is not a replay ({key:?}): {answer:?}"
        );
        assert_eq!(proxy.pending(), 0, "the late answer was used");
        assert!(
            proxy.requests("TransactItems").len() >= 2,
            "the SDK retried the timed-out attempt"
        );
        let counts = messages_per_notification(&stack, &answer).await;
        assert!(once_each(&counts), "{key:?}: {counts:?}");
    }
    assert_eq!(
        sweep_after_the_lease(&stack).await.found,
        0,
        "nothing left pending"
    );
    deliver_and_audit(&stack, &slack, 2).await;
}

#[tokio::test]
async fn when_sqs_fails_after_the_write_the_client_gets_202_and_the_sweeper_fans_out() {
    let (slack, stack, event) = audited_stack().await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let mut queues: Vec<(Channel, String)> = Channel::ALL
        .iter()
        .map(|&c| (c, stack.queues.get(c).unwrap().to_owned()))
        .collect();
    // Only Slack's queue is missing: the fan-out fails halfway.
    queues[2].1 = format!("{endpoint}/123456789012/missing-slack");
    let broken = ingest_with(&stack, stack.dynamodb.clone(), QueueUrls::new(queues));

    let answer = stack.call_ingest(&broken, &post(&stack, &event, 3, None)).await;

    assert_eq!(answer.status, 202, "accepted is accepted: {answer:?}");
    let early = sweeper(&stack)
        .sweep(Timestamp::now(), || Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        early.found, 0,
        "an event inside its lease is not the sweeper's yet"
    );
    let report = sweep_after_the_lease(&stack).await;

    assert_eq!((report.found, report.recovered, report.left), (1, 1, 0));
    let counts = messages_per_notification(&stack, &answer).await;
    // Email and SMS were queued by the request and again by the sweeper (the claim makes the second a
    // no-op); Slack's only by the sweeper.
    assert_eq!(counts.len(), 3);
    assert!(counts.values().all(|&n| n >= 1), "nothing is lost: {counts:?}");
    assert_eq!(
        sweep_after_the_lease(&stack).await.found,
        0,
        "the event left the index"
    );
    deliver_and_audit(&stack, &slack, 1).await;
}

#[tokio::test]
async fn a_request_that_dies_during_its_fan_out_is_finished_by_the_sweeper() {
    let (slack, stack, event) = audited_stack().await;
    let proxy = FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&herald_integration_tests::emulator_config().await)
            .endpoint_url(&proxy.url)
            .build(),
    );
    let ingest = Ingest::new(
        stack.config_store(),
        stack.config_store(),
        stack.activity_store(),
        SqsNotificationQueue::new(sqs, stack.queues.clone()),
        stack.settings(),
    );
    for _ in ORDER_CHANNELS {
        proxy.fail_next(Fault::answered_late("\"Entries\"", Duration::from_secs(30)));
    }

    // The process dies while its messages are being sent: after the commit, holding the lease.
    let request = post(&stack, &event, 4, Some("dies"));
    let died = tokio::time::timeout(Duration::from_secs(2), stack.call_ingest(&ingest, &request)).await;
    assert!(died.is_err(), "the request was cut off mid-fan-out");
    let replay = stack.call_ingest(&stack.ingest(), &request).await;
    assert_eq!(replay.status, 200, "{replay:?}");
    assert_eq!(
        sweeper(&stack)
            .sweep(Timestamp::now(), || Duration::from_secs(60))
            .await
            .unwrap()
            .recovered,
        0,
        "neither the replay nor the sweeper takes a fan-out whose lease is held"
    );

    let report = sweep_after_the_lease(&stack).await;

    assert_eq!((report.found, report.recovered), (1, 1));
    let counts = messages_per_notification(&stack, &replay).await;
    assert_eq!(counts.len(), 3);
    assert!(counts.values().all(|&n| n >= 1), "nothing is lost: {counts:?}");
    deliver_and_audit(&stack, &slack, 1).await;
}
