//! What an EventBridge schedule does, locally: invoke the function with a `Scheduled Event` at the
//! template's rate. `HERALD_SCHEDULE_SECONDS` shortens every period (tests and impatient developers).

use super::LocalError;
use super::runtime::FunctionHost;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct ScheduledInvoker {
    pub function: FunctionHost,
    /// The rule's name, for the event's `resources` and the log lines.
    pub rule: String,
    pub every: Duration,
    pub region: String,
}

impl ScheduledInvoker {
    /// Starts invoking, first after one period; runs until the process ends. A failed invocation is
    /// reported and the next one comes at its time, as EventBridge does once its retries are spent.
    pub fn spawn(self) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + self.every, self.every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = self.function.invoke(self.event()).await {
                    eprintln!("[schedule] {}: invocation failed: {error}", self.rule);
                }
            }
        });
    }

    /// An EventBridge `Scheduled Event`, as the function receives it on AWS.
    pub fn event(&self) -> Value {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let time = herald::domain::Timestamp::from_millis(i64::try_from(now.as_millis()).unwrap_or(0));
        json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": time.to_rfc3339(),
            "region": self.region,
            "resources": [format!("arn:aws:events:{}:123456789012:rule/{}", self.region, self.rule)],
            "detail": {},
        })
    }
}

/// The period every schedule runs at locally: `HERALD_SCHEDULE_SECONDS` when set, else the template's.
pub fn period_override() -> Result<Option<Duration>, LocalError> {
    let Ok(value) = std::env::var("HERALD_SCHEDULE_SECONDS") else {
        return Ok(None);
    };
    value
        .parse::<u64>()
        .ok()
        .filter(|seconds| *seconds >= 1)
        .map(|seconds| Some(Duration::from_secs(seconds)))
        .ok_or(LocalError::BadSchedulePeriod(value))
}
