//! A tenant's webhook endpoint on the running stack, as the README registers it: the sink as the endpoint,
//! the demo event, a signed POST whose signature holds over the bytes the sink received.

use super::{RunningStack, order_event};
use herald::domain::Timestamp;
use herald::domain::webhook::{SigningSecret, sign};
use serde_json::{Value, json};
use std::time::Duration;

const PATH: &str = "/webhooks/e2e";

pub(super) async fn call(
    stack: &RunningStack,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", stack.front))
        .bearer_auth(super::API_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// The sink's captured POSTs to the endpoint.
async fn posts(stack: &RunningStack) -> Vec<Value> {
    let messages: Value = reqwest::get(format!("{}/messages", stack.sink))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["path"] == PATH)
        .cloned()
        .collect()
}

pub(super) async fn a_registered_endpoint_receives_a_signed_post(stack: &RunningStack) {
    let url = format!("{}{PATH}", stack.sink);
    let created = call(
        stack,
        reqwest::Method::PUT,
        "/v1/webhooks/e2e",
        Some(json!({"url": url, "event_types": ["order_created"]})),
    )
    .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = SigningSecret::parse(created["secret"].as_str().unwrap()).unwrap();
    // The functions keep a tenant's endpoints for two seconds locally, as they keep its rules.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let event = order_event(
        stack,
        "B009",
        "webhooks@example.com",
        "+15555550109",
        "e2e-webhook",
    );
    let accepted: Value = stack.send_event(&event).await.json().await.unwrap();
    let event_id = accepted["event_id"].as_str().unwrap();
    let settled = stack.wait_for_statuses(event_id, &["sent"]).await;
    let webhook = settled["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["channel"] == "webhook")
        .expect("a webhook notification for the endpoint")
        .clone();

    let received = posts(stack).await;
    assert_eq!(received.len(), 1, "{received:#?}");
    let hook = &received[0]["webhook"];
    assert_eq!(hook["id"], webhook["id"], "webhook-id is the notification id");
    let raw = hook["raw_body"].as_str().unwrap();
    let timestamp: i64 = hook["timestamp"].as_str().unwrap().parse().unwrap();
    let expected = sign(
        &[&secret],
        hook["id"].as_str().unwrap(),
        Timestamp::from_millis(timestamp * 1_000),
        raw.as_bytes(),
    );
    assert_eq!(hook["signature"], expected.signature.as_str());
    let body: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(
        (body["type"].clone(), body["data"]["order_id"].clone()),
        (json!("order_created"), json!(444))
    );

    // Deleted, so the later scenarios' orders go to the three channels alone.
    let deleted = call(stack, reqwest::Method::DELETE, "/v1/webhooks/e2e", None).await;
    assert_eq!(deleted.status(), 204);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
}
