//! The channel queues, on SQS.

use crate::adapters::backend_error;
use crate::config::QueueUrls;
use crate::domain::Channel;
use crate::domain::notification::Envelope;
use crate::ports::{BackendError, NotificationQueue};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::time::Duration;

/// SQS takes at most ten messages a batch.
const BATCH_LIMIT: usize = 10;
/// Entries a batch reports failed (throttled, say) are sent again this many times.
const ENTRY_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct SqsNotificationQueue {
    client: Client,
    urls: QueueUrls,
}

impl SqsNotificationQueue {
    pub fn new(client: Client, urls: QueueUrls) -> Self {
        Self { client, urls }
    }

    async fn send_batch(&self, url: &str, batch: &[Envelope]) -> Result<(), BackendError> {
        let mut pending: Vec<(String, String)> = batch
            .iter()
            .enumerate()
            .map(|(index, envelope)| (index.to_string(), serde_json::to_string(envelope).unwrap_or_default()))
            .collect();
        for attempt in 1..=ENTRY_ATTEMPTS {
            let entries = pending
                .iter()
                .map(|(id, body)| SendMessageBatchRequestEntry::builder().id(id).message_body(body).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| BackendError {
                    service: "SQS",
                    operation: "build request",
                    message: error.to_string(),
                    retryable: false,
                })?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| backend_error("SQS", "SendMessageBatch", &error))?;
            let failed = output.failed();
            if failed.is_empty() {
                return Ok(());
            }
            if let Some(permanent) = failed.iter().find(|entry| entry.sender_fault()) {
                return Err(BackendError {
                    service: "SQS",
                    operation: "SendMessageBatch",
                    message: format!("{}: {}", permanent.code(), permanent.message().unwrap_or("refused")),
                    retryable: false,
                });
            }
            pending.retain(|(id, _)| failed.iter().any(|entry| entry.id() == id));
            if attempt < ENTRY_ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
        }
        Err(BackendError {
            service: "SQS",
            operation: "SendMessageBatch",
            message: format!("{} messages still failed after {ENTRY_ATTEMPTS} attempts", pending.len()),
            retryable: true,
        })
    }
}

impl NotificationQueue for SqsNotificationQueue {
    async fn enqueue(&self, channel: Channel, envelopes: &[Envelope]) -> Result<(), BackendError> {
        let url = self.urls.get(channel).ok_or_else(|| BackendError {
            service: "SQS",
            operation: "SendMessageBatch",
            message: format!("no queue is configured for {channel}"),
            retryable: false,
        })?;
        for batch in envelopes.chunks(BATCH_LIMIT) {
            self.send_batch(url, batch).await?;
        }
        Ok(())
    }
}
