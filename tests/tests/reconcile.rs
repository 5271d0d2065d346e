//! The reconciler against the emulator: a notification whose message reached the DLQ without a claim (its
//! last receives could not claim it) is found through the `unsettled` index, given a DLQ message of its
//! own and marked `dead_lettered`; a redrive then sends it once. Ends with an audit of the run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::similar_names)] // test code: a panic is a failed test

use herald::adapters::sqs::SqsNotificationQueue;
use herald::config::ReconcileSettings;
use herald::domain::{Channel, Timestamp};
use herald::ports::UnsettledNotifications;
use herald::reconcile::{ReconcileReport, Reconciler};
use herald_integration_tests::delivery_fixture::{
    accept, notification, notification_id, outcomes, seeded_stack, slack_that_accepts,
};
use herald_integration_tests::{MAX_RECEIVE_COUNT, Stack};
use serde_json::json;
use std::time::Duration;
use wiremock::MockServer;

const STALL_AFTER: Duration = Duration::from_secs(2);

fn reconciler(
    stack: &Stack,
) -> Reconciler<herald::adapters::dynamodb::DynamoActivityStore, SqsNotificationQueue, SqsNotificationQueue> {
    Reconciler::new(
        stack.activity_store(),
        SqsNotificationQueue::new(stack.sqs.clone(), stack.dead_letter_queues.clone()),
        SqsNotificationQueue::new(stack.sqs.clone(), stack.queues.clone()),
        ReconcileSettings {
            stall_after: STALL_AFTER,
            queue_retention: Duration::from_secs(345_600),
        },
    )
}

/// A moment past the stall window of everything touched until now.
fn past_the_stall_window() -> Timestamp {
    Timestamp::from_millis(
        Timestamp::now().millis() + 1_000 + i64::try_from(STALL_AFTER.as_millis()).unwrap(),
    )
}

/// Whether the notification is in the `unsettled` index (its item holds the index keys).
async fn indexed(stack: &Stack, id: &str) -> bool {
    stack
        .activity_items()
        .await
        .iter()
        .find(|item| {
            item.get("notification_id")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some(id)
        })
        .expect("the notification's item")
        .contains_key("unsettled")
}

/// SQS's own receives of a message nobody could claim, until its redrive policy moves it to the DLQ.
async fn receive_until_dead_lettered(stack: &Stack, channel: Channel) {
    let url = stack.queues.get(channel).unwrap();
    for _ in 0..=MAX_RECEIVE_COUNT {
        stack
            .sqs
            .receive_message()
            .queue_url(url)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
}

/// What `herald dlq redrive` does without StartMessageMoveTask: every DLQ message back on its queue.
async fn redrive(stack: &Stack, channel: Channel) -> usize {
    let dlq = stack.dead_letter_queues.get(channel).unwrap();
    let mut moved = 0;
    loop {
        let messages = stack
            .sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return moved;
        }
        for message in messages {
            stack
                .sqs
                .send_message()
                .queue_url(stack.queues.get(channel).unwrap())
                .message_body(message.body().unwrap())
                .send()
                .await
                .unwrap();
            stack
                .sqs
                .delete_message()
                .queue_url(dlq)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            moved += 1;
        }
    }
}

#[tokio::test]
async fn a_message_dead_lettered_without_a_claim_is_reconciled_and_a_redrive_sends_it_once() {
    let slack = slack_that_accepts().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    let accepted = accept(&stack, &event).await;
    let id = notification_id(&accepted, Channel::Slack);
    assert!(indexed(&stack, &id).await, "accepted queued: in the index");
    let reconciler = reconciler(&stack);
    assert_eq!(
        reconciler
            .reconcile(Timestamp::now(), || Duration::from_secs(60))
            .await
            .unwrap(),
        ReconcileReport::default(),
        "nothing is overdue yet"
    );

    // Every receive failed to claim (DynamoDB was down, say): SQS moved the message, the status stayed.
    receive_until_dead_lettered(&stack, Channel::Slack).await;
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
    let report = reconciler
        .reconcile(past_the_stall_window(), || Duration::from_secs(60))
        .await
        .unwrap();

    assert_eq!(
        report,
        ReconcileReport {
            overdue: 1,
            dead_lettered: 1,
            left: 0
        }
    );
    let stalled = notification(&stack, &id).await;
    assert_eq!(
        (&stalled["status"], &stalled["reason"]),
        (&json!("dead_lettered"), &json!("stalled")),
        "{stalled:#}"
    );
    assert!(!indexed(&stack, &id).await, "dead-lettered: out of the index");
    assert_eq!(
        stack.dead_letters(Channel::Slack).await.len(),
        2,
        "SQS's copy and the reconciler's"
    );

    // A person redrives the DLQ: both messages come back, one sends, the other finds it sent.
    assert_eq!(redrive(&stack, Channel::Slack).await, 2);
    let delivery = stack.delivery(stack.slack_sender());
    let mut received = 0;
    while received < 2 {
        received += stack
            .poll(Channel::Slack, 1, |e| delivery.handle(e))
            .await
            .received;
    }

    // The audit: the one notification of the run was sent once, recorded once, and left the index.
    let sent = notification(&stack, &id).await;
    assert_eq!(sent["status"], "sent", "{sent:#}");
    assert_eq!(outcomes(&sent), ["sent"], "{sent:#}");
    assert_eq!(slack.received_requests().await.unwrap().len(), 1, "sent once");
    assert!(!indexed(&stack, &id).await);
    assert!(stack.drain(Channel::Slack).await.is_empty());
    assert!(stack.dead_letters(Channel::Slack).await.is_empty());
}

#[tokio::test]
async fn a_notification_waiting_behind_a_backlog_is_left_alone() {
    let slack = MockServer::start().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    let accepted = accept(&stack, &event).await;
    let id = notification_id(&accepted, Channel::Slack);

    // Its message is still on the queue, unreceived: late, not stalled.
    let report = reconciler(&stack)
        .reconcile(past_the_stall_window(), || Duration::from_secs(60))
        .await
        .unwrap();

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
    assert_eq!(stack.drain(Channel::Slack).await.len(), 1);
}
