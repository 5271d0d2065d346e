//! End to end, as a newcomer uses it: `herald local up` (the real binary) on free ports, driven over HTTP.
//! Behind the front run the real function binaries under the local Runtime API, the pollers, the AWS
//! emulator and the Slack sink — nothing in this test reaches inside the stack.
//!
//! The stack is started once and the scenarios run in order against it, because starting it (building
//! the seven functions, starting the emulator) is the expensive part; each scenario uses its own recipient.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

#[path = "local_stack/dead_letters.rs"]
mod dead_letters;
#[path = "local_stack/feedback.rs"]
mod feedback;
#[path = "local_stack/observability.rs"]
mod observability;
#[path = "local_stack/push.rs"]
mod push;
#[path = "local_stack/tenants.rs"]
mod tenants;
#[path = "local_stack/webhooks.rs"]
mod webhooks;

use dead_letters::a_dead_lettered_slack_is_redriven_once_by_herald_dlq;
use feedback::ses_feedback_from_herald_local_feedback_is_recorded_and_suppresses;
use observability::{
    the_functions_write_their_metrics_as_emf, the_logs_trace_requests_and_keep_recipients_secret,
};
use push::a_registered_device_gets_the_push_in_the_emulator;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tenants::a_tenants_own_sms_countries_are_honoured;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use webhooks::a_registered_endpoint_receives_a_signed_post;

const API_KEY: &str = "herald-dev-key";
/// The first scenario's `X-Correlation-Id`, looked for in the logs at the end.
const CORRELATION_ID: &str = "e2e-trace-444";
/// The first start builds the function binaries; a cold build of the AWS SDKs takes minutes.
const START_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

struct RunningStack {
    process: Child,
    front: String,
    emulator: String,
    sink: String,
    ports: [u16; 4],
    log: PathBuf,
    _state: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

impl RunningStack {
    async fn start() -> Self {
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let state = tempfile::tempdir().unwrap();
        let log = state.path().join("herald.log");
        let mut process = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["local", "up"])
            .current_dir(project_root())
            .env("HERALD_PORT", ports[0].to_string())
            .env("HERALD_EMULATOR_PORT", ports[1].to_string())
            .env("HERALD_DYNAMODB_PORT", ports[3].to_string())
            .env("HERALD_SLACK_SINK_PORT", ports[2].to_string())
            .env("HERALD_STATE_DIR", state.path())
            // The fewest deliveries the template allows before the DLQ, so dead-lettering takes seconds.
            // The README's walk-through settings: a short schedule, and a breaker that does not open before
            // it is used up (an open circuit would keep the failing Slack notifications waiting instead).
            .env(
                "HERALD_PARAMETERS",
                "RetrySchedule=1s,2s,2s,2s CircuitBreakerThreshold=50",
            )
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("start herald local up");
        let mut banner = BufReader::new(process.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = banner.next_line().await.unwrap() {
                if line == "ready" {
                    return true;
                }
            }
            false
        })
        .await;
        let stack = Self {
            process,
            front: format!("http://127.0.0.1:{}", ports[0]),
            emulator: format!("http://127.0.0.1:{}", ports[1]),
            sink: format!("http://127.0.0.1:{}", ports[2]),
            ports,
            log,
            _state: state,
        };
        assert!(
            matches!(ready, Ok(true)),
            "herald local up never printed ready\n{}",
            stack.log_tail()
        );
        stack
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn webhook(&self, channel: &str) -> String {
        format!("{}/services/T000/{channel}/XXXX", self.sink)
    }

    async fn send_event(&self, event: &Value) -> reqwest::Response {
        self.send_event_correlated(event, None).await
    }

    async fn send_event_correlated(&self, event: &Value, correlation_id: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/events", self.front))
            .bearer_auth(API_KEY)
            .json(event);
        if let Some(id) = correlation_id {
            request = request.header("X-Correlation-Id", id);
        }
        request.send().await.unwrap()
    }

    /// Every line the functions logged, as JSON, with the function's name (`email`, not `email-2`).
    /// Every JSON line a function printed, with the function's name.
    fn function_json_lines(&self) -> Vec<(String, Value)> {
        let log = std::fs::read_to_string(&self.log).unwrap();
        log.lines()
            .filter_map(|line| {
                let (prefix, rest) = line.strip_prefix('[')?.split_once("] ")?;
                let json: Value = serde_json::from_str(rest.strip_prefix('{').map(|_| rest)?).ok()?;
                let function = prefix.split('-').next().unwrap_or(prefix).to_owned();
                Some((function, json))
            })
            .collect()
    }

    /// The functions' log lines: their JSON lines but the metrics.
    fn function_log_lines(&self) -> Vec<(String, Value)> {
        let mut lines = self.function_json_lines();
        lines.retain(|(_, line)| line.get("_aws").is_none());
        lines
    }

    /// The metrics each function wrote: its CloudWatch Embedded Metric Format documents (`_aws`).
    fn function_metrics(&self) -> Vec<(String, Value)> {
        let mut lines = self.function_json_lines();
        lines.retain(|(_, line)| line.get("_aws").is_some());
        lines
    }

    async fn get(&self, path: &str) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.front))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Polls `GET /v1/notifications/{id}` until its status is `status`; returns it then.
    async fn wait_for_notification(&self, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let notification = self.get(&format!("/v1/notifications/{id}")).await;
            if notification["status"] == status {
                return notification;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {status}: {notification:#}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Polls `GET /v1/events/{id}` until every notification's status is one of `statuses`.
    async fn wait_for_statuses(&self, event_id: &str, statuses: &[&str]) -> Value {
        let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let event = self.get(&format!("/v1/events/{event_id}")).await;
            let notifications = event["notifications"].as_array().unwrap();
            if notifications
                .iter()
                .all(|n| statuses.iter().any(|s| n["status"] == *s))
            {
                return event;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still not {statuses:?}: {event:#}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn emulator_data(&self) -> Value {
        reqwest::get(format!("{}/moto-api/data.json", self.emulator))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn slack_messages(&self, channel: &str) -> Vec<Value> {
        let messages: Value = reqwest::get(format!("{}/messages", self.sink))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let path = format!("/services/T000/{channel}/XXXX");
        messages
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["path"] == path)
            .cloned()
            .collect()
    }

    async fn set_sink_status(&self, status: u16) {
        let response = reqwest::Client::new()
            .put(format!("{}/behaviour", self.sink))
            .json(&json!({"status": status}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// SIGTERM, as a service manager or `kill` sends it; returns the exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.process.id().unwrap();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(30), self.process.wait())
            .await
            .expect("herald local up did not stop within 30 s of SIGTERM")
            .unwrap()
    }
}

fn order_event(stack: &RunningStack, scenario: &str, email: &str, phone: &str, key: &str) -> Value {
    json!({
        "event": "order_created",
        "recipient": {"email": email, "phone": phone, "slack_webhook_url": stack.webhook(scenario)},
        "payload": {"order_id": 444, "total": 99.99},
        "idempotency_key": key,
        // The demo's push rule needs a user with a device: the push scenario has its own.
        "channels": ["email", "sms", "slack", "webhook"],
    })
}

/// The id of the notification on `channel` in a 202 body.
fn notification_on(accepted: &Value, channel: &str) -> String {
    accepted["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["channel"] == channel)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn statuses_by_channel(event: &Value) -> Vec<(String, String)> {
    let mut statuses: Vec<(String, String)> = event["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["channel"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    statuses.sort();
    statuses
}

fn emails_to(data: &Value, address: &str) -> Vec<Value> {
    let messages = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    messages
        .into_iter()
        .filter(|m| m["destinations"]["ToAddresses"][0] == address)
        .collect()
}

fn sms_to(data: &Value, phone: &str) -> Vec<Value> {
    let messages = data["sns"]["SMS"].as_array().cloned().unwrap_or_default();
    messages
        .into_iter()
        .filter(|m| m["phone_number"] == phone)
        .collect()
}

async fn all_three_channels_are_sent(stack: &RunningStack) {
    let response = stack
        .send_event_correlated(
            &order_event(
                stack,
                "B001",
                "ada@example.com",
                "+15555550101",
                "e2e-all-channels",
            ),
            Some(CORRELATION_ID),
        )
        .await;
    assert_eq!(
        response.headers()["x-correlation-id"].to_str().unwrap(),
        CORRELATION_ID
    );
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    let event_id = accepted["event_id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/events/{event_id}"));

    let event = stack.wait_for_statuses(event_id, &["sent", "failed"]).await;
    let expected = ["email", "slack", "sms"].map(|channel| (channel.to_owned(), "sent".to_owned()));
    assert_eq!(statuses_by_channel(&event), expected);

    let data = stack.emulator_data().await;
    let emails = emails_to(&data, "ada@example.com");
    assert_eq!(emails.len(), 1, "{emails:#?}");
    assert!(
        emails[0]["subject"].as_str().unwrap().contains("444"),
        "{:#}",
        emails[0]
    );
    let sms = sms_to(&data, "+15555550101");
    assert_eq!(sms.len(), 1, "{sms:#?}");
    assert!(
        sms[0]["message"].as_str().unwrap().contains("444"),
        "{:#}",
        sms[0]
    );
    let slack_messages = stack.slack_messages("B001").await;
    assert_eq!(slack_messages.len(), 1, "{slack_messages:#?}");
    assert!(
        slack_messages[0]["body"]["text"]
            .as_str()
            .unwrap()
            .contains("444"),
        "{:#}",
        slack_messages[0]
    );

    let email_id = notification_on(&event, "email");
    let notification = stack.get(&format!("/v1/notifications/{email_id}")).await;
    let attempts = notification["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{notification:#}");
    assert_eq!(attempts[0]["outcome"], "sent");
}

async fn a_duplicate_is_replayed(stack: &RunningStack) {
    let event = order_event(
        stack,
        "B002",
        "grace@example.com",
        "+15555550102",
        "e2e-duplicate",
    );
    let first = stack.send_event(&event).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = stack.send_event(&event).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["event_id"], first["event_id"]);
    assert_eq!(again["notifications"], first["notifications"]);

    let event_id = first["event_id"].as_str().unwrap();
    stack.wait_for_statuses(event_id, &["sent"]).await;
    let data = stack.emulator_data().await;
    let emails = emails_to(&data, "grace@example.com");
    assert_eq!(emails.len(), 1, "the replay must not send again: {emails:#?}");
    assert_eq!(stack.slack_messages("B002").await.len(), 1);
}

async fn a_failing_slack_is_retried_until_it_recovers(stack: &RunningStack) {
    stack.set_sink_status(500).await;
    let response = stack
        .send_event(&order_event(
            stack,
            "B003",
            "alan@example.com",
            "+15555550103",
            "e2e-slack-retry",
        ))
        .await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let event_id = accepted["event_id"].as_str().unwrap();
    let slack_id = notification_on(&accepted, "slack");

    let retrying = stack.wait_for_notification(&slack_id, "retrying").await;
    assert!(retrying["next_attempt_at"].is_string(), "{retrying:#}");
    assert!(stack.slack_messages("B003").await.is_empty());

    stack.set_sink_status(200).await;
    let event = stack.wait_for_statuses(event_id, &["sent"]).await;
    assert_eq!(statuses_by_channel(&event).len(), 3);
    assert_eq!(stack.slack_messages("B003").await.len(), 1);
    let notification = stack.get(&format!("/v1/notifications/{slack_id}")).await;
    let outcomes: Vec<&str> = notification["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.len() >= 2, "{notification:#}");
    assert_eq!(outcomes.last(), Some(&"sent"), "{notification:#}");
    assert!(
        outcomes[..outcomes.len() - 1].iter().all(|o| *o != "sent"),
        "{notification:#}"
    );
}

/// `herald COMMAND ARGS --local`, run as a person runs it against the local stack: its standard output.
async fn herald_local(stack: &RunningStack, command: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg(command)
        .args(args)
        .arg("--local")
        .current_dir(project_root())
        .env("HERALD_EMULATOR_PORT", stack.ports[1].to_string())
        .env("HERALD_DYNAMODB_PORT", stack.ports[3].to_string())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "herald {command} {args:?} failed\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// CI's load check: the benchmark, run as a person runs it beside the stack, ends with its audit of every
/// notification of the run. Its exit status is the audit's verdict.
async fn a_small_load_passes_the_benchmark_audit(stack: &RunningStack) {
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "bench",
            "load",
            "--events",
            "100",
            "--concurrency",
            "8",
            "--timeout",
            "600",
        ])
        .current_dir(project_root())
        .env("HERALD_PORT", stack.ports[0].to_string())
        .env("HERALD_EMULATOR_PORT", stack.ports[1].to_string())
        .env("HERALD_DYNAMODB_PORT", stack.ports[3].to_string())
        .env("HERALD_SLACK_SINK_PORT", stack.ports[2].to_string())
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    assert!(
        output.status.success(),
        "herald bench load failed\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("requests by status: 202 × 100"), "{report}");
    assert!(
        report.contains(&format!(
            "delivered exactly once: {}; lost: 0; doubled: 0; recorded wrong: 0",
            100 * herald::domain::Channel::ALL.len()
        )),
        "{report}"
    );
    // The sink keeps a bounded window in memory; its file holds every message.
    let info: Value = reqwest::get(format!("{}/", stack.sink))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info["captured"].as_u64().unwrap() >= 100);
    let window = reqwest::get(format!("{}/messages", stack.sink))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(window.as_array().unwrap().len() as u64 <= info["window"].as_u64().unwrap());
}

async fn sigterm_stops_everything(mut stack: RunningStack) {
    let status = stack.terminate().await;
    assert!(status.success(), "exit status {status}\n{}", stack.log_tail());
    for port in stack.ports {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is still in use after herald local up stopped"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_stack_delivers_replays_retries_redrives_pushes_takes_ses_feedback_reports_metrics_holds_a_small_load_and_stops_on_sigterm()
 {
    let stack = RunningStack::start().await;
    a_tenants_own_sms_countries_are_honoured(&stack).await;
    all_three_channels_are_sent(&stack).await;
    a_duplicate_is_replayed(&stack).await;
    a_failing_slack_is_retried_until_it_recovers(&stack).await;
    a_dead_lettered_slack_is_redriven_once_by_herald_dlq(&stack).await;
    a_registered_endpoint_receives_a_signed_post(&stack).await;
    a_registered_device_gets_the_push_in_the_emulator(&stack).await;
    ses_feedback_from_herald_local_feedback_is_recorded_and_suppresses(&stack).await;
    the_functions_write_their_metrics_as_emf(&stack).await;
    a_small_load_passes_the_benchmark_audit(&stack).await;
    the_logs_trace_requests_and_keep_recipients_secret(&stack);
    sigterm_stops_everything(stack).await;
}
