//! `GET /v1/notifications`: every notification on exactly one page, newest first; each filter; cursors
//! that work only for the query they came from.

use super::*;
use std::collections::BTreeSet;

/// An order to its own address (so no rate limit is met); only the email rule has one, so each event
/// makes one `queued` email and two `skipped` notifications.
fn order_to(order_id: u64, user: Option<&str>) -> Value {
    let mut recipient = json!({"email": format!("buyer{order_id}@example.com")});
    if let Some(user) = user {
        recipient["user_id"] = json!(user);
    }
    json!({"event": "order_created", "recipient": recipient, "payload": {"order_id": order_id}})
}

async fn accept(ingest: &MemoryIngest, body: &Value) -> Answer {
    let answer = call(ingest, post(body, None)).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    answer
}

/// Every item of `GET path` and the pages after it, following `next_cursor`.
async fn walk(ingest: &MemoryIngest, path: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut url = path.to_owned();
    loop {
        let page = call(ingest, get(&url)).await;
        assert_eq!(page.status, 200, "{url}: {}", page.body);
        pages += 1;
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(cursor) => url = format!("{path}&cursor={cursor}"),
            None => return (items, pages),
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
async fn pages_hold_every_notification_once_newest_first_each_with_its_attempts() {
    let ingest = ingest().await;
    let mut accepted = BTreeSet::new();
    for order_id in 0..8 {
        let answer = accept(&ingest, &order_to(order_id, None)).await;
        accepted.extend(answer.notifications().into_values().map(|id| id.to_string()));
    }
    let (items, pages) = walk(&ingest, "/v1/notifications?limit=5").await;
    let listed = ids(&items);
    assert_eq!(listed.len(), 24, "each notification once");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), accepted);
    assert_eq!(pages, 5);
    let created: Vec<&str> = items
        .iter()
        .map(|item| item["created_at"].as_str().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first: {created:?}"
    );
    assert!(
        items.iter().all(|item| item["attempts"].is_array()),
        "attempts shown"
    );
}

#[tokio::test]
async fn each_filter_narrows_the_log() {
    let ingest = ingest().await;
    let mut events = Vec::new();
    for (order_id, user) in [(1, "u-1"), (2, "u-1"), (3, "u-2"), (4, "u-1"), (5, "u-2")] {
        events.push(accept(&ingest, &order_to(order_id, Some(user))).await.event_id());
    }
    let (mine, _) = walk(&ingest, "/v1/notifications?user_id=u-1&limit=4").await;
    assert_eq!(mine.len(), 9);
    assert!(mine.iter().all(|item| item["user_id"] == "u-1"));
    let (emails, _) = walk(&ingest, "/v1/notifications?user_id=u-1&channel=email&limit=2").await;
    assert_eq!(emails.len(), 3);
    assert!(
        emails
            .iter()
            .all(|item| item["channel"] == "email" && item["status"] == "queued")
    );
    let (skipped, _) = walk(&ingest, "/v1/notifications?status=skipped").await;
    assert_eq!(skipped.len(), 10);
    assert!(skipped.iter().all(|item| item["reason"] == "no_address"));
    let one_event = format!("/v1/notifications?event_id={}&limit=2", events[2]);
    let (of_event, pages) = walk(&ingest, &one_event).await;
    assert_eq!((of_event.len(), pages), (3, 2));
    assert!(
        of_event
            .iter()
            .all(|item| item["event_id"] == events[2].to_string())
    );
    let queued_of_event = format!("/v1/notifications?event_id={}&status=queued", events[2]);
    assert_eq!(walk(&ingest, &queued_of_event).await.0.len(), 1);
    let (future, _) = walk(&ingest, "/v1/notifications?since=2999-01-01T00:00:00Z").await;
    let (past, _) = walk(&ingest, "/v1/notifications?until=2000-01-01T00:00:00Z").await;
    let (window, _) = walk(
        &ingest,
        "/v1/notifications?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z",
    )
    .await;
    assert_eq!((future.len(), past.len(), window.len()), (0, 0, 15));
}

#[tokio::test]
async fn a_cursor_serves_only_its_own_query_and_bad_filters_are_named() {
    let ingest = ingest().await;
    for order_id in 0..3 {
        accept(&ingest, &order_to(order_id, None)).await;
    }
    let first = call(&ingest, get("/v1/notifications?channel=email&limit=1")).await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let same = call(
        &ingest,
        get(&format!(
            "/v1/notifications?limit=1&channel=email&cursor={cursor}"
        )),
    )
    .await;
    assert_eq!(same.status, 200);
    assert_ne!(same.body["items"][0]["id"], first.body["items"][0]["id"]);
    let other = call(
        &ingest,
        get(&format!("/v1/notifications?channel=sms&cursor={cursor}")),
    )
    .await;
    assert_eq!(
        (other.status, other.problem_code()),
        (400, "invalid_cursor"),
        "{}",
        other.body
    );

    let bad = call(&ingest, get("/v1/notifications?status=lost&since=yesterday")).await;
    assert_eq!(bad.status, 422);
    let pointers: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/status", "/since"]);

    let mut wrong_method = get("/v1/notifications");
    *wrong_method.method_mut() = lambda_http::http::Method::DELETE;
    let refused = call(&ingest, wrong_method).await;
    assert_eq!((refused.status, refused.header("allow")), (405, Some("GET")));
}

#[tokio::test]
async fn a_failing_index_is_a_503_not_a_short_page() {
    let ingest = ingest().await;
    accept(&ingest, &order_to(1, None)).await;
    ingest.activity().failpoints.set("log_page", Fault::Fail, 1);
    let failed = call(&ingest, get("/v1/notifications")).await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    assert!(failed.header("retry-after").is_some());
    assert_eq!(
        call(&ingest, get("/v1/notifications")).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
