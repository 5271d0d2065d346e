//! Users and their preferences against the emulator: the API (each tenant's alone), and an event naming
//! a user who opted out of SMS: email queued to the stored address, SMS `suppressed` and never queued.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)] // test code: a panic is a failed test

use herald::domain::{Channel, TenantId};
use herald_integration_tests::{Answer, ApiRequest, Stack, TestApi, unique};
use serde_json::{Value, json};

async fn call(
    stack: &Stack,
    api: &TestApi,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut request = ApiRequest::new(method, path).key(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    stack.call_api(api, &request).await
}

#[tokio::test]
async fn users_and_preferences_are_written_read_and_deleted_by_their_own_tenant_alone() {
    let stack = Stack::new().await;
    let api = stack.api();
    let key = stack.api_key.clone();
    let other = TenantId::new(unique("other"));
    let other_key = unique("other-key-with-enough-entropy");
    stack.add_tenant(&other, &other_key).await;
    let user = "/v1/users/u-7";
    let profile = json!({"email": "ada@example.com", "phone": "+15555550100", "locale": "en-GB", "timezone": "Europe/London"});

    let created = call(&stack, &api, &key, "PUT", user, Some(profile.clone())).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["user_id"], "u-7");
    let replaced = call(
        &stack,
        &api,
        &key,
        "PUT",
        user,
        Some(json!({"email": "ada@example.org"})),
    )
    .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    let read = call(&stack, &api, &key, "GET", user, None).await;
    assert_eq!(
        read.body,
        json!({"user_id": "u-7", "email": "ada@example.org"}),
        "a PUT replaces the profile"
    );

    let none_yet = call(&stack, &api, &key, "GET", "/v1/users/u-7/preferences", None).await;
    assert_eq!(none_yet.status, 200);
    assert_eq!(
        none_yet.body["channels"],
        json!({}),
        "a user who set nothing takes everything"
    );
    let preferences = json!({"channels": {"sms": false}, "event_types": {"promo_sent": {"email": false}},
                             "categories": {"marketing": {"slack": false}}});
    let set = call(
        &stack,
        &api,
        &key,
        "PUT",
        "/v1/users/u-7/preferences",
        Some(preferences.clone()),
    )
    .await;
    assert_eq!(set.status, 201, "{set:?}");
    let read = call(&stack, &api, &key, "GET", "/v1/users/u-7/preferences", None).await;
    let mut expected = preferences.clone();
    expected["user_id"] = json!("u-7");
    assert_eq!(read.body, expected);
    let profile_kept = call(&stack, &api, &key, "GET", user, None).await;
    assert_eq!(
        profile_kept.body["email"], "ada@example.org",
        "setting preferences keeps the profile"
    );

    let invalid = call(
        &stack,
        &api,
        &key,
        "PUT",
        user,
        Some(json!({"phone": "555", "fax": "1"})),
    )
    .await;
    assert_eq!(invalid.status, 422, "{invalid:?}");
    assert_eq!(invalid.header("content-type"), Some("application/problem+json"));
    let bad_preferences = call(
        &stack,
        &api,
        &key,
        "PUT",
        "/v1/users/u-7/preferences",
        Some(json!({"channels": {"fax": false}})),
    )
    .await;
    assert_eq!(bad_preferences.status, 422);
    let bad_id = call(
        &stack,
        &api,
        &key,
        "PUT",
        "/v1/users/Not%20Valid",
        Some(json!({})),
    )
    .await;
    assert_eq!(bad_id.status, 422);

    // The other tenant sees nothing of it, and its own user of the same id is its own.
    for path in [user, "/v1/users/u-7/preferences"] {
        let answer = call(&stack, &api, &other_key, "GET", path, None).await;
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
    }
    assert_eq!(
        call(&stack, &api, &other_key, "DELETE", user, None).await.status,
        404
    );
    let theirs = call(
        &stack,
        &api,
        &other_key,
        "PUT",
        user,
        Some(json!({"email": "eve@example.com"})),
    )
    .await;
    assert_eq!(theirs.status, 201, "a new user for the other tenant");
    let ours = call(&stack, &api, &key, "GET", user, None).await;
    assert_eq!(ours.body["email"], "ada@example.org");

    assert_eq!(call(&stack, &api, &key, "DELETE", user, None).await.status, 204);
    assert_eq!(call(&stack, &api, &key, "GET", user, None).await.status, 404);
    assert_eq!(
        call(&stack, &api, &key, "GET", "/v1/users/u-7/preferences", None)
            .await
            .status,
        404
    );
    assert_eq!(call(&stack, &api, &key, "DELETE", user, None).await.status, 404);
    let still_theirs = call(&stack, &api, &other_key, "GET", user, None).await;
    assert_eq!(still_theirs.body["email"], "eve@example.com");
}

#[tokio::test]
async fn an_event_for_a_user_who_opted_out_of_sms_is_emailed_at_the_stored_address_and_not_texted() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let api = stack.api();
    let key = stack.api_key.clone();
    let email = format!("{}@example.com", unique("grace"));
    let stored = call(
        &stack,
        &api,
        &key,
        "PUT",
        "/v1/users/u-9",
        Some(json!({"email": email, "phone": "+15555550100"})),
    )
    .await;
    assert_eq!(stored.status, 201, "{stored:?}");
    let opted_out = call(
        &stack,
        &api,
        &key,
        "PUT",
        "/v1/users/u-9/preferences",
        Some(json!({"channels": {"sms": false}})),
    )
    .await;
    assert_eq!(opted_out.status, 201);

    let ingest = stack.ingest();
    let event = json!({"event": "order_created", "recipient": {"user_id": "u-9"}, "payload": {"order_id": 9, "total": 5}});
    let accepted = stack
        .call_ingest(
            &ingest,
            &ApiRequest::new("POST", "/v1/events").key(&key).json(&event),
        )
        .await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let by_channel: Vec<(String, String, String)> = accepted.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["channel"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
                n["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let status_of = |channel: &str| {
        by_channel
            .iter()
            .find(|(c, _, _)| c == channel)
            .map(|(_, s, _)| s.as_str())
    };
    assert_eq!(status_of("email"), Some("queued"));
    assert_eq!(status_of("sms"), Some("suppressed"));
    assert_eq!(
        status_of("slack"),
        Some("skipped"),
        "the user has no Slack webhook"
    );

    let emails = stack.drain(Channel::Email).await;
    assert_eq!(emails.len(), 1);
    assert!(
        stack.drain(Channel::Sms).await.is_empty(),
        "an opted-out notification is never queued"
    );
    let (_, _, sms_id) = by_channel.iter().find(|(c, _, _)| c == "sms").unwrap();
    let sms = stack
        .call_ingest(
            &ingest,
            &ApiRequest::get(&format!("/v1/notifications/{sms_id}")).key(&key),
        )
        .await;
    assert_eq!(
        (sms.body["status"].as_str(), sms.body["reason"].as_str()),
        (Some("suppressed"), Some("opted_out"))
    );
    let (_, _, email_id) = by_channel.iter().find(|(c, _, _)| c == "email").unwrap();
    let email_notification = stack
        .call_ingest(
            &ingest,
            &ApiRequest::get(&format!("/v1/notifications/{email_id}")).key(&key),
        )
        .await;
    assert_eq!(email_notification.body["status"], "queued");
    assert_eq!(
        email_notification.body["to"], "g***@example.com",
        "the stored address (masked), as the event gave none"
    );
}
