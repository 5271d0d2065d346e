//! A backend that fails or answers late around the acceptance: 503 with `Retry-After` before a commit,
//! 500 for a permanent error, and a lost answer after a commit still fanned out exactly once (by the
//! request's own retry or by the sweeper).

use super::*;

#[tokio::test]
async fn a_write_that_fails_before_committing_is_503_with_retry_after_and_the_retry_is_accepted_once() {
    for key in [Some("down"), None] {
        let ingest = ingest().await;
        ingest
            .activity()
            .failpoints
            .set("record_acceptance", Fault::Fail, 1);

        let refused = call(&ingest, post(&order(8), key)).await;

        assert_eq!(
            (refused.status, refused.problem_code()),
            (503, "service_unavailable"),
            "{refused:?}"
        );
        assert!(refused.header("retry-after").is_some(), "{refused:?}");
        nothing_recorded(&ingest, &format!("after a failed write, key {key:?}"));

        let retried = call(&ingest, post(&order(8), key)).await;

        assert_eq!(retried.header("idempotent-replayed"), None, "nothing to replay");
        audit(&ingest, &retried, key, &each(1)).await;
    }
}

/// An error no retry cures (access denied, a missing table, a request AWS refuses as invalid) is a 500
/// that tells the client not to retry, not the 503 of a throttle, which would have it retry forever.
#[tokio::test]
async fn a_permanent_backend_error_is_a_500_that_says_not_to_retry() {
    let ingest = ingest().await;
    ingest
        .activity()
        .failpoints
        .set("record_acceptance", Fault::FailPermanently, 1);
    let on_write = call(&ingest, post(&order(9), Some("denied"))).await;
    ingest
        .catalog
        .store()
        .event_types
        .failpoints
        .set("event_type", Fault::FailPermanently, 1);
    let on_read = call(&ingest, post(&order(9), Some("denied"))).await;

    for refused in [on_write, on_read] {
        assert_eq!(
            (refused.status, refused.problem_code()),
            (500, "internal_error"),
            "{refused:?}"
        );
        assert_eq!(
            refused.header("retry-after"),
            None,
            "no invitation to retry: {refused:?}"
        );
    }
    nothing_recorded(&ingest, "after permanent errors");
}

/// The replay's own taking of the lease commits but its answer is lost: the replay still answers 200, and
/// the lease it took without knowing runs out before the sweeper finishes the fan-out.
#[tokio::test]
async fn a_replay_that_loses_the_answer_to_its_lease_is_still_200_and_the_sweeper_finishes() {
    let ingest = ingest().await;
    ingest
        .outbox
        .queue()
        .failpoints
        .set("enqueue:sms", Fault::Fail, 1);
    let first = call(&ingest, post(&order(10), Some("unlucky"))).await;
    let before = copies(&ingest, &first);
    ingest
        .activity()
        .failpoints
        .set("claim_fanout", Fault::TimeOutAfterCommit, 1);

    let retry = call(&ingest, post(&order(10), Some("unlucky"))).await;

    assert_replay_of(&retry, &first);
    assert_eq!(copies(&ingest, &first), before, "the replay queued nothing");
    let another_replay = ingest
        .outbox
        .finish_abandoned(&acme(), &first.event_id(), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        another_replay,
        Finish::NotOurs,
        "the lease nobody knows it holds is respected"
    );
    let report = sweep(&ingest, after_the_lease()).await;
    assert_eq!((report.found, report.recovered), (1, 1));
    let after = before.iter().map(|(&channel, &n)| (channel, n + 1)).collect();
    audit(&ingest, &first, Some("unlucky"), &after).await;
}

/// Every message is on its queue but marking the fan-out done fails: the event stays in the sweeper's
/// index with the request's lease, and the sweeper fans it out a second time (harmless, never lost).
#[tokio::test]
async fn a_fan_out_whose_done_mark_fails_is_repeated_by_the_sweeper_not_lost() {
    let ingest = ingest().await;
    ingest.activity().failpoints.set("finish_fanout", Fault::Fail, 1);

    let first = call(&ingest, post(&order(11), None)).await;

    assert_eq!(copies(&ingest, &first), each(1), "{first:?}");
    let report = sweep(&ingest, after_the_lease()).await;
    assert_eq!((report.found, report.recovered), (1, 1));
    audit(&ingest, &first, None, &each(2)).await;
}
