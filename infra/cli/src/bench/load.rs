//! The load itself: an event type, templates and rules of the benchmark's own, then N events posted at a
//! fixed concurrency as a careful client would (its own idempotency key per event, retried on 5xx and on
//! transport errors), then the wait until every notification has settled and the audit.

use super::audit::{self, Audit};
use super::power::FunctionCpu;
use super::probe::{RequestCount, Stack};
use super::{BenchError, LoadOptions};
use crate::local::seed::API_KEY;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The benchmark's event type; its rules send every event to every channel.
pub const EVENT_TYPE: &str = "bench_load";
/// Notifications of each event: one per channel, every channel having a rule (and the webhook channel one
/// endpoint, the sink).
#[allow(clippy::cast_possible_truncation)] // four channels
pub const CHANNELS: u32 = herald::domain::Channel::ALL.len() as u32;
/// Attempts a client makes at one event before it gives up.
const CLIENT_ATTEMPTS: usize = 5;
/// How long the functions cache an event type and its rules in the local stack (`HERALD_CONFIG_CACHE_SECONDS`).
const CONFIG_CACHE: Duration = Duration::from_secs(3);

/// One event as the client saw it.
#[derive(Debug)]
pub struct Posted {
    pub seq: usize,
    /// Status of each attempt in order; 0 for an attempt that got no HTTP answer.
    pub statuses: Vec<u16>,
    /// Latency of the first attempt.
    pub first_latency: Duration,
    pub accepted: Option<Accepted>,
}

/// What a 202 (or a replay's 200) said.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub event_id: String,
    /// `(notification id, channel)`
    pub notifications: Vec<(String, String)>,
}

/// Everything measured in one run.
#[derive(Debug)]
pub struct Outcome {
    pub options: LoadOptions,
    pub run: String,
    pub raw_put_rate_before: f64,
    pub raw_put_rate_after: f64,
    pub memory_before: Option<u64>,
    pub memory_after: Option<u64>,
    /// Requests the emulator served from the first post until every notification had settled.
    pub emulator_requests: Option<RequestCount>,
    /// CPU the stack's functions spent over the same span.
    pub function_cpu: Option<FunctionCpu>,
    pub posted: Vec<Posted>,
    pub posting_took: Duration,
    /// From the first post until the last notification was sent (by its own `sent_at`).
    pub everything_sent_after: Option<Duration>,
    pub audit: Audit,
}

pub async fn run(stack: &Stack, options: LoadOptions) -> Result<Outcome, BenchError> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    eprintln!(
        "herald bench: run {run}: {} events x {CHANNELS} channels at concurrency {}",
        options.events, options.concurrency
    );
    let memory_before = stack.emulator_memory();
    let raw_puts = options.events.clamp(500, 2_000);
    let raw_put_rate_before = stack
        .raw_put_rate(&format!("{run}-a"), raw_puts, options.concurrency)
        .await?;
    eprintln!("herald bench: the emulator takes {raw_put_rate_before:.0} conditional puts/s");
    set_up(stack).await?;

    let requests_before = stack.emulator_requests().await;
    let cpu_before = FunctionCpu::sample(stack.front_port);
    let started_wall = now_millis();
    let started = Instant::now();
    let posted = post_events(stack, &run, options).await;
    let posting_took = started.elapsed();
    eprintln!(
        "herald bench: posted {} events in {:.1} s; waiting for every notification to settle",
        posted.len(),
        posting_took.as_secs_f64()
    );
    let notifications: Vec<audit::Expected> = posted
        .iter()
        .filter_map(|p| p.accepted.as_ref().map(|a| (p.seq, a)))
        .flat_map(|(seq, accepted)| {
            accepted
                .notifications
                .iter()
                .map(move |(id, channel)| audit::Expected {
                    id: id.clone(),
                    event_id: accepted.event_id.clone(),
                    channel: channel.clone(),
                    seq,
                })
        })
        .collect();
    audit::wait_until_settled(stack, options.settle_timeout).await?;
    let requests_after = stack.emulator_requests().await;
    let cpu_after = FunctionCpu::sample(stack.front_port);
    let mut audit = audit::audit(stack, &run, &notifications).await?;
    audit.unaccepted_events = posted
        .iter()
        .filter(|p| p.accepted.is_none())
        .map(|p| p.seq)
        .collect();
    let everything_sent_after = audit
        .last_sent_at_millis()
        .map(|last| Duration::from_millis(u64::try_from(last - started_wall).unwrap_or(0)));
    let raw_put_rate_after = stack
        .raw_put_rate(&format!("{run}-b"), raw_puts, options.concurrency)
        .await?;
    let memory_after = stack.emulator_memory();
    Ok(Outcome {
        options,
        run,
        raw_put_rate_before,
        raw_put_rate_after,
        memory_before,
        memory_after,
        emulator_requests: requests_before
            .zip(requests_after)
            .map(|(before, after)| after.since(&before)),
        function_cpu: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after.since(&before)),
        posted,
        posting_took,
        everything_sent_after,
        audit,
    })
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where the sink receives the benchmark's webhook POSTs; each body names its run and sequence number.
pub const WEBHOOK_PATH: &str = "/webhooks/bench";

/// How every message of a run marks itself: this prefix, then the event's sequence number, so the audit
/// can find each delivery in what the providers received. The templates render it from the payload.
pub fn marker_prefix(run: &str) -> String {
    format!("[bench {run}/")
}

/// Creates (or updates) the benchmark's event type, templates and rules through the API, as a tenant would.
async fn set_up(stack: &Stack) -> Result<(), BenchError> {
    let text = "Bench [bench {{ payload.run }}/{{ payload.seq }}] {{ payload.filler }}";
    let resources = [
        (
            format!("/v1/event-types/{EVENT_TYPE}"),
            json!({"description": "herald bench load", "category": "bench",
                   "schema": {"type": "object", "required": ["run", "seq"]}}),
        ),
        (
            "/v1/templates/bench-email".to_owned(),
            json!({"channel": "email", "locale": "en", "subject": text, "text": text, "html": format!("<p>{text}</p>")}),
        ),
        (
            "/v1/templates/bench-sms".to_owned(),
            json!({"channel": "sms", "locale": "en", "text": text}),
        ),
        (
            "/v1/templates/bench-slack".to_owned(),
            json!({"channel": "slack", "locale": "en", "text": text}),
        ),
        (
            "/v1/rules/bench-email".to_owned(),
            json!({"event": EVENT_TYPE, "channel": "email", "template": "bench-email"}),
        ),
        (
            "/v1/rules/bench-sms".to_owned(),
            json!({"event": EVENT_TYPE, "channel": "sms", "template": "bench-sms"}),
        ),
        (
            "/v1/rules/bench-slack".to_owned(),
            json!({"event": EVENT_TYPE, "channel": "slack", "template": "bench-slack"}),
        ),
        (
            "/v1/templates/bench-webhook".to_owned(),
            json!({"channel": "webhook", "locale": "en",
                   "text": "{\"run\": {{ payload.run }}, \"seq\": {{ payload.seq }}, \"filler\": {{ payload.filler }}}"}),
        ),
        (
            "/v1/rules/bench-webhook".to_owned(),
            json!({"event": EVENT_TYPE, "channel": "webhook", "template": "bench-webhook"}),
        ),
        (
            "/v1/templates/bench-push".to_owned(),
            json!({"channel": "push", "locale": "en", "title": text, "text": text,
                   "data": {"run": "{{ payload.run }}", "seq": "{{ payload.seq }}"}}),
        ),
        (
            "/v1/rules/bench-push".to_owned(),
            json!({"event": EVENT_TYPE, "channel": "push", "template": "bench-push"}),
        ),
        // The sink as the tenant's one endpoint, receiving only the benchmark's events.
        (
            "/v1/webhooks/bench".to_owned(),
            json!({"url": format!("{}{WEBHOOK_PATH}", stack.sink), "event_types": [EVENT_TYPE]}),
        ),
    ];
    for (path, body) in resources {
        let response = stack
            .http
            .put(format!("{}{path}", stack.api))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .map_err(|error| BenchError::Setup {
                what: format!("PUT {path}"),
                detail: error.to_string(),
            })?;
        let status = response.status();
        if !status.is_success() {
            let detail = response.text().await.unwrap_or_default();
            return Err(BenchError::Setup {
                what: format!("PUT {path}"),
                detail: format!("{status}: {detail}"),
            });
        }
    }
    // The functions keep the event type and its rules for a few seconds: a rule just added must be seen.
    tokio::time::sleep(CONFIG_CACHE).await;
    Ok(())
}

async fn post_events(stack: &Stack, run: &str, options: LoadOptions) -> Vec<Posted> {
    let mut posted: Vec<Posted> = futures::stream::iter(0..options.events)
        .map(|seq| post_event(stack, run, seq))
        .buffer_unordered(options.concurrency)
        .collect()
        .await;
    posted.sort_by_key(|p| p.seq);
    posted
}

/// The user of event `seq`, with one registered phone (an FCM token of its own), so the event's push has a
/// device; a user with no device would only be `skipped`. Registered as an app would, before the event.
async fn register_device(stack: &Stack, user: &str) -> Result<(), String> {
    let path = format!("/v1/users/{user}/devices/{user}");
    for attempt in 0..CLIENT_ATTEMPTS {
        let response = stack
            .http
            .put(format!("{}{path}", stack.api))
            .bearer_auth(API_KEY)
            .json(&json!({"platform": "fcm"}))
            .send()
            .await;
        match response.map(|response| response.status()) {
            Ok(status) if status.is_success() => return Ok(()),
            Ok(status) if status.is_client_error() && status.as_u16() != 429 => {
                return Err(format!("PUT {path}: {status}"));
            }
            _ => tokio::time::sleep(Duration::from_millis(500 << attempt)).await,
        }
    }
    Err(format!("PUT {path}: no success after {CLIENT_ATTEMPTS} attempts"))
}

/// One event, retried with the same idempotency key after a 5xx, a 429 or no answer at all.
async fn post_event(stack: &Stack, run: &str, seq: usize) -> Posted {
    let user = format!("bench-{run}-{seq}").to_ascii_lowercase();
    if let Err(error) = register_device(stack, &user).await {
        eprintln!("herald bench: {error}; the event's push will be skipped, and the audit says so");
    }
    let body = json!({
        "event": EVENT_TYPE,
        "recipient": {
            "user_id": user,
            "email": format!("bench-{seq}@example.com"),
            "phone": format!("+1555{:07}", seq % 10_000_000),
            "slack_webhook_url": format!("{}/services/TBENCH/{run}/{seq}", stack.sink),
        },
        // About the size of a real order event.
        "payload": {"run": run, "seq": seq, "filler": "x".repeat(64)},
    });
    let mut statuses = Vec::new();
    let mut first_latency = Duration::ZERO;
    let mut accepted = None;
    for attempt in 0..CLIENT_ATTEMPTS {
        let started = Instant::now();
        let response = stack
            .http
            .post(format!("{}/v1/events", stack.api))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", format!("bench-{run}-{seq}"))
            .json(&body)
            .send()
            .await;
        let answer = match response {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.ok())
            }
            Err(_) => (0, None),
        };
        if attempt == 0 {
            first_latency = started.elapsed();
        }
        statuses.push(answer.0);
        match answer {
            (200 | 202, Some(body)) => {
                accepted = accepted_from(&body);
                break;
            }
            (0 | 429 | 500..=599, _) => {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            _ => break,
        }
    }
    Posted {
        seq,
        statuses,
        first_latency,
        accepted,
    }
}

fn accepted_from(body: &Value) -> Option<Accepted> {
    let notifications = body["notifications"]
        .as_array()?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?.to_owned(), n["channel"].as_str()?.to_owned())))
        .collect();
    Some(Accepted {
        event_id: body["event_id"].as_str()?.to_owned(),
        notifications,
    })
}
