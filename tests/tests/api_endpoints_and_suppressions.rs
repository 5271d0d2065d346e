//! The management API against the emulator for what the providers and the tenant's own systems need: webhook
//! endpoints (their secret shown only when made) and the suppression list (read and edited by its own tenant).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::domain::suppression::{Suppression, SuppressionReason};
use herald::domain::webhook::SigningSecret;
use herald::domain::{TenantId, Timestamp};
use herald::ports::{SuppressionList, WebhookEndpointStore};
use herald_integration_tests::{Stack, unique};
use serde_json::json;

/// The webhook routes over the config table: the secret of the PUT that creates an endpoint is the one the
/// table keeps, a replacement and a read show none, and a rotation keeps the old secret signing.
#[tokio::test]
async fn a_webhook_endpoint_shows_its_secret_when_created_and_rotated_only() {
    let stack = Stack::new().await;
    let api = stack.api();
    let store = stack.config_store();
    let tenant = &stack.tenant;
    let url = "https://hooks.example.com/herald";
    let put = || stack.api_call(&api, "PUT", "/v1/webhooks/billing", Some(json!({"url": url})));

    let created = put().await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let secret = SigningSecret::parse(created.body["secret"].as_str().unwrap()).unwrap();
    let replaced = put().await;
    assert_eq!(replaced.status, 200);
    let read = stack.api_call(&api, "GET", "/v1/webhooks/billing", None).await;
    for body in [&replaced.body, &read.body] {
        assert!(!body.to_string().contains("whsec_"), "{body}");
    }
    let stored = store.endpoint(tenant, "billing").await.unwrap().unwrap();
    assert_eq!(stored.secret, secret);

    let rotated = stack
        .api_call(
            &api,
            "POST",
            "/v1/webhooks/billing/rotate-secret",
            Some(json!({"overlap_seconds": 3600})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new = SigningSecret::parse(rotated.body["secret"].as_str().unwrap()).unwrap();
    let stored = store.endpoint(tenant, "billing").await.unwrap().unwrap();
    assert_eq!(stored.signing_secrets(Timestamp::now()), vec![&new, &secret]);

    let listed = stack.api_call(&api, "GET", "/v1/webhooks", None).await;
    assert_eq!(listed.body["items"][0]["id"], "billing");
    let deleted = stack.api_call(&api, "DELETE", "/v1/webhooks/billing", None).await;
    assert_eq!(deleted.status, 204);
    assert!(store.endpoint(tenant, "billing").await.unwrap().is_none());
}

#[tokio::test]
async fn a_suppressed_address_is_read_by_its_encoded_path_and_removed_by_its_own_tenant_alone() {
    let stack = Stack::new().await;
    let api = stack.api();
    let other = TenantId::new(unique("tenant-b"));
    stack.add_tenant(&other, "key-of-b").await;
    let entry = |address: &str| Suppression {
        address: address.to_owned(),
        reason: SuppressionReason::Complaint,
        detail: "abuse".into(),
        notification_id: None,
        created_at: Timestamp::now(),
    };
    let store = stack.config_store();
    store
        .suppress(&stack.tenant, &entry("Ada@Example.com"))
        .await
        .unwrap();
    store.suppress(&other, &entry("bob@example.com")).await.unwrap();

    let read = stack
        .api_call(&api, "GET", "/v1/suppressions/ADA%40example.com", None)
        .await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(
        (read.body["address"].clone(), read.body["reason"].clone()),
        (json!("ada@example.com"), json!("complaint"))
    );
    let listed = stack.api_call(&api, "GET", "/v1/suppressions", None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1, "{listed:?}");
    let theirs = stack
        .api_call(&api, "DELETE", "/v1/suppressions/bob@example.com", None)
        .await;
    assert_eq!(theirs.status, 404, "another tenant's entry is not ours to remove");
    assert!(
        store
            .suppression(&other, "bob@example.com")
            .await
            .unwrap()
            .is_some()
    );

    let removed = stack
        .api_call(&api, "DELETE", "/v1/suppressions/ada@example.com", None)
        .await;
    assert_eq!(removed.status, 204, "{removed:?}");
    let gone = stack
        .api_call(&api, "GET", "/v1/suppressions/ada@example.com", None)
        .await;
    assert_eq!((gone.status, gone.problem_code()), (404, "not_found"));
    let invalid = stack
        .api_call(&api, "GET", "/v1/suppressions/not-an-address", None)
        .await;
    assert_eq!(
        (invalid.status, invalid.problem_code()),
        (422, "validation_failed")
    );
}
