//! A batch's events are read in one request, and a message whose event that read did not bring (an old
//! envelope, a failed batch read) reads its own: every notification still renders from its own event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::tests::{Expect, LEASE, accept, audit, body, delivery, handle, record, settings};
use crate::adapters::memory::Fault;
use crate::domain::Channel;
use crate::domain::notification::{Envelope, Notification};
use serde_json::Value;

/// The message as ingest writes it today: naming the notification's event.
fn current_body(notification: &Notification) -> String {
    serde_json::to_string(&Envelope::for_notification(notification)).unwrap()
}

fn batch(notifications: &[Notification], body: fn(&Notification) -> String) -> Vec<Value> {
    notifications
        .iter()
        .enumerate()
        .map(|(index, notification)| record(&format!("m-{index}"), &body(notification), 1))
        .collect()
}

/// Every notification was sent once, with its own event's id in its text (the template says
/// `event {{ event.id }}`).
async fn each_sent_once_from_its_own_event(delivery: &super::tests::MemoryDelivery, sent: &[Notification]) {
    let expected: Vec<(&Notification, Expect)> = sent.iter().map(|n| (n, Expect::sent_once())).collect();
    audit(delivery, &expected).await;
    for notification in sent {
        let call = delivery
            .sender
            .calls()
            .into_iter()
            .find(|call| Some(&call.to) == notification.to.as_ref())
            .unwrap();
        assert_eq!(
            call.message.text.as_deref(),
            Some(format!("event {}", notification.event_id).as_str())
        );
    }
}

#[tokio::test]
async fn a_batch_reads_the_events_of_all_its_messages_in_one_request() {
    let delivery = delivery(settings(LEASE));
    let emails = accept(&delivery, 6, Channel::Email).await;

    assert!(handle(&delivery, &batch(&emails, current_body)).await.is_empty());

    assert_eq!(delivery.ledger.event_reads(), 1, "one read for six events");
    each_sent_once_from_its_own_event(&delivery, &emails).await;
}

#[tokio::test]
async fn when_the_batch_read_fails_each_message_reads_its_own_event() {
    let delivery = delivery(settings(LEASE));
    let emails = accept(&delivery, 4, Channel::Email).await;
    delivery.ledger.failpoints.set("events", Fault::Fail, 1);

    assert!(handle(&delivery, &batch(&emails, current_body)).await.is_empty());

    assert_eq!(delivery.ledger.event_reads(), 4);
    each_sent_once_from_its_own_event(&delivery, &emails).await;
}

#[tokio::test]
async fn messages_that_name_no_event_read_their_own() {
    let delivery = delivery(settings(LEASE));
    let emails = accept(&delivery, 3, Channel::Email).await;

    // Envelopes written before they named the event.
    assert!(handle(&delivery, &batch(&emails, body)).await.is_empty());

    assert_eq!(delivery.ledger.event_reads(), 3);
    each_sent_once_from_its_own_event(&delivery, &emails).await;
}

#[tokio::test]
async fn a_batch_of_one_reads_its_event_as_before() {
    let delivery = delivery(settings(LEASE));
    let emails = accept(&delivery, 1, Channel::Email).await;

    assert!(handle(&delivery, &batch(&emails, current_body)).await.is_empty());

    assert_eq!(delivery.ledger.event_reads(), 1);
    each_sent_once_from_its_own_event(&delivery, &emails).await;
}
