//! `GET /v1/notifications` against the emulator: the tenant's notifications paged newest first across the
//! eight partitions of its index, each on exactly one page, with its attempts; a user's and an event's; and
//! nothing of another tenant's, by any filter or cursor.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::domain::{Channel, TenantId};
use herald_integration_tests::delivery_fixture::{accept, seeded_stack, slack_that_accepts};
use herald_integration_tests::{Answer, ApiRequest, Stack, unique};
use serde_json::{Value, json};
use std::collections::BTreeSet;

async fn list(stack: &Stack, key: &str, path_and_query: &str) -> Answer {
    let request = ApiRequest::get(path_and_query).key(key);
    stack.call_ingest(&stack.ingest(), &request).await
}

/// Every item of `path` and of the pages after it.
async fn walk(stack: &Stack, key: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut url = path.to_owned();
    loop {
        let page = list(stack, key, &url).await;
        assert_eq!(page.status, 200, "{url}: {page:?}");
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(cursor) => url = format!("{path}&cursor={cursor}"),
            None => return items,
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_log_pages_every_notification_once_newest_first_with_its_attempts() {
    let webhook = slack_that_accepts().await;
    let (stack, mut event) = seeded_stack(&webhook).await;
    event["channels"] = json!(["slack"]);
    let mut accepted = BTreeSet::new();
    let mut of_user = BTreeSet::new();
    for order in 0..12 {
        event["payload"]["order_id"] = json!(order);
        event["recipient"]["user_id"] = json!(if order % 3 == 0 { "u-3" } else { "u-other" });
        let answer = accept(&stack, &event).await;
        let id = answer.body["notifications"][0]["id"].as_str().unwrap().to_owned();
        if order % 3 == 0 {
            of_user.insert(id.clone());
        }
        accepted.insert(id);
    }
    let delivery = stack.delivery(stack.slack_sender());
    let mut delivered = 0;
    while delivered < 12 {
        let outcome = stack.poll(Channel::Slack, 2, |e| delivery.handle(e)).await;
        assert!(outcome.received > 0 && outcome.failed.is_empty(), "{outcome:?}");
        delivered += outcome.received;
    }

    let items = walk(&stack, &stack.api_key, "/v1/notifications?limit=5").await;
    let listed = ids(&items);
    assert_eq!(listed.len(), 12, "each once: {listed:?}");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), accepted);
    let created: Vec<&str> = items
        .iter()
        .map(|item| item["created_at"].as_str().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first: {created:?}"
    );
    for item in &items {
        assert_eq!(item["status"], "sent", "{item}");
        assert_eq!(item["attempts"].as_array().unwrap().len(), 1, "{item}");
        assert_eq!(item["attempts"][0]["outcome"], "sent");
    }

    let users = walk(&stack, &stack.api_key, "/v1/notifications?user_id=u-3&limit=3").await;
    assert_eq!(ids(&users).into_iter().collect::<BTreeSet<_>>(), of_user);
    let sent = walk(
        &stack,
        &stack.api_key,
        "/v1/notifications?status=sent&channel=slack",
    )
    .await;
    assert_eq!(sent.len(), 12);
    let emails = walk(&stack, &stack.api_key, "/v1/notifications?channel=email").await;
    assert!(emails.is_empty());
    let newest = &items[0];
    let since = format!(
        "/v1/notifications?since={}",
        newest["created_at"].as_str().unwrap()
    );
    let recent = ids(&walk(&stack, &stack.api_key, &since).await);
    assert!(recent.contains(&listed[0]) && recent.len() < 12, "{recent:?}");
    let of_event = format!(
        "/v1/notifications?event_id={}",
        newest["event_id"].as_str().unwrap()
    );
    assert_eq!(
        ids(&walk(&stack, &stack.api_key, &of_event).await),
        vec![listed[0].clone()]
    );
}

#[tokio::test]
async fn another_tenant_sees_none_of_the_log_by_any_filter_or_cursor() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let mut accepted = Vec::new();
    for order in 0..3 {
        accepted.push(accept(&stack, &herald_integration_tests::order_created(order)).await);
    }
    let other = TenantId::new(unique("other"));
    let other_key = unique("other-key-with-enough-entropy");
    stack.add_tenant(&other, &other_key).await;

    let mine = list(&stack, &stack.api_key, "/v1/notifications?limit=2").await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 2);
    let event_id = accepted[0].body["event_id"].as_str().unwrap();
    for query in [
        "/v1/notifications".to_owned(),
        "/v1/notifications?user_id=u-42".to_owned(),
        format!("/v1/notifications?event_id={event_id}"),
    ] {
        let theirs = list(&stack, &other_key, &query).await;
        assert_eq!(theirs.status, 200, "{query}: {theirs:?}");
        assert_eq!(theirs.body, json!({"items": [], "next_cursor": null}), "{query}");
    }
    let cursor = mine.body["next_cursor"].as_str().unwrap();
    let stolen = list(
        &stack,
        &other_key,
        &format!("/v1/notifications?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        (stolen.status, stolen.problem_code()),
        (400, "invalid_cursor"),
        "{stolen:?}"
    );
}
