//! A provider outage of an hour, compressed to seconds by the breaker's settings (tests/src/lib.rs,
//! `BREAKER`): while Slack answers 503 the circuit opens, deliveries are deferred without calling it, one
//! probe per cool-down tries it; when it is back everything is sent once and the DLQ stays empty.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::similar_names)]

use herald::domain::Channel;
use herald_integration_tests::delivery_fixture::{accept, notification, notification_id, seeded_stack};
use herald_integration_tests::{BREAKER, RETRY_SCHEDULE};
use serde_json::json;
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const NOTIFICATIONS: usize = 10;

async fn answering(slack: &MockServer, status: u16) {
    slack.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_string("status"))
        .mount(slack)
        .await;
}

#[tokio::test]
async fn an_outage_is_waited_out_behind_an_open_circuit_and_everything_is_sent_once_after() {
    let slack = MockServer::start().await;
    answering(&slack, 503).await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    let mut ids = Vec::new();
    for order in 0..NOTIFICATIONS {
        event["payload"]["order_id"] = json!(order);
        ids.push(notification_id(&accept(&stack, &event).await, Channel::Slack));
    }
    let delivery = stack.delivery(stack.slack_sender());

    // Longer than the whole retry schedule (four one-second steps): without the breaker every
    // notification would be dead-lettered before the provider is back.
    let outage = Duration::from_secs(12);
    assert!(RETRY_SCHEDULE.split(',').count() * 1000 < usize::try_from(outage.as_millis()).unwrap());
    let end = Instant::now() + outage;
    while Instant::now() < end {
        stack.poll(Channel::Slack, 1, |e| delivery.handle(e)).await;
    }
    let during = slack.received_requests().await.unwrap().len();
    let cooldowns = usize::try_from(outage.as_millis() / BREAKER.cooldown.as_millis()).unwrap();
    // Before the circuit opened: at most the first batch; after it, a probe per cool-down.
    assert!(
        during <= NOTIFICATIONS + cooldowns + 1,
        "{during} calls during the outage"
    );
    assert!(
        stack.dead_letters(Channel::Slack).await.is_empty(),
        "nothing dead-lettered"
    );

    answering(&slack, 200).await;
    let back = Instant::now() + BREAKER.cooldown * 4 + Duration::from_secs(10);
    loop {
        stack.poll(Channel::Slack, 1, |e| delivery.handle(e)).await;
        let mut statuses = Vec::new();
        for id in &ids {
            statuses.push(notification(&stack, id).await["status"].clone());
        }
        if statuses.iter().all(|status| *status == "sent") {
            break;
        }
        assert!(
            Instant::now() < back,
            "not all sent after the provider came back: {statuses:?}"
        );
    }
    assert!(
        stack.dead_letters(Channel::Slack).await.is_empty(),
        "the DLQ stayed empty"
    );
    // Only what the provider accepted after it came back is left in the mock's record.
    stack
        .audit(Some(&slack))
        .await
        .assert_nothing_lost_or_doubled(&[]);
}
