//! The audit that ends every fault test: every notification of the run (a test's tables are its own, so
//! the run is everything in them) looked up by id, and every delivery counted in what the providers
//! received (the emulator's SES and SNS records, the test's Slack webhook), so that nothing is lost (every
//! notification settled, and a `sent` one received) and nothing doubled (no address received more than its
//! notifications' recorded sends, bar the duplicates a test expects and docs/reliability.md documents).

use crate::Stack;
use crate::poller::emulator_data;
use herald::domain::Channel;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use wiremock::MockServer;

/// Statuses a notification can end in.
const SETTLED: [&str; 7] = [
    "sent",
    "failed",
    "dead_lettered",
    "skipped",
    "suppressed",
    "rate_limited",
    "expired",
];

/// One notification of the run, as Herald recorded it.
#[derive(Debug, Clone)]
pub struct Audited {
    pub id: String,
    pub channel: String,
    pub status: String,
    pub reason: Option<String>,
    /// Its recorded attempts' outcomes, oldest first.
    pub outcomes: Vec<String>,
    /// The full address it was sent to.
    pub to: Option<String>,
}

/// What deliveries are counted by: an email address or phone number as is, a webhook URL by its path.
fn address_key(address: &str) -> String {
    reqwest::Url::parse(address).map_or_else(|_| address.to_owned(), |url| url.path().to_owned())
}

impl Audited {
    fn address(&self) -> String {
        self.to.as_deref().map(address_key).unwrap_or_default()
    }

    /// Attempts after which the provider may hold the message: sent, or sent without an answer.
    fn recorded_sends(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|outcome| matches!(outcome.as_str(), "sent" | "ambiguous"))
            .count()
    }
}

#[derive(Debug)]
pub struct Audit {
    pub notifications: Vec<Audited>,
    /// Deliveries each address received, from the providers' own records.
    pub received: BTreeMap<String, usize>,
}

impl Audit {
    pub fn get(&self, id: &str) -> &Audited {
        self.notifications
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("{id} is not a notification of the run: {self:#?}"))
    }

    /// What is wrong with the run, in words: notifications lost (not settled, or recorded sent but never
    /// received) and addresses that received more than their notifications' recorded sends plus `extra`
    /// (notification id → sends no record accounts for, each a documented duplicate).
    pub fn findings(&self, extra: &[(&str, usize)]) -> Vec<String> {
        let mut findings = Vec::new();
        let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
        for n in &self.notifications {
            let address = n.address();
            let allowed = extra
                .iter()
                .filter(|(id, _)| *id == n.id)
                .map(|(_, sends)| sends)
                .sum::<usize>();
            *recorded.entry(address.clone()).or_default() += n.recorded_sends() + allowed;
            if !SETTLED.contains(&n.status.as_str()) {
                findings.push(format!(
                    "lost: {} ({}) ended {}, attempts {:?}",
                    n.id, n.channel, n.status, n.outcomes
                ));
            }
            let received = self.received.get(&address).copied().unwrap_or(0);
            if n.status == "sent" && received == 0 {
                findings.push(format!(
                    "lost: {} ({}) is recorded sent, but {address} received nothing",
                    n.id, n.channel
                ));
            }
        }
        for (address, recorded) in recorded {
            let received = self.received.get(&address).copied().unwrap_or(0);
            if received > recorded {
                findings.push(format!(
                    "doubled: {address} received {received} deliveries for {recorded} recorded sends"
                ));
            }
            if received < recorded {
                findings.push(format!(
                    "lost: {address} received {received} deliveries for {recorded} recorded sends"
                ));
            }
        }
        findings
    }

    /// Panics, with every finding and the whole run, unless nothing was lost and nothing doubled beyond
    /// `extra`.
    pub fn assert_nothing_lost_or_doubled(&self, extra: &[(&str, usize)]) {
        let findings = self.findings(extra);
        if !findings.is_empty() {
            let mut report = String::new();
            for finding in &findings {
                let _ = writeln!(report, "  {finding}");
            }
            panic!("the audit of the run failed:\n{report}run: {self:#?}");
        }
    }
}

impl Stack {
    /// Audits every notification in this stack's tables; `slack` is the webhook its Slack notifications
    /// were sent to, if any.
    pub async fn audit(&self, slack: Option<&MockServer>) -> Audit {
        let items = self.activity_items().await;
        let mut notifications = Vec::new();
        for item in items
            .iter()
            .filter(|item| item.get("sk").and_then(|sk| sk.as_s().ok()).map(String::as_str) == Some("NTF"))
        {
            let text = |name: &str| item.get(name).and_then(|value| value.as_s().ok()).cloned();
            let id = text("notification_id").expect("a notification id");
            let looked_up = self.notification_json(&id).await;
            notifications.push(Audited {
                outcomes: looked_up["attempts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|attempt| attempt["outcome"].as_str().map(str::to_owned))
                    .collect(),
                status: looked_up["status"].as_str().unwrap_or("not found").to_owned(),
                reason: looked_up["reason"].as_str().map(str::to_owned),
                channel: text("channel").unwrap_or_default(),
                to: text("to"),
                id,
            });
        }
        let mut received: BTreeMap<String, usize> = BTreeMap::new();
        let data = emulator_data().await;
        let addresses = [
            (&data["ses"]["Message"], "/destinations/ToAddresses/0"),
            (&data["sns"]["SMS"], "/phone_number"),
        ];
        for (records, address) in addresses {
            for record in records.as_array().into_iter().flatten() {
                if let Some(to) = record.pointer(address).and_then(Value::as_str) {
                    *received.entry(to.to_owned()).or_default() += 1;
                }
            }
        }
        if let Some(slack) = slack {
            // wiremock sees the path, not the host it was reached by; the webhook server is the test's own.
            for request in slack.received_requests().await.unwrap_or_default() {
                *received.entry(address_key(request.url.as_str())).or_default() += 1;
            }
        }
        // Only the run's own addresses: the emulator's records are shared by every test.
        received.retain(|address, _| notifications.iter().any(|n| n.address() == *address));
        Audit {
            notifications,
            received,
        }
    }

    /// `GET /v1/notifications/{id}` through the ingest function, as a client reads it.
    async fn notification_json(&self, id: &str) -> Value {
        let request = crate::ApiRequest::get(&format!("/v1/notifications/{id}")).key(&self.api_key);
        let answer = self.call_ingest(&self.ingest(), &request).await;
        if answer.status == 200 {
            answer.body
        } else {
            Value::Null
        }
    }
}

impl Stack {
    /// Delivers every message now on the channel queues through the three channel functions' loop (email
    /// and SMS to the emulator, Slack to the webhooks the events name), until every queue is empty. Retries
    /// that wait longer than a poll are left on their queue.
    pub async fn deliver_everything(&self) {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
        let email = self.delivery(self.email_sender(&endpoint).await);
        let sms = self.delivery(self.sms_sender(&endpoint).await);
        let slack = self.delivery(self.slack_sender());
        loop {
            let handed = self.poll(Channel::Email, 0, |e| email.handle(e)).await.received
                + self.poll(Channel::Sms, 0, |e| sms.handle(e)).await.received
                + self.poll(Channel::Slack, 0, |e| slack.handle(e)).await.received;
            if handed == 0 {
                return;
            }
        }
    }
}
