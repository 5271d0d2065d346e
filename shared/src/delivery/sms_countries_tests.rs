//! The SMS country allow-list through the delivery loop, over the in-memory ports: a number outside the
//! tenant's list (its own, else the deployment's) ends `failed` (`destination_not_allowed`) without a
//! provider call, beside neighbours that are sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::Delivery;
use crate::adapters::country_limited::CountryLimited;
use crate::adapters::memory::sender::{RecordingQueue, ScriptedSender};
use crate::adapters::memory::templates::MemoryTemplateStore;
use crate::adapters::memory::tenants::MemoryTenantSettingsStore;
use crate::adapters::memory::{Fault, MemoryActivityStore};
use crate::config::DeliverySettings;
use crate::domain::address::CountryAllowList;
use crate::domain::notification::{Envelope, Notification, NotificationStatus, reason};
use crate::domain::template::TemplateContent;
use crate::domain::{Channel, TenantId, Timestamp};
use crate::ports::{ActivityStore, DeliveryLedger, TenantSettingsStore};
use crate::test_fixtures::acceptance;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use std::time::Duration;

type SmsDelivery = Delivery<
    CountryLimited<ScriptedSender, MemoryTenantSettingsStore>,
    MemoryActivityStore,
    MemoryTemplateStore,
    RecordingQueue,
>;

const US: &str = "+15555550100";
const GB: &str = "+447700900123";
/// Jamaica shares the US's +1.
const JM: &str = "+18765550100";
/// Toronto.
const CA: &str = "+14165550100";

/// The SMS loop with the deployment's list `US,CA` and `tenants` for tenants' own lists.
fn sms_delivery(tenants: MemoryTenantSettingsStore) -> SmsDelivery {
    let templates = MemoryTemplateStore::default();
    let content =
        TemplateContent::from_json(&json!({"channel": "sms", "text": "Hi {{ payload.plan }}"})).unwrap();
    // The fixture's notifications pin version 3 of `welcome`.
    for tenant in ["acme", "globex"] {
        templates.insert(&TenantId::new(tenant), "welcome", 3, content.clone());
    }
    let sender = CountryLimited::new(
        ScriptedSender::new(Channel::Sms),
        CountryAllowList::parse("US,CA").unwrap(),
        tenants,
    );
    Delivery::new(
        sender,
        MemoryActivityStore::default(),
        templates,
        RecordingQueue::default(),
        DeliverySettings {
            queue_url: "memory://sms".into(),
            ..super::tests::settings(Duration::from_secs(60))
        },
    )
}

/// Accepts one SMS to each of `numbers` for `tenant` and delivers them as one batch.
async fn deliver(delivery: &SmsDelivery, tenant: &str, numbers: &[&str]) -> Vec<Notification> {
    let mut notifications = Vec::new();
    let mut records = Vec::new();
    for (index, number) in numbers.iter().enumerate() {
        let mut accepted = acceptance(tenant, None, &[Channel::Sms]);
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
    notifications
}

/// Each number of `notifications` was sent once if `allowed` says so, else failed unsent.
async fn assert_allowed_only(
    delivery: &SmsDelivery,
    notifications: &[Notification],
    allowed: impl Fn(&str) -> bool,
) {
    let provider = delivery.sender.inner();
    for notification in notifications {
        let number = notification.to.as_deref().unwrap();
        let (stored, attempts) = delivery
            .ledger
            .notification_with_attempts(&notification.tenant, &notification.id)
            .await
            .unwrap()
            .unwrap();
        if allowed(number) {
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
            assert_eq!(provider.delivered_to(number), 0, "{number} reached the provider");
        }
    }
}

#[tokio::test]
async fn a_number_outside_the_allowed_countries_fails_without_a_provider_call() {
    let delivery = sms_delivery(MemoryTenantSettingsStore::default());
    let notifications = deliver(&delivery, "acme", &[US, GB, JM, CA]).await;
    // The US and Canada are allowed; Great Britain is not, nor Jamaica, though it shares +1.
    assert_allowed_only(&delivery, &notifications, |number| [US, CA].contains(&number)).await;
}

#[tokio::test]
async fn a_tenants_own_list_replaces_the_deployments_for_that_tenant_alone() {
    let tenants = MemoryTenantSettingsStore::default();
    let gb_only = CountryAllowList::parse("GB").unwrap();
    tenants
        .set_sms_allowed_countries(&TenantId::new("acme"), Some(&gb_only), Timestamp::now())
        .await
        .unwrap();
    let delivery = sms_delivery(tenants);

    let acme = deliver(&delivery, "acme", &[US, GB]).await;
    assert_allowed_only(&delivery, &acme, |number| number == GB).await;
    // Other numbers, so the provider's count per number speaks of this tenant's sends alone.
    let (us, gb) = ("+15555550111", "+447700900456");
    let globex = deliver(&delivery, "globex", &[us, gb]).await;
    assert_allowed_only(&delivery, &globex, |number| number == us).await;

    // Read once per tenant, then kept: not a read per message.
    let reads = delivery.sender.tenants().reads();
    assert_eq!(reads, 2, "one read for acme, one for globex");
    deliver(&delivery, "acme", &[GB, US]).await;
    assert_eq!(delivery.sender.tenants().reads(), reads);
}

#[tokio::test]
async fn settings_that_cannot_be_read_hold_the_notification_back_unsent_not_failed() {
    let tenants = MemoryTenantSettingsStore::default();
    tenants.failpoints.set("tenant_settings", Fault::Fail, 1);
    let delivery = sms_delivery(tenants);

    let notifications = deliver(&delivery, "acme", &[US]).await;
    let (stored, _) = delivery
        .ledger
        .notification_with_attempts(&notifications[0].tenant, &notifications[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, NotificationStatus::Retrying, "{stored:?}");
    assert!(
        delivery.sender.inner().calls().is_empty(),
        "nothing sent unchecked"
    );
    assert_eq!(
        delivery.queue.take_sent_later().len(),
        1,
        "its retry is on the queue"
    );
}
