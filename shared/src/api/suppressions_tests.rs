//! `/v1/suppressions` over the in-memory stores, called as Lambda calls it (an API Gateway v2 event turned
//! into a request by lambda_http, the path as the client sent it): listing a page at a time, reading and
//! removing an entry by its address however it is cased or encoded, each tenant's list its own, and the
//! problems for a bad address, a wrong method, a key that may not, and a store that fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::testing::{ACME_KEY, Answer, GLOBEX_KEY, INGEST_KEY, MemoryApi, acme, call_as, new_api};
use crate::adapters::memory::Fault;
use crate::domain::suppression::{Suppression, SuppressionReason};
use crate::domain::{NotificationId, TenantId, Timestamp};
use crate::ports::SuppressionList;
use serde_json::{Value, json};

const KEY: &str = ACME_KEY;
const OTHER_KEY: &str = GLOBEX_KEY;
const NOTIFICATION: &str = "ntf_0193a5b27c4e7d108a2b3c4d5e6f7a8b";

fn globex() -> TenantId {
    TenantId::new("globex")
}

fn entry(address: &str, reason: SuppressionReason) -> Suppression {
    Suppression {
        address: address.to_owned(),
        reason,
        detail: "550 5.1.1 user unknown".into(),
        notification_id: NotificationId::parse(NOTIFICATION),
        created_at: Timestamp::from_millis(1_800_000_000_000),
    }
}

/// The API's tenants (`acme` with a full key and an ingest key, `globex`), each with suppressed addresses.
async fn api() -> MemoryApi {
    let api = new_api().await;
    for address in ["ada@example.com", "bob@example.com", "cy+news@example.com"] {
        api.store
            .suppress(&acme(), &entry(address, SuppressionReason::Bounce))
            .await
            .unwrap();
    }
    api.store
        .suppress(&globex(), &entry("dee@example.com", SuppressionReason::Complaint))
        .await
        .unwrap();
    api
}

/// `method path?query` with `key`, as API Gateway (HTTP API, payload v2) hands it on.
async fn call_with(api: &MemoryApi, key: &str, method: &str, path_and_query: &str) -> Answer {
    call_as(api, key, method, path_and_query, None).await
}

async fn call(api: &MemoryApi, method: &str, path_and_query: &str) -> Answer {
    call_with(api, KEY, method, path_and_query).await
}

fn addresses(page: &Answer) -> Vec<&str> {
    page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["address"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_list_pages_in_address_order_with_a_cursor() {
    let api = api().await;

    let first = call(&api, "GET", "/v1/suppressions?limit=2").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(addresses(&first), ["ada@example.com", "bob@example.com"]);
    assert_eq!(
        first.body["items"][0],
        json!({"address": "ada@example.com", "reason": "bounce", "detail": "550 5.1.1 user unknown",
               "notification_id": NOTIFICATION, "created_at": "2027-01-15T08:00:00.000Z"})
    );
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = call(&api, "GET", &format!("/v1/suppressions?limit=2&cursor={cursor}")).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(addresses(&second), ["cy+news@example.com"]);
    assert_eq!(second.body["next_cursor"], Value::Null);

    let everything = call(&api, "GET", "/v1/suppressions").await;
    assert_eq!(
        addresses(&everything).len(),
        3,
        "the default limit takes them all"
    );
    let too_many = call(&api, "GET", "/v1/suppressions?limit=101").await;
    assert_eq!(
        (too_many.status, too_many.problem_code()),
        (422, "validation_failed")
    );
    let forged = call(&api, "GET", "/v1/suppressions?cursor=bm90LWEtY3Vyc29y").await;
    assert_eq!((forged.status, forged.problem_code()), (400, "invalid_cursor"));
}

#[tokio::test]
async fn an_entry_is_read_by_its_address_in_any_case_or_encoding() {
    let api = api().await;

    for path in [
        "/v1/suppressions/ada@example.com",
        "/v1/suppressions/ada%40example.com",
        "/v1/suppressions/ADA%40Example.COM",
        "/v1/suppressions/%61da@example.com",
    ] {
        let found = call(&api, "GET", path).await;
        assert_eq!(found.status, 200, "{path}: {found:?}");
        assert_eq!(found.body["address"], "ada@example.com", "{path}");
        assert_eq!(found.body["reason"], "bounce");
    }
    // `+` is a character of the address, not form encoding's space.
    for path in [
        "/v1/suppressions/cy+news@example.com",
        "/v1/suppressions/cy%2Bnews%40example.com",
    ] {
        let found = call(&api, "GET", path).await;
        assert_eq!(found.status, 200, "{path}: {found:?}");
        assert_eq!(found.body["address"], "cy+news@example.com");
    }

    let missing = call(&api, "GET", "/v1/suppressions/Zed%40Example.com").await;
    assert_eq!((missing.status, missing.problem_code()), (404, "not_found"));
    assert_eq!(
        missing.body["detail"],
        "zed@example.com is not on the suppression list"
    );
    assert_eq!(missing.header("content-type"), Some("application/problem+json"));
}

#[tokio::test]
async fn a_removed_address_is_gone_and_a_second_removal_is_404() {
    let api = api().await;

    let removed = call(&api, "DELETE", "/v1/suppressions/Bob%40Example.com").await;
    assert_eq!((removed.status, removed.body.clone()), (204, Value::Null));
    let gone = call(&api, "GET", "/v1/suppressions/bob@example.com").await;
    assert_eq!(gone.status, 404, "{gone:?}");
    assert!(
        api.store
            .suppressions
            .suppression(&acme(), "bob@example.com")
            .await
            .unwrap()
            .is_none(),
        "Herald sends to it again"
    );
    let again = call(&api, "DELETE", "/v1/suppressions/bob@example.com").await;
    assert_eq!((again.status, again.problem_code()), (404, "not_found"));
    let listed = call(&api, "GET", "/v1/suppressions").await;
    assert_eq!(addresses(&listed), ["ada@example.com", "cy+news@example.com"]);
}

#[tokio::test]
async fn what_cannot_be_an_address_is_a_validation_problem_never_a_5xx() {
    let api = api().await;

    for segment in [
        "ada",
        "ada%40",
        "ada@localhost",
        "%22Ada%20L%22%20%3Cada@example.com%3E",
        "ada%0d%0a@example.com",
        "%FF%FE@example.com",
        "ada@exa%20mple.com",
    ] {
        for method in ["GET", "DELETE"] {
            let answer = call(&api, method, &format!("/v1/suppressions/{segment}")).await;
            assert_eq!(
                (answer.status, answer.problem_code()),
                (422, "validation_failed"),
                "{method} {segment}: {answer:?}"
            );
        }
    }
}

#[tokio::test]
async fn another_tenants_list_is_invisible() {
    let api = api().await;

    let theirs = call(&api, "GET", "/v1/suppressions/dee@example.com").await;
    assert_eq!(theirs.status, 404, "{theirs:?}");
    let not_removed = call(&api, "DELETE", "/v1/suppressions/dee@example.com").await;
    assert_eq!(not_removed.status, 404);
    assert!(!addresses(&call(&api, "GET", "/v1/suppressions").await).contains(&"dee@example.com"));

    let their_list = call_with(&api, OTHER_KEY, "GET", "/v1/suppressions").await;
    assert_eq!(
        addresses(&their_list),
        ["dee@example.com"],
        "still on globex's list"
    );
    let ours = call_with(&api, OTHER_KEY, "GET", "/v1/suppressions/ada@example.com").await;
    assert_eq!(ours.status, 404);
    // A cursor is bound to the tenant it was given to.
    let first = call(&api, "GET", "/v1/suppressions?limit=1").await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let borrowed = call_with(
        &api,
        OTHER_KEY,
        "GET",
        &format!("/v1/suppressions?limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        (borrowed.status, borrowed.problem_code()),
        (400, "invalid_cursor")
    );
}

#[tokio::test]
async fn wrong_methods_are_405_and_only_a_full_key_may_call() {
    let api = api().await;

    let list = call(&api, "POST", "/v1/suppressions").await;
    assert_eq!((list.status, list.header("allow")), (405, Some("GET")));
    for method in ["PUT", "POST", "PATCH"] {
        let item = call(&api, method, "/v1/suppressions/ada@example.com").await;
        assert_eq!(
            (item.status, item.header("allow")),
            (405, Some("GET, DELETE")),
            "{method}"
        );
    }
    let deeper = call(&api, "GET", "/v1/suppressions/ada@example.com/x").await;
    assert_eq!(deeper.status, 404);

    let no_key = call_with(&api, "not-a-key", "GET", "/v1/suppressions").await;
    assert_eq!(
        (no_key.status, no_key.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    let ingest_only = call_with(&api, INGEST_KEY, "DELETE", "/v1/suppressions/ada@example.com").await;
    assert_eq!(
        (ingest_only.status, ingest_only.problem_code()),
        (403, "forbidden")
    );
    assert!(
        api.store
            .suppressions
            .suppression(&acme(), "ada@example.com")
            .await
            .unwrap()
            .is_some(),
        "a refused removal removes nothing"
    );
}

#[tokio::test]
async fn a_failing_list_is_503_with_retry_after_and_a_refusing_one_500() {
    let api = api().await;
    let calls = [
        ("suppressions", "GET", "/v1/suppressions"),
        ("suppression", "GET", "/v1/suppressions/ada@example.com"),
        ("unsuppress", "DELETE", "/v1/suppressions/ada@example.com"),
    ];

    for (operation, method, path) in calls {
        api.store.suppressions.failpoints.set(operation, Fault::Fail, 1);
        let unavailable = call(&api, method, path).await;
        assert_eq!(
            (unavailable.status, unavailable.problem_code()),
            (503, "service_unavailable"),
            "{method} {path}"
        );
        assert_eq!(unavailable.header("retry-after"), Some("1"));

        api.store
            .suppressions
            .failpoints
            .set(operation, Fault::FailPermanently, 1);
        let refused = call(&api, method, path).await;
        assert_eq!(
            (refused.status, refused.problem_code()),
            (500, "internal_error"),
            "{method} {path}"
        );
    }
    let still_there = call(&api, "GET", "/v1/suppressions/ada@example.com").await;
    assert_eq!(still_there.status, 200, "no failed removal took effect");
}
