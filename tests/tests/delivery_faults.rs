//! Delivery faults that bound the duplicate window, against the emulator: a provider that accepts but
//! answers too late, a batch near its deadline, a message on the wrong channel's queue. Each ends with the
//! audit of the run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::similar_names)] // test code: a panic is a failed test

use herald::adapters::sqs::SqsNotificationQueue;
use herald::domain::notification::Envelope;
use herald::domain::{Channel, NotificationId, Timestamp};
use herald::ports::NotificationQueue;
use herald_integration_tests::Stack;
use herald_integration_tests::channels::PROVIDER_TIMEOUT;
use herald_integration_tests::delivery_fixture::{
    accept, notification, notification_id, outcomes, seeded_stack, sent_sms, slack_messages_waiting,
};
use herald_integration_tests::fault_proxy::{Fault, FaultProxy};
use herald_integration_tests::poller::{emulator_data, sqs_event_with_bodies};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use wiremock::MockServer;

#[tokio::test]
async fn a_provider_that_accepts_but_answers_too_late_is_recorded_ambiguous_and_not_retried_soon() {
    let slack = MockServer::start().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["sms"]);
    let accepted = accept(&stack, &event).await;
    let proxy = FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    // SNS publishes the SMS, then answers after the sender's timeout.
    proxy.fail_next(Fault::answered_late("Action=Publish", PROVIDER_TIMEOUT * 2));
    let sms = stack.delivery(stack.sms_sender(&proxy.url).await);

    let first = stack.poll(Channel::Sms, 1, |e| sms.handle(e)).await;

    // Acknowledged: its retry is a new message, delayed by the whole wait.
    assert_eq!((first.received, first.failed.len()), (1, 0), "{first:?}");
    let id = notification_id(&accepted, Channel::Sms);
    let pending = notification(&stack, &id).await;
    assert_eq!(pending["status"], "retrying", "{pending:#}");
    assert_eq!(pending["reason"], "provider_timeout", "{pending:#}");
    assert_eq!(outcomes(&pending), ["ambiguous"], "{pending:#}");
    // Both are written by Timestamp::to_rfc3339 (UTC, fixed width), so they compare as strings.
    let next = pending["next_attempt_at"].as_str().unwrap();
    let in_four_minutes = Timestamp::now().plus_seconds(4 * 60).to_rfc3339();
    assert!(
        next > in_four_minutes.as_str(),
        "the retry waits minutes, not seconds: {next}"
    );
    let phone = event["recipient"]["phone"].as_str().unwrap();
    assert_eq!(
        sent_sms(&emulator_data().await, phone).len(),
        1,
        "the provider did send it, once"
    );
    let soon = stack.poll(Channel::Sms, 2, |e| sms.handle(e)).await;
    assert_eq!(soon.received, 0, "no fast retry to send it twice: {soon:?}");

    // A second copy of its message (SQS delivers at least once) is not a way around the wait.
    let copy = [Envelope::new(
        stack.tenant.clone(),
        NotificationId::parse(&id).unwrap(),
        "copy".into(),
    )
    .on(Channel::Sms)];
    return_to_queue(&stack, Channel::Sms, &copy).await;
    let early = stack.poll(Channel::Sms, 2, |e| sms.handle(e)).await;
    assert_eq!(
        (early.received, early.failed.len()),
        (1, 1),
        "the copy waits too: {copy:?}"
    );
    assert_eq!(
        sent_sms(&emulator_data().await, phone).len(),
        1,
        "still sent once"
    );
    let still = notification(&stack, &id).await;
    assert_eq!(
        (&still["status"], outcomes(&still)),
        (&json!("retrying"), vec!["ambiguous".to_owned()]),
        "{still:#}"
    );

    // Five minutes later (its due time moved to now) a message for it is claimed and sent: the second
    // copy of an ambiguous attempt that had in fact succeeded, recorded as such (docs/reliability.md).
    stack
        .dynamodb
        .update_item()
        .table_name(&stack.tables.activity)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("T#{}#NTF#{id}", stack.tenant)),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("NTF".into()))
        .update_expression("SET next_attempt_at = :now")
        .expression_attribute_values(
            ":now",
            aws_sdk_dynamodb::types::AttributeValue::N(Timestamp::now().millis().to_string()),
        )
        .send()
        .await
        .unwrap();
    return_to_queue(&stack, Channel::Sms, &copy).await;
    let due = stack.poll(Channel::Sms, 2, |e| sms.handle(e)).await;
    assert_eq!((due.received, due.failed.len()), (1, 0), "{due:?}");
    let audit = stack.audit(None).await;
    assert_eq!(audit.get(&id).outcomes, ["ambiguous", "sent"]);
    audit.assert_nothing_lost_or_doubled(&[]);
}

/// Puts envelopes back on their channel's queue, as SQS makes a returned message visible again.
async fn return_to_queue(stack: &Stack, channel: Channel, envelopes: &[Envelope]) {
    SqsNotificationQueue::new(stack.sqs.clone(), stack.queues.clone())
        .enqueue(channel, envelopes)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_batch_that_runs_out_of_time_returns_the_rest_unclaimed() {
    let (slack, stack, messages) = slack_messages_waiting(3).await;
    let bodies: Vec<(String, String)> = messages
        .iter()
        .map(|e| (e.notification_id.to_string(), serde_json::to_string(e).unwrap()))
        .collect();
    let mut context = Context::default();
    // Less time left than one send (the provider's timeout) and its record need.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    context.deadline = u64::try_from((now + PROVIDER_TIMEOUT).as_millis()).unwrap();

    let response = stack
        .delivery(stack.slack_sender())
        .handle(LambdaEvent::new(sqs_event_with_bodies(&bodies), context))
        .await
        .unwrap();

    assert_eq!(response.batch_item_failures.len(), 3, "every message returned");
    assert!(
        slack.received_requests().await.unwrap().is_empty(),
        "nothing sent"
    );
    for envelope in &messages {
        let untouched = notification(&stack, envelope.notification_id.as_str()).await;
        assert_eq!(untouched["status"], "queued", "not claimed: {untouched:#}");
    }

    // Returned, they are delivered by the next invocation: none lost.
    return_to_queue(&stack, Channel::Slack, &messages).await;
    stack.deliver_everything().await;
    let audit = stack.audit(Some(&slack)).await;
    assert!(
        audit.notifications.iter().all(|n| n.status == "sent"),
        "{audit:#?}"
    );
    audit.assert_nothing_lost_or_doubled(&[]);
}

#[tokio::test]
async fn a_message_on_the_wrong_channels_queue_is_refused_before_any_claim() {
    let slack = MockServer::start().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    event["channels"] = json!(["email"]);
    let accepted = accept(&stack, &event).await;
    let envelopes = stack.drain(Channel::Email).await;
    assert_eq!(
        envelopes[0].channel,
        Some(Channel::Email),
        "the fan-out names the channel"
    );
    let bodies = vec![(
        "misrouted".to_owned(),
        serde_json::to_string(&envelopes[0]).unwrap(),
    )];

    let response = stack.deliver_slack_bodies(&bodies).await;

    assert_eq!(response.batch_item_failures.len(), 1);
    let untouched = notification(&stack, &notification_id(&accepted, Channel::Email)).await;
    assert_eq!(untouched["status"], "queued", "not claimed: {untouched:#}");
    assert_eq!(outcomes(&untouched), Vec::<String>::new());

    // On its own queue it is delivered as any other.
    return_to_queue(&stack, Channel::Email, &envelopes).await;
    stack.deliver_everything().await;
    let audit = stack.audit(Some(&slack)).await;
    assert_eq!(
        audit.get(&notification_id(&accepted, Channel::Email)).status,
        "sent"
    );
    audit.assert_nothing_lost_or_doubled(&[]);
}
