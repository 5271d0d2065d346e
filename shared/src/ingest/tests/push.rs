//! Push rules: one notification per device the user registered, addressed to the token's key (never the
//! token), each with an id of its own; `skipped` (`no_address`) without a user or a device; devices read
//! for each event (never cached), and a failed read refuses the event.

use super::*;
use crate::domain::device::{DeviceRegistration, DeviceToken, Platform};
use crate::domain::notification::{Notification, reason};
use crate::ports::DeviceStore;

const FCM: &str = "dQw4w9WgXcQ:APA91bH-x_Yz";
const APNS: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The seeded ingest with a push rule for `order_created` as well.
async fn ingest_with_push() -> MemoryIngest {
    let ingest = ingest().await;
    let store = ingest.catalog.store();
    let now = Timestamp::now();
    let content = json!({"channel": "push", "title": "Order {{ payload.order_id }}", "text": "Shipped",
                         "data": {"order_id": "{{ payload.order_id }}"}});
    let content = TemplateContent::from_json(&content).unwrap();
    store
        .put_template(&acme(), "order-push", &content, now)
        .await
        .unwrap();
    let rule = json!({"event": "order_created", "channel": "push", "template": "order-push"});
    let rule = RuleSpec::from_json(&rule).unwrap();
    store.put_rule(&acme(), "order-push", &rule, now).await.unwrap();
    ingest
}

async fn register(ingest: &MemoryIngest, tenant: &TenantId, user: &str, platform: Platform, token: &str) {
    let token = DeviceToken::parse(platform, token).unwrap();
    let registration = DeviceRegistration {
        user_id: user.to_owned(),
        endpoint_arn: format!(
            "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald/{}",
            token.key()
        ),
        token,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    };
    ingest
        .catalog
        .store()
        .put_device(tenant, &registration)
        .await
        .unwrap();
}

fn order_for(user: Option<&str>, order_id: u64) -> Value {
    let mut body = order(order_id);
    if let Some(user) = user {
        body["recipient"]["user_id"] = json!(user);
    }
    body
}

/// The push notifications an answer made, as stored.
async fn pushes_of(ingest: &MemoryIngest, answer: &Answer) -> Vec<Notification> {
    let ids: Vec<NotificationId> = answer.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| NotificationId::parse(n["id"].as_str().unwrap()).unwrap())
        .collect();
    let stored = ingest.activity().notifications(&acme(), &ids).await.unwrap();
    stored
        .into_iter()
        .filter(|n| n.channel == Channel::Push)
        .collect()
}

#[tokio::test]
async fn each_device_of_the_user_gets_a_notification_addressed_by_its_tokens_key() {
    let ingest = ingest_with_push().await;
    register(&ingest, &acme(), "ada", Platform::Fcm, FCM).await;
    register(&ingest, &acme(), "ada", Platform::Apns, APNS).await;
    register(&ingest, &acme(), "bob", Platform::Fcm, "bobs-phone").await;
    register(
        &ingest,
        &TenantId::new("globex"),
        "ada",
        Platform::Fcm,
        "not-acmes-ada",
    )
    .await;

    let answer = call(&ingest, post(&order_for(Some("ada"), 1), None)).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let pushes = pushes_of(&ingest, &answer).await;
    let mut addressed: Vec<String> = pushes.iter().map(|n| n.to.clone().unwrap()).collect();
    addressed.sort();
    let mut expected = vec![
        DeviceToken::parse(Platform::Fcm, FCM).unwrap().key(),
        DeviceToken::parse(Platform::Apns, APNS).unwrap().key(),
    ];
    expected.sort();
    assert_eq!(addressed, expected, "ada's two devices, by key");
    assert!(
        pushes
            .iter()
            .all(|n| n.status == NotificationStatus::Queued && n.user_id.as_deref() == Some("ada"))
    );
    assert_ne!(pushes[0].id, pushes[1].id);
    assert!(
        !answer.body.to_string().contains(FCM) && !answer.body.to_string().contains(APNS),
        "tokens stay out of answers"
    );
    let queued = ingest.outbox.queue().enqueued(Channel::Push);
    assert_eq!(queued.len(), 2, "each on the push queue once");

    // The same request again is the same notifications (ids derived from the event, rule and device).
    let keyed = call(&ingest, post(&order_for(Some("ada"), 2), Some("k"))).await;
    let replayed = call(&ingest, post(&order_for(Some("ada"), 2), Some("k"))).await;
    let ids = |notifications: Vec<Notification>| notifications.into_iter().map(|n| n.id).collect::<Vec<_>>();
    assert_eq!(
        ids(pushes_of(&ingest, &keyed).await),
        ids(pushes_of(&ingest, &replayed).await)
    );
}

#[tokio::test]
async fn without_a_user_or_a_device_the_push_is_skipped_and_a_new_device_gets_the_next_event() {
    let ingest = ingest_with_push().await;
    for user in [None, Some("ada")] {
        let answer = call(&ingest, post(&order_for(user, 1), None)).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        let pushes = pushes_of(&ingest, &answer).await;
        assert_eq!(pushes.len(), 1, "{user:?}");
        assert_eq!(pushes[0].status, NotificationStatus::Skipped);
        assert_eq!(pushes[0].reason.as_deref(), Some(reason::NO_ADDRESS));
        assert!(pushes[0].detail.as_deref().unwrap().contains("registered device"));
    }
    assert!(ingest.outbox.queue().enqueued(Channel::Push).is_empty());

    register(&ingest, &acme(), "ada", Platform::Fcm, FCM).await;
    let answer = call(&ingest, post(&order_for(Some("ada"), 2), None)).await;
    let pushes = pushes_of(&ingest, &answer).await;
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].status, NotificationStatus::Queued);
}

#[tokio::test]
async fn devices_that_cannot_be_read_refuse_the_event_with_503_and_record_nothing() {
    let ingest = ingest_with_push().await;
    register(&ingest, &acme(), "ada", Platform::Fcm, FCM).await;
    ingest
        .catalog
        .store()
        .devices
        .failpoints
        .set("devices_of", Fault::Fail, 1);
    let refused = call(&ingest, post(&order_for(Some("ada"), 1), Some("k1"))).await;
    assert_eq!(
        (refused.status, refused.problem_code()),
        (503, "service_unavailable")
    );
    nothing_recorded(&ingest, "after a failed device read");
    let retried = call(&ingest, post(&order_for(Some("ada"), 1), Some("k1"))).await;
    assert_eq!(retried.status, 202);
    assert_eq!(ingest.outbox.queue().enqueued(Channel::Push).len(), 1);
}
