//! Events that name a stored user: contact fields filled from the profile, opt-outs recorded
//! `suppressed` and never queued, critical event types past every opt-out, the user read once per event.

use super::*;
use crate::domain::user::{Preferences, UserProfile};
use crate::ports::UserStore;

const USER: &str = "u-42";

async fn store_user(ingest: &MemoryIngest, profile: Option<Value>, preferences: Option<Value>) {
    let users = ingest.catalog.store();
    let now = Timestamp::now();
    if let Some(profile) = profile {
        let policy = crate::domain::address::WebhookPolicy::new(["hooks.slack.com".to_owned()], false);
        let profile = UserProfile::parse(&profile, &policy).unwrap();
        users.put_profile(&acme(), USER, &profile, now).await.unwrap();
    }
    if let Some(preferences) = preferences {
        let preferences = Preferences::parse(&preferences).unwrap();
        users
            .put_preferences(&acme(), USER, &preferences, now)
            .await
            .unwrap();
    }
}

/// `order_created` for the stored user, with `recipient` as the event gives it.
fn order_for(recipient: &Value) -> Value {
    json!({"event": "order_created", "recipient": recipient, "payload": {"order_id": 7}})
}

fn statuses(answer: &Answer) -> BTreeMap<String, String> {
    answer.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["channel"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn missing_contact_fields_come_from_the_user_and_the_events_own_win() {
    let ingest = ingest().await;
    store_user(
        &ingest,
        Some(json!({"email": "stored@example.com", "phone": "+15555550100", "locale": "en"})),
        None,
    )
    .await;
    let answer = call(
        &ingest,
        post(
            &order_for(&json!({"user_id": USER, "email": "given@example.com"})),
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(
        statuses(&answer),
        expected(&[("email", "queued"), ("sms", "queued"), ("slack", "skipped")])
    );
    let event = ingest
        .activity()
        .event(&acme(), &answer.event_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.recipient.email.as_deref(), Some("given@example.com"));
    assert_eq!(event.recipient.phone.as_deref(), Some("+15555550100"));
    let ids: Vec<NotificationId> = answer.notifications().into_values().collect();
    let stored = ingest.activity().notifications(&acme(), &ids).await.unwrap();
    let sms = stored.iter().find(|n| n.channel == Channel::Sms).unwrap();
    assert_eq!(sms.to.as_deref(), Some("+15555550100"));
    assert_eq!(copies(&ingest, &answer)[&Channel::Sms], 1);
}

#[tokio::test]
async fn an_opted_out_channel_is_suppressed_and_never_queued() {
    let metrics = record_metrics();
    let ingest = ingest().await;
    store_user(&ingest, None, Some(json!({"channels": {"sms": false}}))).await;
    let answer = call(&ingest, post(&order(1), None)).await;
    assert_eq!(answer.status, 202);
    assert_eq!(
        statuses(&answer),
        expected(&[("email", "queued"), ("sms", "queued"), ("slack", "queued")]),
        "an event without user_id has no preferences"
    );

    let mut named = order(2);
    named["recipient"]["user_id"] = json!(USER);
    let answer = call(&ingest, post(&named, None)).await;
    assert_eq!(answer.status, 202);
    assert_eq!(
        statuses(&answer),
        expected(&[("email", "queued"), ("sms", "suppressed"), ("slack", "queued")])
    );
    assert_eq!(
        copies(&ingest, &answer),
        BTreeMap::from([(Channel::Email, 1), (Channel::Sms, 0), (Channel::Slack, 1)])
    );
    let ids: Vec<NotificationId> = answer.notifications().into_values().collect();
    let stored = ingest.activity().notifications(&acme(), &ids).await.unwrap();
    let sms = stored.iter().find(|n| n.channel == Channel::Sms).unwrap();
    assert_eq!(sms.status, NotificationStatus::Suppressed);
    assert_eq!(sms.reason.as_deref(), Some("opted_out"));
    let counted = [
        ("Channel", "sms"),
        ("Outcome", "suppressed"),
        ("Reason", "opted_out"),
    ];
    assert_eq!(
        metrics.total("NotificationFailures", &counted),
        1,
        "counted by its own reason, not `other`"
    );
}

#[tokio::test]
async fn a_category_opt_out_applies_to_its_event_types_and_the_event_type_setting_wins() {
    let ingest = ingest_with_event_type(json!({"category": "orders"})).await;
    store_user(
        &ingest,
        None,
        Some(json!({"categories": {"orders": {"email": false, "slack": false}},
                    "event_types": {"order_created": {"slack": true}}})),
    )
    .await;
    let mut named = order(3);
    named["recipient"]["user_id"] = json!(USER);
    let answer = call(&ingest, post(&named, None)).await;
    assert_eq!(
        statuses(&answer),
        expected(&[("email", "suppressed"), ("sms", "queued"), ("slack", "queued")])
    );
}

#[tokio::test]
async fn a_critical_event_type_ignores_opt_outs() {
    let ingest = ingest_with_event_type(json!({"critical": true})).await;
    store_user(
        &ingest,
        None,
        Some(json!({"channels": {"email": false, "sms": false, "slack": false}})),
    )
    .await;
    let mut named = order(4);
    named["recipient"]["user_id"] = json!(USER);
    let answer = call(&ingest, post(&named, None)).await;
    assert_eq!(
        statuses(&answer),
        expected(&[("email", "queued"), ("sms", "queued"), ("slack", "queued")])
    );
}

#[tokio::test]
async fn the_user_is_read_once_per_event_whatever_the_number_of_rules() {
    let ingest = ingest().await;
    store_user(&ingest, None, Some(json!({"channels": {"sms": false}}))).await;
    let mut named = order(5);
    named["recipient"]["user_id"] = json!(USER);
    let before = ingest.catalog.store().users.reads();
    call(&ingest, post(&named, None)).await;
    assert_eq!(ingest.catalog.store().users.reads() - before, 1);
}

#[tokio::test]
async fn a_replay_stays_a_replay_after_the_user_changed() {
    let ingest = ingest().await;
    store_user(&ingest, Some(json!({"phone": "+15555550100"})), None).await;
    let body = order_for(&json!({"user_id": USER, "email": "ada@example.com"}));
    let first = call(&ingest, post(&body, Some("k-1"))).await;
    assert_eq!(first.status, 202);
    store_user(
        &ingest,
        Some(json!({"phone": "+15555550199"})),
        Some(json!({"channels": {"sms": false}})),
    )
    .await;
    let again = call(&ingest, post(&body, Some("k-1"))).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
}

#[tokio::test]
async fn a_user_store_that_cannot_be_read_is_a_503_and_records_nothing() {
    let ingest = ingest().await;
    ingest
        .catalog
        .store()
        .users
        .failpoints
        .set("user", Fault::Fail, 1);
    let mut named = order(6);
    named["recipient"]["user_id"] = json!(USER);
    let answer = call(&ingest, post(&named, Some("k-2"))).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(copies_total(&ingest), 0);
    let retried = call(&ingest, post(&named, Some("k-2"))).await;
    assert_eq!(
        retried.status, 202,
        "a retry with the same key is accepted once the store answers"
    );
}

fn copies_total(ingest: &MemoryIngest) -> usize {
    Channel::ALL
        .into_iter()
        .map(|channel| ingest.outbox.queue().enqueued(channel).len())
        .sum()
}

/// The email notification's pinned template locale, as stored.
async fn email_locale(ingest: &MemoryIngest, answer: &Answer) -> String {
    let id = answer.notifications()[&Channel::Email].clone();
    let stored = ingest.activity().notifications(&acme(), &[id]).await.unwrap();
    stored[0].pinned.as_ref().unwrap().locale.clone()
}

#[tokio::test]
async fn the_template_locale_is_the_events_else_the_users_else_the_templates_default() {
    let ingest = ingest().await;
    let french = TemplateContent::from_json(&json!({"channel": "email", "locale": "fr",
        "subject": "Commande {{ payload.order_id }}", "text": "Merci"}))
    .unwrap();
    ingest
        .catalog
        .store()
        .put_template(&acme(), "order-email", &french, Timestamp::now())
        .await
        .unwrap();
    store_user(
        &ingest,
        Some(json!({"email": "ada@example.com", "locale": "fr-CA"})),
        None,
    )
    .await;

    let from_user = call(&ingest, post(&order_for(&json!({"user_id": USER})), None)).await;
    assert_eq!(
        email_locale(&ingest, &from_user).await,
        "fr",
        "the user's fr-CA, by its language"
    );
    let from_event = call(
        &ingest,
        post(&order_for(&json!({"user_id": USER, "locale": "en"})), None),
    )
    .await;
    assert_eq!(
        email_locale(&ingest, &from_event).await,
        "en",
        "the event's own wins"
    );

    store_user(
        &ingest,
        Some(json!({"email": "ada@example.com", "locale": "de"})),
        None,
    )
    .await;
    let fallback = call(&ingest, post(&order_for(&json!({"user_id": USER})), None)).await;
    assert_eq!(
        email_locale(&ingest, &fallback).await,
        "en",
        "no de version: the template's default"
    );
}
