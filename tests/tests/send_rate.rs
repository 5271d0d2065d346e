//! Issue 9's acceptance for send rates, against the emulator: with 5 sends a second configured and 200
//! notifications queued, the provider never sees more than 5 in any second, measured where it receives
//! them, and every notification is sent exactly once.
//!
//! The notifications go through the real delivery loop, polled as the SQS event source does with
//! `MaximumConcurrency` invocations at once, each handed to one of more warm processes than that (Lambda
//! may pick any), each process with its own limiter and nothing shared between them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::adapters::rate_limit::{Pacing, RateLimited};
use herald::domain::Channel;
use herald_integration_tests::delivery_fixture::seeded_stack;
use serde_json::json;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const NOTIFICATIONS: usize = 200;
/// The configured rate: sends a second, all invocations together.
const RATE: usize = 5;
/// Invocations at once (`DeliveryConcurrency`), each with a fifth of the rate.
const INVOCATIONS: usize = 5;
/// Warm processes the invocations are handed to.
const PROCESSES: usize = 8;
/// Only there so a broken limiter fails the test instead of hanging it; not a speed check.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// A Slack webhook that answers ok and notes when each request reached it.
#[derive(Debug, Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Arrivals {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn sorted(&self) -> Vec<Instant> {
        let mut times = self.0.lock().unwrap().clone();
        times.sort();
        times
    }
}

impl Respond for Arrivals {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(Instant::now());
        ResponseTemplate::new(200).set_body_string("ok")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_five_sends_a_second_the_provider_never_sees_more_than_five_in_any_second() {
    let arrivals = Arrivals::default();
    let webhooks = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(arrivals.clone())
        .mount(&webhooks)
        .await;
    let (stack, mut event) = seeded_stack(&webhooks).await;
    event["channels"] = json!(["slack"]);
    for chunk in 0..NOTIFICATIONS / 100 {
        // Each to a webhook of its own, so only the channel's rate paces them, not Slack's per webhook.
        let events: Vec<_> = (chunk * 100..(chunk + 1) * 100)
            .map(|n| {
                let mut event = event.clone();
                event["recipient"]["slack_webhook_url"] =
                    json!(format!("{}/services/T000/RATE/{n}", webhooks.uri()));
                event
            })
            .collect();
        let (_, statuses) = stack.post_batch(&json!({ "events": events })).await;
        assert!(statuses.iter().all(|status| *status == 202), "{statuses:?}");
    }
    let per_second = NonZeroU32::new(u32::try_from(RATE).unwrap()).unwrap();
    let invocations = NonZeroU32::new(u32::try_from(INVOCATIONS).unwrap()).unwrap();
    let pacing = Pacing::shared(per_second, invocations).unwrap();
    let processes: Vec<_> = (0..PROCESSES)
        .map(|_| {
            let sender =
                RateLimited::new(stack.slack_sender(), Some(pacing)).per_address(Pacing::slack_webhook());
            (AtomicBool::new(false), stack.delivery(sender))
        })
        .collect();
    let next = AtomicUsize::new(0);

    let started = Instant::now();
    futures::future::join_all((0..INVOCATIONS).map(|_| async {
        while arrivals.count() < NOTIFICATIONS && started.elapsed() < GIVE_UP_AFTER {
            let (busy, delivery) = loop {
                let (busy, delivery) = &processes[next.fetch_add(1, Ordering::Relaxed) % PROCESSES];
                if !busy.swap(true, Ordering::Relaxed) {
                    break (busy, delivery);
                }
            };
            stack.poll(Channel::Slack, 1, |e| delivery.handle(e)).await;
            busy.store(false, Ordering::Relaxed);
        }
    }))
    .await;

    let times = arrivals.sorted();
    assert_eq!(
        times.len(),
        NOTIFICATIONS,
        "every notification reached the provider once"
    );
    // More than RATE in some second is RATE + 1 arrivals within less than a second.
    let tightest = times
        .windows(RATE + 1)
        .map(|run| run[RATE] - run[0])
        .min()
        .unwrap();
    assert!(
        tightest >= Duration::from_secs(1),
        "{} requests reached the provider within {tightest:?}",
        RATE + 1
    );
    println!("the closest {} arrivals were {tightest:?} apart", RATE + 1);
    let audit = stack.audit(Some(&webhooks)).await;
    audit.assert_nothing_lost_or_doubled(&[]);
    assert_eq!(audit.notifications.len(), NOTIFICATIONS);
    assert!(
        audit.notifications.iter().all(|n| n.status == "sent"),
        "{audit:#?}"
    );
}
