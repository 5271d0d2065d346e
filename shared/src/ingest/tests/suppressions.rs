//! Emails to an address on the tenant's suppression list: recorded `suppressed` (`address_suppressed`),
//! never queued, whatever the event type; the other channels and other tenants unaffected; a failed read
//! refuses the event rather than send to a suppressed address.

use super::*;
use crate::domain::notification::Notification;
use crate::domain::suppression::{Suppression, SuppressionReason};
use crate::ports::SuppressionList;

async fn suppress(ingest: &MemoryIngest, tenant: &TenantId, address: &str) {
    let entry = Suppression {
        address: address.to_owned(),
        reason: SuppressionReason::Bounce,
        detail: "Permanent: General".into(),
        notification_id: None,
        created_at: Timestamp::now(),
    };
    assert!(ingest.catalog.store().suppress(tenant, &entry).await.unwrap());
}

async fn stored_email(ingest: &MemoryIngest, answer: &Answer) -> Notification {
    let ids: Vec<NotificationId> = answer.notifications().into_values().collect();
    let stored = ingest.activity().notifications(&acme(), &ids).await.unwrap();
    stored.into_iter().find(|n| n.channel == Channel::Email).unwrap()
}

#[tokio::test]
async fn an_email_to_a_suppressed_address_is_suppressed_and_never_queued() {
    let metrics = record_metrics();
    let ingest = ingest().await;
    // Stored as the list keys it; the event's address differs in case only.
    suppress(&ingest, &acme(), "Ada@Example.com").await;
    let answer = call(&ingest, post(&order(1), None)).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(
        copies(&ingest, &answer),
        BTreeMap::from([(Channel::Email, 0), (Channel::Sms, 1), (Channel::Slack, 1)]),
        "only the email is held back"
    );
    let email = stored_email(&ingest, &answer).await;
    assert_eq!(email.status, NotificationStatus::Suppressed);
    assert_eq!(email.reason.as_deref(), Some("address_suppressed"));
    assert!(
        email
            .detail
            .as_deref()
            .is_some_and(|detail| detail.contains("DELETE /v1/suppressions/ada@example.com")),
        "{email:?}"
    );
    let counted = [
        ("Channel", "email"),
        ("Outcome", "suppressed"),
        ("Reason", "address_suppressed"),
    ];
    assert_eq!(metrics.total("NotificationFailures", &counted), 1);
}

#[tokio::test]
async fn critical_event_types_are_held_back_too_and_other_tenants_are_not() {
    let ingest = ingest_with_event_type(json!({"critical": true})).await;
    suppress(&ingest, &TenantId::new("globex"), "ada@example.com").await;
    let answer = call(&ingest, post(&order(1), None)).await;
    assert_eq!(
        stored_email(&ingest, &answer).await.status,
        NotificationStatus::Queued
    );

    suppress(&ingest, &acme(), "ada@example.com").await;
    let answer = call(&ingest, post(&order(2), None)).await;
    let email = stored_email(&ingest, &answer).await;
    assert_eq!(
        (email.status, email.reason.as_deref()),
        (NotificationStatus::Suppressed, Some("address_suppressed")),
        "a critical event passes opt-outs, not a bounced address"
    );
}

#[tokio::test]
async fn an_address_no_longer_suppressed_is_sent_to_again() {
    let ingest = ingest().await;
    suppress(&ingest, &acme(), "ada@example.com").await;
    assert!(
        ingest
            .catalog
            .store()
            .unsuppress(&acme(), "ada@example.com")
            .await
            .unwrap()
    );
    let answer = call(&ingest, post(&order(1), None)).await;
    assert_eq!(
        stored_email(&ingest, &answer).await.status,
        NotificationStatus::Queued
    );
}

#[tokio::test]
async fn a_failed_read_of_the_list_refuses_the_event_with_503_and_records_nothing() {
    let ingest = ingest().await;
    ingest
        .catalog
        .store()
        .suppressions
        .failpoints
        .set("suppression", Fault::Fail, 1);
    let refused = call(&ingest, post(&order(1), Some("k1"))).await;
    assert_eq!(
        (refused.status, refused.problem_code()),
        (503, "service_unavailable")
    );
    nothing_recorded(&ingest, "after a failed suppression read");
    let retried = call(&ingest, post(&order(1), Some("k1"))).await;
    assert_eq!(retried.status, 202);
}
