//! The management API against the emulator: event types, templates, rules, paging, tenant isolation (webhook
//! endpoints and the suppression list: `api_endpoints_and_suppressions.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)] // test code: a panic is a failed test

use herald::domain::TenantId;
use herald_integration_tests::{Answer, ApiRequest, Stack, unique};
use serde_json::{Value, json};

#[tokio::test]
async fn health_needs_no_key_and_unknown_routes_are_404_problems() {
    let stack = Stack::new().await;
    let api = stack.api();

    let health = stack.call_api(&api, &ApiRequest::get("/v1/health")).await;
    assert_eq!(
        (health.status, health.body.clone()),
        (200, json!({"status": "ok"}))
    );

    for path in ["/", "/v1", "/v1/nope", "/v2/health", "/v1/rules/a/b"] {
        let answer = stack.call_api(&api, &ApiRequest::get(path)).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.problem_code(), "not_found");
        assert_eq!(answer.header("content-type"), Some("application/problem+json"));
    }
    let unauthorized = stack.call_api(&api, &ApiRequest::get("/v1/rules")).await;
    assert_eq!(unauthorized.status, 401);
    assert_eq!(unauthorized.header("www-authenticate"), Some("Bearer"));
    let wrong_method = stack.api_call(&api, "POST", "/v1/rules", Some(json!({}))).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.header("allow"),
        Some("GET"),
        "RFC 9110: a 405 says what is allowed"
    );
}

#[tokio::test]
async fn event_types_are_created_replaced_read_listed_and_deleted() {
    let stack = Stack::new().await;
    let api = stack.api();
    let spec = json!({"description": "Signed up", "category": "accounts", "critical": true, "max_age_seconds": 600,
                      "schema": {"type": "object", "properties": {"plan": {"enum": ["free", "pro"]}}}});

    let created = stack
        .api_call(&api, "PUT", "/v1/event-types/user_signup", Some(spec.clone()))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["critical"], true);
    let read = stack
        .api_call(&api, "GET", "/v1/event-types/user_signup", None)
        .await;
    assert_eq!(read.body["max_age_seconds"], 600, "{read:?}");
    let replaced = stack
        .api_call(
            &api,
            "PUT",
            "/v1/event-types/user_signup",
            Some(json!({"description": "v2"})),
        )
        .await;
    assert_eq!(replaced.status, 200);
    assert_eq!(replaced.body["created_at"], created.body["created_at"]);

    let read = stack
        .api_call(&api, "GET", "/v1/event-types/user_signup", None)
        .await;
    assert_eq!(read.body["description"], "v2");
    assert_eq!(
        read.body["schema"],
        Value::Null,
        "a replace drops what it leaves out"
    );
    assert_eq!(read.body["critical"], false);
    assert_eq!(read.body["max_age_seconds"], Value::Null);
    let listed = stack.api_call(&api, "GET", "/v1/event-types", None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["next_cursor"], Value::Null);

    assert_eq!(
        stack
            .api_call(&api, "DELETE", "/v1/event-types/user_signup", None)
            .await
            .status,
        204
    );
    assert_eq!(
        stack
            .api_call(&api, "GET", "/v1/event-types/user_signup", None)
            .await
            .status,
        404
    );
    assert_eq!(
        stack
            .api_call(&api, "DELETE", "/v1/event-types/user_signup", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn event_type_schemas_that_do_not_compile_or_reach_out_are_refused() {
    let stack = Stack::new().await;
    let api = stack.api();
    for body in [
        json!({"schema": {"type": "objekt"}}),
        json!({"schema": {"$ref": "https://example.com/schema.json"}}),
        json!({"schema": {"$ref": "file:///etc/passwd"}}),
        json!({"schema": {}, "critcal": true}),
    ] {
        let answer = stack
            .api_call(&api, "PUT", "/v1/event-types/x", Some(body.clone()))
            .await;
        assert_eq!(answer.status, 422, "{body}: {answer:?}");
        assert_eq!(answer.problem_code(), "validation_failed");
    }
    let bad_name = stack
        .api_call(&api, "PUT", "/v1/event-types/Bad%20Name", Some(json!({})))
        .await;
    assert_eq!(bad_name.status, 422);
    assert_eq!(
        stack
            .api_call(&api, "GET", "/v1/event-types/x", None)
            .await
            .status,
        404,
        "nothing was stored"
    );
}

#[tokio::test]
async fn templates_are_versioned_per_locale_with_the_newest_live() {
    let stack = Stack::new().await;
    let api = stack.api();
    let email = |subject: &str, locale: &str| json!({"channel": "email", "locale": locale, "subject": subject, "text": "Hi {{ recipient.email }}"});

    let v1 = stack
        .api_call(&api, "PUT", "/v1/templates/welcome", Some(email("Welcome", "en")))
        .await;
    assert_eq!(
        (v1.status, v1.body.clone()),
        (
            201,
            json!({"name": "welcome", "channel": "email", "locale": "en", "version": 1})
        )
    );
    let v2 = stack
        .api_call(
            &api,
            "PUT",
            "/v1/templates/welcome",
            Some(email("Welcome!", "en")),
        )
        .await;
    assert_eq!(v2.body["version"], 2);
    let de = stack
        .api_call(
            &api,
            "PUT",
            "/v1/templates/welcome",
            Some(email("Willkommen", "de")),
        )
        .await;
    assert_eq!(
        (de.body["locale"].clone(), de.body["version"].clone()),
        (json!("de"), json!(1))
    );

    let live = stack.api_call(&api, "GET", "/v1/templates/welcome", None).await;
    assert_eq!(live.status, 200);
    assert_eq!(
        (live.body["subject"].clone(), live.body["version"].clone()),
        (json!("Welcome!"), json!(2))
    );
    assert_eq!(
        live.body["default_locale"], "en",
        "the first locale stored is the default"
    );
    assert_eq!(live.body["locales"], json!({"de": 1, "en": 2}));
    let old = stack
        .api_call(&api, "GET", "/v1/templates/welcome?version=1&locale=en", None)
        .await;
    assert_eq!(
        (old.body["subject"].clone(), old.body["live"].clone()),
        (json!("Welcome"), json!(false))
    );
    let german = stack
        .api_call(&api, "GET", "/v1/templates/welcome?locale=de", None)
        .await;
    assert_eq!(german.body["subject"], "Willkommen");
    assert_eq!(
        stack
            .api_call(&api, "GET", "/v1/templates/welcome?version=9", None)
            .await
            .status,
        404
    );

    let other_channel = stack
        .api_call(
            &api,
            "PUT",
            "/v1/templates/welcome",
            Some(json!({"channel": "sms", "text": "hi"})),
        )
        .await;
    assert_eq!(
        (other_channel.status, other_channel.problem_code()),
        (409, "conflict")
    );
    let broken = stack
        .api_call(
            &api,
            "PUT",
            "/v1/templates/welcome",
            Some(email("{% if %}", "en")),
        )
        .await;
    assert_eq!(broken.status, 422);
    assert_eq!(broken.body["errors"][0]["pointer"], "/subject");

    let listed = stack.api_call(&api, "GET", "/v1/templates", None).await;
    assert_eq!(listed.body["items"][0]["locales"], json!({"de": 1, "en": 2}));
    assert_eq!(
        stack
            .api_call(&api, "DELETE", "/v1/templates/welcome", None)
            .await
            .status,
        204
    );
    assert_eq!(
        stack
            .api_call(&api, "GET", "/v1/templates/welcome", None)
            .await
            .status,
        404
    );
    let fresh = stack
        .api_call(
            &api,
            "PUT",
            "/v1/templates/welcome",
            Some(json!({"channel": "sms", "text": "hi"})),
        )
        .await;
    assert_eq!(
        (fresh.status, fresh.body["version"].clone()),
        (201, json!(1)),
        "a deleted name is free again"
    );
}

#[tokio::test]
async fn concurrent_template_puts_get_distinct_versions() {
    let stack = Stack::new().await;
    let api = stack.api();
    let body = json!({"channel": "sms", "text": "hello"});

    let answers = futures::future::join_all(
        (0..4).map(|_| stack.api_call(&api, "PUT", "/v1/templates/race", Some(body.clone()))),
    )
    .await;

    let mut versions: Vec<u64> = answers
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.body["version"].as_u64().unwrap())
        .collect();
    versions.sort_unstable();
    let expected: Vec<u64> = (1..=versions.len() as u64).collect();
    assert_eq!(versions, expected, "no version is handed out twice: {answers:?}");
    assert!(answers.iter().all(|a| a.status == 201 || a.status == 409));
}

#[tokio::test]
async fn rules_must_name_an_existing_event_type_and_a_template_of_their_channel() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let api = stack.api();
    let rule = |event: &str, channel: &str, template: &str| json!({"event": event, "channel": channel, "template": template});

    let missing = stack
        .api_call(
            &api,
            "PUT",
            "/v1/rules/r1",
            Some(rule("order_shipped", "sms", "nope")),
        )
        .await;
    assert_eq!(missing.status, 422);
    let pointers: Vec<_> = missing.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].clone())
        .collect();
    assert_eq!(pointers, [json!("/event"), json!("/template")]);
    let wrong_channel = stack
        .api_call(
            &api,
            "PUT",
            "/v1/rules/r1",
            Some(rule("order_created", "sms", "order-email")),
        )
        .await;
    assert_eq!(wrong_channel.status, 422);
    let bad_condition = stack.api_call(&api,
        "PUT",
        "/v1/rules/r1",
        Some(json!({"event": "order_created", "channel": "sms", "template": "order-sms", "condition": {"total": [1]}})),
    )
    .await;
    assert_eq!(
        (
            bad_condition.status,
            bad_condition.body["errors"][0]["pointer"].clone()
        ),
        (422, json!("/condition"))
    );

    let created = stack
        .api_call(
            &api,
            "PUT",
            "/v1/rules/r1",
            Some(rule("order_created", "sms", "order-sms")),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["enabled"], true);
    let replaced = stack.api_call(&api,
        "PUT",
        "/v1/rules/r1",
        Some(json!({"event": "order_created", "channel": "sms", "template": "order-sms", "enabled": false})),
    )
    .await;
    assert_eq!(
        (replaced.status, replaced.body["enabled"].clone()),
        (200, json!(false))
    );
    let by_event = stack
        .api_call(&api, "GET", "/v1/rules?event=order_created", None)
        .await;
    assert_eq!(
        by_event.body["items"].as_array().unwrap().len(),
        4,
        "three seeded rules and r1"
    );
    let none = stack
        .api_call(&api, "GET", "/v1/rules?event=order_shipped", None)
        .await;
    assert_eq!(none.body["items"], json!([]));
    assert_eq!(
        stack.api_call(&api, "DELETE", "/v1/rules/r1", None).await.status,
        204
    );
    assert_eq!(
        stack.api_call(&api, "GET", "/v1/rules/r1", None).await.status,
        404
    );
}

#[tokio::test]
async fn an_event_type_takes_at_most_fifty_rules() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let api = stack.api();
    let rule = json!({"event": "order_created", "channel": "sms", "template": "order-sms"});
    for index in 0..47 {
        let answer = stack
            .api_call(
                &api,
                "PUT",
                &format!("/v1/rules/extra-{index}"),
                Some(rule.clone()),
            )
            .await;
        assert_eq!(answer.status, 201, "rule {index}: {answer:?}");
    }

    let over = stack
        .api_call(&api, "PUT", "/v1/rules/one-too-many", Some(rule.clone()))
        .await;
    assert_eq!(over.status, 422, "{over:?}");
    assert_eq!(over.body["errors"][0]["pointer"], "/event");
    assert_eq!(
        stack
            .api_call(&api, "DELETE", "/v1/rules/extra-0", None)
            .await
            .status,
        204
    );
    assert_eq!(
        stack
            .api_call(&api, "PUT", "/v1/rules/one-too-many", Some(rule))
            .await
            .status,
        201,
        "deleting frees a place"
    );
}

#[tokio::test]
async fn lists_page_with_a_cursor_bound_to_the_tenant_and_the_list() {
    let stack = Stack::new().await;
    let api = stack.api();
    for name in ["a", "b", "c"] {
        assert_eq!(
            stack
                .api_call(&api, "PUT", &format!("/v1/event-types/{name}"), Some(json!({})))
                .await
                .status,
            201
        );
    }

    let first = stack.api_call(&api, "GET", "/v1/event-types?limit=2", None).await;
    let names = |answer: &Answer| -> Vec<String> {
        answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first), ["a", "b"]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = stack
        .api_call(
            &api,
            "GET",
            &format!("/v1/event-types?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(names(&second), ["c"]);

    for limit in ["0", "101", "ten"] {
        let answer = stack
            .api_call(&api, "GET", &format!("/v1/event-types?limit={limit}"), None)
            .await;
        assert_eq!(answer.status, 422, "limit={limit}");
    }
    let garbage = stack
        .api_call(&api, "GET", "/v1/event-types?cursor=garbage", None)
        .await;
    assert_eq!((garbage.status, garbage.problem_code()), (400, "invalid_cursor"));
    let other_list = stack
        .api_call(&api, "GET", &format!("/v1/templates?cursor={cursor}"), None)
        .await;
    assert_eq!(other_list.status, 400);
    stack
        .add_tenant(&TenantId::new(unique("tenant-b")), "key-b")
        .await;
    let other_tenant = stack
        .call_api(
            &api,
            &ApiRequest::get(&format!("/v1/event-types?cursor={cursor}")).key("key-b"),
        )
        .await;
    assert_eq!(other_tenant.status, 400);
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_configuration() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let api = stack.api();
    stack
        .add_tenant(&TenantId::new(unique("tenant-b")), "key-of-b")
        .await;
    let as_b = |method: &str, path: &str| ApiRequest::new(method, path).key("key-of-b");

    for path in [
        "/v1/event-types/order_created",
        "/v1/templates/order-email",
        "/v1/rules/order-email",
    ] {
        assert_eq!(
            stack.call_api(&api, &as_b("GET", path)).await.status,
            404,
            "GET {path}"
        );
        assert_eq!(
            stack.call_api(&api, &as_b("DELETE", path)).await.status,
            404,
            "DELETE {path}"
        );
    }
    for path in ["/v1/event-types", "/v1/templates", "/v1/rules"] {
        assert_eq!(
            stack.call_api(&api, &as_b("GET", path)).await.body["items"],
            json!([]),
            "{path}"
        );
    }
    let b_rule = as_b("PUT", "/v1/rules/mine")
        .json(&json!({"event": "order_created", "channel": "email", "template": "order-email"}));
    assert_eq!(
        stack.call_api(&api, &b_rule).await.status,
        422,
        "B cannot point a rule at A's type and template"
    );
    assert_eq!(
        stack
            .api_call(&api, "GET", "/v1/rules/order-email", None)
            .await
            .status,
        200,
        "A's rule is intact"
    );
}
