//! The push channel against the emulator, wired as its functions wire it: a device registered through the
//! API gets an endpoint in the stack's platform application; an order accepted by ingest for its user is
//! delivered by the one delivery loop through `PushDelivery` and lands on the endpoint in the platform's
//! payload; an endpoint SNS disabled fails the notification `device_gone` and forgets the device, so the next
//! event has none to push to; an SNS that keeps failing dead-letters the notification.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::domain::Channel;
use herald_integration_tests::delivery_fixture::{accept, notification, notification_id, outcomes};
use herald_integration_tests::poller::emulator_data;
use herald_integration_tests::{Answer, ApiRequest, RETRY_SCHEDULE, Stack, order_created, unique};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A stack whose tenant has a push rule for `order_created` (title, body and data from the payload).
async fn push_stack() -> Stack {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let api = stack.api();
    for (path, body) in [
        (
            "/v1/templates/order-push",
            json!({"channel": "push", "title": "Order #{{ payload.order_id }}",
                   "text": "Total {{ payload.total }}", "data": {"order_id": "{{ payload.order_id }}"}}),
        ),
        (
            "/v1/rules/order-push",
            json!({"event": "order_created", "channel": "push", "template": "order-push"}),
        ),
    ] {
        let request = ApiRequest::new("PUT", path).key(&stack.api_key).json(&body);
        let answer = stack.call_api(&api, &request).await;
        assert!(matches!(answer.status, 200 | 201), "{answer:?}");
    }
    stack
}

/// `PUT /v1/users/{user}/devices/{token}` for `platform`, through the API.
async fn register(stack: &Stack, user: &str, token: &str, platform: &str) -> Answer {
    let request = ApiRequest::new("PUT", &format!("/v1/users/{user}/devices/{token}"))
        .key(&stack.api_key)
        .json(&json!({ "platform": platform }));
    stack.call_api(&stack.api(), &request).await
}

async fn devices_of(stack: &Stack, user: &str) -> Vec<Value> {
    let request = ApiRequest::get(&format!("/v1/users/{user}/devices")).key(&stack.api_key);
    let answer = stack.call_api(&stack.api(), &request).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body["items"].as_array().unwrap().clone()
}

/// Accepts one order for `user`, for the push channel alone.
async fn order_for(stack: &Stack, user: &str, order_id: u64) -> Answer {
    let mut event = order_created(order_id);
    event["recipient"]["user_id"] = json!(user);
    event["channels"] = json!(["push"]);
    accept(stack, &event).await
}

/// The documents the emulator's SNS took for `endpoint`, parsed.
async fn published_to(endpoint: &str) -> Vec<Value> {
    let data = emulator_data().await;
    let endpoints = data["sns"]["PlatformEndpoint"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    endpoints
        .iter()
        .find(|candidate| candidate["arn"] == endpoint)
        .and_then(|found| found["messages"].as_object().cloned())
        .map(|messages| {
            messages
                .values()
                .map(|text| serde_json::from_str(text.as_str().unwrap()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

fn emulator() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap()
}

#[tokio::test]
async fn a_registered_device_gets_the_push_in_its_platforms_payload() {
    let stack = push_stack().await;
    let user = unique("ada");
    let token = format!("fcm:{}", uuid::Uuid::new_v4().simple());
    let registered = register(&stack, &user, &token, "fcm").await;
    assert_eq!(registered.status, 201, "{registered:?}");
    let endpoint = registered.body["endpoint_arn"].as_str().unwrap().to_owned();
    let application = stack.push_applications[1].replace(":app/", ":endpoint/");
    assert!(
        endpoint.starts_with(&application),
        "{endpoint} is in {application}"
    );

    let accepted = order_for(&stack, &user, 444).await;
    let id = notification_id(&accepted, Channel::Push);
    let delivery = stack.delivery(stack.push_delivery(&emulator()).await);
    let outcome = stack.poll(Channel::Push, 10, |e| delivery.handle(e)).await;
    assert_eq!((outcome.received, outcome.failed.len()), (1, 0));

    let sent = notification(&stack, &id).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert!(
        !sent.to_string().contains(&token),
        "the token stays out of the record: {sent}"
    );
    let published = published_to(&endpoint).await;
    assert_eq!(published.len(), 1, "{published:?}");
    let fcm: Value = serde_json::from_str(published[0]["GCM"].as_str().unwrap()).unwrap();
    assert_eq!(
        fcm["fcmV1Message"]["message"],
        json!({"notification": {"title": "Order #444", "body": "Total 99.99"}, "data": {"order_id": "444"}})
    );
    assert_eq!(devices_of(&stack, &user).await.len(), 1);
}

#[tokio::test]
async fn an_endpoint_sns_disabled_fails_as_device_gone_and_the_device_is_forgotten() {
    let stack = push_stack().await;
    let user = unique("bob");
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let registered = register(&stack, &user, &token, "apns").await;
    assert_eq!(registered.status, 201, "{registered:?}");
    let endpoint = registered.body["endpoint_arn"].as_str().unwrap().to_owned();
    // What SNS does when APNs says the token is no longer valid.
    stack
        .sns
        .set_endpoint_attributes()
        .endpoint_arn(&endpoint)
        .attributes("Enabled", "false")
        .send()
        .await
        .unwrap();

    let accepted = order_for(&stack, &user, 1).await;
    let id = notification_id(&accepted, Channel::Push);
    let delivery = stack.delivery(stack.push_delivery(&emulator()).await);
    stack.poll(Channel::Push, 10, |e| delivery.handle(e)).await;
    let failed = notification(&stack, &id).await;
    assert_eq!(
        (failed["status"].clone(), failed["reason"].clone()),
        (json!("failed"), json!("device_gone")),
        "{failed}"
    );
    assert!(
        devices_of(&stack, &user).await.is_empty(),
        "the gone device is forgotten"
    );
    assert!(published_to(&endpoint).await.is_empty());

    let next = order_for(&stack, &user, 2).await;
    let pushes: Vec<&Value> = next.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["channel"] == "push")
        .collect();
    assert_eq!(pushes.len(), 1);
    assert_eq!(
        (pushes[0]["status"].clone(), pushes[0]["reason"].clone()),
        (json!("skipped"), json!("no_address"))
    );

    // The app registers again: the endpoint is enabled, and pushes flow.
    assert_eq!(register(&stack, &user, &token, "apns").await.status, 201);
    let again = order_for(&stack, &user, 3).await;
    let id = notification_id(&again, Channel::Push);
    stack.poll(Channel::Push, 10, |e| delivery.handle(e)).await;
    assert_eq!(notification(&stack, &id).await["status"], "sent");
    assert_eq!(published_to(&endpoint).await.len(), 1);
}

#[tokio::test]
async fn an_sns_that_keeps_failing_dead_letters_the_push() {
    let failing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&failing)
        .await;
    let stack = push_stack().await;
    let user = unique("cy");
    let token = format!("fcm:{}", uuid::Uuid::new_v4().simple());
    assert_eq!(register(&stack, &user, &token, "fcm").await.status, 201);
    let id = notification_id(&order_for(&stack, &user, 1).await, Channel::Push);
    let delivery = stack.delivery(stack.push_delivery(&failing.uri()).await);
    let steps = RETRY_SCHEDULE.split(',').count();
    for round in 0..=steps {
        let outcome = stack.poll(Channel::Push, 20, |e| delivery.handle(e)).await;
        assert_eq!((outcome.received, outcome.failed.len()), (1, 0), "round {round}");
    }
    let dead = notification(&stack, &id).await;
    assert_eq!(
        (dead["status"].clone(), dead["reason"].clone()),
        (json!("dead_lettered"), json!("retries_exhausted")),
        "{dead}"
    );
    assert_eq!(outcomes(&dead).len(), steps + 1);
    assert_eq!(stack.dead_letters(Channel::Push).await.len(), 1);
    assert_eq!(
        devices_of(&stack, &user).await.len(),
        1,
        "an outage forgets no device"
    );
}
