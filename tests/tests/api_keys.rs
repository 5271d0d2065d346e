//! API keys in the emulator's DynamoDB (decision 24): a key is created whole, under conditions that keep its
//! hash from ever moving to another tenant; a tenant lists and revokes its own keys and nobody else's; and
//! the HTTP functions honour a key's scope and its revocation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use aws_sdk_dynamodb::types::AttributeValue;
use herald::domain::api_key::{KeyGrant, KeyScope, NewApiKey, key_hash};
use herald::domain::{TenantId, Timestamp};
use herald::ports::{ApiKeyStore, PageRequest, Revocation, WriteError};
use herald_integration_tests::{ApiRequest, Stack, unique};
use serde_json::json;

fn all() -> PageRequest {
    PageRequest {
        limit: 100,
        after: None,
    }
}

/// How many items of the config table hold the key `hash`: its lookup and its entry in a tenant's list.
async fn items_of(stack: &Stack, hash: &str) -> usize {
    let scanned = stack
        .dynamodb
        .scan()
        .table_name(&stack.tables.config)
        .send()
        .await
        .unwrap();
    let hash = AttributeValue::S(hash.to_owned());
    let lookup = AttributeValue::S(format!("KEY#{}", hash.as_s().unwrap()));
    scanned
        .items()
        .iter()
        .filter(|item| item.get("pk") == Some(&lookup) || item.get("key_hash") == Some(&hash))
        .count()
}

#[tokio::test]
async fn a_key_is_created_whole_and_its_hash_never_moves_to_another_tenant() {
    let stack = Stack::new().await;
    let store = stack.config_store();
    let other = TenantId::new(unique("other"));
    let key = NewApiKey::new(
        &stack.tenant,
        &unique("key"),
        Some("ci"),
        KeyScope::Ingest,
        Timestamp::now(),
    );

    store.create_api_key(&key).await.unwrap();
    assert_eq!(
        items_of(&stack, &key.hash).await,
        2,
        "its lookup and its list entry"
    );
    // A retry of the same write (its first answer lost) meets its own items and succeeds.
    store.create_api_key(&key).await.unwrap();

    let stolen = NewApiKey {
        hash: key.hash.clone(),
        ..NewApiKey::new(&other, "ignored", None, KeyScope::Full, Timestamp::now())
    };
    let refused = store.create_api_key(&stolen).await;
    assert!(
        matches!(&refused, Err(WriteError::Conflict(why)) if why.contains("another tenant")),
        "{refused:?}"
    );
    let twice = NewApiKey {
        hash: key.hash.clone(),
        ..NewApiKey::new(&stack.tenant, "ignored", None, KeyScope::Full, Timestamp::now())
    };
    let refused = store.create_api_key(&twice).await;
    assert!(
        matches!(&refused, Err(WriteError::Conflict(why)) if why.contains(&key.record.id)),
        "{refused:?}"
    );

    assert_eq!(
        store.key_grant(&key.hash).await.unwrap(),
        Some(KeyGrant {
            tenant: stack.tenant.clone(),
            key_id: key.record.id.clone(),
            scope: KeyScope::Ingest
        })
    );
    assert_eq!(
        items_of(&stack, &key.hash).await,
        2,
        "nothing half written by the refused ones"
    );
    assert!(
        store
            .list_api_keys(&other, &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn a_tenant_lists_and_revokes_its_own_keys_and_none_of_anothers() {
    let stack = Stack::new().await;
    let store = stack.config_store();
    let other = TenantId::new(unique("other"));
    let other_key = unique("other-key");
    stack.add_tenant(&other, &other_key).await;
    let api_key = unique("key");
    let id = stack.add_key(&stack.tenant, &api_key, KeyScope::Ingest).await;

    let listed = store.list_api_keys(&stack.tenant, &all()).await.unwrap().items;
    assert_eq!(listed.len(), 2, "the stack's own key and this one: {listed:?}");
    assert!(listed.iter().all(|record| record.tenant == stack.tenant));
    let mine = listed.iter().find(|record| record.id == id).unwrap();
    assert_eq!((mine.scope, mine.revoked_at), (KeyScope::Ingest, None));
    let paged = store
        .list_api_keys(
            &stack.tenant,
            &PageRequest {
                limit: 1,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(paged.items.len(), 1);
    assert!(paged.next.is_some());

    let refused = store.revoke_api_key(&other, &id, Timestamp::now()).await.unwrap();
    assert_eq!(refused, Revocation::NotFound);
    assert!(store.key_grant(&key_hash(&api_key)).await.unwrap().is_some());

    let now = Timestamp::now();
    let Revocation::Revoked(revoked) = store.revoke_api_key(&stack.tenant, &id, now).await.unwrap() else {
        panic!("not revoked")
    };
    assert_eq!(revoked.revoked_at, Some(now));
    assert_eq!(store.key_grant(&key_hash(&api_key)).await.unwrap(), None);
    assert!(
        store.key_grant(&key_hash(&other_key)).await.unwrap().is_some(),
        "the other tenant's key is untouched"
    );
    let listed = store.list_api_keys(&stack.tenant, &all()).await.unwrap().items;
    assert_eq!(listed.iter().find(|record| record.id == id), Some(&revoked));
    let again = store
        .revoke_api_key(&stack.tenant, &id, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(again, Revocation::AlreadyRevoked(revoked));

    // A revoked key stays taken: it cannot be brought back, here or elsewhere.
    let revived = NewApiKey::new(&other, &api_key, None, KeyScope::Full, Timestamp::now());
    assert!(matches!(
        store.create_api_key(&revived).await,
        Err(WriteError::Conflict(_))
    ));
}

#[tokio::test]
async fn an_ingest_key_only_sends_events_and_a_revoked_key_nothing() {
    let stack = Stack::new().await;
    let (api, ingest) = (stack.api(), stack.ingest());
    let api_key = unique("ingest-key");
    let id = stack.add_key(&stack.tenant, &api_key, KeyScope::Ingest).await;

    for request in [
        ApiRequest::get("/v1/event-types"),
        ApiRequest::new("PUT", "/v1/rules/r1").json(&json!({})),
    ] {
        let forbidden = stack.call_api(&api, &request.key(&api_key)).await;
        assert_eq!(
            (forbidden.status, forbidden.problem_code()),
            (403, "forbidden"),
            "{forbidden:?}"
        );
        assert_eq!(forbidden.header("content-type"), Some("application/problem+json"));
    }
    let event = json!({"event": "order_created", "recipient": {"email": "a@example.com"}, "payload": {}});
    let read = ApiRequest::get(&format!("/v1/events/evt_{}", "0".repeat(32))).key(&api_key);
    let forbidden = stack.call_ingest(&ingest, &read).await;
    assert_eq!((forbidden.status, forbidden.problem_code()), (403, "forbidden"));
    // Past authentication: the event type does not exist, which only a key allowed to send is told.
    let posted = ApiRequest::new("POST", "/v1/events").json(&event).key(&api_key);
    let sent = stack.call_ingest(&ingest, &posted).await;
    assert_eq!(
        (sent.status, sent.problem_code()),
        (422, "unknown_event_type"),
        "{sent:?}"
    );
    let batch = ApiRequest::new("POST", "/v1/events/batch")
        .json(&json!({"events": [event]}))
        .key(&api_key);
    assert_eq!(stack.call_ingest(&ingest, &batch).await.status, 207);

    // The tests' functions cache nothing (HERALD_CONFIG_CACHE_SECONDS=0): the next request is refused.
    stack
        .config_store()
        .revoke_api_key(&stack.tenant, &id, Timestamp::now())
        .await
        .unwrap();
    let refused = stack.call_ingest(&ingest, &posted).await;
    assert_eq!((refused.status, refused.problem_code()), (401, "unauthorized"));
    let full = stack
        .call_api(&api, &ApiRequest::get("/v1/event-types").key(&stack.api_key))
        .await;
    assert_eq!(full.status, 200, "the tenant's full key still works: {full:?}");
}

#[tokio::test]
async fn keys_made_before_key_ids_are_adopted_once_then_listed_and_revoked() {
    let stack = Stack::new().await;
    let store = stack.config_store();
    let legacy = unique("legacy-key");
    // The one item `herald tenant create` wrote before decision 24.
    stack
        .dynamodb
        .put_item()
        .table_name(&stack.tables.config)
        .item("pk", AttributeValue::S(format!("KEY#{}", key_hash(&legacy))))
        .item("sk", AttributeValue::S("KEY".into()))
        .item("tenant", AttributeValue::S(stack.tenant.as_str().into()))
        .item("created_at", AttributeValue::N("1790000000000".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store
            .list_api_keys(&stack.tenant, &all())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let adopted = store.adopt_unlisted_keys().await.unwrap();
    assert_eq!(adopted.len(), 1, "only the legacy key: {adopted:?}");
    let key = &adopted[0];
    assert_eq!((&key.tenant, key.scope), (&stack.tenant, KeyScope::Full));
    assert_eq!(key.created_at, Timestamp::from_millis(1_790_000_000_000));
    assert!(
        store.adopt_unlisted_keys().await.unwrap().is_empty(),
        "adopted once"
    );
    let listed = store.list_api_keys(&stack.tenant, &all()).await.unwrap().items;
    assert!(listed.contains(key), "{listed:?}");
    assert!(store.key_grant(&key_hash(&legacy)).await.unwrap().is_some());

    let revoked = store
        .revoke_api_key(&stack.tenant, &key.id, Timestamp::now())
        .await
        .unwrap();
    assert!(matches!(revoked, Revocation::Revoked(_)), "{revoked:?}");
    assert_eq!(store.key_grant(&key_hash(&legacy)).await.unwrap(), None);
}
