//! What Lambda's SQS event source mapping does, locally: receive a batch (the template's batch size),
//! invoke the channel function with it, delete what the partial batch response did not name. Retries and
//! DLQ moves are SQS's own; `maximum_concurrency` pollers share a queue.

use super::runtime::{FunctionHost, InvokeError};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchError;
use aws_sdk_sqs::operation::receive_message::ReceiveMessageError;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use herald::adapters::sqs::lambda_sqs_event;
use std::time::Duration;

/// Why one poll of a queue failed (the poller says so and tries again).
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("{}", DisplayErrorContext(.0))]
    Receive(#[source] SdkError<ReceiveMessageError>),
    #[error("invocation failed: {0}")]
    Invoke(#[source] InvokeError),
    #[error("{}", DisplayErrorContext(.0))]
    Delete(#[source] SdkError<DeleteMessageBatchError>),
}

#[derive(Debug, Clone)]
pub struct QueuePoller {
    pub sqs: Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub function: FunctionHost,
    pub batch_size: i32,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`: without it Lambda ignores a partial batch
    /// response and deletes the whole batch when the invocation succeeds.
    pub report_batch_item_failures: bool,
    pub region: String,
}

impl QueuePoller {
    /// Starts `concurrency` polling tasks; they run until the process ends.
    pub fn spawn(self, concurrency: usize) {
        for _ in 0..concurrency.max(1) {
            let poller = self.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(error) = poller.poll_once().await {
                        eprintln!("[poller] {}: {error}", poller.queue_url);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
        }
    }

    async fn poll_once(&self) -> Result<(), PollError> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size.clamp(1, 10))
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(PollError::Receive)?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(());
        }
        let event = lambda_sqs_event(&messages, &self.queue_arn, &self.region);
        // A failed invocation deletes nothing: every message comes back after its visibility timeout.
        let answer = self.function.invoke(event).await.map_err(PollError::Invoke)?;
        let reported = if self.report_batch_item_failures {
            answer["batchItemFailures"].as_array()
        } else {
            None
        };
        let failed: Vec<&str> = reported
            .map(|failures| {
                failures
                    .iter()
                    .filter_map(|f| f["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, message)| !failed.contains(&message.message_id().unwrap_or_default()))
            .filter_map(|(index, message)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        if !done.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(PollError::Delete)?;
        }
        Ok(())
    }
}
