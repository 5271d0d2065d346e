//! Sends within a provider's quota: [`RateLimited`], a [`Sender`] that takes a permit before each send.
//!
//! A channel function's rate is shared by its concurrent invocations without any shared state: the SQS
//! event source runs at most `max_concurrency` invocations at once, so each invocation sends at most its
//! share, one send every [`Pacing::interval`]. Lambda may hand an invocation's successor to another warm
//! process, which knows nothing of this one's sends; so a send does not return before its interval has
//! passed, and the invocation, which waits for all its sends, frees its place only once its last permit
//! is an interval old. Each of the `max_concurrency` places then sees its permits an interval apart,
//! whichever process holds it, and their sum keeps to the rate in every second (see [`Pacing::shared`]).

use crate::config::SendRateSettings;
use crate::domain::delivery::{Outgoing, SendError, SendReceipt};
use crate::domain::{Channel, TenantId};
use crate::ports::{BackendError, Sender};
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// What each second is stretched by before it is shared out: a request's way to the provider takes a
/// little more or less time than the previous one's, and the provider counts arrivals, not departures.
/// On two busy cores, requests a second apart from one process reached a loopback webhook up to 40 ms
/// closer together than they left; across a network, more is possible, and the margin costs 5% of the rate.
pub const JITTER_MARGIN: Duration = Duration::from_millis(50);
/// The longest a send waits for its permit. The delivery loop makes sure, before it claims a message,
/// that the invocation has time for the provider's timeout and a record (13 s of the function's 30); a
/// send held longer than this would eat into that. One that would wait longer is not sent, and is retried
/// (as throttled) once its permit would have come.
pub const MAX_PERMIT_WAIT: Duration = Duration::from_secs(10);
/// Slack's documented limit for an incoming webhook: one message a second.
const SLACK_WEBHOOK_RATE: NonZeroU32 = NonZeroU32::MIN;
/// Addresses remembered before the idle ones are forgotten (an idle one constrains nothing).
const ADDRESSES_BEFORE_PRUNING: usize = 1024;

/// A rate that cannot be shared out as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a send rate of {per_second}/s shared by {max_concurrency} concurrent invocations is one send every \
     {:.1} s each, longer than a send may wait for its permit ({} s): lower DeliveryConcurrency \
     (HERALD_MAX_CONCURRENCY) to {at_most} or less, or raise the rate",
    interval.as_secs_f64(), MAX_PERMIT_WAIT.as_secs()
)]
pub struct PacingError {
    pub per_second: u32,
    pub max_concurrency: u32,
    pub interval: Duration,
    /// The most concurrent invocations this rate can be shared by.
    pub at_most: u32,
}

/// How often one invocation (one process at a time) may send: one permit every `interval`, no burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    per_second: NonZeroU32,
    max_concurrency: NonZeroU32,
    interval: Duration,
}

impl Pacing {
    /// One invocation's share of `per_second` sends a second, when `max_concurrency` invocations send at
    /// once.
    ///
    /// With at least one send a second each, an invocation gets `m = per_second / max_concurrency` (rounded
    /// down) permits in each second stretched by [`JITTER_MARGIN`]. Permits an interval apart put at most
    /// `m` in any half-open second, so the invocations together never exceed `per_second` in any second.
    /// With less than one each (a rate below the concurrency), each gets one every `max_concurrency /
    /// per_second` seconds: the rate holds on average over that many seconds, but up to `max_concurrency`
    /// sends can fall in one second, which no split without shared state can prevent; see
    /// [`Pacing::holds_every_second`].
    pub fn shared(per_second: NonZeroU32, max_concurrency: NonZeroU32) -> Result<Self, PacingError> {
        let second = Duration::from_secs(1) + JITTER_MARGIN;
        let each = per_second.get() / max_concurrency.get();
        let interval = if each >= 1 {
            second / each
        } else {
            second
                .checked_mul(max_concurrency.get())
                .map_or(Duration::MAX, |spread| spread / per_second.get())
        };
        if interval > MAX_PERMIT_WAIT {
            let at_most = MAX_PERMIT_WAIT.as_millis() * u128::from(per_second.get()) / second.as_millis();
            return Err(PacingError {
                per_second: per_second.get(),
                max_concurrency: max_concurrency.get(),
                interval,
                at_most: u32::try_from(at_most).unwrap_or(u32::MAX),
            });
        }
        Ok(Self {
            per_second,
            max_concurrency,
            interval,
        })
    }

    /// The configured rate's pacing, if a rate is configured.
    pub fn configured(settings: &SendRateSettings) -> Result<Option<Self>, PacingError> {
        settings
            .per_second
            .map(|per_second| Self::shared(per_second, settings.max_concurrency))
            .transpose()
    }

    /// Slack's limit for one incoming webhook, one message a second, kept by each process on its own.
    pub fn slack_webhook() -> Self {
        let interval = Duration::from_secs(1) + JITTER_MARGIN;
        Self {
            per_second: SLACK_WEBHOOK_RATE,
            max_concurrency: NonZeroU32::MIN,
            interval,
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The interval in whole milliseconds, for logs (a u128 would be logged as a string).
    fn interval_ms(&self) -> u64 {
        u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether every second (not only the average over several) keeps to the rate: each invocation has at
    /// least one whole send a second.
    pub fn holds_every_second(&self) -> bool {
        self.per_second >= self.max_concurrency
    }
}

/// `inner`, sending no faster than its channel's [`Pacing`], and optionally no faster than a pacing per
/// address (Slack's one message a second per webhook).
#[derive(Debug)]
pub struct RateLimited<S> {
    inner: S,
    channel: Option<Pacing>,
    per_address: Option<Pacing>,
    permits: Mutex<Permits>,
}

impl<S: Sender> RateLimited<S> {
    /// `inner` paced by `channel`; `None` leaves the channel unlimited.
    pub fn new(inner: S, channel: Option<Pacing>) -> Self {
        let name = inner.channel();
        match channel {
            Some(pacing) if !pacing.holds_every_second() => tracing::warn!(
                channel = %name,
                per_second = pacing.per_second,
                max_concurrency = pacing.max_concurrency,
                interval_ms = pacing.interval_ms(),
                "the send rate is below the number of concurrent invocations: each sends once every \
                 interval, so the rate holds on average, but as many sends as invocations may fall in one \
                 second; lower DeliveryConcurrency to keep every second within the rate"
            ),
            Some(pacing) => tracing::info!(
                channel = %name,
                per_second = pacing.per_second,
                max_concurrency = pacing.max_concurrency,
                interval_ms = pacing.interval_ms(),
                "sending within a shared rate"
            ),
            None => tracing::info!(channel = %name, "no send rate configured"),
        }
        Self {
            inner,
            channel,
            per_address: None,
            permits: Mutex::new(Permits::default()),
        }
    }

    /// Also paces the sends to each address on their own, in this process.
    #[must_use]
    pub fn per_address(mut self, pacing: Pacing) -> Self {
        self.per_address = Some(pacing);
        self
    }

    /// When this send may go, reserved; or, when that is further off than [`MAX_PERMIT_WAIT`], how long.
    fn reserve(&self, to: &str) -> Result<Instant, Duration> {
        let mut permits = self.permits.lock().unwrap_or_else(PoisonError::into_inner);
        permits.reserve(
            to,
            Instant::now(),
            self.channel.map(|pacing| pacing.interval),
            self.per_address.map(|pacing| pacing.interval),
        )
    }

    /// The moment this send leaves: its permit's time, unless a timer that woke late let the previous
    /// send leave less than an interval ago (permits are reserved ahead; departures are what the
    /// provider counts).
    async fn depart(&self) -> Instant {
        let Some(pacing) = self.channel else {
            return Instant::now();
        };
        loop {
            let now = Instant::now();
            let earliest = {
                let mut permits = self.permits.lock().unwrap_or_else(PoisonError::into_inner);
                match permits.last_departure {
                    Some(last) if now < last + pacing.interval => last + pacing.interval,
                    _ => {
                        permits.last_departure = Some(now);
                        return now;
                    }
                }
            };
            tokio::time::sleep_until(earliest).await;
        }
    }

    fn refusal(&self, wait: Duration) -> SendError {
        let pacing = self
            .channel
            .map(|pacing| {
                format!(
                    " ({}/s shared by {} invocations: one send every {} ms each)",
                    pacing.per_second,
                    pacing.max_concurrency,
                    pacing.interval.as_millis()
                )
            })
            .unwrap_or_default();
        let detail = format!(
            "not sent: no send permit within {} s{pacing}; retried once one is free",
            MAX_PERMIT_WAIT.as_secs()
        );
        // Throttled, as a provider's own refusal would be: retried at the permit's time without using up a
        // step of the retry schedule, and not counted against the provider's circuit.
        SendError::held_back(detail, wait)
    }
}

impl<S: Sender> Sender for RateLimited<S> {
    fn channel(&self) -> Channel {
        self.inner.channel()
    }

    async fn refuse(
        &self,
        tenant: &TenantId,
        to: &str,
    ) -> Result<Option<crate::domain::delivery::DestinationRefusal>, BackendError> {
        self.inner.refuse(tenant, to).await
    }

    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<SendReceipt, SendError> {
        let at = self.reserve(outgoing.to).map_err(|wait| self.refusal(wait))?;
        tokio::time::sleep_until(at).await;
        let departed = self.depart().await;
        let sent = self.inner.send(outgoing).await;
        // The invocation ends only when its sends have returned: holding each until its interval has
        // passed keeps the next invocation in its place, on whatever process, from sending sooner.
        if let Some(pacing) = self.channel {
            tokio::time::sleep_until(departed + pacing.interval).await;
        }
        sent
    }
}

/// The permits of one process.
#[derive(Debug, Default)]
struct Permits {
    /// Channel permits granted or reserved less than an interval ago, in order; any two an interval apart.
    slots: VecDeque<Instant>,
    /// The earliest the next send to each address may go. One in the past constrains nothing.
    next_by_address: HashMap<String, Instant>,
    /// When the last send left.
    last_departure: Option<Instant>,
}

impl Permits {
    /// Reserves the earliest time, from `now`, that is an interval away from every other channel permit
    /// and not before the address's next; a later reservation may take a gap before an earlier one, so a
    /// send waiting on its address does not hold back sends to others.
    fn reserve(
        &mut self,
        to: &str,
        now: Instant,
        channel: Option<Duration>,
        per_address: Option<Duration>,
    ) -> Result<Instant, Duration> {
        let mut at = now;
        if per_address.is_some() {
            if self.next_by_address.len() >= ADDRESSES_BEFORE_PRUNING {
                self.next_by_address.retain(|_, next| *next > now);
            }
            if let Some(next) = self.next_by_address.get(to) {
                at = at.max(*next);
            }
        }
        if let Some(interval) = channel {
            while self.slots.front().is_some_and(|slot| *slot + interval <= now) {
                self.slots.pop_front();
            }
            for slot in &self.slots {
                if *slot + interval <= at {
                    continue;
                }
                if at + interval <= *slot {
                    break;
                }
                at = *slot + interval;
            }
        }
        let wait = at - now;
        if wait > MAX_PERMIT_WAIT {
            return Err(wait);
        }
        if channel.is_some() {
            let position = self.slots.partition_point(|slot| *slot < at);
            self.slots.insert(position, at);
        }
        if let Some(interval) = per_address {
            self.next_by_address.insert(to.to_owned(), at + interval);
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests;
