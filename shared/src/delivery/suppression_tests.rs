//! The suppression list through the delivery loop, over the in-memory ports: an email accepted before its
//! address went on the list ends `suppressed` (`address_suppressed`) without a provider call, beside a
//! neighbour that is sent; a list that cannot be read holds the email back unsent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::Delivery;
use crate::adapters::memory::sender::{RecordingQueue, ScriptedSender};
use crate::adapters::memory::suppressions::MemorySuppressionList;
use crate::adapters::memory::templates::MemoryTemplateStore;
use crate::adapters::memory::{Fault, MemoryActivityStore};
use crate::adapters::suppression_checked::SuppressionChecked;
use crate::domain::delivery::AttemptOutcome;
use crate::domain::notification::{Envelope, Notification, NotificationStatus, reason};
use crate::domain::suppression::{Suppression, SuppressionReason};
use crate::domain::template::TemplateContent;
use crate::domain::{Channel, TenantId, Timestamp};
use crate::ports::{ActivityStore, DeliveryLedger, SuppressionList};
use crate::test_fixtures::acceptance;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use std::time::Duration;

type EmailDelivery = Delivery<
    SuppressionChecked<ScriptedSender, MemorySuppressionList>,
    MemoryActivityStore,
    MemoryTemplateStore,
    RecordingQueue,
>;

fn email_delivery(list: MemorySuppressionList) -> EmailDelivery {
    let templates = MemoryTemplateStore::default();
    let content = TemplateContent::from_json(
        &json!({"channel": "email", "subject": "Hi", "text": "Hi {{ payload.plan }}"}),
    )
    .unwrap();
    // The fixture's notifications pin version 3 of `welcome`.
    templates.insert(&TenantId::new("acme"), "welcome", 3, content);
    Delivery::new(
        SuppressionChecked::new(ScriptedSender::new(Channel::Email), list),
        MemoryActivityStore::default(),
        templates,
        RecordingQueue::default(),
        super::tests::settings(Duration::from_secs(60)),
    )
}

async fn suppressed_list(address: &str) -> MemorySuppressionList {
    let list = MemorySuppressionList::default();
    let entry = Suppression {
        address: address.to_owned(),
        reason: SuppressionReason::Complaint,
        detail: "complaint: abuse".into(),
        notification_id: None,
        created_at: Timestamp::now(),
    };
    list.suppress(&TenantId::new("acme"), &entry).await.unwrap();
    list
}

/// Accepts one email to each of `addresses` and delivers them as one batch.
async fn deliver(delivery: &EmailDelivery, addresses: &[&str]) -> Vec<Notification> {
    let mut notifications = Vec::new();
    let mut records = Vec::new();
    for (index, address) in addresses.iter().enumerate() {
        let mut accepted = acceptance("acme", None, &[Channel::Email]);
        accepted.notifications[0].to = Some((*address).to_owned());
        delivery
            .ledger
            .record_acceptance(&accepted, Duration::from_secs(30))
            .await
            .unwrap();
        let notification = accepted.notifications.remove(0);
        records.push(json!({
            "messageId": format!("m{index}"), "receiptHandle": format!("rh-{index}"),
            "body": serde_json::to_string(&Envelope::for_notification(&notification)).unwrap(),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}
        }));
        notifications.push(notification);
    }
    let batch = LambdaEvent::new(
        serde_json::from_value(json!({"Records": records})).unwrap(),
        Context::default(),
    );
    let response = delivery.handle(batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    notifications
}

#[tokio::test]
async fn an_email_to_an_address_suppressed_since_its_acceptance_is_never_sent() {
    let delivery = email_delivery(suppressed_list("ada@example.com").await);
    let notifications = deliver(&delivery, &["Ada@Example.com", "bob@example.com"]).await;
    let provider = delivery.sender.inner();

    let (ada, attempts) = delivery
        .ledger
        .notification_with_attempts(&notifications[0].tenant, &notifications[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ada.status, ada.reason.as_deref()),
        (NotificationStatus::Suppressed, Some(reason::ADDRESS_SUPPRESSED))
    );
    assert!(ada.detail.unwrap().contains("complaint"));
    let outcomes: Vec<AttemptOutcome> = attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [AttemptOutcome::Suppressed]);
    assert_eq!(provider.delivered_to("Ada@Example.com"), 0);

    let (bob, _) = delivery
        .ledger
        .notification_with_attempts(&notifications[1].tenant, &notifications[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.status, NotificationStatus::Sent);
    assert_eq!(provider.delivered_to("bob@example.com"), 1);
}

#[tokio::test]
async fn a_list_that_cannot_be_read_holds_the_email_back_unsent() {
    let list = MemorySuppressionList::default();
    list.failpoints.set("suppression", Fault::Fail, 1);
    let delivery = email_delivery(list);
    let notifications = deliver(&delivery, &["ada@example.com"]).await;
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
}
