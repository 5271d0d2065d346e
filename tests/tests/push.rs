//! Mobile push against the emulator's SNS platform applications: a device's endpoint is created once and
//! found again, the published payload is its platform's, an endpoint SNS disabled is a gone device, and a
//! registration again revives it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use aws_sdk_sns::Client;
use herald::adapters::sns_push::{DEVICE_GONE, PushPlatform, PushSender};
use herald::domain::delivery::FailureKind;
use herald::domain::device::{DeviceToken, Platform, PushMessage};
use herald_integration_tests::poller::emulator_data;
use herald_integration_tests::{emulator_config, platform_application};
use serde_json::{Value, json};
use std::collections::BTreeMap;

async fn client() -> Client {
    Client::new(&emulator_config().await)
}

/// A token no other test uses: the emulator finds endpoints by token across applications.
fn unique_token(platform: Platform) -> DeviceToken {
    let hex = |_| uuid::Uuid::new_v4().simple().to_string();
    let text = match platform {
        Platform::Apns => (0..2).map(hex).collect::<String>(),
        Platform::Fcm => format!("fcm:{}", hex(0)),
    };
    DeviceToken::parse(platform, &text).unwrap()
}

fn message() -> PushMessage {
    PushMessage {
        title: "Order #444 shipped".into(),
        body: "It is on its way.".into(),
        data: BTreeMap::from([("order_id".to_owned(), "444".to_owned())]),
    }
}

/// The documents the emulator took for the endpoint, parsed.
async fn published_to(endpoint: &str) -> Vec<Value> {
    let data = emulator_data().await;
    let endpoints = data["sns"]["PlatformEndpoint"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let found = endpoints
        .iter()
        .find(|candidate| candidate["arn"] == endpoint)
        .unwrap_or_else(|| panic!("no endpoint {endpoint} in {}", data["sns"]));
    found["messages"]
        .as_object()
        .map(|messages| {
            messages
                .values()
                .map(|text| serde_json::from_str(text.as_str().unwrap()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// A publish to the endpoint fails for good, the device gone.
async fn assert_gone(sender: &PushSender, endpoint: &str) {
    let error = sender
        .publish(endpoint, Platform::Apns, &message())
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_str()),
        (FailureKind::Recipient, DEVICE_GONE),
        "{error}"
    );
}

#[tokio::test]
async fn an_apns_device_gets_one_endpoint_its_payload_and_is_gone_once_disabled() {
    let client = client().await;
    let application = platform_application(&client, "APNS").await;
    let platform = PushPlatform::new(client.clone());
    let sender = PushSender::new(client.clone());
    let token = unique_token(Platform::Apns);

    let endpoint = platform
        .ensure_endpoint(&application, &token, "tenant-a/u-1")
        .await
        .unwrap();
    assert_eq!(
        platform
            .ensure_endpoint(&application, &token, "tenant-a/u-1")
            .await
            .unwrap(),
        endpoint,
        "the same device, the same endpoint"
    );

    let receipt = sender
        .publish(&endpoint, Platform::Apns, &message())
        .await
        .unwrap();
    assert!(receipt.provider_message_id.is_some());
    let published = published_to(&endpoint).await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["default"], "It is on its way.");
    let payload: Value = serde_json::from_str(published[0]["APNS"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload,
        json!({"aps": {"alert": {"title": "Order #444 shipped", "body": "It is on its way."}}, "order_id": "444"})
    );

    // What SNS does when APNs answers that the token is no longer valid.
    client
        .set_endpoint_attributes()
        .endpoint_arn(&endpoint)
        .attributes("Enabled", "false")
        .send()
        .await
        .unwrap();
    assert_gone(&sender, &endpoint).await;
    assert_eq!(published_to(&endpoint).await.len(), 1);

    // The app registered the token again: the same endpoint, enabled, with the new user data.
    assert_eq!(
        platform
            .ensure_endpoint(&application, &token, "tenant-a/u-2")
            .await
            .unwrap(),
        endpoint
    );
    let attributes = client
        .get_endpoint_attributes()
        .endpoint_arn(&endpoint)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    assert_eq!(
        attributes.get("CustomUserData").map(String::as_str),
        Some("tenant-a/u-2")
    );
    sender
        .publish(&endpoint, Platform::Apns, &message())
        .await
        .unwrap();
    assert_eq!(published_to(&endpoint).await.len(), 2);
}

#[tokio::test]
async fn an_fcm_device_gets_an_fcm_v1_message() {
    let client = client().await;
    let application = platform_application(&client, "GCM").await;
    let token = unique_token(Platform::Fcm);

    let endpoint = PushPlatform::new(client.clone())
        .ensure_endpoint(&application, &token, "tenant-a/u-1")
        .await
        .unwrap();
    PushSender::new(client)
        .publish(&endpoint, Platform::Fcm, &message())
        .await
        .unwrap();

    let published = published_to(&endpoint).await;
    assert_eq!(published.len(), 1, "{published:?}");
    let payload: Value = serde_json::from_str(published[0]["GCM"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload,
        json!({"fcmV1Message": {"message": {
            "notification": {"title": "Order #444 shipped", "body": "It is on its way."},
            "data": {"order_id": "444"},
        }}})
    );
}

#[tokio::test]
async fn a_deleted_endpoint_is_a_gone_device() {
    let client = client().await;
    let application = platform_application(&client, "APNS").await;
    let endpoint = PushPlatform::new(client.clone())
        .ensure_endpoint(&application, &unique_token(Platform::Apns), "tenant-a/u-1")
        .await
        .unwrap();
    client
        .delete_endpoint()
        .endpoint_arn(&endpoint)
        .send()
        .await
        .unwrap();

    assert_gone(&PushSender::new(client), &endpoint).await;
}
