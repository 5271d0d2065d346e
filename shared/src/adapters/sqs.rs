//! The channel queues, on SQS.

use crate::adapters::backend_error;
use crate::config::QueueUrls;
use crate::domain::Channel;
use crate::domain::notification::Envelope;
use crate::ports::{BackendError, NotificationQueue, QueueDepth};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
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
            .map(|(index, envelope)| {
                (
                    index.to_string(),
                    serde_json::to_string(envelope).unwrap_or_default(),
                )
            })
            .collect();
        for attempt in 1..=ENTRY_ATTEMPTS {
            let entries = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(body)
                        .build()
                })
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
                    message: format!(
                        "{}: {}",
                        permanent.code(),
                        permanent.message().unwrap_or("refused")
                    ),
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
            message: format!(
                "{} messages still failed after {ENTRY_ATTEMPTS} attempts",
                pending.len()
            ),
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

/// Counts a channel queue's messages from its approximate attributes: visible, in flight and delayed.
impl QueueDepth for SqsNotificationQueue {
    async fn messages(&self, channel: Channel) -> Result<u64, BackendError> {
        const COUNTS: [QueueAttributeName; 3] = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ];
        let url = self.urls.get(channel).ok_or_else(|| BackendError {
            service: "SQS",
            operation: "GetQueueAttributes",
            message: format!("no queue is configured for {channel}"),
            retryable: false,
        })?;
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(COUNTS.to_vec()))
            .send()
            .await
            .map_err(|error| backend_error("SQS", "GetQueueAttributes", &error))?;
        let attributes = output.attributes.unwrap_or_default();
        COUNTS.iter().try_fold(0u64, |total, name| {
            let count = attributes.get(name).map_or(Ok(0), |count| {
                count.parse::<u64>().map_err(|_| BackendError {
                    service: "SQS",
                    operation: "GetQueueAttributes",
                    message: format!("{name} is not a count: {count:?}"),
                    retryable: false,
                })
            })?;
            Ok(total.saturating_add(count))
        })
    }
}

/// The channel queue of a delivery function, and its DLQ.
#[derive(Debug, Clone)]
pub struct SqsChannelQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: String,
}

/// The longest `DelaySeconds` SQS takes.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

impl SqsChannelQueue {
    pub fn new(client: Client, queue_url: impl Into<String>, dead_letter_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: dead_letter_url.into(),
        }
    }
}

/// Whole seconds, rounded up so a message never comes back before it is due.
fn whole_seconds(duration: Duration, most: Duration) -> i32 {
    let duration = duration.min(most);
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

impl crate::ports::ChannelQueue for SqsChannelQueue {
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), BackendError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(whole_seconds(delay, crate::domain::retry::MAX_STEP))
            .send()
            .await
            .map_err(|error| backend_error("SQS", "ChangeMessageVisibility", &error))?;
        Ok(())
    }

    async fn send_later(&self, body: &str, delay: Duration) -> Result<(), BackendError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(whole_seconds(delay, MAX_DELAY))
            .send()
            .await
            .map_err(|error| backend_error("SQS", "SendMessage(retry)", &error))?;
        Ok(())
    }

    async fn dead_letter(&self, body: &str) -> Result<(), BackendError> {
        self.client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(body)
            .send()
            .await
            .map_err(|error| backend_error("SQS", "SendMessage(dead letter)", &error))?;
        Ok(())
    }
}

/// The event Lambda's SQS event source mapping builds from received messages (`Records` with each
/// message's system attributes). The local stack's pollers and the tests feed the channel functions with it,
/// so both hand them exactly what AWS would.
#[must_use]
pub fn lambda_sqs_event(
    messages: &[aws_sdk_sqs::types::Message],
    queue_arn: &str,
    region: &str,
) -> serde_json::Value {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|message| {
            let attributes: serde_json::Map<String, serde_json::Value> = message
                .attributes()
                .map(|attributes| {
                    attributes
                        .iter()
                        .map(|(name, value)| (name.as_str().to_owned(), value.as_str().into()))
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    //! The queue against an SQS client mocked at the SDK boundary (`aws-smithy-mocks`).

    use super::*;
    use crate::domain::{EventId, NotificationId, TenantId, Timestamp};
    use aws_sdk_sqs::config::retry::RetryConfig;
    use aws_sdk_sqs::error::ErrorMetadata;
    use aws_sdk_sqs::operation::send_message_batch::{
        SendMessageBatchError, SendMessageBatchInput, SendMessageBatchOutput,
    };
    use aws_sdk_sqs::types::error::RequestThrottled;
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use std::sync::{Arc, Mutex};

    const EMAIL_QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/herald-email";

    /// Each batch sent, as its entries' (id, body).
    type Sent = Arc<Mutex<Vec<Vec<(String, String)>>>>;

    /// A queue on a client whose every call must meet one of `rules`. The SDK's own retries are off, so
    /// the number of calls a rule sees is the number the adapter made.
    fn queue(mode: RuleMode, rules: &[&Rule]) -> SqsNotificationQueue {
        let client = mock_client!(aws_sdk_sqs, mode, rules, |config| {
            config.retry_config(RetryConfig::disabled())
        });
        SqsNotificationQueue::new(client, QueueUrls::new([(Channel::Email, EMAIL_QUEUE.to_owned())]))
    }

    fn envelopes(count: usize) -> Vec<Envelope> {
        let event = EventId::generate(Timestamp::from_millis(1_790_000_000_000));
        (0..count)
            .map(|index| {
                let id = NotificationId::for_rule(&event, &format!("rule-{index}"));
                Envelope::new(TenantId::new("acme"), id, format!("req-{index}"))
            })
            .collect()
    }

    fn body(envelope: &Envelope) -> String {
        serde_json::to_string(envelope).unwrap()
    }

    fn record(sent: &Sent, request: &SendMessageBatchInput) {
        assert_eq!(request.queue_url(), Some(EMAIL_QUEUE));
        let entries = request
            .entries()
            .iter()
            .map(|entry| (entry.id().to_owned(), entry.message_body().to_owned()));
        sent.lock().unwrap().push(entries.collect());
    }

    fn sent_entry(id: &str) -> SendMessageBatchResultEntry {
        SendMessageBatchResultEntry::builder()
            .id(id)
            .message_id(format!("message-{id}"))
            .md5_of_message_body("d41d8cd98f00b204e9800998ecf8427e")
            .build()
            .unwrap()
    }

    fn failed_entry(id: &str, code: &str, sender_fault: bool) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .code(code)
            .message(format!("{code} (test)"))
            .sender_fault(sender_fault)
            .build()
            .unwrap()
    }

    /// SQS's answer to `request` when the entries with ids in `failures` fail and the rest are queued.
    fn answer(request: &SendMessageBatchInput, failures: &[(&str, &str, bool)]) -> SendMessageBatchOutput {
        let ids = request.entries().iter().map(SendMessageBatchRequestEntry::id);
        let successful = ids
            .filter(|id| !failures.iter().any(|(failed, _, _)| failed == id))
            .map(sent_entry);
        let failed = failures
            .iter()
            .map(|(id, code, sender_fault)| failed_entry(id, code, *sender_fault));
        SendMessageBatchOutput::builder()
            .set_successful(Some(successful.collect()))
            .set_failed(Some(failed.collect()))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn enqueue_sends_batches_of_at_most_ten() {
        let envelopes = envelopes(12);
        let sent = Sent::default();
        let seen = Arc::clone(&sent);
        let batch = mock!(Client::send_message_batch).then_compute_output(move |request| {
            record(&seen, request);
            answer(request, &[])
        });

        queue(RuleMode::MatchAny, &[&batch])
            .enqueue(Channel::Email, &envelopes)
            .await
            .unwrap();

        assert_eq!(batch.num_calls(), 2);
        let sent = sent.lock().unwrap();
        let expected = |range: std::ops::Range<usize>| -> Vec<(String, String)> {
            // Ids are positions within the batch; bodies are the envelopes in order.
            range
                .clone()
                .map(|index| ((index - range.start).to_string(), body(&envelopes[index])))
                .collect()
        };
        assert_eq!(*sent, vec![expected(0..10), expected(10..12)]);
    }

    #[tokio::test]
    async fn enqueue_resends_only_the_entries_that_failed() {
        let envelopes = envelopes(3);
        let sent = Sent::default();
        let (first_seen, retry_seen) = (Arc::clone(&sent), Arc::clone(&sent));
        let partial = mock!(Client::send_message_batch).then_compute_output(move |request| {
            record(&first_seen, request);
            answer(request, &[("1", "InternalError", false)])
        });
        let retry = mock!(Client::send_message_batch).then_compute_output(move |request| {
            record(&retry_seen, request);
            answer(request, &[])
        });

        queue(RuleMode::Sequential, &[&partial, &retry])
            .enqueue(Channel::Email, &envelopes)
            .await
            .unwrap();

        assert_eq!((partial.num_calls(), retry.num_calls()), (1, 1));
        let sent = sent.lock().unwrap();
        assert_eq!(sent[0].len(), 3);
        assert_eq!(
            sent[1],
            vec![("1".to_owned(), body(&envelopes[1]))],
            "the retry carries only entry 1"
        );
    }

    #[tokio::test]
    async fn enqueue_gives_up_on_entries_that_keep_failing() {
        let failing = mock!(Client::send_message_batch)
            .then_compute_output(|request| answer(request, &[("0", "InternalError", false)]));

        let error = queue(RuleMode::MatchAny, &[&failing])
            .enqueue(Channel::Email, &envelopes(2))
            .await
            .unwrap_err();

        assert!(error.retryable, "{error}");
        assert_eq!(failing.num_calls(), usize::try_from(ENTRY_ATTEMPTS).unwrap());
    }

    #[tokio::test]
    async fn enqueue_fails_permanently_on_an_entry_sqs_blames_on_the_sender() {
        let refused = mock!(Client::send_message_batch)
            .then_compute_output(|request| answer(request, &[("1", "InvalidMessageContents", true)]));

        let error = queue(RuleMode::Sequential, &[&refused])
            .enqueue(Channel::Email, &envelopes(3))
            .await
            .unwrap_err();

        assert!(!error.retryable, "{error}");
        assert!(error.message.starts_with("InvalidMessageContents:"), "{error}");
        assert_eq!(refused.num_calls(), 1, "a sender fault is not retried");
    }

    #[tokio::test]
    async fn enqueue_reports_throttling_as_retryable() {
        // A modeled error carries the code SQS sent in its metadata, as the SDK's deserializer sets it.
        let throttled = mock!(Client::send_message_batch).then_error(|| {
            SendMessageBatchError::RequestThrottled(
                RequestThrottled::builder()
                    .message("Rate exceeded")
                    .meta(
                        ErrorMetadata::builder()
                            .code("RequestThrottled")
                            .message("Rate exceeded")
                            .build(),
                    )
                    .build(),
            )
        });

        let error = queue(RuleMode::Sequential, &[&throttled])
            .enqueue(Channel::Email, &envelopes(1))
            .await
            .unwrap_err();

        assert!(error.retryable, "{error}");
        assert_eq!((error.service, error.operation), ("SQS", "SendMessageBatch"));
        assert_eq!(throttled.num_calls(), 1);
    }

    #[tokio::test]
    async fn enqueue_classifies_http_errors_by_code() {
        // Raw responses, read by the SDK's own (awsJson 1.0) error deserializer.
        let cases = [
            (400, "ThrottlingException", true),
            (503, "ServiceUnavailable", true),
            (500, "InternalFailure", true),
            (400, "AccessDeniedException", false),
        ];
        for (status, code, retryable) in cases {
            let body =
                serde_json::json!({ "__type": format!("com.amazonaws.sqs#{code}"), "message": "test" });
            let failing = mock!(Client::send_message_batch)
                .sequence()
                .http_status(status, Some(body.to_string()))
                .build();

            let error = queue(RuleMode::Sequential, &[&failing])
                .enqueue(Channel::Email, &envelopes(1))
                .await
                .unwrap_err();

            assert_eq!(error.retryable, retryable, "{code}: {error}");
            assert!(error.message.starts_with(&format!("{code}:")), "{code}: {error}");
        }
    }

    #[tokio::test]
    async fn enqueue_needs_a_queue_for_the_channel() {
        let unused = mock!(Client::send_message_batch).then_compute_output(|request| answer(request, &[]));

        let error = queue(RuleMode::Sequential, &[&unused])
            .enqueue(Channel::Sms, &envelopes(1))
            .await
            .unwrap_err();

        assert!(!error.retryable, "{error}");
        assert_eq!(unused.num_calls(), 0);
    }
}
