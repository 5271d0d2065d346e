//! What the delivery tests share: a stack seeded with the contract's example, accepting events, and reading
//! back notifications and what the providers received.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::similar_names)] // test support: a failed expectation is a failed test

use crate::channels::unique_phone;
use crate::{Answer, ApiRequest, Stack, unique};
use herald::domain::Channel;
use herald::domain::notification::Envelope;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const SLACK_PATH: &str = "/services/T000/B000/XXXX";

/// A stack seeded with the order_created example, whose Slack webhook is `slack`.
pub async fn seeded_stack(slack: &MockServer) -> (Stack, Value) {
    let stack = Stack::new().await.with_loopback_webhooks();
    stack.seed_order_created().await;
    let event = json!({
        "event": "order_created",
        "recipient": {"email": format!("{}@example.com", unique("ada")), "phone": unique_phone(),
                      "slack_webhook_url": format!("{}{SLACK_PATH}", slack.uri())},
        "payload": {"order_id": 444, "total": 99.99}
    });
    (stack, event)
}

pub async fn accept(stack: &Stack, event: &Value) -> Answer {
    let request = ApiRequest::new("POST", "/v1/events")
        .key(&stack.api_key)
        .json(event);
    let answer = stack.call_ingest(&stack.ingest(), &request).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    answer
}

/// A Slack incoming webhook that accepts every message, as Slack answers: 200 `ok`.
pub async fn slack_that_accepts() -> MockServer {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    slack
}

/// A Slack webhook that answers ok, and `count` accepted Slack-only events whose messages were taken off the
/// queue (to be handed to the delivery loop by the test).
pub async fn slack_messages_waiting(count: u64) -> (MockServer, Stack, Vec<Envelope>) {
    let slack = slack_that_accepts().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    for order in 0..count {
        event["payload"]["order_id"] = json!(order);
        accept(&stack, &event).await;
    }
    let envelopes = stack.drain(Channel::Slack).await;
    assert_eq!(envelopes.len(), usize::try_from(count).unwrap());
    (slack, stack, envelopes)
}

pub fn notification_id(answer: &Answer, channel: Channel) -> String {
    let notifications = answer.body["notifications"].as_array().unwrap();
    let found = notifications
        .iter()
        .find(|n| n["channel"] == channel.as_str())
        .expect("a notification for the channel");
    found["id"].as_str().unwrap().to_owned()
}

pub async fn notification(stack: &Stack, id: &str) -> Value {
    let request = ApiRequest::get(&format!("/v1/notifications/{id}")).key(&stack.api_key);
    let answer = stack.call_ingest(&stack.ingest(), &request).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body
}

pub fn outcomes(notification: &Value) -> Vec<String> {
    notification["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_owned())
        .collect()
}

pub fn sent_emails(data: &Value, to: &str) -> Vec<Value> {
    let messages = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    messages
        .into_iter()
        .filter(|m| m["destinations"]["ToAddresses"][0] == to)
        .collect()
}

pub fn sent_sms(data: &Value, phone: &str) -> Vec<Value> {
    let messages = data["sns"]["SMS"].as_array().cloned().unwrap_or_default();
    messages
        .into_iter()
        .filter(|m| m["phone_number"] == phone)
        .collect()
}
