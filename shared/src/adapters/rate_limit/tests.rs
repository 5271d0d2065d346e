//! The limiter under tokio's paused clock: time moves only when every task waits, so each send's time is
//! exact and "at most n in any second" is checked send by send.

use super::*;
use crate::domain::delivery::{FailureKind, Outgoing, RenderedMessage};
use crate::test_fixtures::SendTo;
use futures::future::join_all;
use futures::poll;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A provider that notes when each send reached it, and where to.
#[derive(Debug, Clone, Default)]
struct Recorder {
    sends: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Recorder {
    fn times(&self) -> Vec<Instant> {
        let mut times: Vec<Instant> = self.sends.lock().unwrap().iter().map(|(at, _)| *at).collect();
        times.sort();
        times
    }

    fn times_to(&self, to: &str) -> Vec<Instant> {
        let sends = self.sends.lock().unwrap();
        sends
            .iter()
            .filter(|(_, address)| address == to)
            .map(|(at, _)| *at)
            .collect()
    }
}

impl Sender for Recorder {
    fn channel(&self) -> Channel {
        Channel::Slack
    }

    async fn refuse(
        &self,
        _tenant: &TenantId,
        to: &str,
    ) -> Result<Option<crate::domain::delivery::DestinationRefusal>, BackendError> {
        Ok(to
            .starts_with("refused")
            .then(|| crate::domain::delivery::DestinationRefusal::NotAllowed(format!("{to} is not allowed"))))
    }

    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<SendReceipt, SendError> {
        let to = outgoing.to;
        self.sends.lock().unwrap().push((Instant::now(), to.to_owned()));
        Ok(SendReceipt::default())
    }
}

fn n(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap()
}

fn pacing(per_second: u32, max_concurrency: u32) -> Pacing {
    Pacing::shared(n(per_second), n(max_concurrency)).unwrap()
}

/// The most of `times` (sorted) in any half-open window `[t, t + width)`.
fn most_in_any(times: &[Instant], width: Duration) -> usize {
    let mut most = 0;
    let mut end = 0;
    for (start, at) in times.iter().enumerate() {
        while end < times.len() && times[end] < *at + width {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

/// `places` invocations at once, as the SQS event source runs them, each `rounds` times in a row, each
/// time handed to the next idle one of `processes` (Lambda may pick any warm one), each sending a batch of
/// `batch` at once as the delivery loop does. Every send must get its permit.
async fn run(processes: &[RateLimited<Recorder>], places: usize, rounds: usize, batch: usize) {
    let busy: Vec<AtomicBool> = processes.iter().map(|_| AtomicBool::new(false)).collect();
    let next = AtomicUsize::new(0);
    let message = RenderedMessage::default();
    join_all((0..places).map(|place| {
        let (busy, next, message) = (&busy, &next, &message);
        async move {
            for round in 0..rounds {
                let index = loop {
                    let index = next.fetch_add(1, Ordering::Relaxed) % processes.len();
                    if !busy[index].swap(true, Ordering::Relaxed) {
                        break index;
                    }
                };
                let process = &processes[index];
                let sends = (0..batch).map(|k| {
                    let to = format!("{place}-{round}-{k}");
                    async move { process.send_to(&to, message).await }
                });
                for sent in join_all(sends).await {
                    sent.unwrap();
                }
                busy[index].store(false, Ordering::Relaxed);
            }
        }
    }))
    .await;
}

fn processes(count: usize, pacing: Pacing, recorder: &Recorder) -> Vec<RateLimited<Recorder>> {
    (0..count)
        .map(|_| RateLimited::new(recorder.clone(), Some(pacing)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_invocations_together_never_exceed_the_rate_in_any_second_and_use_their_share() {
    for (per_second, max_concurrency) in [(5, 5), (14, 5), (7, 2), (100, 3), (1, 1), (10, 4)] {
        let recorder = Recorder::default();
        let places = usize::try_from(max_concurrency).unwrap();
        // More warm processes than places, so invocations move between them.
        let processes = processes(places + 3, pacing(per_second, max_concurrency), &recorder);

        run(&processes, places, 4, 10).await;

        let times = recorder.times();
        assert_eq!(times.len(), places * 40);
        let most = most_in_any(&times, Duration::from_secs(1));
        assert!(
            most <= usize::try_from(per_second).unwrap(),
            "{per_second}/s over {max_concurrency}: {most} in one second"
        );
        // All start at once, so the first second holds each invocation's share of a second stretched by
        // the margin: not fewer sends than that.
        let each = u128::from(per_second / max_concurrency);
        let stretched = (Duration::from_secs(1) + JITTER_MARGIN).as_nanos();
        let least = usize::try_from((each * 1_000_000_000).div_ceil(stretched)).unwrap() * places;
        assert!(
            most >= least,
            "{per_second}/s over {max_concurrency}: only {most} in the busiest second"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_invocation_moved_to_another_process_does_not_send_sooner() {
    let recorder = Recorder::default();
    let pacing = pacing(1, 1);
    let processes = processes(3, pacing, &recorder);

    run(&processes, 1, 6, 3).await;

    let times = recorder.times();
    assert_eq!(times.len(), 18);
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= pacing.interval(), "{:?}", pair[1] - pair[0]);
    }
}

#[tokio::test(start_paused = true)]
async fn below_one_send_a_second_each_the_rate_holds_over_the_interval() {
    let recorder = Recorder::default();
    let pacing = pacing(1, 5);
    assert_eq!(pacing.interval(), Duration::from_millis(5_250));
    assert!(!pacing.holds_every_second());
    let processes = processes(8, pacing, &recorder);

    run(&processes, 5, 3, 2).await;

    let times = recorder.times();
    assert_eq!(times.len(), 30);
    assert_eq!(
        most_in_any(&times, pacing.interval()),
        5,
        "one per invocation per interval"
    );
}

#[test]
fn each_invocation_gets_a_whole_share_of_a_stretched_second() {
    assert_eq!(pacing(5, 5).interval(), Duration::from_millis(1_050));
    assert_eq!(pacing(14, 5).interval(), Duration::from_millis(525));
    assert_eq!(pacing(100, 3).interval(), Duration::from_nanos(31_818_181));
    assert!(pacing(5, 5).holds_every_second() && pacing(14, 5).holds_every_second());
    assert_eq!(Pacing::slack_webhook().interval(), Duration::from_millis(1_050));
    let unlimited = SendRateSettings {
        per_second: None,
        max_concurrency: n(5),
    };
    assert_eq!(Pacing::configured(&unlimited), Ok(None));
}

#[test]
fn a_rate_too_low_for_the_concurrency_fails_with_what_to_do() {
    let error = Pacing::shared(n(1), n(10)).unwrap_err();
    assert_eq!(error.at_most, 9);
    let message = error.to_string();
    assert!(
        message.contains("lower DeliveryConcurrency (HERALD_MAX_CONCURRENCY) to 9 or less"),
        "{message}"
    );
    assert!(Pacing::shared(n(1), n(9)).is_ok());
    let configured = SendRateSettings {
        per_second: Some(n(2)),
        max_concurrency: n(40),
    };
    assert!(Pacing::configured(&configured).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_send_that_would_wait_too_long_is_refused_unsent() {
    let recorder = Recorder::default();
    let limited = RateLimited::new(recorder.clone(), Some(pacing(1, 1)));
    let message = RenderedMessage::default();

    let results = join_all((0..12).map(|k| limited.send_to(if k < 6 { "a" } else { "b" }, &message))).await;

    assert_eq!(recorder.times().len(), 10, "slots 0 to 9.45 s");
    let refused: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert_eq!(refused.len(), 2);
    for error in refused {
        assert_eq!(
            (error.kind, error.code.as_str()),
            (FailureKind::Throttled, "send_rate")
        );
        assert_eq!(
            error.retry_after,
            Some(Duration::from_millis(10_500)),
            "its permit's time"
        );
        assert!(
            error.detail.contains("1/s shared by 1 invocations"),
            "{}",
            error.detail
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_send_returns_once_its_interval_has_passed() {
    let limited = RateLimited::new(Recorder::default(), Some(pacing(2, 1)));
    let started = Instant::now();

    limited.send_to("a", &RenderedMessage::default()).await.unwrap();

    assert_eq!(started.elapsed(), Duration::from_millis(525));
}

#[tokio::test(start_paused = true)]
async fn a_send_whose_timer_woke_late_does_not_leave_within_an_interval_of_the_next() {
    let recorder = Recorder::default();
    let pacing = pacing(1, 1);
    let interval = pacing.interval();
    let limited = RateLimited::new(recorder.clone(), Some(pacing));
    let message = RenderedMessage::default();
    let started = Instant::now();
    let mut first = pin!(limited.send_to("a", &message));
    let mut late = pin!(limited.send_to("b", &message));
    let mut third = pin!(limited.send_to("c", &message));
    for send in [first.as_mut(), late.as_mut(), third.as_mut()] {
        assert!(poll!(send).is_pending(), "permits at 0, 1.05 and 2.1 s");
    }

    // The second send's timer fires half a second after the third's permit, and the third goes first.
    tokio::time::advance(interval * 2 + Duration::from_millis(500)).await;
    assert!(
        poll!(third.as_mut()).is_pending(),
        "sent, and held for its interval"
    );
    assert!(poll!(late.as_mut()).is_pending());
    let (first, late, third) = tokio::join!(first, late, third);

    assert!(first.is_ok() && late.is_ok() && third.is_ok());
    let times = recorder.times();
    let after_start: Vec<_> = times.iter().map(|at| *at - started).collect();
    let third_left = interval * 2 + Duration::from_millis(500);
    assert_eq!(after_start, [Duration::ZERO, third_left, third_left + interval]);
}

#[tokio::test]
async fn what_the_inner_sender_refuses_is_refused_before_any_permit() {
    let limited = RateLimited::new(Recorder::default(), Some(pacing(1, 1)));
    let tenant = TenantId::new("acme");

    assert_eq!(
        limited.refuse(&tenant, "refused-1").await.unwrap(),
        Some(crate::domain::delivery::DestinationRefusal::NotAllowed(
            "refused-1 is not allowed".into()
        ))
    );
    assert_eq!(limited.refuse(&tenant, "hook-a").await.unwrap(), None);
    assert_eq!(limited.channel(), Channel::Slack);
}

#[tokio::test(start_paused = true)]
async fn without_a_rate_nothing_waits() {
    let recorder = Recorder::default();
    let limited = RateLimited::new(recorder.clone(), None);
    let message = RenderedMessage::default();
    let started = Instant::now();

    join_all((0..50).map(|_| limited.send_to("a", &message))).await;

    assert_eq!(recorder.times().len(), 50);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn each_webhook_gets_one_message_a_second_without_holding_back_the_others() {
    let recorder = Recorder::default();
    let limited =
        RateLimited::new(recorder.clone(), Some(pacing(10, 1))).per_address(Pacing::slack_webhook());
    let started = Instant::now();
    let message = RenderedMessage::default();
    let addresses = [
        "hook-a", "hook-a", "hook-a", "hook-b", "hook-c", "hook-d", "hook-e",
    ];

    join_all(addresses.iter().map(|to| limited.send_to(to, &message))).await;

    let hook_a = recorder.times_to("hook-a");
    assert_eq!(hook_a.len(), 3);
    for pair in hook_a.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "{:?}",
            pair[1] - pair[0]
        );
    }
    // The others take the channel's permits between hook-a's, each 105 ms apart.
    for (k, to) in ["hook-b", "hook-c", "hook-d", "hook-e"].iter().enumerate() {
        let expected = Duration::from_millis(105) * (u32::try_from(k).unwrap() + 1);
        assert_eq!(recorder.times_to(to), [started + expected], "{to}");
    }
    let times = recorder.times();
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(105));
    }
}

#[test]
fn idle_addresses_are_forgotten() {
    let mut permits = Permits::default();
    let now = Instant::now();
    let webhook = Some(Pacing::slack_webhook().interval());
    for k in 0..ADDRESSES_BEFORE_PRUNING {
        permits.reserve(&format!("hook-{k}"), now, None, webhook).unwrap();
    }
    permits.reserve("hook-0", now, None, webhook).unwrap();
    assert_eq!(
        permits.next_by_address.len(),
        ADDRESSES_BEFORE_PRUNING,
        "none idle yet"
    );

    let later = now + Duration::from_millis(1_500);
    permits.reserve("hook-new", later, None, webhook).unwrap();

    let left: Vec<_> = permits.next_by_address.keys().cloned().collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"hook-new".to_owned()) && left.contains(&"hook-0".to_owned()));
}

#[test]
fn channel_permits_are_forgotten_once_they_constrain_nothing() {
    let mut permits = Permits::default();
    let now = Instant::now();
    let interval = Some(Duration::from_millis(100));
    for _ in 0..50 {
        permits.reserve("a", now, interval, None).unwrap();
    }
    assert_eq!(permits.slots.len(), 50);

    let at = permits
        .reserve("a", now + Duration::from_secs(60), interval, None)
        .unwrap();

    assert_eq!(at, now + Duration::from_secs(60));
    assert_eq!(permits.slots.len(), 1);
}
