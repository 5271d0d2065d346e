//! A push delivery over the in-memory device store and an SNS client mocked at the SDK boundary: the
//! user's device is read and published to with the template's parts; a device SNS reports disabled is
//! forgotten (the store keeps one renewed meanwhile: its own tests); a device removed since the event, or no user, is a gone device
//! without a publish.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::adapters::memory::Fault;
use crate::adapters::memory::devices::MemoryDeviceStore;
use crate::domain::device::{DeviceRegistration, DeviceToken, Platform};
use crate::domain::{EventId, NotificationId, TenantId, Timestamp};
use aws_sdk_sns::config::retry::RetryConfig;
use aws_sdk_sns::error::ErrorMetadata;
use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
use aws_sdk_sns::types::error::EndpointDisabledException;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use serde_json::json;

const ENDPOINT: &str = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald/0c5b9d0e";
const FCM: &str = "dQw4w9WgXcQ:APA91bH-x_Yz";

fn token() -> DeviceToken {
    DeviceToken::parse(Platform::Fcm, FCM).unwrap()
}

async fn delivery(rules: &[&Rule]) -> PushDelivery<MemoryDeviceStore> {
    let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, rules, |config| {
        config.retry_config(RetryConfig::disabled())
    });
    let devices = MemoryDeviceStore::default();
    register(&devices, ENDPOINT).await;
    PushDelivery::new(PushSender::new(client), devices)
}

async fn register(devices: &MemoryDeviceStore, endpoint_arn: &str) {
    let registration = DeviceRegistration {
        user_id: "ada".into(),
        token: token(),
        endpoint_arn: endpoint_arn.into(),
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    };
    devices
        .put_device(&TenantId::new("acme"), &registration)
        .await
        .unwrap();
}

fn message() -> RenderedMessage {
    RenderedMessage {
        title: Some("Order 444".into()),
        text: Some("Shipped".into()),
        data: Some(json!({"order_id": "444"})),
        ..RenderedMessage::default()
    }
}

async fn send_to(
    delivery: &PushDelivery<MemoryDeviceStore>,
    user_id: Option<&str>,
    to: &str,
) -> Result<SendReceipt, SendError> {
    let tenant = TenantId::new("acme");
    let notification_id = NotificationId::for_rule(&EventId::generate(Timestamp::now()), "push");
    let message = message();
    delivery
        .send(&Outgoing {
            tenant: &tenant,
            notification_id: &notification_id,
            user_id,
            to,
            message: &message,
        })
        .await
}

async fn devices_of_ada(delivery: &PushDelivery<MemoryDeviceStore>) -> Vec<DeviceRegistration> {
    delivery
        .devices()
        .devices_of(&TenantId::new("acme"), "ada")
        .await
        .unwrap()
}

fn disabled() -> Rule {
    mock!(aws_sdk_sns::Client::publish).then_error(|| {
        PublishError::EndpointDisabledException(
            EndpointDisabledException::builder()
                .message("Endpoint is disabled")
                .meta(ErrorMetadata::builder().code("EndpointDisabled").build())
                .build(),
        )
    })
}

#[tokio::test]
async fn the_users_device_gets_the_templates_title_body_and_data() {
    let publish = mock!(aws_sdk_sns::Client::publish)
        .match_requests(|request| {
            let document: serde_json::Value = serde_json::from_str(request.message().unwrap()).unwrap();
            let fcm: serde_json::Value = serde_json::from_str(document["GCM"].as_str().unwrap()).unwrap();
            request.target_arn() == Some(ENDPOINT)
                && fcm["fcmV1Message"]["message"]
                    == json!({"notification": {"title": "Order 444", "body": "Shipped"},
                              "data": {"order_id": "444"}})
        })
        .then_output(|| PublishOutput::builder().message_id("m-1").build());
    let delivery = delivery(&[&publish]).await;
    let receipt = send_to(&delivery, Some("ada"), &token().key()).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("m-1"));
    assert_eq!(publish.num_calls(), 1);
    assert_eq!(devices_of_ada(&delivery).await.len(), 1, "kept");
}

#[tokio::test]
async fn a_device_sns_reports_disabled_fails_as_gone_and_is_forgotten() {
    let disabled = disabled();
    let delivery = delivery(&[&disabled]).await;
    let error = send_to(&delivery, Some("ada"), &token().key()).await.unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_str()),
        (FailureKind::Recipient, DEVICE_GONE)
    );
    assert!(
        devices_of_ada(&delivery).await.is_empty(),
        "the gone device is removed"
    );
}

#[tokio::test]
async fn a_device_removed_since_the_event_or_no_user_fails_as_gone_without_a_publish() {
    let publish = mock!(aws_sdk_sns::Client::publish)
        .then_output(|| PublishOutput::builder().message_id("never").build());
    let delivery = delivery(&[&publish]).await;
    let unknown = DeviceToken::parse(Platform::Fcm, "another-phone").unwrap().key();
    for (user, to) in [
        (Some("ada"), unknown.as_str()),
        (None, token().key().as_str()),
        (Some("bob"), token().key().as_str()),
    ] {
        let error = send_to(&delivery, user, to).await.unwrap_err();
        assert_eq!(
            (error.kind, error.code.as_str()),
            (FailureKind::Recipient, DEVICE_GONE),
            "{user:?}"
        );
    }
    assert_eq!(publish.num_calls(), 0);
}

#[tokio::test]
async fn devices_that_cannot_be_read_are_retried_not_failed() {
    let publish = mock!(aws_sdk_sns::Client::publish)
        .then_output(|| PublishOutput::builder().message_id("m-2").build());
    let delivery = delivery(&[&publish]).await;
    delivery.devices().failpoints.set("devices_of", Fault::Fail, 1);
    let error = send_to(&delivery, Some("ada"), &token().key()).await.unwrap_err();
    assert!(error.kind.retryable(), "{error:?}");
    assert_eq!(publish.num_calls(), 0);
    assert!(send_to(&delivery, Some("ada"), &token().key()).await.is_ok());
}

#[test]
fn the_rendered_parts_make_the_push_and_non_string_data_is_written_as_json() {
    let push = push_message(&RenderedMessage {
        text: Some("Body".into()),
        data: Some(json!({"n": "1", "raw": 2})),
        ..RenderedMessage::default()
    });
    assert_eq!((push.title.as_str(), push.body.as_str()), ("", "Body"));
    assert_eq!(push.data["n"], "1");
    assert_eq!(push.data["raw"], "2");
}
