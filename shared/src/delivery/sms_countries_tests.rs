//! The SMS country allow-list through the delivery loop, over the in-memory ports: a number outside it
//! ends `failed` (`destination_not_allowed`) without a provider call, beside neighbours that are sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::Delivery;
use crate::adapters::country_limited::CountryLimited;
use crate::adapters::memory::MemoryActivityStore;
use crate::adapters::memory::sender::{RecordingQueue, ScriptedSender};
use crate::adapters::memory::templates::MemoryTemplateStore;
use crate::config::DeliverySettings;
use crate::domain::address::CountryAllowList;
use crate::domain::notification::{Envelope, NotificationStatus, reason};
use crate::domain::template::TemplateContent;
use crate::domain::{Channel, TenantId};
use crate::ports::{ActivityStore, DeliveryLedger};
use crate::test_fixtures::acceptance;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_number_outside_the_allowed_countries_fails_without_a_provider_call() {
    let templates = MemoryTemplateStore::default();
    let content =
        TemplateContent::from_json(&json!({"channel": "sms", "text": "Hi {{ payload.plan }}"})).unwrap();
    // The fixture's notifications pin version 3 of `welcome`.
    templates.insert(&TenantId::new("acme"), "welcome", 3, content);
    let sender = CountryLimited::new(
        ScriptedSender::new(Channel::Sms),
        CountryAllowList::parse("US,CA").unwrap(),
    );
    let delivery = Delivery::new(
        sender,
        MemoryActivityStore::default(),
        templates,
        RecordingQueue::default(),
        DeliverySettings {
            queue_url: "memory://sms".into(),
            ..super::tests::settings(Duration::from_secs(60))
        },
    );
    // The US and Canada are allowed; Great Britain is not, nor Jamaica, though it shares +1.
    let numbers = ["+15555550100", "+447700900123", "+18765550100", "+14165550100"];
    let mut notifications = Vec::new();
    let mut records = Vec::new();
    for (index, number) in numbers.iter().enumerate() {
        let mut accepted = acceptance("acme", None, &[Channel::Sms]);
        accepted.notifications[0].to = Some((*number).to_owned());
        let notification = &accepted.notifications[0];
        delivery
            .ledger
            .record_acceptance(&accepted, Duration::from_secs(30))
            .await
            .unwrap();
        let envelope = Envelope::for_notification(notification);
        records.push(json!({
            "messageId": format!("m{index}"), "receiptHandle": format!("rh-{index}"),
            "body": serde_json::to_string(&envelope).unwrap(),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}
        }));
        notifications.push(notification.clone());
    }
    let batch = LambdaEvent::new(
        serde_json::from_value(json!({"Records": records})).unwrap(),
        Context::default(),
    );
    let response = delivery.handle(batch).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "every message is settled and acknowledged"
    );

    let provider = delivery.sender.inner();
    for (number, notification) in numbers.iter().zip(&notifications) {
        let (stored, attempts) = delivery
            .ledger
            .notification_with_attempts(&notification.tenant, &notification.id)
            .await
            .unwrap()
            .unwrap();
        let allowed = number.starts_with("+1555") || number.starts_with("+1416");
        if allowed {
            assert_eq!(stored.status, NotificationStatus::Sent, "{number}");
            assert_eq!(provider.delivered_to(number), 1, "{number}");
        } else {
            assert_eq!(stored.status, NotificationStatus::Failed, "{number}");
            assert_eq!(
                stored.reason.as_deref(),
                Some(reason::DESTINATION_NOT_ALLOWED),
                "{number}"
            );
            assert!(
                stored.detail.as_deref().unwrap_or("").contains("not allowed"),
                "{number}"
            );
            assert_eq!(attempts.len(), 1, "{number}: one attempt, recorded failed");
            assert!(
                provider.calls().iter().all(|call| call.to != *number),
                "{number} reached the provider"
            );
        }
    }
}
