//! `/v1/webhooks` over the in-memory stores: the secret is shown when the endpoint is created and when it
//! is rotated, never read back; a rotation keeps the old secret signing through its overlap; URLs must
//! reach a public host; each tenant sees its own endpoints; a failing store is the 503 or 500 every other
//! route gives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::testing::{
    ACME_KEY, Answer, GLOBEX_KEY, INGEST_KEY, MemoryApi, acme, api_with, call, call_as, new_api, request,
    send,
};
use crate::adapters::memory::Fault;
use crate::domain::webhook::{
    DisabledBy, EndpointSpec, MAX_ENDPOINTS_PER_TENANT, RetiringSecret, SECRET_PREFIX, SigningSecret,
    WebhookEndpoint,
};
use crate::domain::{TenantId, Timestamp};
use crate::ports::WebhookEndpointStore;
use serde_json::{Value, json};

const URL: &str = "https://hooks.example.com/herald";

async fn stored(api: &MemoryApi, tenant: &TenantId, id: &str) -> Option<WebhookEndpoint> {
    api.store.endpoint(tenant, id).await.unwrap()
}

/// `POST /v1/webhooks/billing/rotate-secret` as `acme`, with `body` if any.
async fn rotate(api: &MemoryApi, body: Option<Value>) -> Answer {
    call(api, "POST", "/v1/webhooks/billing/rotate-secret", body).await
}

#[tokio::test]
async fn a_put_creates_with_the_secret_once_and_a_replacement_keeps_it_unsaid() {
    let api = new_api().await;
    let body = json!({"url": URL, "description": "billing", "event_types": ["order_created"]});
    let created = call(&api, "PUT", "/v1/webhooks/billing", Some(body)).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert!(
        created.body["secret"]
            .as_str()
            .unwrap()
            .starts_with(SECRET_PREFIX)
    );
    let secret = created.secret();
    let endpoint = stored(&api, &acme(), "billing").await.unwrap();
    assert_eq!(endpoint.secret, secret, "the secret shown is the one that signs");
    let fields = |answer: &Answer| {
        let b = &answer.body;
        (
            b["id"].clone(),
            b["url"].clone(),
            b["description"].clone(),
            b["event_types"].clone(),
            b["enabled"].clone(),
        )
    };
    let expected = (
        json!("billing"),
        json!(URL),
        json!("billing"),
        json!(["order_created"]),
        json!(true),
    );
    assert_eq!(fields(&created), expected);
    assert_eq!(
        (
            created.body["status"].clone(),
            created.body["disabled_by"].clone()
        ),
        (json!("enabled"), Value::Null)
    );

    let read = call(&api, "GET", "/v1/webhooks/billing", None).await;
    assert_eq!(read.status, 200);
    assert_eq!(fields(&read), expected);
    assert!(read.body.get("secret").is_none(), "{read:?}");
    assert!(!read.text.contains(&secret.expose()));

    let replaced = call(
        &api,
        "PUT",
        "/v1/webhooks/billing",
        Some(json!({"url": "https://other.example.com/in", "enabled": false})),
    )
    .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert!(replaced.body.get("secret").is_none(), "{replaced:?}");
    assert!(!replaced.text.contains(SECRET_PREFIX));
    assert_eq!(
        (
            &replaced.body["event_types"],
            &replaced.body["description"],
            &replaced.body["status"]
        ),
        (&json!([]), &Value::Null, &json!("disabled")),
        "a PUT replaces the whole spec"
    );
    assert_eq!(replaced.body["created_at"], created.body["created_at"]);
    let endpoint = stored(&api, &acme(), "billing").await.unwrap();
    assert_eq!(
        endpoint.secret, secret,
        "a replacement keeps the endpoint's secret"
    );
    assert!(endpoint.previous_secret.is_none());
}

#[tokio::test]
async fn saving_an_endpoint_enabled_clears_what_disabled_it_and_get_says_why() {
    let api = new_api().await;
    call(&api, "PUT", "/v1/webhooks/orders", Some(json!({"url": URL}))).await;
    let since = Timestamp::from_millis(1_800_000_000_000);
    api.store.mark_failing(&acme(), "orders", since).await.unwrap();
    let failing = call(&api, "GET", "/v1/webhooks/orders", None).await;
    assert_eq!(failing.body["failing_since"], json!(since.to_rfc3339()));
    assert_eq!(failing.body["status"], "enabled", "failing is not disabled yet");

    for (by, word) in [(DisabledBy::Failing, "failing"), (DisabledBy::Gone, "gone")] {
        api.store
            .disable(&acme(), "orders", by, Timestamp::now())
            .await
            .unwrap();
        let read = call(&api, "GET", "/v1/webhooks/orders", None).await;
        assert_eq!(
            (
                &read.body["enabled"],
                &read.body["status"],
                &read.body["disabled_by"]
            ),
            (&json!(true), &json!("disabled"), &json!(word)),
            "{read:?}"
        );
        assert!(read.body["disabled_reason"].is_string(), "{read:?}");
    }

    let enabled = call(&api, "PUT", "/v1/webhooks/orders", Some(json!({"url": URL}))).await;
    assert_eq!(enabled.status, 200);
    assert_eq!(
        (
            &enabled.body["status"],
            &enabled.body["disabled_by"],
            &enabled.body["failing_since"]
        ),
        (&json!("enabled"), &Value::Null, &Value::Null)
    );
    assert!(stored(&api, &acme(), "orders").await.unwrap().is_active());
}

#[tokio::test]
async fn endpoints_are_listed_by_id_a_page_at_a_time() {
    let api = new_api().await;
    for id in ["c", "a", "b"] {
        let put = call(
            &api,
            "PUT",
            &format!("/v1/webhooks/{id}"),
            Some(json!({"url": URL})),
        )
        .await;
        assert_eq!(put.status, 201);
    }
    let first = call(&api, "GET", "/v1/webhooks?limit=2", None).await;
    assert_eq!(first.status, 200, "{first:?}");
    let ids = |answer: &Answer| -> Vec<String> {
        answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["a", "b"]);
    assert!(!first.text.contains(SECRET_PREFIX), "a listing shows no secret");
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = call(
        &api,
        "GET",
        &format!("/v1/webhooks?limit=2&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(ids(&second), ["c"]);
    assert_eq!(second.body["next_cursor"], Value::Null);

    let default = call(&api, "GET", "/v1/webhooks", None).await;
    assert_eq!(ids(&default), ["a", "b", "c"]);
    let bad_limit = call(&api, "GET", "/v1/webhooks?limit=101", None).await;
    assert_eq!((bad_limit.status, bad_limit.pointers()), (422, vec!["/limit"]));
    // A cursor is bound to its list and its tenant.
    let other_list = call(&api, "GET", &format!("/v1/templates?cursor={cursor}"), None).await;
    assert_eq!(
        (other_list.status, other_list.problem_code()),
        (400, "invalid_cursor")
    );
    let forged = call(&api, "GET", "/v1/webhooks?cursor=abc", None).await;
    assert_eq!((forged.status, forged.problem_code()), (400, "invalid_cursor"));
    let theirs = call_as(
        &api,
        GLOBEX_KEY,
        "GET",
        &format!("/v1/webhooks?cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!((theirs.status, theirs.problem_code()), (400, "invalid_cursor"));
}

#[tokio::test]
async fn a_tenant_has_at_most_twenty_endpoints_and_may_still_replace_them() {
    let api = new_api().await;
    for n in 0..MAX_ENDPOINTS_PER_TENANT {
        let created = call(
            &api,
            "PUT",
            &format!("/v1/webhooks/e{n}"),
            Some(json!({"url": URL})),
        )
        .await;
        assert_eq!(created.status, 201, "{created:?}");
    }
    let refused = call(&api, "PUT", "/v1/webhooks/one-more", Some(json!({"url": URL}))).await;
    assert_eq!((refused.status, refused.problem_code()), (409, "conflict"));
    assert!(stored(&api, &acme(), "one-more").await.is_none());
    let replaced = call(
        &api,
        "PUT",
        "/v1/webhooks/e0",
        Some(json!({"url": URL, "enabled": false})),
    )
    .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    call(&api, "DELETE", "/v1/webhooks/e1", None).await;
    let room = call(&api, "PUT", "/v1/webhooks/one-more", Some(json!({"url": URL}))).await;
    assert_eq!(room.status, 201);
}

#[tokio::test]
async fn a_delete_is_204_then_404() {
    let api = new_api().await;
    call(&api, "PUT", "/v1/webhooks/billing", Some(json!({"url": URL}))).await;
    let deleted = call(&api, "DELETE", "/v1/webhooks/billing", None).await;
    assert_eq!((deleted.status, deleted.text.as_str()), (204, ""));
    assert!(stored(&api, &acme(), "billing").await.is_none());
    for method in ["DELETE", "GET"] {
        let again = call(&api, method, "/v1/webhooks/billing", None).await;
        assert_eq!(
            (again.status, again.problem_code()),
            (404, "not_found"),
            "{method}"
        );
    }
    let invalid = call(&api, "DELETE", "/v1/webhooks/Not%20A%20Name", None).await;
    assert_eq!(invalid.status, 404);
}

#[tokio::test]
async fn a_rotation_shows_the_new_secret_once_and_the_old_one_signs_until_the_overlap_ends() {
    let api = new_api().await;
    let old = call(&api, "PUT", "/v1/webhooks/billing", Some(json!({"url": URL})))
        .await
        .secret();

    let before = Timestamp::now();
    let rotated = rotate(&api, None).await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let new = rotated.secret();
    assert_ne!(new, old);
    let endpoint = stored(&api, &acme(), "billing").await.unwrap();
    assert_eq!(endpoint.secret, new);
    let until = endpoint.previous_secret.as_ref().unwrap().until;
    assert!(until >= before.plus_seconds(86_400) && until <= Timestamp::now().plus_seconds(86_400));
    assert_eq!(
        rotated.body["previous_secret_expires_at"],
        json!(until.to_rfc3339())
    );
    assert_eq!(endpoint.signing_secrets(Timestamp::now()), vec![&new, &old]);
    assert_eq!(endpoint.signing_secrets(until), vec![&new], "the overlap ends");

    let read = call(&api, "GET", "/v1/webhooks/billing", None).await;
    assert_eq!(read.body["previous_secret_expires_at"], json!(until.to_rfc3339()));
    assert!(!read.text.contains(SECRET_PREFIX), "{read:?}");

    // No overlap: the old secret stops signing at once.
    let at_once = rotate(&api, Some(json!({"overlap_seconds": 0}))).await;
    assert_eq!(at_once.status, 200, "{at_once:?}");
    let newest = at_once.secret();
    let endpoint = stored(&api, &acme(), "billing").await.unwrap();
    assert_eq!(endpoint.signing_secrets(Timestamp::now()), vec![&newest]);

    let week = rotate(&api, Some(json!({"overlap_seconds": 604_800}))).await;
    assert_eq!(week.status, 200);
    let until = stored(&api, &acme(), "billing")
        .await
        .unwrap()
        .previous_secret
        .unwrap()
        .until;
    assert!(until > Timestamp::now().plus_seconds(604_790), "{until:?}");
}

#[tokio::test]
async fn a_rotation_refuses_a_bad_overlap_and_an_endpoint_that_does_not_exist() {
    let api = new_api().await;
    call(&api, "PUT", "/v1/webhooks/billing", Some(json!({"url": URL}))).await;
    let before = stored(&api, &acme(), "billing").await.unwrap();
    for (body, pointer) in [
        (json!({"overlap_seconds": 604_801}), "/overlap_seconds"),
        (json!({"overlap_seconds": -1}), "/overlap_seconds"),
        (json!({"overlap_seconds": 1.5}), "/overlap_seconds"),
        (json!({"overlap_seconds": "60"}), "/overlap_seconds"),
        (json!({"overlap": 60}), "/overlap"),
        (json!([60]), ""),
    ] {
        let refused = rotate(&api, Some(body.clone())).await;
        assert_eq!(
            (refused.status, refused.pointers()),
            (422, vec![pointer]),
            "{body}"
        );
    }
    let malformed = send(
        &api,
        request(
            "POST",
            "/v1/webhooks/billing/rotate-secret",
            Some(ACME_KEY),
            Some("{"),
        ),
    )
    .await;
    assert_eq!(
        (malformed.status, malformed.problem_code()),
        (400, "malformed_json")
    );
    assert_eq!(
        stored(&api, &acme(), "billing").await.unwrap(),
        before,
        "nothing refused rotated anything"
    );

    for path in [
        "/v1/webhooks/nope/rotate-secret",
        "/v1/webhooks/NOPE/rotate-secret",
    ] {
        let missing = call(&api, "POST", path, None).await;
        assert_eq!(
            (missing.status, missing.problem_code()),
            (404, "not_found"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_url_must_be_https_to_a_public_host() {
    let api = new_api().await;
    for url in [
        "http://hooks.example.com/in",
        "https://10.0.0.1/x",
        "https://192.168.1.1/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://127.0.0.1:3001/x",
        "http://127.0.0.1:3001/x",
        "https://localhost/x",
        "https://api.localhost./x",
        "https://user:pass@hooks.example.com/in",
        "hooks.example.com/in",
    ] {
        let refused = call(&api, "PUT", "/v1/webhooks/billing", Some(json!({"url": url}))).await;
        assert_eq!(
            (refused.status, refused.problem_code(), refused.pointers()),
            (422, "validation_failed", vec!["/url"]),
            "{url}"
        );
    }
    assert!(stored(&api, &acme(), "billing").await.is_none());
    for url in [
        "https://hooks.example.com:8443/in?x=1",
        "https://93.184.216.34/in",
    ] {
        let put = call(&api, "PUT", "/v1/webhooks/billing", Some(json!({"url": url}))).await;
        assert!(put.status == 201 || put.status == 200, "{url}: {put:?}");
    }

    // The local stack lets its capture sink stand in for an endpoint; internal addresses stay refused.
    let local = api_with(true).await;
    for url in ["http://127.0.0.1:3001/x", "http://localhost:3001/x"] {
        let put = call(&local, "PUT", "/v1/webhooks/sink", Some(json!({"url": url}))).await;
        assert!(put.status == 201 || put.status == 200, "{url}: {put:?}");
    }
    let private = call(
        &local,
        "PUT",
        "/v1/webhooks/sink",
        Some(json!({"url": "https://10.0.0.1/x"})),
    )
    .await;
    assert_eq!((private.status, private.pointers()), (422, vec!["/url"]));
}

#[tokio::test]
async fn a_bad_body_is_refused_with_a_pointer_to_each_violation_and_never_a_5xx() {
    let api = new_api().await;
    let refused = call(
        &api,
        "PUT",
        "/v1/webhooks/billing",
        Some(json!({"url": URL, "secret": "whsec_mine", "event_types": ["ok", "Bad"], "enabled": "yes"})),
    )
    .await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.pointers(), ["/secret", "/event_types/1", "/enabled"]);
    let no_url = call(&api, "PUT", "/v1/webhooks/billing", Some(json!({}))).await;
    assert_eq!((no_url.status, no_url.pointers()), (422, vec!["/url"]));

    let bad_name = call(&api, "PUT", "/v1/webhooks/Billing", Some(json!({"url": URL}))).await;
    assert_eq!(
        (bad_name.status, bad_name.problem_code()),
        (422, "validation_failed")
    );
    let malformed = send(
        &api,
        request("PUT", "/v1/webhooks/billing", Some(ACME_KEY), Some("{\"url\"")),
    )
    .await;
    assert_eq!(malformed.status, 400);
    let mut no_type = request("PUT", "/v1/webhooks/billing", Some(ACME_KEY), None);
    *no_type.body_mut() = lambda_http::Body::from(json!({"url": URL}).to_string());
    assert_eq!(send(&api, no_type).await.status, 415);
    let huge = json!({"url": URL, "description": "x".repeat(300 * 1024)});
    assert_eq!(
        call(&api, "PUT", "/v1/webhooks/billing", Some(huge)).await.status,
        413
    );
    assert!(stored(&api, &acme(), "billing").await.is_none());
}

#[tokio::test]
async fn routes_need_a_full_key_and_answer_other_methods_405() {
    let api = new_api().await;
    let no_key = send(&api, request("GET", "/v1/webhooks", None, None)).await;
    assert_eq!(
        (no_key.status, no_key.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    for (method, path) in [
        ("GET", "/v1/webhooks"),
        ("PUT", "/v1/webhooks/billing"),
        ("POST", "/v1/webhooks/billing/rotate-secret"),
    ] {
        let ingest_only = call_as(&api, INGEST_KEY, method, path, Some(json!({"url": URL}))).await;
        assert_eq!(
            (ingest_only.status, ingest_only.problem_code()),
            (403, "forbidden"),
            "{method} {path}"
        );
    }
    for (method, path, allow) in [
        ("POST", "/v1/webhooks", "GET"),
        ("DELETE", "/v1/webhooks", "GET"),
        ("POST", "/v1/webhooks/billing", "GET, PUT, DELETE"),
        ("PATCH", "/v1/webhooks/billing", "GET, PUT, DELETE"),
        ("GET", "/v1/webhooks/billing/rotate-secret", "POST"),
        ("PUT", "/v1/webhooks/billing/rotate-secret", "POST"),
    ] {
        let answer = call(&api, method, path, None).await;
        assert_eq!(
            (answer.status, answer.header("allow")),
            (405, Some(allow)),
            "{method} {path}"
        );
    }
    for path in [
        "/v1/webhooks/billing/secret",
        "/v1/webhooks/billing/rotate-secret/x",
    ] {
        let answer = call(&api, "POST", path, None).await;
        assert_eq!(answer.status, 404, "{path}");
    }
}

#[tokio::test]
async fn another_tenants_endpoint_is_not_found_and_its_id_is_free() {
    let api = new_api().await;
    let ours = call(&api, "PUT", "/v1/webhooks/billing", Some(json!({"url": URL})))
        .await
        .secret();
    for (method, path) in [
        ("GET", "/v1/webhooks/billing"),
        ("DELETE", "/v1/webhooks/billing"),
        ("POST", "/v1/webhooks/billing/rotate-secret"),
    ] {
        let theirs = call_as(&api, GLOBEX_KEY, method, path, None).await;
        assert_eq!(theirs.status, 404, "{method} {path}");
    }
    let listed = call_as(&api, GLOBEX_KEY, "GET", "/v1/webhooks", None).await;
    assert_eq!(listed.body["items"], json!([]));

    let theirs = call_as(
        &api,
        GLOBEX_KEY,
        "PUT",
        "/v1/webhooks/billing",
        Some(json!({"url": "https://globex.example.com/in"})),
    )
    .await;
    assert_eq!(theirs.status, 201, "the same id is another tenant's own endpoint");
    assert_ne!(theirs.secret(), ours);
    let still_ours = stored(&api, &acme(), "billing").await.unwrap();
    assert_eq!((still_ours.spec.url.as_str(), &still_ours.secret), (URL, &ours));
}

#[tokio::test]
async fn a_failing_store_is_a_503_to_retry_and_a_refusing_one_a_500_as_on_every_route() {
    let api = new_api().await;
    call(&api, "PUT", "/v1/webhooks/billing", Some(json!({"url": URL}))).await;
    let operations = [
        ("put_endpoint", "PUT", "/v1/webhooks/billing"),
        ("endpoint", "GET", "/v1/webhooks/billing"),
        ("endpoints", "GET", "/v1/webhooks"),
        ("delete_endpoint", "DELETE", "/v1/webhooks/billing"),
        ("rotate_secret", "POST", "/v1/webhooks/billing/rotate-secret"),
    ];
    // What an event type's route answers for the same fault is what these must answer.
    let reference = |fault| async move {
        let api = new_api().await;
        api.store.event_types.failpoints.set("event_type", fault, 1);
        let answer = call(&api, "GET", "/v1/event-types/order_created", None).await;
        (answer.status, answer.header("retry-after").map(str::to_owned))
    };
    for (fault, expected) in [(Fault::Fail, 503), (Fault::FailPermanently, 500)] {
        let (status, retry_after) = reference(fault).await;
        assert_eq!(status, expected);
        for (operation, method, path) in operations {
            api.store.webhooks.failpoints.set(operation, fault, 1);
            let body = (method == "PUT").then(|| json!({"url": URL}));
            let answer = call(&api, method, path, body).await;
            assert_eq!(
                (answer.status, answer.header("retry-after").map(str::to_owned)),
                (status, retry_after.clone()),
                "{operation} {fault:?}: {answer:?}"
            );
            assert_eq!(answer.header("content-type"), Some("application/problem+json"));
            assert!(!answer.text.contains(SECRET_PREFIX));
        }
    }
    assert!(
        stored(&api, &acme(), "billing").await.is_some(),
        "no failed call changed anything"
    );
}

/// The API's one view of an endpoint holds no secret, current or retiring, whatever state it is in.
#[test]
fn an_endpoint_as_json_holds_no_secret() {
    let now = Timestamp::from_millis(1_800_000_000_000);
    let current = SigningSecret::generate().unwrap();
    let previous = SigningSecret::generate().unwrap();
    let endpoint = WebhookEndpoint {
        id: "billing".into(),
        spec: EndpointSpec::parse(&json!({"url": URL, "description": "d"}), |_| Ok(())).unwrap(),
        secret: current.clone(),
        previous_secret: Some(RetiringSecret {
            secret: previous.clone(),
            until: now.plus_seconds(60),
        }),
        disabled_by: Some(DisabledBy::Failing),
        failing_since: Some(now),
        created_at: now,
        updated_at: now,
    };
    for json in [endpoint.to_json(), super::webhooks::view(&endpoint)] {
        let text = json.to_string();
        assert!(!text.contains(SECRET_PREFIX), "{text}");
        for secret in [&current, &previous] {
            let encoded = &secret.expose()[SECRET_PREFIX.len()..];
            assert!(!text.contains(encoded), "{text}");
        }
        assert!(json.get("secret").is_none() && json.get("previous_secret").is_none());
    }
}
