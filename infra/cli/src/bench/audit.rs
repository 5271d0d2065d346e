//! The audit that ends every run: each notification looked up by id, each delivery counted in what the
//! providers received (the emulator's SES and SNS records, the sink's file for Slack and webhooks), and
//! every final status explained. Lost means accepted but not delivered; doubled means delivered more than once.

use super::BenchError;
use super::load::marker_prefix;
use super::probe::{Stack, get_json};
use crate::local::seed::API_KEY;
use aws_smithy_types::date_time::{DateTime, Format};
use futures::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Lookups in flight at once: enough to be quick, few enough not to weigh on the stack being measured.
const LOOKUPS: usize = 8;

/// A notification the stack accepted.
#[derive(Debug, Clone)]
pub struct Expected {
    pub id: String,
    pub event_id: String,
    pub channel: String,
    pub seq: usize,
}

/// One notification that was lost or doubled, and why.
#[derive(Debug)]
pub struct Finding {
    pub id: String,
    pub event_id: String,
    pub channel: String,
    pub explanation: String,
}

#[derive(Debug, Default)]
pub struct Audit {
    pub notifications: usize,
    /// `status` or `status (reason)` → how many.
    pub by_status: BTreeMap<String, usize>,
    /// Deliveries each provider received for this run, per channel.
    pub provider_records: BTreeMap<String, usize>,
    pub delivered_once: usize,
    pub lost: Vec<Finding>,
    pub doubled: Vec<Finding>,
    /// Delivered exactly once, but recorded with another status than `sent`.
    pub misrecorded: Vec<Finding>,
    /// Events the stack never accepted (every client attempt refused or unanswered).
    pub unaccepted_events: Vec<usize>,
    last_sent_at: Option<i64>,
}

impl Audit {
    pub fn last_sent_at_millis(&self) -> Option<i64> {
        self.last_sent_at
    }

    /// `Err` with a one-line summary when anything was lost, doubled, recorded wrong or never accepted.
    pub fn verdict(&self) -> Result<(), String> {
        if self.lost.is_empty()
            && self.doubled.is_empty()
            && self.misrecorded.is_empty()
            && self.unaccepted_events.is_empty()
        {
            return Ok(());
        }
        Err(format!(
            "{} lost, {} doubled, {} recorded wrong, {} events never accepted",
            self.lost.len(),
            self.doubled.len(),
            self.misrecorded.len(),
            self.unaccepted_events.len()
        ))
    }

    /// What went wrong, one line per finding (the first few of each kind).
    pub fn findings(&self) -> String {
        let mut text = String::new();
        for (kind, findings) in [
            ("lost", &self.lost),
            ("doubled", &self.doubled),
            ("recorded wrong", &self.misrecorded),
        ] {
            for finding in findings.iter().take(20) {
                let _ = writeln!(
                    text,
                    "  {kind}: {} ({}, event {}) {}",
                    finding.id, finding.channel, finding.event_id, finding.explanation
                );
            }
            if findings.len() > 20 {
                let _ = writeln!(text, "  … and {} more {kind}", findings.len() - 20);
            }
        }
        if !self.unaccepted_events.is_empty() {
            let _ = writeln!(text, "  never accepted: events {:?}", self.unaccepted_events);
        }
        text
    }
}

/// Waits until every notification has settled or `timeout` has passed, watching the channel queues drain
/// (twice empty, a second apart) rather than reading notifications, so waiting adds no DynamoDB request to
/// what the run is measured by.
pub async fn wait_until_settled(stack: &Stack, timeout: Duration) -> Result<(), BenchError> {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut empty_in_a_row = 0;
    while empty_in_a_row < 2 && started.elapsed() < timeout {
        let messages = stack.messages_in_channel_queues().await?;
        empty_in_a_row = if messages == 0 { empty_in_a_row + 1 } else { 0 };
        if last_progress.elapsed() > Duration::from_secs(10) {
            eprintln!("herald bench: {messages} messages still on the channel queues");
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

/// Looks up every notification and counts what each provider received for this run.
pub async fn audit(stack: &Stack, run: &str, notifications: &[Expected]) -> Result<Audit, BenchError> {
    let deliveries = provider_deliveries(stack, run).await?;
    let looked_up: Vec<(&Expected, Result<Value, String>)> = futures::stream::iter(notifications)
        .map(|n| async move { (n, lookup(stack, &n.id).await) })
        .buffered(LOOKUPS)
        .collect()
        .await;
    Ok(tally(&looked_up, &deliveries))
}

/// Judges each notification by what Herald recorded (`Err`: not found, and why) against what its provider
/// received.
fn tally(
    looked_up: &[(&Expected, Result<Value, String>)],
    deliveries: &BTreeMap<(String, usize), usize>,
) -> Audit {
    let mut audit = Audit {
        notifications: looked_up.len(),
        ..Audit::default()
    };
    for ((channel, _), count) in deliveries {
        *audit.provider_records.entry(channel.clone()).or_default() += count;
    }
    for (expected, found) in looked_up {
        let received = deliveries
            .get(&(expected.channel.clone(), expected.seq))
            .copied()
            .unwrap_or(0);
        let finding = |explanation: String| Finding {
            id: expected.id.clone(),
            event_id: expected.event_id.clone(),
            channel: expected.channel.clone(),
            explanation,
        };
        let notification = match found {
            Ok(notification) => notification,
            Err(answer) => {
                *audit.by_status.entry("not found".into()).or_default() += 1;
                audit.lost.push(finding(format!(
                    "accepted, but GET /v1/notifications/{{id}} does not find it ({answer}); its provider received it {received} times"
                )));
                continue;
            }
        };
        let status = status_of(notification);
        let label = match notification["reason"].as_str() {
            Some(reason) => format!("{status} ({reason})"),
            None => status.clone(),
        };
        *audit.by_status.entry(label.clone()).or_default() += 1;
        if let Some(sent_at) = notification["sent_at"].as_str().and_then(parse_millis) {
            audit.last_sent_at = audit.last_sent_at.max(Some(sent_at));
        }
        // The provider's later word (delivered, bounced, complained) follows a send: each is a send.
        let recorded_sent = matches!(status.as_str(), "sent" | "delivered" | "bounced" | "complained");
        match (recorded_sent, received) {
            (true, 1) => audit.delivered_once += 1,
            (true, 0) => audit.lost.push(finding(format!(
                "recorded {status} (provider id {}), but the provider has no record of it",
                notification["provider_message_id"]
            ))),
            (_, 0) => audit
                .lost
                .push(finding(format!("ended {label}: {}", explain(notification)))),
            (_, 1) => audit.misrecorded.push(finding(format!(
                "delivered once, but recorded {label}: {}",
                explain(notification)
            ))),
            (_, _) => {}
        }
        if received > 1 {
            audit.doubled.push(finding(format!(
                "the provider received it {received} times; recorded {label} after {} attempts",
                notification["attempts"].as_array().map_or(0, Vec::len)
            )));
        }
    }
    audit
}

/// Lookups of one notification before the audit gives up on it: a stack slowed on purpose answers some
/// reads 503, and a failed read is not a lost notification.
const LOOKUP_ATTEMPTS: u32 = 5;

/// The notification as the API answers it; `Err` only when it answered 404 (or never answered at all).
async fn lookup(stack: &Stack, id: &str) -> Result<Value, String> {
    let mut last = String::new();
    for attempt in 1..=LOOKUP_ATTEMPTS {
        let answer = stack
            .http
            .get(format!("{}/v1/notifications/{id}", stack.api))
            .bearer_auth(API_KEY)
            .send()
            .await;
        match answer {
            Ok(response) if response.status() == reqwest::StatusCode::NOT_FOUND => {
                return Err("404".to_owned());
            }
            Ok(response) if response.status().is_success() => {
                return response.json().await.map_err(|error| error.to_string());
            }
            Ok(response) => last = response.status().to_string(),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
    }
    Err(format!("no answer after {LOOKUP_ATTEMPTS} attempts: {last}"))
}

fn status_of(notification: &Value) -> String {
    notification["status"].as_str().unwrap_or("unknown").to_owned()
}

/// The notification's last attempt, in words.
fn explain(notification: &Value) -> String {
    let last = notification["attempts"]
        .as_array()
        .and_then(|attempts| attempts.last())
        .map_or_else(
            || "no attempt recorded".to_owned(),
            |a| format!("last attempt {a}"),
        );
    match notification["detail"].as_str() {
        Some(detail) => format!("{detail}; {last}"),
        None => last,
    }
}

fn parse_millis(text: &str) -> Option<i64> {
    DateTime::from_str(text, Format::DateTime).ok()?.to_millis().ok()
}

/// `(channel, seq)` → how many times the provider received that notification, for this run only.
async fn provider_deliveries(
    stack: &Stack,
    run: &str,
) -> Result<BTreeMap<(String, usize), usize>, BenchError> {
    let mut deliveries = BTreeMap::new();
    let data = get_json(&stack.http, &format!("{}/moto-api/data.json", stack.emulator)).await?;
    let prefix = marker_prefix(run);
    let mut count = |channel: &str, text: &str| {
        if let Some(seq) = seq_after(text, &prefix) {
            *deliveries.entry((channel.to_owned(), seq)).or_insert(0) += 1;
        }
    };
    for email in data["ses"]["Message"].as_array().into_iter().flatten() {
        count("email", email["subject"].as_str().unwrap_or_default());
    }
    for sms in data["sns"]["SMS"].as_array().into_iter().flatten() {
        count("sms", sms["message"].as_str().unwrap_or_default());
    }
    // Each endpoint keeps what was published to it: the whole document, the title (and so the marker) in it.
    for endpoint in data["sns"]["PlatformEndpoint"].as_array().into_iter().flatten() {
        for published in endpoint["messages"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            count("push", published.as_str().unwrap_or_default());
        }
    }
    let sink_record = tokio::fs::read_to_string(&stack.sink_log)
        .await
        .map_err(|error| BenchError::Setup {
            what: format!("reading the sink's record {}", stack.sink_log.display()),
            detail: error.to_string(),
        })?;
    let slack_prefix = format!("/services/TBENCH/{run}/");
    for line in sink_record.lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(seq) = message["path"]
            .as_str()
            .and_then(|path| path.strip_prefix(&slack_prefix))
            .and_then(|seq| seq.parse().ok())
        {
            *deliveries.entry(("slack".to_owned(), seq)).or_insert(0) += 1;
        }
        let webhook_of_this_run =
            message["path"] == super::load::WEBHOOK_PATH && message["body"]["run"] == run;
        if let Some(seq) = message["body"]["seq"]
            .as_u64()
            .filter(|_| webhook_of_this_run)
            .and_then(|seq| usize::try_from(seq).ok())
        {
            *deliveries.entry(("webhook".to_owned(), seq)).or_insert(0) += 1;
        }
    }
    Ok(deliveries)
}

/// The number right after `prefix` in `text`, if `text` holds it.
fn seq_after(text: &str, prefix: &str) -> Option<usize> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_sequence_number_behind_the_marker() {
        let prefix = "[bench abc/";
        assert_eq!(seq_after("Bench [bench abc/42] xx", prefix), Some(42));
        assert_eq!(seq_after("Bench [bench abd/42] xx", prefix), None);
        assert_eq!(seq_after("[bench abc/] x", prefix), None);
    }

    #[test]
    fn a_clean_audit_passes_and_any_loss_or_double_fails() {
        let mut audit = Audit::default();
        assert!(audit.verdict().is_ok());
        audit.doubled.push(Finding {
            id: "ntf_1".into(),
            event_id: "evt_1".into(),
            channel: "sms".into(),
            explanation: "twice".into(),
        });
        assert_eq!(
            audit.verdict(),
            Err("0 lost, 1 doubled, 0 recorded wrong, 0 events never accepted".into())
        );
    }

    fn expected(seq: usize, channel: &str) -> Expected {
        Expected {
            id: format!("ntf_{channel}_{seq}"),
            event_id: format!("evt_{seq}"),
            channel: channel.into(),
            seq,
        }
    }

    #[test]
    fn each_notification_is_judged_by_its_record_and_its_provider_deliveries() {
        let sent = json!({"status": "sent", "sent_at": "2026-11-30T10:00:01.500Z", "attempts": [{}]});
        let cases = [
            (expected(0, "email"), Some(sent.clone()), 1), // delivered once
            (expected(1, "email"), Some(sent.clone()), 0), // recorded sent, never delivered
            (expected(2, "sms"), Some(sent.clone()), 2),   // delivered twice
            (
                expected(3, "sms"),
                Some(json!({"status": "retrying", "attempts": []})),
                0,
            ),
            (
                expected(4, "slack"),
                Some(json!({"status": "sending", "attempts": []})),
                1,
            ),
            (expected(5, "slack"), None, 0), // accepted, then not found
            (
                expected(6, "email"),
                Some(json!({"status": "bounced", "attempts": [{}]})),
                1,
            ), // sent once, and SES said it bounced
        ];
        let deliveries: BTreeMap<(String, usize), usize> = cases
            .iter()
            .filter(|(_, _, received)| *received > 0)
            .map(|(e, _, received)| ((e.channel.clone(), e.seq), *received))
            .collect();
        let looked_up: Vec<(&Expected, Result<Value, String>)> = cases
            .iter()
            .map(|(e, found, _)| (e, found.clone().ok_or_else(|| "404".to_owned())))
            .collect();

        let audit = tally(&looked_up, &deliveries);

        let ids = |findings: &[Finding]| findings.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(audit.delivered_once, 2);
        assert_eq!(ids(&audit.lost), ["ntf_email_1", "ntf_sms_3", "ntf_slack_5"]);
        assert_eq!(ids(&audit.doubled), ["ntf_sms_2"]);
        assert_eq!(ids(&audit.misrecorded), ["ntf_slack_4"]);
        assert_eq!(audit.by_status["sent"], 3);
        assert_eq!(audit.by_status["not found"], 1);
        assert_eq!(audit.provider_records["sms"], 2);
        assert_eq!(
            audit.last_sent_at_millis(),
            parse_millis("2026-11-30T10:00:01.500Z")
        );
        assert!(audit.verdict().is_err());
    }
}
