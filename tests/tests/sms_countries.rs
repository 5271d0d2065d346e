//! A tenant's own SMS countries, set by the operator in the config table, decide where its texts may go:
//! through the real config table, SNS and the delivery loop, as the SMS function wires them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::similar_names)] // test code: a panic is a failed test

use herald::adapters::country_limited::CountryLimited;
use herald::domain::address::CountryAllowList;
use herald::domain::{Channel, Timestamp};
use herald::ports::TenantSettingsStore;
use herald_integration_tests::channels::unique_phone;
use herald_integration_tests::delivery_fixture::{
    accept, notification, notification_id, seeded_stack, sent_sms, slack_that_accepts,
};
use herald_integration_tests::poller::emulator_data;
use serde_json::json;

/// A British mobile number (Ofcom's drama range) no other test uses.
fn unique_british_phone() -> String {
    let digits: String = uuid::Uuid::now_v7()
        .as_u128()
        .to_string()
        .chars()
        .rev()
        .take(3)
        .collect();
    format!("+447700900{digits}")
}

#[tokio::test]
async fn a_tenants_own_countries_replace_the_deployments() {
    let slack = slack_that_accepts().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["sms"]);
    let store = stack.config_store();
    let british_only = CountryAllowList::parse("GB").unwrap();
    store
        .set_sms_allowed_countries(&stack.tenant, Some(&british_only), Timestamp::now())
        .await
        .unwrap();
    let settings = store.tenant_settings(&stack.tenant).await.unwrap().unwrap();
    assert_eq!(settings.sms_allowed_countries, Some(british_only));

    let (british, american) = (unique_british_phone(), unique_phone());
    let mut ids = Vec::new();
    for phone in [&british, &american] {
        event["recipient"]["phone"] = json!(phone);
        ids.push(notification_id(&accept(&stack, &event).await, Channel::Sms));
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    // The deployment allows the US and Canada; this tenant, Great Britain alone.
    let sender = CountryLimited::new(
        stack.sms_sender(&endpoint).await,
        CountryAllowList::parse("US,CA").unwrap(),
        stack.config_store(),
    );
    let sms = stack.delivery(sender);
    let outcome = stack.poll(Channel::Sms, 1, |e| sms.handle(e)).await;
    assert_eq!((outcome.received, outcome.failed.len()), (2, 0));

    let data = emulator_data().await;
    assert_eq!(sent_sms(&data, &british).len(), 1);
    assert_eq!(sent_sms(&data, &american).len(), 0);
    let sent = notification(&stack, &ids[0]).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let refused = notification(&stack, &ids[1]).await;
    assert_eq!(
        (&refused["status"], &refused["reason"]),
        (&json!("failed"), &json!("destination_not_allowed")),
        "{refused}"
    );
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("allowed countries: GB"),
        "{refused}"
    );

    // Back to the deployment's list: the setting is removed, not left behind empty.
    store
        .set_sms_allowed_countries(&stack.tenant, None, Timestamp::now())
        .await
        .unwrap();
    let settings = store.tenant_settings(&stack.tenant).await.unwrap().unwrap();
    assert_eq!(settings.sms_allowed_countries, None);
    assert!(settings.updated_at.is_some());
}
