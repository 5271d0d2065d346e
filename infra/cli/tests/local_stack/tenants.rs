//! `herald tenant … --local` against the running stack, as an operator runs it.

use super::{RunningStack, herald_local, notification_on, order_event, sms_to};
use serde_json::Value;

async fn herald_tenant(stack: &RunningStack, args: &[&str]) -> String {
    herald_local(stack, "tenant", args).await
}

/// The local stack allows SMS to the US and Canada; the operator lets the tenant `local` text Great
/// Britain too. Run first, before the SMS function has read (and kept for a minute) the tenant's list.
pub(super) async fn a_tenants_own_sms_countries_are_honoured(stack: &RunningStack) {
    let set = herald_tenant(stack, &["sms-countries", "local", "US,CA,GB"]).await;
    assert!(set.contains("CA,GB,US (the tenant's own list)"), "{set}");
    for (webhook, phone, expected) in [
        ("B007", "+447700900107", "sent"),
        ("B008", "+33612345678", "failed"),
    ] {
        let event = order_event(stack, webhook, "tenant-countries@example.com", phone, webhook);
        let response = stack.send_event(&event).await;
        assert_eq!(response.status(), 202);
        let accepted: Value = response.json().await.unwrap();
        let event_id = accepted["event_id"].as_str().unwrap();
        let event = stack.wait_for_statuses(event_id, &["sent", "failed"]).await;
        let sms = stack
            .get(&format!("/v1/notifications/{}", notification_on(&event, "sms")))
            .await;
        assert_eq!(sms["status"], expected, "{phone}: {sms:#}");
        if expected == "failed" {
            assert_eq!(sms["reason"], "destination_not_allowed", "{sms:#}");
        }
        let data = stack.emulator_data().await;
        assert_eq!(
            sms_to(&data, phone).len(),
            usize::from(expected == "sent"),
            "{phone}"
        );
    }
}
