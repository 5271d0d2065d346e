//! What Lambda's SQS event source mapping does, locally: gather a batch (the template's batch size, for up
//! to its batching window), invoke the channel function with it, delete what the partial batch response did
//! not name. Retries and
//! DLQ moves are SQS's own; `maximum_concurrency` pollers share a queue.

use super::runtime::{FunctionHost, InvokeError};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchError;
use aws_sdk_sqs::operation::receive_message::ReceiveMessageError;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
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
    /// `MaximumBatchingWindowInSeconds`: once a batch has its first message, how long it may wait for more.
    pub batching_window: Duration,
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

    /// Up to `count` messages, waiting at most `wait_seconds` for the first.
    async fn receive(&self, count: i32, wait_seconds: i32) -> Result<Vec<Message>, PollError> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(count.clamp(1, 10))
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(PollError::Receive)?;
        Ok(received.messages.unwrap_or_default())
    }

    /// A batch as Lambda gathers one: the first messages, then, if the batch is not full, what else arrived
    /// by the end of the batching window. Two receives per batch at most, however slowly messages trickle
    /// in: each receive costs the single-process emulator as much as a delivery's own requests do.
    async fn gather(&self) -> Result<Vec<Message>, PollError> {
        let batch_size = usize::try_from(self.batch_size.clamp(1, 10)).unwrap_or(10);
        let mut batch = self.receive(self.batch_size, 1).await?;
        if batch.is_empty() || batch.len() >= batch_size || self.batching_window.is_zero() {
            return Ok(batch);
        }
        tokio::time::sleep(self.batching_window).await;
        let missing = i32::try_from(batch_size - batch.len()).unwrap_or(1);
        batch.extend(self.receive(missing, 0).await?);
        Ok(batch)
    }

    async fn poll_once(&self) -> Result<(), PollError> {
        let messages = self.gather().await?;
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
