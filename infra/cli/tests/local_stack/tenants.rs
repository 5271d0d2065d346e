//! `herald tenant … --local` against the running stack, as an operator runs it.

use super::{RunningStack, notification_on, order_event, project_root, sms_to};
use serde_json::Value;
use tokio::process::Command;

/// `herald tenant`, run as an operator runs it against the local stack.
async fn herald_tenant(stack: &RunningStack, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("tenant")
        .args(args)
        .arg("--local")
        .current_dir(project_root())
        .env("HERALD_EMULATOR_PORT", stack.ports[1].to_string())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "herald tenant {args:?} failed\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
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
