//! Per-recipient rate limits at ingest: the counters are conditional writes in the acceptance, so over the
//! limit a notification is `rate_limited` and never queued, concurrent events never overshoot, a replay
//! uses up nothing, and a critical event type is never limited.

use super::*;

/// Waits out the last two seconds of a minute, so the events of one test fall in one counter window.
async fn away_from_a_minute_boundary() {
    let second = Timestamp::now().epoch_seconds().rem_euclid(60);
    if second >= 58 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(61 - second).unwrap())).await;
    }
}

fn statuses(answer: &Answer) -> Vec<String> {
    answer.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap().to_owned())
        .collect()
}

fn queued_copies(ingest: &MemoryIngest) -> usize {
    Channel::ALL
        .into_iter()
        .map(|channel| ingest.outbox.queue().enqueued(channel).len())
        .sum()
}

#[tokio::test]
async fn the_sixth_event_of_a_minute_to_one_recipient_is_rate_limited_on_every_channel() {
    away_from_a_minute_boundary().await;
    let ingest = ingest().await;
    let mut answers = Vec::new();
    for n in 0..8 {
        let answer = call(&ingest, post(&order(n), None)).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        answers.push(answer);
    }
    for (n, answer) in answers.iter().enumerate() {
        let expected = if n < 5 { "queued" } else { "rate_limited" };
        assert_eq!(statuses(answer), vec![expected; 3], "event {n}");
    }
    assert_eq!(
        queued_copies(&ingest),
        15,
        "only the first five events were queued"
    );
    let limited: Vec<NotificationId> = answers[7].notifications().into_values().collect();
    for stored in ingest.activity().notifications(&acme(), &limited).await.unwrap() {
        assert_eq!(stored.status, NotificationStatus::RateLimited);
        assert_eq!(stored.reason.as_deref(), Some("rate_limited"));
    }
    let event = ingest
        .activity()
        .event(&acme(), &answers[7].event_id())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !event.fanout_pending,
        "an event with nothing to queue has no fan-out to finish"
    );
}

#[tokio::test]
async fn sixteen_concurrent_events_for_one_recipient_queue_exactly_five() {
    away_from_a_minute_boundary().await;
    let ingest = ingest().await;
    let answers =
        futures::future::join_all((0..16).map(|n| call(&ingest, post(&order(100 + n), None)))).await;
    let queued = answers
        .iter()
        .filter(|answer| statuses(answer).iter().all(|status| status == "queued"))
        .count();
    assert_eq!(
        queued,
        5,
        "{:?}",
        answers.iter().map(statuses).collect::<Vec<_>>()
    );
    assert_eq!(queued_copies(&ingest), 15);
}

#[tokio::test]
async fn a_replay_uses_up_nothing_and_other_recipients_have_their_own_limit() {
    away_from_a_minute_boundary().await;
    let ingest = ingest().await;
    for _ in 0..6 {
        let answer = call(&ingest, post(&order(1), Some("same-key"))).await;
        assert!(matches!(answer.status, 200 | 202));
    }
    for n in 0..4 {
        let answer = call(&ingest, post(&order(2 + n), None)).await;
        assert_eq!(
            statuses(&answer),
            vec!["queued"; 3],
            "event {n} after five replays of one"
        );
    }
    let sixth = call(&ingest, post(&order(9), None)).await;
    assert_eq!(statuses(&sixth), vec!["rate_limited"; 3]);
    let mut someone_else = order(10);
    someone_else["recipient"] = json!({"email": "grace@example.com"});
    let answer = call(&ingest, post(&someone_else, None)).await;
    assert_eq!(statuses(&answer), vec!["queued", "skipped", "skipped"]);
}

#[tokio::test]
async fn a_critical_event_type_is_never_rate_limited() {
    away_from_a_minute_boundary().await;
    let ingest = ingest_with_event_type(json!({"critical": true})).await;
    for n in 0..8 {
        let answer = call(&ingest, post(&order(n), None)).await;
        assert_eq!(statuses(&answer), vec!["queued"; 3], "event {n}");
    }
}

#[tokio::test]
async fn a_store_that_loses_the_answer_of_a_limited_round_still_records_once() {
    away_from_a_minute_boundary().await;
    let ingest = ingest().await;
    for n in 0..5 {
        call(&ingest, post(&order(n), None)).await;
    }
    ingest
        .activity()
        .failpoints
        .set("record_acceptance", Fault::TimeOutAfterCommit, 2);
    let answer = call(&ingest, post(&order(6), Some("k-6"))).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(statuses(&answer), vec!["rate_limited"; 3]);
    let again = call(&ingest, post(&order(6), Some("k-6"))).await;
    assert_eq!((again.status, again.body.clone()), (200, answer.body.clone()));
    assert_eq!(queued_copies(&ingest), 15);
}
