//! What brings a notification back after a fault, as the tests drive it: the sweeper's reconciler with a
//! short stall window, SQS moving a message nobody could claim to its DLQ, and a redrive by hand.

use crate::delivery_fixture::notification;
use crate::{MAX_RECEIVE_COUNT, Stack};
use herald::adapters::dynamodb::DynamoActivityStore;
use herald::adapters::sqs::SqsNotificationQueue;
use herald::config::ReconcileSettings;
use herald::domain::{Channel, Timestamp};
use herald::reconcile::{ReconcileReport, Reconciler};
use serde_json::{Value, json};
use std::time::Duration;

/// The reconciler's stall window in tests (15 minutes in production).
pub const STALL_AFTER: Duration = Duration::from_secs(2);

pub type TestReconciler = Reconciler<DynamoActivityStore, SqsNotificationQueue, SqsNotificationQueue>;

/// A moment past the stall window of everything touched until now.
pub fn past_the_stall_window() -> Timestamp {
    Timestamp::from_millis(
        Timestamp::now().millis() + 1_000 + i64::try_from(STALL_AFTER.as_millis()).expect("millis"),
    )
}

impl Stack {
    /// The reconciler as the sweeper function wires it, over this stack, with [`STALL_AFTER`].
    pub fn reconciler(&self) -> TestReconciler {
        Reconciler::new(
            self.activity_store(),
            SqsNotificationQueue::new(self.sqs.clone(), self.dead_letter_queues.clone()),
            SqsNotificationQueue::new(self.sqs.clone(), self.queues.clone()),
            ReconcileSettings {
                stall_after: STALL_AFTER,
                queue_retention: Duration::from_secs(345_600),
            },
        )
    }

    /// One run of the reconciler as the schedule would run it once the stall window has passed.
    pub async fn reconcile_past_the_stall_window(&self) -> ReconcileReport {
        self.reconciler()
            .reconcile(past_the_stall_window(), || Duration::from_secs(60))
            .await
            .expect("the reconciler's index query")
    }

    /// One reconciler run past the stall window that must find notification `id`, alone, stalled: it is
    /// then `dead_lettered` with reason `stalled`. Its answer through the API.
    pub async fn reconcile_the_stalled(&self, id: &str) -> Value {
        let report = self.reconcile_past_the_stall_window().await;
        assert_eq!(
            report,
            ReconcileReport {
                overdue: 1,
                dead_lettered: 1,
                left: 0
            }
        );
        let stalled = notification(self, id).await;
        assert_eq!(
            (&stalled["status"], &stalled["reason"]),
            (&json!("dead_lettered"), &json!("stalled")),
            "{stalled:#}"
        );
        stalled
    }

    /// Whether notification `id` is in the `unsettled` index (its item holds the index keys).
    pub async fn unsettled(&self, id: &str) -> bool {
        self.activity_items()
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
    pub async fn receive_until_dead_lettered(&self, channel: Channel) {
        let url = self.queues.get(channel).expect("queue");
        for _ in 0..=MAX_RECEIVE_COUNT {
            self.sqs
                .receive_message()
                .queue_url(url)
                .visibility_timeout(0)
                .send()
                .await
                .expect("receive");
        }
    }

    /// What `herald dlq redrive` does without StartMessageMoveTask: every DLQ message back on its queue,
    /// sent before it is deleted. How many moved.
    pub async fn redrive(&self, channel: Channel) -> usize {
        let dlq = self.dead_letter_queues.get(channel).expect("dlq");
        let mut moved = 0;
        loop {
            let messages = self
                .sqs
                .receive_message()
                .queue_url(dlq)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive dlq")
                .messages
                .unwrap_or_default();
            if messages.is_empty() {
                return moved;
            }
            for message in messages {
                self.sqs
                    .send_message()
                    .queue_url(self.queues.get(channel).expect("queue"))
                    .message_body(message.body().unwrap_or_default())
                    .send()
                    .await
                    .expect("send");
                self.sqs
                    .delete_message()
                    .queue_url(dlq)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
                moved += 1;
            }
        }
    }
}
