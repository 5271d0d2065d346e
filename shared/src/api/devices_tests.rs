//! `/v1/users/{id}/devices` over the in-memory stores: a registration gets its platform endpoint and is
//! listed; a second one renews it and keeps when it was first made; a token is its platform's; what the
//! push platform refuses, or a platform the deployment lacks, is the caller's to fix; a user has at most
//! `MAX_DEVICES_PER_USER`; each tenant sees its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::testing::{Answer, GLOBEX_KEY, MemoryApi, call, call_as, new_api};
use crate::adapters::memory::Fault;
use crate::domain::device::{DeviceToken, MAX_DEVICES_PER_USER, Platform};
use crate::ports::DeviceStore;
use serde_json::json;

const APNS: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const FCM: &str = "dQw4w9WgXcQ:APA91bH-x_Yz";

fn path(user: &str, token: &str) -> String {
    format!("/v1/users/{user}/devices/{token}")
}

/// `PUT /v1/users/{user}/devices/{token}` as `acme`, for `platform`.
async fn register(api: &MemoryApi, user: &str, token: &str, platform: &str) -> Answer {
    call(
        api,
        "PUT",
        &path(user, token),
        Some(json!({ "platform": platform })),
    )
    .await
}

#[tokio::test]
async fn a_device_registers_with_its_endpoint_and_a_second_put_renews_it() {
    let api = new_api().await;
    let created = register(&api, "ada", FCM, "fcm").await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["token"], FCM);
    assert_eq!(created.body["platform"], "fcm");
    let token = DeviceToken::parse(Platform::Fcm, FCM).unwrap();
    let (arn, user_data) = api.push.endpoint_of(&token).unwrap();
    assert_eq!(created.body["endpoint_arn"], arn.as_str());
    assert_eq!(user_data, "acme/ada", "the endpoint says whose device it is");

    let renewed = register(&api, "ada", FCM, "fcm").await;
    assert_eq!(renewed.status, 200, "{renewed:?}");
    assert_eq!(renewed.body["created_at"], created.body["created_at"]);

    let listed = call(&api, "GET", "/v1/users/ada/devices", None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["items"][0]["token"], FCM);
}

#[tokio::test]
async fn an_apns_token_is_one_device_in_any_case_and_deleted_in_any_case() {
    let api = new_api().await;
    let upper = APNS.to_ascii_uppercase();
    let first = register(&api, "ada", &upper, "apns").await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["token"], APNS, "read in lower case");
    let again = register(&api, "ada", APNS, "apns").await;
    assert_eq!(again.status, 200, "the same device");

    let deleted = call(&api, "DELETE", &path("ada", &upper), None).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert!(
        api.store
            .devices_of(&super::testing::acme(), "ada")
            .await
            .unwrap()
            .is_empty()
    );
    let gone = call(&api, "DELETE", &path("ada", APNS), None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.problem_code(), "not_found");
}

#[tokio::test]
async fn a_token_registered_for_one_platform_conflicts_for_the_other() {
    let api = new_api().await;
    let apns = register(&api, "ada", APNS, "apns").await;
    assert_eq!(apns.status, 201);
    // The same text is a valid FCM token too.
    let fcm = register(&api, "ada", APNS, "fcm").await;
    assert_eq!(fcm.status, 409, "{fcm:?}");
    assert_eq!(fcm.problem_code(), "conflict");
}

#[tokio::test]
async fn bad_registrations_are_422_with_the_field_to_fix() {
    let api = new_api().await;
    let cases = [
        (path("ada", "not-hex"), json!({"platform": "apns"}), "/token"),
        (path("ada", FCM), json!({"platform": "android"}), "/platform"),
        (path("ada", FCM), json!({}), "/platform"),
        (path("ada", "has%20space"), json!({"platform": "fcm"}), "/token"),
    ];
    for (path, body, pointer) in cases {
        let answer = call(&api, "PUT", &path, Some(body.clone())).await;
        assert_eq!(answer.status, 422, "{path} {body}: {answer:?}");
        assert_eq!(answer.pointers(), vec![pointer], "{path} {body}");
    }
    let bad_user = register(&api, "Ada Lovelace", FCM, "fcm").await;
    assert_eq!(bad_user.status, 422, "{bad_user:?}");
}

#[tokio::test]
async fn a_refused_token_or_a_platform_without_an_application_is_422_and_nothing_is_stored() {
    let api = new_api().await;
    let token = DeviceToken::parse(Platform::Fcm, FCM).unwrap();
    api.push.refuse(&token);
    let refused = register(&api, "ada", FCM, "fcm").await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert_eq!(refused.pointers(), vec!["/token"]);

    api.push.unconfigure(Platform::Apns);
    let unconfigured = register(&api, "ada", APNS, "apns").await;
    assert_eq!(unconfigured.status, 422, "{unconfigured:?}");
    assert_eq!(unconfigured.pointers(), vec!["/platform"]);
    assert!(
        unconfigured.text.contains("no apns platform application"),
        "{}",
        unconfigured.text
    );
    assert!(
        api.store
            .devices_of(&super::testing::acme(), "ada")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_push_service_failure_is_503_and_a_retry_registers() {
    let api = new_api().await;
    api.push.failpoints.set("ensure_endpoint", Fault::Fail, 1);
    let failed = register(&api, "ada", FCM, "fcm").await;
    assert_eq!(failed.status, 503, "{failed:?}");
    let retried = register(&api, "ada", FCM, "fcm").await;
    assert_eq!(retried.status, 201, "{retried:?}");
}

#[tokio::test]
async fn a_user_has_at_most_the_cap_of_devices_and_renewing_one_still_works() {
    let api = new_api().await;
    let tokens: Vec<String> = (0..MAX_DEVICES_PER_USER).map(|n| format!("device-{n}")).collect();
    for token in &tokens {
        let answer = register(&api, "ada", token, "fcm").await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let over = register(&api, "ada", "one-more", "fcm").await;
    assert_eq!(over.status, 409, "{over:?}");
    let renewed = register(&api, "ada", &tokens[0], "fcm").await;
    assert_eq!(renewed.status, 200, "{renewed:?}");
    let another_user = register(&api, "bob", "one-more", "fcm").await;
    assert_eq!(another_user.status, 201);
}

#[tokio::test]
async fn each_tenant_sees_its_own_devices_and_methods_are_checked() {
    let api = new_api().await;
    register(&api, "ada", FCM, "fcm").await;
    let theirs = call_as(&api, GLOBEX_KEY, "GET", "/v1/users/ada/devices", None).await;
    assert_eq!(theirs.status, 200);
    assert_eq!(theirs.body["items"], json!([]));
    let not_theirs = call_as(&api, GLOBEX_KEY, "DELETE", &path("ada", FCM), None).await;
    assert_eq!(not_theirs.status, 404);

    let post = call(&api, "POST", "/v1/users/ada/devices", None).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));
    let get_one = call(&api, "GET", &path("ada", FCM), None).await;
    assert_eq!(get_one.status, 405);
    assert_eq!(get_one.header("allow"), Some("PUT, DELETE"));
}
