//! The in-memory key store keeps the promises of the port: a key is written whole or not at all, never
//! moves between tenants, and a tenant sees and revokes only its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::adapters::memory::Fault;
use crate::domain::api_key::{KeyScope, key_hash};

fn acme() -> TenantId {
    TenantId::new("acme")
}

fn globex() -> TenantId {
    TenantId::new("globex")
}

fn new_key(tenant: &TenantId, key: &str, scope: KeyScope) -> NewApiKey {
    NewApiKey::new(tenant, key, Some("ci"), scope, Timestamp::from_millis(1_000))
}

/// A store with acme's full key `k1`.
async fn store_with_acmes_key() -> (MemoryApiKeyStore, NewApiKey) {
    let store = MemoryApiKeyStore::default();
    let key = new_key(&acme(), "k1", KeyScope::Full);
    store.create_api_key(&key).await.unwrap();
    (store, key)
}

fn all() -> PageRequest {
    PageRequest {
        limit: 100,
        after: None,
    }
}

#[tokio::test]
async fn a_created_key_grants_its_tenant_and_scope_and_is_listed() {
    let store = MemoryApiKeyStore::default();
    let key = new_key(&acme(), "k1", KeyScope::Ingest);
    store.create_api_key(&key).await.unwrap();

    let grant = store.key_grant(&key_hash("k1")).await.unwrap().unwrap();
    assert_eq!((grant.tenant, grant.scope), (acme(), KeyScope::Ingest));
    assert_eq!(
        store.list_api_keys(&acme(), &all()).await.unwrap().items,
        vec![key.record]
    );
    assert_eq!(store.key_grant(&key_hash("k2")).await.unwrap(), None);
}

#[tokio::test]
async fn a_key_never_moves_to_another_tenant_and_is_stored_once() {
    let store = MemoryApiKeyStore::default();
    let first = new_key(&acme(), "shared", KeyScope::Full);
    store.create_api_key(&first).await.unwrap();

    let stolen = store
        .create_api_key(&new_key(&globex(), "shared", KeyScope::Full))
        .await;
    assert!(
        matches!(&stolen, Err(WriteError::Conflict(why)) if why.contains("another tenant")),
        "{stolen:?}"
    );
    let twice = store
        .create_api_key(&new_key(&acme(), "shared", KeyScope::Ingest))
        .await;
    assert!(
        matches!(&twice, Err(WriteError::Conflict(why)) if why.contains(&first.record.id)),
        "{twice:?}"
    );
    let grant = store.key_grant(&key_hash("shared")).await.unwrap().unwrap();
    assert_eq!((grant.tenant, grant.scope), (acme(), KeyScope::Full));
    assert!(
        store
            .list_api_keys(&globex(), &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(store.items(), (1, 1));
}

#[tokio::test]
async fn a_create_that_times_out_after_committing_leaves_the_whole_key_and_its_retry_succeeds() {
    let store = MemoryApiKeyStore::default();
    let key = new_key(&acme(), "k1", KeyScope::Full);
    store
        .failpoints
        .set("create_api_key", Fault::TimeOutAfterCommit, 1);
    let timed_out = store.create_api_key(&key).await;
    assert!(
        matches!(&timed_out, Err(WriteError::Backend(error)) if error.retryable),
        "{timed_out:?}"
    );
    assert_eq!(
        store.items(),
        (1, 1),
        "both the lookup and the list entry, or neither"
    );

    store.create_api_key(&key).await.unwrap();
    assert_eq!(store.items(), (1, 1));
    assert!(store.key_grant(&key_hash("k1")).await.unwrap().is_some());
}

#[tokio::test]
async fn a_create_that_fails_leaves_nothing() {
    let store = MemoryApiKeyStore::default();
    store.failpoints.set("create_api_key", Fault::Fail, 1);
    assert!(
        store
            .create_api_key(&new_key(&acme(), "k1", KeyScope::Full))
            .await
            .is_err()
    );
    assert_eq!(store.items(), (0, 0));
    assert_eq!(store.key_grant(&key_hash("k1")).await.unwrap(), None);
}

#[tokio::test]
async fn a_revoked_key_grants_nothing_and_stays_listed_and_taken() {
    let (store, key) = store_with_acmes_key().await;
    let now = Timestamp::from_millis(2_000);

    let Revocation::Revoked(revoked) = store.revoke_api_key(&acme(), &key.record.id, now).await.unwrap()
    else {
        panic!("not revoked")
    };
    assert_eq!(revoked.revoked_at, Some(now));
    assert_eq!(store.key_grant(&key_hash("k1")).await.unwrap(), None);
    assert_eq!(
        store.list_api_keys(&acme(), &all()).await.unwrap().items,
        vec![revoked.clone()]
    );
    let again = store
        .revoke_api_key(&acme(), &key.record.id, Timestamp::from_millis(3_000))
        .await
        .unwrap();
    assert_eq!(again, Revocation::AlreadyRevoked(revoked));
    // A revoked key's hash stays taken: a leaked key cannot come back, for this tenant or another.
    let reused = store
        .create_api_key(&new_key(&globex(), "k1", KeyScope::Full))
        .await;
    assert!(matches!(reused, Err(WriteError::Conflict(_))));
}

#[tokio::test]
async fn a_tenant_can_neither_list_nor_revoke_another_tenants_keys() {
    let (store, key) = store_with_acmes_key().await;

    assert!(
        store
            .list_api_keys(&globex(), &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let refused = store
        .revoke_api_key(&globex(), &key.record.id, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(refused, Revocation::NotFound);
    assert!(store.key_grant(&key_hash("k1")).await.unwrap().is_some());
}

#[tokio::test]
async fn a_revoke_that_times_out_after_committing_revokes_both_items() {
    let (store, key) = store_with_acmes_key().await;
    store
        .failpoints
        .set("revoke_api_key", Fault::TimeOutAfterCommit, 1);
    let timed_out = store
        .revoke_api_key(&acme(), &key.record.id, Timestamp::now())
        .await;
    assert!(timed_out.is_err_and(|error| error.retryable));
    assert_eq!(store.key_grant(&key_hash("k1")).await.unwrap(), None);
    let listed = store.list_api_keys(&acme(), &all()).await.unwrap().items;
    assert!(listed[0].revoked_at.is_some());
}

#[tokio::test]
async fn a_tenants_keys_are_listed_in_pages() {
    let store = MemoryApiKeyStore::default();
    for n in 0..5 {
        store
            .create_api_key(&new_key(&acme(), &format!("k{n}"), KeyScope::Full))
            .await
            .unwrap();
    }
    store
        .create_api_key(&new_key(&globex(), "other", KeyScope::Full))
        .await
        .unwrap();
    let mut page = PageRequest {
        limit: 2,
        after: None,
    };
    let mut seen = Vec::new();
    loop {
        let listed = store.list_api_keys(&acme(), &page).await.unwrap();
        assert!(listed.items.len() <= 2);
        seen.extend(listed.items.into_iter().map(|record| record.tenant));
        match listed.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec![acme(); 5]);
}
