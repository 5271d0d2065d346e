//! A user's phone on the running stack, as the README registers it: a device through the API, the demo
//! event for its user, and the push in the emulator's SNS, on the device's endpoint, in FCM's payload.

use super::webhooks::call;
use super::{RunningStack, order_event};
use serde_json::{Value, json};

const USER: &str = "e2e-push-user";
const TOKEN: &str = "e2e-phone-1";

pub(super) async fn a_registered_device_gets_the_push_in_the_emulator(stack: &RunningStack) {
    let registered = call(
        stack,
        reqwest::Method::PUT,
        &format!("/v1/users/{USER}/devices/{TOKEN}"),
        Some(json!({"platform": "fcm"})),
    )
    .await;
    assert_eq!(registered.status(), 201);
    let registered: Value = registered.json().await.unwrap();
    let endpoint = registered["endpoint_arn"].as_str().unwrap().to_owned();
    assert!(
        endpoint.contains(":endpoint/GCM/herald-local/"),
        "in the local FCM application: {endpoint}"
    );

    let mut event = order_event(stack, "B010", "push@example.com", "+15555550110", "e2e-push");
    event["recipient"]["user_id"] = json!(USER);
    event["channels"] = json!(["push"]);
    let accepted: Value = stack.send_event(&event).await.json().await.unwrap();
    let event_id = accepted["event_id"].as_str().unwrap();
    let settled = stack.wait_for_statuses(event_id, &["sent"]).await;
    assert_eq!(
        settled["notifications"].as_array().unwrap().len(),
        1,
        "{settled:#}"
    );

    let data = stack.emulator_data().await;
    let published: Vec<Value> = data["sns"]["PlatformEndpoint"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|candidate| candidate["arn"] == endpoint)
        .flat_map(|found| found["messages"].as_object().unwrap().values().cloned())
        .collect();
    assert_eq!(published.len(), 1, "{published:#?}");
    let document: Value = serde_json::from_str(published[0].as_str().unwrap()).unwrap();
    let fcm: Value = serde_json::from_str(document["GCM"].as_str().unwrap()).unwrap();
    let message = &fcm["fcmV1Message"]["message"];
    assert_eq!(message["notification"]["title"], "Order #444 confirmed");
    assert_eq!(message["data"]["order_id"], "444");
}
