//! A circuit breaker per provider endpoint, over the shared [`CircuitStore`]: it opens after `threshold`
//! transient failures in a row, stays open for a cool-down during which deliveries are deferred without
//! calling the provider, then lets one probe through (chosen by a conditional write); the probe's success
//! closes it, its failure opens it again. Its state is cached for a moment per process, and an
//! unreachable store lets sends through: the breaker saves provider calls, it never stops delivery.

use crate::domain::circuit::CircuitState;
use crate::domain::{Channel, Timestamp};
use crate::ports::CircuitStore;
use crate::telemetry::catalogue::BreakerState;
use crate::telemetry::record;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How the breakers behave (`HERALD_CIRCUIT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Transient failures in a row that open a circuit.
    pub threshold: u32,
    /// How long an open circuit stays open before a probe.
    pub cooldown: Duration,
    /// How long a process trusts the state it read.
    pub cache_for: Duration,
    /// How long a probe holds the half-open circuit: a send and its record.
    pub probe_lease: Duration,
}

/// Whether a delivery may call the provider now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Send,
    /// The one call of a half-open circuit: its outcome closes or reopens it.
    Probe,
    /// The circuit is open (or another delivery is probing): come back after this long.
    Defer(Duration),
}

/// What the provider's answer says about the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It answered (even a refusal or a throttle): it is up.
    Up,
    /// A 5xx, no connection, no answer.
    Down,
}

/// How long one delivery's read of a stale circuit keeps the others on the stale state, at most (a read
/// that never returns must not freeze the state).
const REFRESH_PATIENCE: Duration = Duration::from_secs(3);

/// A circuit's state as this process last read it.
#[derive(Debug, Clone, Copy)]
struct Cached {
    state: CircuitState,
    read_at: Instant,
    /// When a delivery set out to read it again; meanwhile the others use this state.
    refreshing_since: Option<Instant>,
}

/// What the cache says to do for one delivery.
enum Lookup {
    Use(CircuitState),
    Read,
}

/// The circuits of one channel's providers (its state changes are counted by channel: a Slack host is no
/// metric dimension).
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    channel: Channel,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Breaker {
    pub fn new(settings: BreakerSettings, channel: Channel) -> Self {
        Self {
            settings,
            channel,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }

    pub async fn admit<C: CircuitStore>(&self, store: &C, key: &str, now: Timestamp) -> Admission {
        let state = self.state(store, key).await;
        let Some(open_until) = state.open_until else {
            return Admission::Send;
        };
        if open_until > now {
            return Admission::Defer(until(now, open_until));
        }
        if let Some(probe_until) = state.probe_until.filter(|probe_until| *probe_until >= now) {
            return Admission::Defer(until(now, probe_until));
        }
        match store
            .take_probe(key, now, now.plus(self.settings.probe_lease))
            .await
        {
            Ok(true) => {
                tracing::info!(circuit = key, "half-open: this delivery probes the provider");
                record::breaker_state_change(self.channel, BreakerState::HalfOpen);
                self.remember(
                    key,
                    CircuitState {
                        probe_until: Some(now.plus(self.settings.probe_lease)),
                        ..state
                    },
                );
                Admission::Probe
            }
            Ok(false) => {
                self.forget(key);
                Admission::Defer(self.settings.probe_lease)
            }
            Err(error) => {
                tracing::warn!(circuit = key, %error, "circuit store unreachable; sending anyway");
                Admission::Send
            }
        }
    }

    /// Records what a send that `admission` let through found out.
    pub async fn record<C: CircuitStore>(
        &self,
        store: &C,
        key: &str,
        admission: Admission,
        verdict: Verdict,
        now: Timestamp,
    ) {
        let open_until = now.plus(self.settings.cooldown);
        let mut changed_to = None;
        let written = match (verdict, admission) {
            (Verdict::Down, Admission::Probe) => {
                tracing::warn!(circuit = key, "the probe failed: open again");
                changed_to = Some(BreakerState::Open);
                store.reopen(key, open_until).await.map(|()| CircuitState {
                    open_until: Some(open_until),
                    ..self.cached(key).unwrap_or_default()
                })
            }
            (Verdict::Down, _) => {
                let state = store
                    .record_failure(key, self.settings.threshold, open_until)
                    .await;
                if let Ok(state) = &state {
                    if state.open_until == Some(open_until) {
                        tracing::warn!(
                            circuit = key,
                            failures = state.failures,
                            "open: deliveries wait for the provider"
                        );
                        changed_to = Some(BreakerState::Open);
                    }
                }
                state
            }
            (Verdict::Up, Admission::Probe) => {
                tracing::info!(circuit = key, "the probe succeeded: closed");
                changed_to = Some(BreakerState::Closed);
                store.close(key).await.map(|()| CircuitState::default())
            }
            // Closing costs a write; only a troubled circuit needs one (the state is cached, so a busy
            // healthy provider costs a read every `cache_for`, not one per send).
            (Verdict::Up, _) => {
                let state = self.state(store, key).await;
                if !state.is_troubled() {
                    return;
                }
                // Only failures counted, never open: setting the count back changes no state.
                if state.open_until.is_some() {
                    changed_to = Some(BreakerState::Closed);
                }
                store.close(key).await.map(|()| CircuitState::default())
            }
        };
        match written {
            Ok(state) => {
                if let Some(changed_to) = changed_to {
                    record::breaker_state_change(self.channel, changed_to);
                }
                self.remember(key, state);
            }
            Err(error) => {
                tracing::warn!(circuit = key, %error, "could not record the provider's state");
                self.forget(key);
            }
        }
    }

    async fn state<C: CircuitStore>(&self, store: &C, key: &str) -> CircuitState {
        if let Lookup::Use(state) = self.lookup(key) {
            return state;
        }
        match store.circuit(key).await {
            Ok(state) => {
                self.remember(key, state);
                state
            }
            Err(error) => {
                tracing::warn!(circuit = key, %error, "circuit store unreachable; taking it as closed");
                self.forget(key);
                CircuitState::default()
            }
        }
    }

    /// The cached state while it is fresh; once it is stale, one delivery reads it again and the others go
    /// on with the stale state meanwhile, so a batch that finds it stale makes one read, not one each.
    /// Without a cache (`cache_for` zero) every delivery reads.
    fn lookup(&self, key: &str) -> Lookup {
        let Ok(mut cache) = self.cache.lock() else {
            return Lookup::Read;
        };
        let Some(cached) = cache.get_mut(key) else {
            return Lookup::Read;
        };
        if cached.read_at.elapsed() < self.settings.cache_for {
            return Lookup::Use(cached.state);
        }
        let refreshing = cached
            .refreshing_since
            .is_some_and(|since| since.elapsed() < REFRESH_PATIENCE);
        if refreshing && !self.settings.cache_for.is_zero() {
            return Lookup::Use(cached.state);
        }
        cached.refreshing_since = Some(Instant::now());
        Lookup::Read
    }

    fn cached(&self, key: &str) -> Option<CircuitState> {
        let cache = self.cache.lock().ok()?;
        let cached = cache.get(key)?;
        (cached.read_at.elapsed() < self.settings.cache_for).then_some(cached.state)
    }

    fn remember(&self, key: &str, state: CircuitState) {
        if let Ok(mut cache) = self.cache.lock() {
            let cached = Cached {
                state,
                read_at: Instant::now(),
                refreshing_since: None,
            };
            cache.insert(key.to_owned(), cached);
        }
    }

    fn forget(&self, key: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(key);
        }
    }
}

fn until(now: Timestamp, then: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(then.millis().saturating_sub(now.millis())).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::adapters::memory::{Fault, MemoryActivityStore};
    use crate::telemetry::record::testing::record;

    fn breaker() -> Breaker {
        Breaker::new(
            BreakerSettings {
                threshold: 3,
                cooldown: Duration::from_secs(30),
                cache_for: Duration::ZERO,
                probe_lease: Duration::from_secs(15),
            },
            Channel::Email,
        )
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000).plus_seconds(seconds)
    }

    #[tokio::test]
    async fn opens_after_the_threshold_defers_during_the_cooldown_then_lets_one_probe_through() {
        let (breaker, store) = (breaker(), MemoryActivityStore::default());
        for _ in 0..2 {
            assert_eq!(breaker.admit(&store, "ses", at(0)).await, Admission::Send);
            breaker
                .record(&store, "ses", Admission::Send, Verdict::Down, at(0))
                .await;
        }
        assert_eq!(
            breaker.admit(&store, "ses", at(0)).await,
            Admission::Send,
            "two failures: still closed"
        );
        breaker
            .record(&store, "ses", Admission::Send, Verdict::Down, at(0))
            .await;

        assert_eq!(
            breaker.admit(&store, "ses", at(10)).await,
            Admission::Defer(Duration::from_secs(20))
        );
        assert_eq!(
            breaker.admit(&store, "sns", at(10)).await,
            Admission::Send,
            "each provider its own"
        );

        // The cool-down is over: exactly one delivery probes; the others wait for its answer.
        assert_eq!(breaker.admit(&store, "ses", at(30)).await, Admission::Probe);
        assert_eq!(
            breaker.admit(&store, "ses", at(31)).await,
            Admission::Defer(Duration::from_secs(14))
        );
        breaker
            .record(&store, "ses", Admission::Probe, Verdict::Down, at(32))
            .await;
        assert_eq!(
            breaker.admit(&store, "ses", at(33)).await,
            Admission::Defer(Duration::from_secs(29)),
            "open again"
        );

        assert_eq!(breaker.admit(&store, "ses", at(62)).await, Admission::Probe);
        breaker
            .record(&store, "ses", Admission::Probe, Verdict::Up, at(63))
            .await;
        assert_eq!(
            breaker.admit(&store, "ses", at(63)).await,
            Admission::Send,
            "closed"
        );
        assert_eq!(store.circuit("ses").await.unwrap(), CircuitState::default());
    }

    #[tokio::test]
    async fn a_success_between_failures_starts_the_count_again() {
        let metrics = record();
        let (breaker, store) = (breaker(), MemoryActivityStore::default());
        let caching = Breaker::new(
            BreakerSettings {
                cache_for: Duration::from_secs(60),
                ..breaker.settings()
            },
            Channel::Email,
        );
        for verdict in [
            Verdict::Down,
            Verdict::Down,
            Verdict::Up,
            Verdict::Down,
            Verdict::Down,
        ] {
            caching
                .record(&store, "ses", Admission::Send, verdict, at(0))
                .await;
        }
        assert_eq!(store.circuit("ses").await.unwrap().failures, 2);
        assert_eq!(breaker.admit(&store, "ses", at(0)).await, Admission::Send);
        assert!(
            metrics.emitted().is_empty(),
            "never opened, so never closed: {:?}",
            metrics.emitted()
        );
    }

    #[tokio::test]
    async fn two_processes_agree_on_one_probe() {
        let store = MemoryActivityStore::default();
        let (first, second) = (breaker(), breaker());
        for _ in 0..3 {
            first
                .record(&store, "ses", Admission::Send, Verdict::Down, at(0))
                .await;
        }
        let admissions = [
            first.admit(&store, "ses", at(31)).await,
            second.admit(&store, "ses", at(31)).await,
        ];
        assert_eq!(
            admissions.iter().filter(|a| **a == Admission::Probe).count(),
            1,
            "{admissions:?}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_store_lets_sends_through() {
        let (breaker, store) = (breaker(), MemoryActivityStore::default());
        for _ in 0..3 {
            breaker
                .record(&store, "ses", Admission::Send, Verdict::Down, at(0))
                .await;
        }
        store.failpoints.set("circuit", Fault::Fail, 1);
        assert_eq!(
            breaker.admit(&store, "ses", at(1)).await,
            Admission::Send,
            "fails open"
        );
        assert!(matches!(
            breaker.admit(&store, "ses", at(1)).await,
            Admission::Defer(_)
        ));
        store.failpoints.set("take_probe", Fault::Fail, 1);
        assert_eq!(
            breaker.admit(&store, "ses", at(31)).await,
            Admission::Send,
            "fails open"
        );
    }
}
