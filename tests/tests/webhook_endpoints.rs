//! The webhook endpoint store's contract, checked on the config table in the emulator and on the in-memory
//! store the unit tests use, so both keep the same promises: a PUT keeps an existing endpoint's secrets and
//! tells a creation from a replacement, a rotation keeps the old secret signing until the overlap ends, a
//! run of failures starts at its first failure, enabling again clears what disabled the endpoint, and
//! changes to an endpoint that is gone change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)] // test code: a panic is a failed test

use herald::adapters::memory::webhooks::MemoryWebhookEndpoints;
use herald::domain::webhook::{DisabledBy, EndpointSpec, SigningSecret, WebhookEndpoint};
use herald::domain::{TenantId, Timestamp};
use herald::ports::{Page, PageRequest, Saved, WebhookEndpointStore};
use herald_integration_tests::{Stack, unique};
use serde_json::json;

fn spec(url: &str, enabled: bool) -> EndpointSpec {
    EndpointSpec::parse(
        &json!({"url": url, "description": "billing", "event_types": ["order_created"], "enabled": enabled}),
        |_| Ok(()),
    )
    .unwrap()
}

/// The tenant's endpoint `billing`, which the test expects to exist.
async fn stored(store: &impl WebhookEndpointStore, tenant: &TenantId) -> WebhookEndpoint {
    store
        .endpoint(tenant, "billing")
        .await
        .unwrap()
        .expect("billing exists")
}

fn ids(page: &Page<WebhookEndpoint>) -> Vec<&str> {
    page.items.iter().map(|endpoint| endpoint.id.as_str()).collect()
}

async fn keeps_its_promises(store: &impl WebhookEndpointStore) {
    let tenant = TenantId::new(unique("tenant"));
    let other = TenantId::new(unique("other"));
    let t0 = Timestamp::from_millis(1_800_000_000_000);
    let first = SigningSecret::generate().unwrap();

    let (saved, created) = store
        .put_endpoint(
            &tenant,
            "billing",
            &spec("https://example.com/a", true),
            &first,
            t0,
        )
        .await
        .unwrap();
    assert_eq!(saved, Saved::Created);
    assert_eq!(
        (created.id.as_str(), &created.secret, created.created_at),
        ("billing", &first, t0)
    );
    assert_eq!(created.spec.event_types, ["order_created"]);

    // A replacement keeps the secret it has, whatever secret the caller offers.
    let t1 = t0.plus_seconds(60);
    let (saved, replaced) = store
        .put_endpoint(
            &tenant,
            "billing",
            &spec("https://example.com/b", true),
            &SigningSecret::generate().unwrap(),
            t1,
        )
        .await
        .unwrap();
    assert_eq!(saved, Saved::Replaced);
    assert_eq!(
        (replaced.spec.url.as_str(), &replaced.secret),
        ("https://example.com/b", &first)
    );
    assert_eq!((replaced.created_at, replaced.updated_at), (t0, t1));
    assert_eq!(store.endpoint(&tenant, "billing").await.unwrap(), Some(replaced));
    assert_eq!(store.endpoint(&other, "billing").await.unwrap(), None);

    // A rotation: the new secret signs, the old one beside it until the overlap ends.
    let second = SigningSecret::generate().unwrap();
    let rotated = store
        .rotate_secret(&tenant, "billing", &second, t1.plus_seconds(86_400), t1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.signing_secrets(t1), [&second, &first]);
    assert_eq!(rotated.signing_secrets(t1.plus_seconds(86_400)), [&second]);

    // A run of failures starts at its first failure; a success ends it.
    store.mark_failing(&tenant, "billing", t1).await.unwrap();
    store
        .mark_failing(&tenant, "billing", t1.plus_seconds(30))
        .await
        .unwrap();
    assert_eq!(stored(store, &tenant).await.failing_since, Some(t1));
    store.mark_healthy(&tenant, "billing").await.unwrap();
    assert_eq!(stored(store, &tenant).await.failing_since, None);

    // Disabled by a 410; a PUT that leaves it disabled keeps why; one that enables it clears it.
    store.mark_failing(&tenant, "billing", t1).await.unwrap();
    store
        .disable(&tenant, "billing", DisabledBy::Gone, t1)
        .await
        .unwrap();
    let (_, still) = store
        .put_endpoint(
            &tenant,
            "billing",
            &spec("https://example.com/b", false),
            &first,
            t1,
        )
        .await
        .unwrap();
    assert_eq!(
        (still.disabled_by, still.is_active()),
        (Some(DisabledBy::Gone), false)
    );
    let (_, enabled) = store
        .put_endpoint(
            &tenant,
            "billing",
            &spec("https://example.com/b", true),
            &first,
            t1,
        )
        .await
        .unwrap();
    assert_eq!(
        (enabled.disabled_by, enabled.failing_since, enabled.is_active()),
        (None, None, true)
    );
    assert_eq!(enabled.secret, second);

    // Listing is the tenant's own, in id order, a page at a time.
    for id in ["alerts", "crm"] {
        store
            .put_endpoint(&tenant, id, &spec("https://example.com/c", true), &first, t1)
            .await
            .unwrap();
    }
    store
        .put_endpoint(&other, "zz", &spec("https://example.com/d", true), &first, t1)
        .await
        .unwrap();
    let page = store
        .endpoints(
            &tenant,
            &PageRequest {
                limit: 2,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&page), ["alerts", "billing"]);
    let rest = store
        .endpoints(
            &tenant,
            &PageRequest {
                limit: 2,
                after: page.next,
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&rest), ["crm"]);

    // Deleted: gone for reads, and later changes (a delivery that was under way) do not bring it back.
    assert!(store.delete_endpoint(&tenant, "billing").await.unwrap());
    assert!(!store.delete_endpoint(&tenant, "billing").await.unwrap());
    store.mark_failing(&tenant, "billing", t1).await.unwrap();
    store
        .disable(&tenant, "billing", DisabledBy::Failing, t1)
        .await
        .unwrap();
    assert_eq!(
        store
            .rotate_secret(&tenant, "billing", &second, t1, t1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.endpoint(&tenant, "billing").await.unwrap(), None);
}

#[tokio::test]
async fn the_config_table_keeps_the_promises() {
    keeps_its_promises(&Stack::new().await.config_store()).await;
}

#[tokio::test]
async fn the_memory_store_keeps_the_same_promises() {
    keeps_its_promises(&MemoryWebhookEndpoints::default()).await;
}
