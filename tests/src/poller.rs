//! A test poller: what Lambda's SQS event source mapping does, in-process. It receives a batch from a
//! channel queue, hands it to the channel's handler as an `SqsEvent`, and deletes only what the partial
//! batch response did not report failed, so retries and DLQ moves are SQS's own.

use crate::Stack;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use herald::adapters::sqs::lambda_sqs_event;
use herald::domain::Channel;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Messages handed to the handler.
    pub received: usize,
    /// Message ids the handler reported failed (left on the queue).
    pub failed: Vec<String>,
}

impl Stack {
    /// Receives up to `max` messages (waiting up to `wait_seconds` for the first) from a channel queue.
    pub async fn receive(
        &self,
        channel: Channel,
        max: i32,
        wait_seconds: i32,
    ) -> Vec<aws_sdk_sqs::types::Message> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(self.queues.get(channel).expect("queue"))
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        output.messages.unwrap_or_default()
    }

    /// One poll: receive a batch, invoke `handler`, delete what succeeded.
    pub async fn poll<F, Fut>(&self, channel: Channel, wait_seconds: i32, handler: F) -> PollOutcome
    where
        F: FnOnce(LambdaEvent<SqsEvent>) -> Fut,
        Fut: Future<Output = Result<SqsBatchResponse, lambda_runtime::Error>>,
    {
        let messages = self.receive(channel, 10, wait_seconds).await;
        if messages.is_empty() {
            return PollOutcome::default();
        }
        let response = handler(LambdaEvent::new(sqs_event(&messages), Context::default()))
            .await
            .expect("handler");
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|failure| failure.item_identifier.clone())
            .collect();
        for message in &messages {
            if !failed.iter().any(|id| Some(id.as_str()) == message.message_id()) {
                self.sqs
                    .delete_message()
                    .queue_url(self.queues.get(channel).expect("queue"))
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        PollOutcome {
            received: messages.len(),
            failed,
        }
    }

    /// Hands `bodies` to the Slack delivery loop as one batch, as Lambda would: its partial batch response.
    pub async fn deliver_slack_bodies(&self, bodies: &[(String, String)]) -> SqsBatchResponse {
        self.delivery(self.slack_sender())
            .handle(LambdaEvent::new(
                sqs_event_with_bodies(bodies),
                Context::default(),
            ))
            .await
            .expect("handler")
    }

    /// Messages now in a channel's dead-letter queue (received and left there).
    pub async fn dead_letters(&self, channel: Channel) -> Vec<aws_sdk_sqs::types::Message> {
        let url = self.dead_letter_queues.get(channel).expect("dlq");
        let output = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .expect("receive dlq");
        output.messages.unwrap_or_default()
    }
}

/// The SQS event Lambda would build from these messages.
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let event = lambda_sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:test", "us-east-1");
    serde_json::from_value(event).expect("SQS event")
}

/// An SQS event with raw bodies, for poison-message tests.
pub fn sqs_event_with_bodies(bodies: &[(String, String)]) -> SqsEvent {
    let records: Vec<Value> = bodies
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}})
        })
        .collect();
    serde_json::from_value(json!({"Records": records})).expect("SQS event")
}

/// What the emulator has sent: `GET /moto-api/data.json`.
pub async fn emulator_data() -> Value {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("moto-api")
        .json()
        .await
        .expect("moto-api JSON")
}
