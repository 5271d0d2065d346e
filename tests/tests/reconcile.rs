//! The reconciler against the emulator: a notification whose message reached the DLQ without a claim (its
//! last receives could not claim it) is found through the `unsettled` index, given a DLQ message of its
//! own and marked `dead_lettered`; a redrive then sends it once. Ends with an audit of the run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::similar_names)] // test code: a panic is a failed test

use herald::domain::{Channel, Timestamp};
use herald::ports::UnsettledNotifications;
use herald::reconcile::ReconcileReport;
use herald_integration_tests::delivery_fixture::{
    accept, notification, notification_id, seeded_stack, slack_that_accepts,
};
use herald_integration_tests::recovery::past_the_stall_window;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_message_dead_lettered_without_a_claim_is_reconciled_and_a_redrive_sends_it_once() {
    let slack = slack_that_accepts().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    let accepted = accept(&stack, &event).await;
    let id = notification_id(&accepted, Channel::Slack);
    assert!(stack.unsettled(&id).await, "accepted queued: in the index");
    let reconciler = stack.reconciler();
    assert_eq!(
        reconciler
            .reconcile(Timestamp::now(), || Duration::from_secs(60))
            .await
            .unwrap(),
        ReconcileReport::default(),
        "nothing is overdue yet"
    );

    // Every receive failed to claim (DynamoDB was down, say): SQS moved the message, the status stayed.
    stack.receive_until_dead_lettered(Channel::Slack).await;
    assert_eq!(stack.dead_letters(Channel::Slack).await.len(), 1);
    assert_eq!(notification(&stack, &id).await["status"], "queued");

    let overdue = stack
        .activity_store()
        .overdue(past_the_stall_window(), 100)
        .await
        .unwrap();
    assert!(
        overdue.iter().any(|(_, found)| found.as_str() == id),
        "found through the index: {overdue:?}"
    );
    stack.reconcile_the_stalled(&id).await;
    assert!(!stack.unsettled(&id).await, "dead-lettered: out of the index");
    assert_eq!(
        stack.dead_letters(Channel::Slack).await.len(),
        2,
        "SQS's copy and the reconciler's"
    );

    // A person redrives the DLQ: both messages come back, one sends, the other finds it sent.
    assert_eq!(stack.redrive(Channel::Slack).await, 2);
    let delivery = stack.delivery(stack.slack_sender());
    let mut received = 0;
    while received < 2 {
        received += stack
            .poll(Channel::Slack, 1, |e| delivery.handle(e))
            .await
            .received;
    }

    // The audit: the one notification of the run was sent once, recorded once, and left the index.
    let audit = stack.audit(Some(&slack)).await;
    assert_eq!(audit.get(&id).outcomes, ["sent"]);
    audit.assert_nothing_lost_or_doubled(&[]);
    assert!(!stack.unsettled(&id).await);
    assert!(stack.drain(Channel::Slack).await.is_empty());
    assert!(stack.dead_letters(Channel::Slack).await.is_empty());
}

#[tokio::test]
async fn a_notification_waiting_behind_a_backlog_is_left_alone() {
    let slack = slack_that_accepts().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    let accepted = accept(&stack, &event).await;
    let id = notification_id(&accepted, Channel::Slack);

    // Its message is still on the queue, unreceived: late, not stalled.
    let report = stack.reconcile_past_the_stall_window().await;

    assert_eq!(
        report,
        ReconcileReport {
            overdue: 1,
            dead_lettered: 0,
            left: 0
        }
    );
    assert_eq!(notification(&stack, &id).await["status"], "queued");
    assert!(stack.dead_letters(Channel::Slack).await.is_empty());
    stack.deliver_everything().await;
    stack
        .audit(Some(&slack))
        .await
        .assert_nothing_lost_or_doubled(&[]);
    assert_eq!(notification(&stack, &id).await["status"], "sent");
}
