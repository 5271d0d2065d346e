//! The benchmark's report: the figures of one run, in the order a reader asks for them.

// Counts here are requests and notifications of one run, far below 2^52: exact as f64.
#![allow(clippy::cast_precision_loss)]

use super::cost::PerEvent;
use super::load::{CHANNELS, Outcome};
use super::power::{self, FunctionCpu};
use super::probe::{OperationCost, RequestCount};
use herald::domain::Channel;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

#[derive(Debug)]
pub struct Report<'a> {
    outcome: &'a Outcome,
}

impl<'a> Report<'a> {
    pub fn new(outcome: &'a Outcome) -> Self {
        Self { outcome }
    }
}

/// The quantile of `samples` at `per_mille` (500 is the median) by the nearest-rank method; zero for no
/// samples.
pub fn quantile(samples: &[Duration], per_mille: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (per_mille * sorted.len()).div_ceil(1000);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

fn megabytes(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "unknown".into(), |b| format!("{} MB", b / 1_000_000))
}

/// Messages a channel function takes per invocation on AWS (the event source's batch size).
const BATCH_SIZE: f64 = 10.0;

/// Waits per invocation, on AWS, for which the report gives the best memory size.
const WAITS_MS: [f64; 4] = [25.0, 50.0, 100.0, 200.0];

/// The functions' CPU in the run, per event, and the Lambda memory size that minimises cost × duration
/// given it (see [`power`]): a channel function's invocation is a batch of ten notifications, ingest's
/// one event.
fn function_memory(f: &mut fmt::Formatter<'_>, cpu: &FunctionCpu, events: usize) -> fmt::Result {
    if events == 0 || cpu.seconds.is_empty() {
        return Ok(());
    }
    let waits: Vec<String> = WAITS_MS.iter().map(|ms| format!("{ms:.0}")).collect();
    writeln!(
        f,
        "\nFunctions' CPU (user + system, from /proc), and the memory that minimises cost × duration on Lambda \
         if an invocation waits {} ms on AWS",
        waits.join(" / ")
    )?;
    for (function, seconds) in &cpu.seconds {
        let per_event = seconds / events as f64;
        let name = function.to_ascii_lowercase();
        let (invocation, per_invocation) = if Channel::ALL.iter().any(|c| name.contains(c.as_str())) {
            ("a batch of 10", per_event * BATCH_SIZE)
        } else if name.contains("ingest") {
            ("an event", per_event)
        } else {
            writeln!(f, "  {function}: {seconds:.2} s (not per event)")?;
            continue;
        };
        let best: Vec<String> = WAITS_MS
            .iter()
            .map(|ms| format!("{:.0}", power::best_memory_mb(per_invocation, ms / 1000.0)))
            .collect();
        writeln!(
            f,
            "  {function}: {seconds:.2} s, {:.2} ms per event; {invocation}: {:.1} ms of a vCPU → {} MB",
            1000.0 * per_event,
            1000.0 * per_invocation,
            best.join(" / ")
        )?;
    }
    Ok(())
}

/// Where the emulator's CPU went: per notification, and the operations that took most of it.
fn cpu_costs(f: &mut fmt::Formatter<'_>, requests: &RequestCount, notifications: usize) -> fmt::Result {
    if requests.process_cpu_seconds <= 0.0 {
        return Ok(());
    }
    let in_operations: f64 = requests.by_operation.values().map(|cost| cost.cpu_seconds).sum();
    writeln!(
        f,
        "  emulator CPU: {:.1} s, {:.1} ms per notification ({:.1} ms inside operations, the rest serving HTTP)",
        requests.process_cpu_seconds,
        1000.0 * requests.process_cpu_seconds / notifications as f64,
        1000.0 * in_operations / notifications as f64
    )?;
    if requests.dynamodb_process_cpu_seconds > 0.0 {
        writeln!(
            f,
            "    of which DynamoDB's process: {:.1} s, {:.1} ms per notification",
            requests.dynamodb_process_cpu_seconds,
            1000.0 * requests.dynamodb_process_cpu_seconds / notifications as f64,
        )?;
    }
    let mut costliest: Vec<(&String, &OperationCost)> = requests.by_operation.iter().collect();
    costliest.sort_by(|a, b| b.1.cpu_seconds.total_cmp(&a.1.cpu_seconds));
    for (operation, cost) in costliest.into_iter().take(6) {
        writeln!(
            f,
            "    {operation:<28} {:>7} requests, {:>5.2} ms CPU each",
            cost.requests,
            1000.0 * cost.cpu_seconds / cost.requests.max(1) as f64
        )?;
    }
    Ok(())
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.outcome;
        let latencies: Vec<Duration> = o.posted.iter().map(|p| p.first_latency).collect();
        let tenth = (latencies.len() / 10).max(1);
        let first_tenth = quantile(&latencies[..tenth.min(latencies.len())], 500);
        let last_tenth = quantile(&latencies[latencies.len().saturating_sub(tenth)..], 500);
        let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
        for status in o.posted.iter().flat_map(|p| &p.statuses) {
            *by_status.entry(*status).or_default() += 1;
        }
        let statuses: Vec<String> = by_status
            .iter()
            .map(|(status, n)| match status {
                0 => format!("no answer × {n}"),
                s => format!("{s} × {n}"),
            })
            .collect();

        writeln!(
            f,
            "\nHerald load benchmark: run {}, {} events × {CHANNELS} channels at concurrency {}",
            o.run, o.options.events, o.options.concurrency
        )?;
        writeln!(f, "\nIngest (POST /v1/events, first attempts)")?;
        writeln!(
            f,
            "  p50 {}, p99 {}; p50 of the first tenth {}, of the last tenth {} ({:.2}×)",
            ms(quantile(&latencies, 500)),
            ms(quantile(&latencies, 990)),
            ms(first_tenth),
            ms(last_tenth),
            last_tenth.as_secs_f64() / first_tenth.as_secs_f64().max(1e-9)
        )?;
        writeln!(f, "  requests by status: {}", statuses.join(", "))?;
        writeln!(
            f,
            "  posting took {:.1} s ({:.1} events/s)",
            o.posting_took.as_secs_f64(),
            per_second(o.posted.len(), o.posting_took)
        )?;

        self.end_to_end(f)
    }
}

impl Report<'_> {
    fn end_to_end(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.outcome;
        let notifications = o.audit.notifications;
        writeln!(f, "\nEnd to end")?;
        let rate = o
            .everything_sent_after
            .map(|after| per_second(notifications, after));
        match (o.everything_sent_after, rate) {
            (Some(after), Some(rate)) => writeln!(
                f,
                "  {notifications} notifications; the last was sent {:.1} s after the first post: {rate:.1} notifications/s",
                after.as_secs_f64()
            )?,
            _ => writeln!(f, "  {notifications} notifications; none was sent")?,
        }

        writeln!(f, "\nEmulator (measured in this run)")?;
        writeln!(
            f,
            "  raw conditional puts: {:.0}/s before the load, {:.0}/s after",
            o.raw_put_rate_before, o.raw_put_rate_after
        )?;
        if let Some(rate) = rate {
            writeln!(
                f,
                "  notifications/s ÷ raw puts/s: {:.1} %",
                100.0 * rate / o.raw_put_rate_before
            )?;
        }
        match (&o.emulator_requests, o.everything_sent_after) {
            (Some(requests), Some(after)) if notifications > 0 => {
                let per_notification = |count: u64| count as f64 / notifications as f64;
                writeln!(
                    f,
                    "  requests served: {} ({:.2} per notification, of which DynamoDB {:.2})",
                    requests.all,
                    per_notification(requests.all),
                    per_notification(requests.dynamodb)
                )?;
                // The raw puts measure DynamoDB's process, so its capacity is what they are a share of.
                writeln!(
                    f,
                    "  share of DynamoDB's capacity used (DynamoDB requests/s ÷ raw puts/s): {:.0} %",
                    100.0 * requests.dynamodb as f64 / after.as_secs_f64().max(1e-9) / o.raw_put_rate_before
                )?;
                cpu_costs(f, requests, notifications)?;
                self.aws_cost(f, requests)?;
            }
            _ => writeln!(
                f,
                "  requests served: not counted (the emulator was not started by scripts/emulator.py)"
            )?,
        }
        writeln!(
            f,
            "  memory: {} before, {} after",
            megabytes(o.memory_before),
            megabytes(o.memory_after)
        )?;
        if let Some(cpu) = &o.function_cpu {
            let accepted = o.posted.iter().filter(|p| p.accepted.is_some()).count();
            function_memory(f, cpu, accepted)?;
        }

        self.audit(f)
    }

    /// The run's AWS requests per event and what they would cost, beside the design's floor.
    fn aws_cost(&self, f: &mut fmt::Formatter<'_>, requests: &RequestCount) -> fmt::Result {
        let o = self.outcome;
        let events = o.posted.len();
        let http_requests: usize = o.posted.iter().map(|p| p.statuses.len()).sum();
        let measured = PerEvent::measured(requests, events, http_requests);
        let floor = PerEvent::floor(CHANNELS);
        let per_event = |count: u64| count as f64 / events.max(1) as f64;
        writeln!(
            f,
            "  AWS requests per event: {:.2} DynamoDB ({:.1} write units, {:.1} read units), {:.2} SQS, {:.2} HTTP \
             (the design's minimum: {:.1} write units, {:.1} read units, {:.2} SQS, 1 HTTP)",
            per_event(requests.dynamodb),
            measured.write_units,
            measured.read_units,
            measured.sqs_requests,
            measured.api_requests,
            floor.write_units,
            floor.read_units,
            floor.sqs_requests
        )?;
        writeln!(
            f,
            "  cost per million events × {CHANNELS} channels at list prices (DynamoDB, SQS, API Gateway; Lambda and \
             provider fees apart): ${:.2}, the floor ${:.2} ({:.2}×)",
            measured.dollars_per_million(),
            floor.dollars_per_million(),
            measured.dollars_per_million() / floor.dollars_per_million()
        )
    }

    fn audit(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let audit = &self.outcome.audit;
        writeln!(f, "\nAudit (every notification looked up by id)")?;
        for (status, n) in &audit.by_status {
            writeln!(f, "  {status}: {n}")?;
        }
        let records: Vec<String> = audit
            .provider_records
            .iter()
            .map(|(channel, n)| format!("{channel} {n}"))
            .collect();
        writeln!(f, "  provider records of this run: {}", records.join(", "))?;
        writeln!(
            f,
            "  delivered exactly once: {}; lost: {}; doubled: {}; recorded wrong: {}; events never accepted: {}",
            audit.delivered_once,
            audit.lost.len(),
            audit.doubled.len(),
            audit.misrecorded.len(),
            audit.unaccepted_events.len()
        )?;
        write!(f, "{}", audit.findings())?;
        match audit.verdict() {
            Ok(()) => writeln!(f, "  PASS: nothing lost, nothing doubled"),
            Err(failure) => writeln!(f, "  FAIL: {failure}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&samples, 500), Duration::from_millis(50));
        assert_eq!(quantile(&samples, 990), Duration::from_millis(99));
        assert_eq!(quantile(&samples[..1], 990), Duration::from_millis(1));
        assert_eq!(quantile(&[], 500), Duration::ZERO);
    }
}
