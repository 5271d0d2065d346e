//! The webhook channel against the emulator, wired as its function wires it: an order accepted by ingest
//! for the tenant's registered endpoint, delivered by the one delivery loop through `WebhookDelivery` to a
//! receiver on loopback. A delivery is a POST the specification's own library verifies; a 5xx is retried
//! and then sent; a 410 fails the notification and disables the endpoint, so the next event makes none for
//! it; an endpoint that never answers well dead-letters the notification.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::adapters::webhook::{WebhookDelivery, WebhookPoster};
use herald::domain::webhook::{DisabledBy, EndpointSpec, SigningSecret};
use herald::domain::{Channel, Timestamp};
use herald::ports::WebhookEndpointStore;
use herald_integration_tests::delivery_fixture::{accept, notification, notification_id, outcomes};
use herald_integration_tests::webhook_verifier::verdict;
use herald_integration_tests::{ApiRequest, RETRY_SCHEDULE, Stack, order_created};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HOOK_PATH: &str = "/hooks/orders";
const ENDPOINT: &str = "orders";

/// A stack whose tenant has a webhook rule for `order_created` and one endpoint, `receiver`'s.
async fn webhook_stack(receiver: &MockServer) -> (Stack, SigningSecret) {
    let stack = Stack::new().await.with_loopback_webhooks();
    stack.seed_order_created().await;
    let api = stack.api();
    for (path, body) in [
        (
            "/v1/templates/order-webhook",
            json!({"channel": "webhook", "text": "{\"type\": {{ event.name }}, \"data\": {{ payload }}}"}),
        ),
        (
            "/v1/rules/order-webhook",
            json!({"event": "order_created", "channel": "webhook", "template": "order-webhook"}),
        ),
    ] {
        let request = ApiRequest::new("PUT", path).key(&stack.api_key).json(&body);
        let answer = stack.call_api(&api, &request).await;
        assert!(matches!(answer.status, 200 | 201), "{answer:?}");
    }
    let secret = SigningSecret::generate().unwrap();
    let spec = EndpointSpec::parse(&json!({"url": format!("{}{HOOK_PATH}", receiver.uri())}), |_| {
        Ok(())
    })
    .unwrap();
    stack
        .config_store()
        .put_endpoint(&stack.tenant, ENDPOINT, &spec, &secret, Timestamp::now())
        .await
        .unwrap();
    (stack, secret)
}

fn webhook_sender(stack: &Stack) -> WebhookDelivery<herald::adapters::dynamodb::DynamoConfigStore> {
    let poster = WebhookPoster::new(true, Duration::from_secs(2), Duration::from_secs(3)).unwrap();
    WebhookDelivery::new(poster, stack.config_store(), Duration::from_secs(5 * 86_400))
}

/// Accepts one order for the webhook channel alone; its webhook notification's id.
async fn order_for_webhooks(stack: &Stack, order_id: u64) -> Option<String> {
    let mut event = order_created(order_id);
    event["channels"] = json!(["webhook"]);
    let accepted = accept(stack, &event).await;
    let webhooks: Vec<&Value> = accepted.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["channel"] == "webhook")
        .collect();
    assert!(
        webhooks.len() <= 1,
        "one endpoint, at most one notification: {accepted:?}"
    );
    webhooks
        .first()
        .map(|_| notification_id(&accepted, Channel::Webhook))
}

async fn receiver_answering(status: u16) -> MockServer {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .respond_with(ResponseTemplate::new(status))
        .mount(&receiver)
        .await;
    receiver
}

#[tokio::test]
async fn a_delivery_is_a_post_the_reference_library_verifies() {
    let receiver = receiver_answering(204).await;
    let (stack, secret) = webhook_stack(&receiver).await;
    let id = order_for_webhooks(&stack, 444)
        .await
        .expect("a webhook notification");
    let delivery = stack.delivery(webhook_sender(&stack));
    let outcome = stack.poll(Channel::Webhook, 10, |e| delivery.handle(e)).await;
    assert_eq!((outcome.received, outcome.failed.len()), (1, 0));

    let sent = notification(&stack, &id).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["to"], ENDPOINT);
    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let header = |name: &str| request.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        header("webhook-id"),
        id,
        "the notification id: a receiver drops a repeat by it"
    );
    assert_eq!(header("content-type"), "application/json");
    let body = String::from_utf8(request.body.clone()).unwrap();
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        verdict(
            &secret,
            &header("webhook-id"),
            timestamp,
            &header("webhook-signature"),
            &body
        ),
        "verified"
    );
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["type"], "order_created");
    assert_eq!(parsed["data"], order_created(444)["payload"]);
}

#[tokio::test]
async fn a_5xx_is_retried_on_the_schedule_and_then_sent() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let (stack, _) = webhook_stack(&receiver).await;
    let id = order_for_webhooks(&stack, 1).await.unwrap();
    let delivery = stack.delivery(webhook_sender(&stack));
    for _ in 0..2 {
        let outcome = stack.poll(Channel::Webhook, 20, |e| delivery.handle(e)).await;
        assert_eq!((outcome.received, outcome.failed.len()), (1, 0));
    }
    let sent = notification(&stack, &id).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(outcomes(&sent), ["retrying", "sent"]);
    assert_eq!(receiver.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_410_fails_the_notification_and_disables_the_endpoint_for_the_next_events() {
    let receiver = receiver_answering(410).await;
    let (stack, _) = webhook_stack(&receiver).await;
    let id = order_for_webhooks(&stack, 1).await.unwrap();
    let delivery = stack.delivery(webhook_sender(&stack));
    stack.poll(Channel::Webhook, 10, |e| delivery.handle(e)).await;

    let failed = notification(&stack, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let endpoint = stack
        .config_store()
        .endpoint(&stack.tenant, ENDPOINT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(endpoint.disabled_by, Some(DisabledBy::Gone));
    // A fresh ingest (no cached endpoints): the disabled endpoint gets nothing more.
    assert_eq!(order_for_webhooks(&stack, 2).await, None);
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_dead_letters_the_notification() {
    let receiver = receiver_answering(500).await;
    let (stack, _) = webhook_stack(&receiver).await;
    let id = order_for_webhooks(&stack, 1).await.unwrap();
    let delivery = stack.delivery(webhook_sender(&stack));
    let steps = RETRY_SCHEDULE.split(',').count();
    for round in 0..=steps {
        let outcome = stack.poll(Channel::Webhook, 20, |e| delivery.handle(e)).await;
        assert_eq!((outcome.received, outcome.failed.len()), (1, 0), "round {round}");
    }
    let dead = notification(&stack, &id).await;
    assert_eq!(
        (dead["status"].clone(), dead["reason"].clone()),
        (json!("dead_lettered"), json!("retries_exhausted"))
    );
    assert_eq!(stack.dead_letters(Channel::Webhook).await.len(), 1);
    assert_eq!(receiver.received_requests().await.unwrap().len(), steps + 1);
}
