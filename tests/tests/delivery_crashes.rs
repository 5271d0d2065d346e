//! A channel function that dies, against the emulator: between its claim and its send, and between the
//! provider's acceptance and the record of it. Each case ends recovered, with an audit of the run's one
//! notification: what the provider received, what was recorded, and why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::similar_names)] // test code: a panic is a failed test

use herald::domain::{Channel, NotificationId, Timestamp};
use herald::ports::{Claim, DeliveryLedger, Sender};
use herald_integration_tests::Stack;
use herald_integration_tests::channels::TestDelivery;
use herald_integration_tests::delivery_fixture::{
    accept, notification, notification_id, outcomes, seeded_stack, slack_that_accepts,
};
use herald_integration_tests::fault_proxy::{Fault, FaultProxy};
use serde_json::json;
use std::time::Duration;
use wiremock::MockServer;

/// A claim's lease in these tests: short, so a dead holder's lease runs out within the test.
const LEASE: Duration = Duration::from_secs(1);

/// A Slack-only event accepted on a fresh stack whose webhook accepts everything.
async fn one_slack_notification() -> (MockServer, Stack, String) {
    let slack = slack_that_accepts().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    let accepted = accept(&stack, &event).await;
    let id = notification_id(&accepted, Channel::Slack);
    (slack, stack, id)
}

/// Polls the Slack queue into `delivery` until `messages` messages were handed over.
async fn deliver(stack: &Stack, delivery: &TestDelivery<impl Sender>, messages: usize) {
    let mut received = 0;
    while received < messages {
        received += stack
            .poll(Channel::Slack, 1, |e| delivery.handle(e))
            .await
            .received;
    }
}

#[tokio::test]
async fn a_function_that_dies_between_its_claim_and_its_send_is_taken_over_after_the_lease_and_sends_once() {
    let (slack, stack, id) = one_slack_notification().await;
    // The dead function's claim: the notification is `sending`, held for LEASE, and nothing was sent.
    let held = stack
        .activity_store()
        .claim(
            &stack.tenant,
            &NotificationId::parse(&id).unwrap(),
            Timestamp::now(),
            LEASE,
        )
        .await
        .unwrap();
    assert!(matches!(held, Claim::Claimed { attempt: 1, .. }), "{held:?}");
    let delivery = stack.delivery_over(stack.slack_sender(), stack.dynamodb.clone(), 10, LEASE);

    // Its message comes back (its visibility timeout ended) while the lease still holds: it waits.
    let early = stack.poll(Channel::Slack, 1, |e| delivery.handle(e)).await;
    assert_eq!((early.received, early.failed.len()), (1, 1), "{early:?}");
    assert!(slack.received_requests().await.unwrap().is_empty());
    // After the lease, the message is claimed by the living and sent.
    tokio::time::sleep(LEASE).await;
    deliver(&stack, &delivery, 1).await;

    // The audit: sent once, by attempt 2 (the dead holder's attempt 1 left no record).
    let sent = notification(&stack, &id).await;
    assert_eq!(sent["status"], "sent", "{sent:#}");
    assert_eq!(outcomes(&sent), ["sent"], "{sent:#}");
    assert_eq!(slack.received_requests().await.unwrap().len(), 1, "sent once");
    assert!(!stack.unsettled(&id).await);
    assert!(stack.drain(Channel::Slack).await.is_empty());
}

#[tokio::test]
async fn a_send_whose_record_is_lost_is_dead_lettered_by_the_reconciler_and_sends_at_most_the_documented_duplicate()
 {
    let (slack, stack, id) = one_slack_notification().await;
    let proxy = FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    let delivery = stack.delivery_over(
        stack.slack_sender(),
        proxy.dynamodb_client(Duration::from_secs(3)).await,
        10,
        LEASE,
    );
    // Every settle request fails: the loop's three rounds, each with the SDK's retries.
    for _ in 0..12 {
        proxy.fail_next(Fault::dynamodb_unavailable("TransactItems"));
    }

    deliver(&stack, &delivery, 1).await;

    assert_eq!(
        slack.received_requests().await.unwrap().len(),
        1,
        "the provider took it"
    );
    let unrecorded = notification(&stack, &id).await;
    assert_eq!(unrecorded["status"], "sending", "{unrecorded:#}");
    assert!(
        outcomes(&unrecorded).is_empty(),
        "no record of the send: {unrecorded:#}"
    );
    assert!(
        stack.drain(Channel::Slack).await.is_empty(),
        "the message was acknowledged anyway: sending twice is worse than a stale status"
    );

    // A sweep past the stall window: the status is made to agree with the (empty) queue.
    let stalled = stack.reconcile_the_stalled(&id).await;
    assert!(
        stalled["detail"].as_str().unwrap().contains("may send it twice"),
        "the person about to redrive is told: {stalled:#}"
    );

    // A person redrives it anyway: the documented duplicate, and no more.
    assert_eq!(stack.redrive(Channel::Slack).await, 1);
    let redelivery = stack.delivery_over(stack.slack_sender(), stack.dynamodb.clone(), 10, LEASE);
    deliver(&stack, &redelivery, 1).await;
    let sent = notification(&stack, &id).await;
    assert_eq!(sent["status"], "sent", "{sent:#}");
    assert_eq!(
        outcomes(&sent),
        ["sent"],
        "only the redriven attempt is recorded: {sent:#}"
    );
    assert_eq!(
        slack.received_requests().await.unwrap().len(),
        2,
        "the one documented duplicate"
    );
    assert!(!stack.unsettled(&id).await);
    assert!(stack.drain(Channel::Slack).await.is_empty());
    assert!(stack.dead_letters(Channel::Slack).await.is_empty());
}
