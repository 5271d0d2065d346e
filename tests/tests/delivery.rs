//! Ingest → queue → a test poller → the channel handler, in-process, against the emulator: all three
//! channels end to end, retries, permanent failures, duplicates, poison messages and render errors (the faults
//! that bound the duplicate window are in delivery_faults.rs).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_lines,
    clippy::similar_names
)] // test code: a panic is a failed test

use herald::adapters::slack::SlackSender;
use herald::domain::template::TemplateContent;
use herald::domain::{Channel, NotificationId, Timestamp};
use herald::ports::{DeliveryLedger, TemplateStore};
use herald_integration_tests::channels::TestDelivery;
use herald_integration_tests::delivery_fixture::{
    accept, notification, notification_id, outcomes, seeded_stack, sent_emails, sent_sms,
    slack_messages_waiting, slack_that_accepts,
};
use herald_integration_tests::fault_proxy::{Fault, FaultProxy};
use herald_integration_tests::poller::{emulator_data, sqs_event_with_bodies};
use herald_integration_tests::{ApiRequest, ORDER_CHANNELS, RETRY_SCHEDULE, Stack};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn email_sms_and_slack_are_delivered_and_recorded() {
    let slack = slack_that_accepts().await;
    let (stack, event) = seeded_stack(&slack).await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let proxy = FaultProxy::start(&endpoint).await;
    let accepted = accept(&stack, &event).await;

    let email = stack.delivery(stack.email_sender(&proxy.url).await);
    let sms = stack.delivery(stack.sms_sender(&endpoint).await);
    let slack_delivery = stack.delivery(stack.slack_sender());
    for (channel, outcome) in [
        (
            Channel::Email,
            stack.poll(Channel::Email, 1, |e| email.handle(e)).await,
        ),
        (Channel::Sms, stack.poll(Channel::Sms, 1, |e| sms.handle(e)).await),
        (
            Channel::Slack,
            stack.poll(Channel::Slack, 1, |e| slack_delivery.handle(e)).await,
        ),
    ] {
        assert_eq!((outcome.received, outcome.failed.len()), (1, 0), "{channel}");
    }

    let data = emulator_data().await;
    let to = event["recipient"]["email"].as_str().unwrap();
    let emails = sent_emails(&data, to);
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["subject"], "Order #444");
    assert_eq!(emails[0]["body"], "<p>Total 99.99</p>");
    let sent = proxy.requests("outbound-emails");
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].contains("\"Text\":{\"Data\":\"Total 99.99\"") && sent[0].contains("<p>Total 99.99</p>"),
        "{}",
        sent[0]
    );
    let texts = sent_sms(&data, event["recipient"]["phone"].as_str().unwrap());
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0]["message"], "Order 444 placed");
    let posted = slack.received_requests().await.unwrap();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].body_json::<Value>().unwrap()["text"], "New order 444");

    let event_id = accepted.body["event_id"].as_str().unwrap();
    let read = stack
        .call_ingest(
            &stack.ingest(),
            &ApiRequest::get(&format!("/v1/events/{event_id}")).key(&stack.api_key),
        )
        .await;
    let statuses: Vec<_> = read.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("sent"), json!("sent"), json!("sent")]);
    let email_notification = notification(&stack, &notification_id(&accepted, Channel::Email)).await;
    assert_eq!(email_notification["status"], "sent");
    assert_eq!(email_notification["provider_message_id"], emails[0]["id"]);
    assert!(
        email_notification["to"]
            .as_str()
            .unwrap()
            .contains("***@example.com")
    );
    assert_eq!(outcomes(&email_notification), ["sent"]);
    assert!(email_notification["sent_at"].is_string());
}

#[tokio::test]
async fn a_throttled_or_failing_provider_is_retried_and_then_sent() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .up_to_n_times(1)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    let (stack, event) = seeded_stack(&slack).await;
    let proxy = FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    proxy.fail_next(Fault::ses_throttled());
    proxy.fail_next(Fault::sns_throttled());
    let accepted = accept(&stack, &event).await;
    let email = stack.delivery(stack.email_sender(&proxy.url).await);
    let sms = stack.delivery(stack.sms_sender(&proxy.url).await);
    let slack_delivery = stack.delivery(stack.slack_sender());

    let first = [
        stack.poll(Channel::Email, 1, |e| email.handle(e)).await,
        stack.poll(Channel::Sms, 1, |e| sms.handle(e)).await,
        stack.poll(Channel::Slack, 1, |e| slack_delivery.handle(e)).await,
    ];
    // Each retry is a new message, delayed by its wait; the received ones are acknowledged.
    assert!(
        first
            .iter()
            .all(|outcome| outcome.received == 1 && outcome.failed.is_empty()),
        "{first:?}"
    );
    assert_eq!(proxy.pending(), 0, "both faults were used");
    for (channel, why) in [
        (Channel::Email, "throttled"),
        (Channel::Sms, "throttled"),
        (Channel::Slack, "provider_error"),
    ] {
        let retrying = notification(&stack, &notification_id(&accepted, channel)).await;
        assert_eq!(retrying["status"], "retrying", "{channel}: {retrying}");
        assert_eq!(retrying["reason"], why, "{channel}");
        assert!(retrying["next_attempt_at"].is_string());
    }

    // The retries come back after a second (the tests' schedule), not the queue's visibility timeout.
    let second = [
        stack.poll(Channel::Email, 10, |e| email.handle(e)).await,
        stack.poll(Channel::Sms, 10, |e| sms.handle(e)).await,
        stack.poll(Channel::Slack, 10, |e| slack_delivery.handle(e)).await,
    ];
    assert!(
        second
            .iter()
            .all(|outcome| outcome.received == 1 && outcome.failed.is_empty()),
        "{second:?}"
    );
    for channel in ORDER_CHANNELS {
        let sent = notification(&stack, &notification_id(&accepted, channel)).await;
        assert_eq!(sent["status"], "sent", "{channel}");
        assert_eq!(sent["reason"], Value::Null);
        assert_eq!(outcomes(&sent), ["retrying", "sent"], "{channel}");
    }
    assert_eq!(
        sent_emails(
            &emulator_data().await,
            event["recipient"]["email"].as_str().unwrap()
        )
        .len(),
        1
    );
}

#[tokio::test]
async fn a_permanent_failure_fails_the_notification_and_acknowledges_the_message() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_service"))
        .mount(&slack)
        .await;
    let (stack, event) = seeded_stack(&slack).await;
    let proxy = FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    proxy.fail_next(Fault::ses_rejected());
    let accepted = accept(&stack, &event).await;
    let email = stack.delivery(stack.email_sender(&proxy.url).await);
    let slack_delivery = stack.delivery(stack.slack_sender());

    let outcomes_now = [
        stack.poll(Channel::Email, 1, |e| email.handle(e)).await,
        stack.poll(Channel::Slack, 1, |e| slack_delivery.handle(e)).await,
    ];

    assert!(
        outcomes_now
            .iter()
            .all(|outcome| outcome.received == 1 && outcome.failed.is_empty()),
        "{outcomes_now:?}"
    );
    for channel in [Channel::Email, Channel::Slack] {
        let failed = notification(&stack, &notification_id(&accepted, channel)).await;
        assert_eq!(failed["status"], "failed", "{channel}");
        assert_eq!(failed["reason"], "rejected_by_provider");
        assert!(
            failed["detail"]
                .as_str()
                .unwrap()
                .contains(if channel == Channel::Email {
                    "MessageRejected"
                } else {
                    "no_service"
                })
        );
        assert_eq!(outcomes(&failed), ["failed"]);
    }
    assert!(
        stack.receive(Channel::Email, 10, 0).await.is_empty(),
        "acknowledged, not retried"
    );
}

#[tokio::test]
async fn the_same_message_delivered_twice_sends_once() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("ok")
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&slack)
        .await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    let accepted = accept(&stack, &event).await;
    let delivery = stack.delivery(stack.slack_sender());
    let message = stack.receive(Channel::Slack, 1, 1).await;
    let envelope = message[0].body().unwrap().to_owned();
    let twice = |suffix: &str| sqs_event_with_bodies(&[(format!("m-{suffix}"), envelope.clone())]);

    let (first, second) = tokio::join!(
        delivery.handle(LambdaEvent::new(twice("a"), Context::default())),
        delivery.handle(LambdaEvent::new(twice("b"), Context::default()))
    );
    let later = delivery
        .handle(LambdaEvent::new(twice("c"), Context::default()))
        .await
        .unwrap();

    assert_eq!(
        slack.received_requests().await.unwrap().len(),
        1,
        "one send for three deliveries"
    );
    let reported = first.unwrap().batch_item_failures.len() + second.unwrap().batch_item_failures.len();
    assert_eq!(reported, 1, "the concurrent duplicate comes back later");
    assert!(
        later.batch_item_failures.is_empty(),
        "a delivery after the send is acknowledged"
    );
    let sent = notification(&stack, &notification_id(&accepted, Channel::Slack)).await;
    assert_eq!(
        (sent["status"].clone(), outcomes(&sent)),
        (json!("sent"), vec!["sent".to_owned()])
    );
}

#[tokio::test]
async fn poison_messages_fail_alone_in_their_batch() {
    let (slack, stack, envelopes) = slack_messages_waiting(7).await;
    let mut bodies: Vec<(String, String)> = envelopes
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("good-{i}"), serde_json::to_string(e).unwrap()))
        .collect();
    assert_eq!(bodies.len(), 7);
    bodies.insert(2, ("poison-json".into(), "{not json".into()));
    bodies.insert(
        5,
        (
            "poison-version".into(),
            json!({"v": 2, "tenant": "t", "notification_id": "ntf_x"}).to_string(),
        ),
    );
    bodies.push(("poison-shape".into(), json!({"v": 1, "tenant": 7}).to_string()));

    let response = stack.deliver_slack_bodies(&bodies).await;

    let mut failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    assert_eq!(failed, ["poison-json", "poison-shape", "poison-version"]);
    assert_eq!(slack.received_requests().await.unwrap().len(), 7);
}

#[tokio::test]
async fn a_template_that_cannot_render_fails_with_render_error() {
    let slack = MockServer::start().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    let broken = json!({"channel": "sms", "text": "Order {{ payload.missing_field }}"});
    // The PUT refuses it (order_created's schema has no missing_field); one stored some other way
    // (before that check existed, or written directly) still fails its notification, not the batch.
    let put = ApiRequest::new("PUT", "/v1/templates/order-sms")
        .key(&stack.api_key)
        .json(&broken);
    assert_eq!(stack.call_api(&stack.api(), &put).await.status, 422);
    let content = TemplateContent::from_json(&broken).unwrap();
    stack
        .config_store()
        .put_template(&stack.tenant, "order-sms", &content, Timestamp::now())
        .await
        .unwrap();
    event["channels"] = json!(["sms"]);
    let accepted = accept(&stack, &event).await;
    let sms = stack.delivery(
        stack
            .sms_sender(&std::env::var("AWS_ENDPOINT_URL").unwrap())
            .await,
    );

    let outcome = stack.poll(Channel::Sms, 1, |e| sms.handle(e)).await;

    assert_eq!((outcome.received, outcome.failed.len()), (1, 0));
    let failed = notification(&stack, &notification_id(&accepted, Channel::Sms)).await;
    assert_eq!(
        (failed["status"].clone(), failed["reason"].clone()),
        (json!("failed"), json!("render_error"))
    );
    assert!(
        failed["detail"].as_str().unwrap().contains("undefined"),
        "{failed}"
    );
    assert!(
        sent_sms(
            &emulator_data().await,
            event["recipient"]["phone"].as_str().unwrap()
        )
        .is_empty()
    );
}

/// A Slack-only notification whose webhook answers `refusal` `times` times, then 200; delivered through the
/// loop for each of those answers. Every retry is a message of its own: each receive is acknowledged, and
/// the retry comes back as a new message once its wait is over.
async fn slack_refusing(
    refusal: ResponseTemplate,
    times: usize,
) -> (Stack, MockServer, String, TestDelivery<SlackSender>) {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(refusal)
        .up_to_n_times(u64::try_from(times).unwrap())
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    let accepted = accept(&stack, &event).await;
    let id = notification_id(&accepted, Channel::Slack);
    let delivery = stack.delivery(stack.slack_sender());
    for round in 0..times {
        let outcome = stack.poll(Channel::Slack, 20, |e| delivery.handle(e)).await;
        assert_eq!((outcome.received, outcome.failed.len()), (1, 0), "round {round}");
    }
    (stack, slack, id, delivery)
}

#[tokio::test]
async fn retries_exhausted_dead_letter_the_message_and_a_redrive_still_sends_it() {
    let steps = RETRY_SCHEDULE.split(',').count();
    let refusal = ResponseTemplate::new(503).set_body_string("down");
    // The first attempt and one per step of the schedule, each refused.
    let (stack, slack, id, delivery) = slack_refusing(refusal, steps + 1).await;
    let dead = notification(&stack, &id).await;
    assert_eq!(
        (dead["status"].clone(), dead["reason"].clone()),
        (json!("dead_lettered"), json!("retries_exhausted"))
    );
    let mut exhausted = vec!["retrying"; steps];
    exhausted.push("dead_lettered");
    assert_eq!(outcomes(&dead), exhausted);
    assert_eq!(
        stack
            .poll(Channel::Slack, 2, |e| delivery.handle(e))
            .await
            .received,
        0
    );
    let letters = stack.dead_letters(Channel::Slack).await;
    assert_eq!(letters.len(), 1, "Herald put it in the DLQ itself");

    // A redrive puts the same body back on the queue; the notification may still end sent.
    stack
        .sqs
        .send_message()
        .queue_url(stack.queues.get(Channel::Slack).unwrap())
        .message_body(letters[0].body().unwrap())
        .send()
        .await
        .unwrap();
    let redriven = stack.poll(Channel::Slack, 2, |e| delivery.handle(e)).await;
    assert_eq!((redriven.received, redriven.failed.len()), (1, 0));
    let sent = notification(&stack, &id).await;
    assert_eq!(sent["status"], "sent");
    exhausted.push("sent");
    assert_eq!(outcomes(&sent), exhausted);
    let again = stack.poll(Channel::Slack, 0, |e| delivery.handle(e)).await;
    assert_eq!(again.received, 0);
    assert_eq!(slack.received_requests().await.unwrap().len(), steps + 2);
    // The mock counts every request it answered; the refused ones delivered nothing.
    stack
        .audit(Some(&slack))
        .await
        .assert_nothing_lost_or_doubled(&[(&id, steps + 1)]);
}

/// A 429 storm: every answer says "slow down, come back in a second". Each retry waits its Retry-After,
/// none uses up a step of the schedule, and nothing is dead-lettered however long the storm lasts.
#[tokio::test]
async fn a_throttling_storm_is_waited_out_and_never_dead_letters() {
    let storm = RETRY_SCHEDULE.split(',').count() * 2;
    let refusal = ResponseTemplate::new(429)
        .insert_header("Retry-After", "1")
        .set_body_string("rate_limited");
    let (stack, slack, id, delivery) = slack_refusing(refusal, storm).await;
    let last = stack.poll(Channel::Slack, 20, |e| delivery.handle(e)).await;
    assert_eq!((last.received, last.failed.len()), (1, 0));
    let sent = notification(&stack, &id).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let mut expected = vec!["retrying"; storm];
    expected.push("sent");
    assert_eq!(outcomes(&sent), expected);
    let (_, attempts) = stack
        .activity_store()
        .notification_with_attempts(&stack.tenant, &NotificationId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let times: Vec<i64> = attempts.iter().map(|attempt| attempt.at.millis()).collect();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= 1000,
            "each retry waited its Retry-After: {times:?}"
        );
    }
    assert!(stack.dead_letters(Channel::Slack).await.is_empty());
    assert_eq!(slack.received_requests().await.unwrap().len(), storm + 1);
    // The mock counts every request it answered; the refused ones delivered nothing.
    stack
        .audit(Some(&slack))
        .await
        .assert_nothing_lost_or_doubled(&[(&id, storm)]);
}

#[tokio::test]
async fn a_batch_of_ten_is_delivered_concurrently() {
    let latency = Duration::from_millis(100);
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("ok")
                .set_delay(latency),
        )
        .mount(&slack)
        .await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    let mut timings = Vec::new();
    for concurrency in [10, 1] {
        for order in 0..10 {
            event["payload"]["order_id"] = json!(order);
            accept(&stack, &event).await;
        }
        let bodies: Vec<(String, String)> = stack
            .drain(Channel::Slack)
            .await
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("m-{i}"), serde_json::to_string(e).unwrap()))
            .collect();
        assert_eq!(bodies.len(), 10);
        let delivery = stack.delivery_with_concurrency(stack.slack_sender(), concurrency);

        let started = std::time::Instant::now();
        let response = delivery
            .handle(LambdaEvent::new(
                sqs_event_with_bodies(&bodies),
                Context::default(),
            ))
            .await
            .unwrap();
        timings.push((concurrency, started.elapsed()));

        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(slack.received_requests().await.unwrap().len(), 20);
    // Measured, not asserted (see docs/benchmarks.md): concurrently, about one provider latency plus the
    // emulator's DynamoDB round trips; one at a time, ten latencies at least.
    for (concurrency, elapsed) in timings {
        println!("a batch of 10, {latency:?} provider latency, concurrency {concurrency}: {elapsed:?}");
    }
}

#[tokio::test]
async fn a_batch_reads_its_events_in_one_request_and_each_renders_its_own() {
    let slack = slack_that_accepts().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["slack"]);
    for order in 0..10 {
        event["payload"]["order_id"] = json!(order);
        accept(&stack, &event).await;
    }
    let proxy = FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    let delivery = stack.delivery_over(
        stack.slack_sender(),
        proxy.dynamodb_client(Duration::from_secs(3)).await,
        10,
        Duration::from_secs(60),
    );

    let outcome = stack.poll(Channel::Slack, 10, |e| delivery.handle(e)).await;

    assert_eq!((outcome.received, outcome.failed.len()), (10, 0), "{outcome:?}");
    // Events are the only items under `#EVT#` keys a delivery reads.
    let event_reads = proxy.requests("#EVT#");
    assert_eq!(event_reads.len(), 1, "{event_reads:#?}");
    assert!(
        event_reads[0].contains("RequestItems"),
        "a BatchGetItem: {}",
        event_reads[0]
    );
    let bodies: Vec<String> = slack
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| String::from_utf8_lossy(&request.body).into_owned())
        .collect();
    for order in 0..10 {
        let rendered = format!("New order {order}\"");
        assert_eq!(
            bodies.iter().filter(|body| body.contains(&rendered)).count(),
            1,
            "each message rendered from its own event: {bodies:#?}"
        );
    }
}
