//! `herald dlq …`: the dead-letter queues of a deployed stack or of the local one: those of the template's
//! queues, each channel's and the SES feedback queue's. `list` shows how deep each is, `show` what is in one
//! (each message's notification, masked address, and its last error or what SES said), `redrive` moves
//! messages back to their queue (all, one queue, or chosen notifications, at a chosen rate), `purge`
//! empties one after asking. A redriven notification that was `sent` meanwhile is acknowledged without
//! sending: the delivery loop claims before it sends; redriven feedback is recorded once: the feedback
//! function's writes are conditional.

mod redrive;

use crate::local::LocalError;
use crate::local::emulator;
use crate::local::template::StackTemplate;
use crate::local::up::{Ports, STACK_NAME, local_template};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use herald::adapters::dynamodb::DynamoActivityStore;
use herald::adapters::load_aws_config;
use herald::config::{AwsSettings, ConfigError, Env};
use herald::domain::notification::Envelope;
use herald::domain::provider_feedback::parse_ses_event;
use herald::domain::{NotificationId, TenantId, Timestamp};
use herald::ports::{BackendError, DeliveryLedger};
use std::io::{BufRead, Write};
use std::time::Duration;

const USAGE: &str = "usage:
  herald dlq list    [--local | --stack NAME]
  herald dlq show    QUEUE [--limit N] [--local | --stack NAME] [--activity-table TABLE]
  herald dlq redrive [QUEUE] [--ids ntf_1,ntf_2] [--rate PER_SECOND] [--local | --stack NAME]
  herald dlq purge   QUEUE [--yes] [--local | --stack NAME]

QUEUE is email, sms, slack or feedback (SES's bounces, complaints and deliveries): every queue of
template.yaml with a DLQ. --local: the stack `herald local up` runs; otherwise the deployed stack NAME
(default herald, as in samconfig.toml) in the account and region of the usual AWS environment. Queues are
<stack>-<queue> and <stack>-<queue>-dlq; `show` reads the activity table (the stack's ActivityTableName
output, or HERALD_ACTIVITY_TABLE).";

/// The template a deployed stack was made from, as this herald was built: where its queue names come from.
const TEMPLATE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"));

/// Why `herald dlq …` failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("{USAGE}")]
    Usage,
    #[error("{name:?} is no queue with a DLQ; the stack's are {}", known.join(", "))]
    UnknownQueue { name: String, known: Vec<String> },
    #[error("{flag} needs a number, got {value:?}")]
    NotANumber { flag: &'static str, value: String },
    #[error("set --activity-table or HERALD_ACTIVITY_TABLE to the stack's ActivityTableName output")]
    NoActivityTable,
    #[error("queue {queue}: {message}")]
    Sqs { queue: String, message: String },
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Settings(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] BackendError),
    #[error("could not read the answer: {0}")]
    Prompt(#[source] std::io::Error),
}

impl DlqError {
    fn sqs<E: std::error::Error + 'static>(queue: &str, error: E) -> Self {
        Self::Sqs {
            queue: queue.to_owned(),
            message: DisplayErrorContext(error).to_string(),
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Default, PartialEq)]
struct Options {
    /// The queues named (`email`, `feedback`): none for all.
    queues: Vec<String>,
    local: bool,
    stack: Option<String>,
    activity_table: Option<String>,
    ids: Vec<String>,
    rate: Option<u32>,
    limit: Option<u32>,
    yes: bool,
}

fn parse(args: &[&str]) -> Result<Options, DlqError> {
    let mut options = Options::default();
    let mut rest = args.iter();
    let number = |flag: &'static str, value: Option<&&str>| -> Result<u32, DlqError> {
        let value = value.ok_or(DlqError::Usage)?;
        value
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| DlqError::NotANumber {
                flag,
                value: (*value).to_owned(),
            })
    };
    while let Some(arg) = rest.next() {
        match *arg {
            "--local" => options.local = true,
            "--yes" => options.yes = true,
            "--stack" => options.stack = Some((*rest.next().ok_or(DlqError::Usage)?).to_owned()),
            "--activity-table" => {
                options.activity_table = Some((*rest.next().ok_or(DlqError::Usage)?).to_owned());
            }
            "--ids" => {
                let ids = rest.next().ok_or(DlqError::Usage)?;
                options.ids = ids
                    .split(',')
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--rate" => options.rate = Some(number("--rate", rest.next())?),
            "--limit" => options.limit = Some(number("--limit", rest.next())?),
            flag if flag.starts_with("--") => return Err(DlqError::Usage),
            queue => options.queues.push(queue.to_owned()),
        }
    }
    if options.local && options.stack.is_some() {
        return Err(DlqError::Usage);
    }
    Ok(options)
}

/// A queue of the template and the DLQ its redrive policy moves messages to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeadLettered {
    /// The queue's name without the stack's: `email`, `feedback`.
    name: String,
    queue: String,
    dlq: String,
}

impl DeadLettered {
    /// Every queue of `template` that redrives to a DLQ, by name.
    fn of(template: &StackTemplate, stack: &str) -> Vec<Self> {
        let queues = template.queues();
        let prefix = format!("{stack}-");
        let mut found: Vec<Self> = queues
            .iter()
            .filter_map(|queue| {
                let redrive = queue.redrive.as_ref()?;
                let dlq = queues
                    .iter()
                    .find(|q| q.logical_id == redrive.dead_letter_queue)?;
                Some(Self {
                    name: queue.name.strip_prefix(&prefix).unwrap_or(&queue.name).to_owned(),
                    queue: queue.name.clone(),
                    dlq: dlq.name.clone(),
                })
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }
}

/// The queues and table of one stack, and clients for them.
#[derive(Debug)]
struct Target {
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    activity_table: Option<String>,
    queues: Vec<DeadLettered>,
}

impl Target {
    async fn new(options: &Options) -> Result<Self, DlqError> {
        if options.local {
            let ports = Ports::from_env()?;
            let aws = emulator::sdk_config(&ports.endpoints()).await;
            let root = emulator::project_root().map_err(LocalError::from)?;
            let template = local_template(&root)?;
            let activity_table = template
                .tables()
                .into_iter()
                .find(|table| table.logical_id == "ActivityTable")
                .map(|table| table.name);
            return Ok(Self {
                sqs: aws_sdk_sqs::Client::new(&aws),
                dynamodb: aws_sdk_dynamodb::Client::new(&aws),
                activity_table,
                queues: DeadLettered::of(&template, STACK_NAME),
            });
        }
        let aws = load_aws_config(&AwsSettings::from_env(&Env::process())?).await;
        let stack = options.stack.clone().unwrap_or_else(|| "herald".to_owned());
        let template = StackTemplate::from_source(
            TEMPLATE,
            "template.yaml",
            &stack,
            &std::collections::BTreeMap::new(),
        )
        .map_err(LocalError::from)?;
        Ok(Self {
            sqs: aws_sdk_sqs::Client::new(&aws),
            dynamodb: aws_sdk_dynamodb::Client::new(&aws),
            activity_table: options
                .activity_table
                .clone()
                .or_else(|| std::env::var("HERALD_ACTIVITY_TABLE").ok()),
            queues: DeadLettered::of(&template, &stack),
        })
    }

    /// The queues `options` names, or all of them.
    fn chosen(&self, options: &Options) -> Result<Vec<DeadLettered>, DlqError> {
        if options.queues.is_empty() {
            return Ok(self.queues.clone());
        }
        options
            .queues
            .iter()
            .map(|name| {
                self.queues
                    .iter()
                    .find(|queue| queue.name == *name)
                    .cloned()
                    .ok_or_else(|| DlqError::UnknownQueue {
                        name: name.clone(),
                        known: self.queues.iter().map(|queue| queue.name.clone()).collect(),
                    })
            })
            .collect()
    }

    /// The one queue `options` names.
    fn one(&self, options: &Options) -> Result<DeadLettered, DlqError> {
        match options.queues.as_slice() {
            [_] => Ok(self.chosen(options)?.remove(0)),
            _ => Err(DlqError::Usage),
        }
    }

    async fn url(&self, name: &str) -> Result<String, DlqError> {
        let output = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|error| DlqError::sqs(name, error))?;
        Ok(output.queue_url.unwrap_or_default())
    }

    /// Messages in a queue: ready, and in flight.
    async fn depth(&self, url: &str) -> Result<(u64, u64), DlqError> {
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|error| DlqError::sqs(url, error))?;
        let attributes = output.attributes.unwrap_or_default();
        let count = |name| {
            attributes
                .get(&name)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    /// Up to `count` messages, left visible to everyone else (a DLQ has no redrive of its own, so looking
    /// costs nothing but a receive count).
    async fn peek(&self, url: &str, count: i32) -> Result<Vec<aws_sdk_sqs::types::Message>, DlqError> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(count.clamp(1, 10))
            .visibility_timeout(0)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|error| DlqError::sqs(url, error))?;
        Ok(output.messages.unwrap_or_default())
    }
}

/// The tenant and notification a dead-lettered message is about: a channel queue's envelope, or SES's
/// feedback event (with what SES said).
fn about(body: &str) -> Option<(TenantId, NotificationId, Option<String>)> {
    if let Ok(envelope) = serde_json::from_str::<Envelope>(body) {
        return Some((envelope.tenant, envelope.notification_id, None));
    }
    let feedback = parse_ses_event(body).ok().flatten()?;
    Some((feedback.tenant, feedback.notification_id, Some(feedback.detail)))
}

/// `herald dlq …`.
pub async fn run(args: &[&str]) -> Result<(), DlqError> {
    let (command, rest) = args.split_first().ok_or(DlqError::Usage)?;
    if matches!(*command, "help" | "--help" | "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let options = parse(rest)?;
    match *command {
        "list" => list(&Target::new(&options).await?, &options).await,
        "show" => show(&Target::new(&options).await?, &options).await,
        "redrive" => redrive::run(&Target::new(&options).await?, &options).await,
        "purge" => purge(&Target::new(&options).await?, &options).await,
        _ => Err(DlqError::Usage),
    }
}

async fn list(target: &Target, options: &Options) -> Result<(), DlqError> {
    println!(
        "{:<28} {:>8} {:>9}  oldest seen",
        "dead-letter queue", "messages", "in flight"
    );
    for queue in target.chosen(options)? {
        let name = queue.dlq;
        let url = target.url(&name).await?;
        let (ready, in_flight) = target.depth(&url).await?;
        let oldest = target
            .peek(&url, 10)
            .await?
            .iter()
            .filter_map(|message| {
                message
                    .attributes()?
                    .get(&MessageSystemAttributeName::SentTimestamp)?
                    .parse::<i64>()
                    .ok()
            })
            .min()
            .map_or_else(|| "-".to_owned(), |sent| age(Timestamp::now().millis() - sent));
        println!("{name:<28} {ready:>8} {in_flight:>9}  {oldest}");
    }
    Ok(())
}

/// `95 s`, `12 min`, `3.5 h`, `2.0 days`.
fn age(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7_200 => format!("{} min", seconds / 60),
        7_200..172_800 => format!("{}.{} h", seconds / 3600, seconds % 3600 / 360),
        _ => format!("{}.{} days", seconds / 86_400, seconds % 86_400 / 8640),
    }
}

async fn show(target: &Target, options: &Options) -> Result<(), DlqError> {
    let queue = target.one(options)?;
    let table = target.activity_table.clone().ok_or(DlqError::NoActivityTable)?;
    let ledger = DynamoActivityStore::new(target.dynamodb.clone(), table);
    let url = target.url(&queue.dlq).await?;
    let limit = options.limit.unwrap_or(10);
    let mut shown = 0;
    let mut seen = std::collections::HashSet::new();
    while shown < limit {
        let messages = target.peek(&url, 10).await?;
        let fresh: Vec<_> = messages
            .into_iter()
            .filter(|message| seen.insert(message.message_id().unwrap_or_default().to_owned()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh
            .into_iter()
            .take(usize::try_from(limit - shown).unwrap_or(usize::MAX))
        {
            shown += 1;
            let Some((tenant, id, ses_said)) = about(message.body().unwrap_or_default()) else {
                println!(
                    "{}  unreadable message (neither a Herald envelope nor SES feedback)",
                    message.message_id().unwrap_or("?")
                );
                continue;
            };
            match ledger.notification_with_attempts(&tenant, &id).await? {
                Some((notification, attempts)) => {
                    let last_error = attempts
                        .iter()
                        .rev()
                        .find_map(|attempt| attempt.error.clone())
                        .unwrap_or_else(|| "-".to_owned());
                    let said = ses_said.map_or_else(
                        || format!("last error: {last_error}"),
                        |detail| format!("SES said: {detail}"),
                    );
                    println!(
                        "{}  tenant {}  event {}  to {}  status {}  attempts {}\n    {said}",
                        notification.id,
                        notification.tenant,
                        notification.event_id,
                        notification.masked_to().unwrap_or_else(|| "-".to_owned()),
                        notification.status,
                        attempts.len(),
                    );
                }
                None => println!("{id}  tenant {tenant}  (no such notification: expired or never written)"),
            }
        }
    }
    if shown == 0 {
        println!("{} is empty", queue.dlq);
    }
    Ok(())
}

async fn purge(target: &Target, options: &Options) -> Result<(), DlqError> {
    let name = target.one(options)?.dlq;
    let url = target.url(&name).await?;
    let (ready, in_flight) = target.depth(&url).await?;
    if !options.yes {
        print!(
            "delete all {} messages of {name} for good? [y/N] ",
            ready + in_flight
        );
        std::io::stdout().flush().map_err(DlqError::Prompt)?;
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(DlqError::Prompt)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing deleted");
            return Ok(());
        }
    }
    target
        .sqs
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .map_err(|error| DlqError::sqs(&name, error))?;
    println!("{name}: purged (SQS may take up to 60 s to finish)");
    Ok(())
}

/// Sleeps as long as needed to keep `done` operations since `started` at most `per_second`.
async fn pace(started: std::time::Instant, done: u64, per_second: u32) {
    let due = Duration::from_secs(done) / per_second.max(1);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_as_written() {
        let options = parse(&["slack", "--ids", "ntf_1,ntf_2", "--rate", "5", "--local"]).unwrap();
        assert_eq!(
            options,
            Options {
                queues: vec!["slack".into()],
                local: true,
                ids: vec!["ntf_1".into(), "ntf_2".into()],
                rate: Some(5),
                ..Options::default()
            }
        );
        assert!(matches!(
            parse(&["--rate", "0"]),
            Err(DlqError::NotANumber { .. })
        ));
        assert!(matches!(parse(&["--stack"]), Err(DlqError::Usage)));
        assert!(matches!(
            parse(&["--local", "--stack", "x"]),
            Err(DlqError::Usage)
        ));
        assert!(matches!(parse(&["--force"]), Err(DlqError::Usage)));
    }

    #[test]
    fn every_queue_of_the_template_with_a_dlq_is_named_after_it_and_no_other() {
        let template = StackTemplate::from_source(
            TEMPLATE,
            "template.yaml",
            "acme",
            &std::collections::BTreeMap::new(),
        )
        .unwrap();
        let target = Target {
            sqs: aws_smithy_mocks::mock_client!(aws_sdk_sqs, aws_smithy_mocks::RuleMode::MatchAny, &[]),
            dynamodb: aws_smithy_mocks::mock_client!(
                aws_sdk_dynamodb,
                aws_smithy_mocks::RuleMode::MatchAny,
                &[]
            ),
            activity_table: None,
            queues: DeadLettered::of(&template, "acme"),
        };
        let names: Vec<&str> = target.queues.iter().map(|queue| queue.name.as_str()).collect();
        assert_eq!(names, ["email", "feedback", "push", "slack", "sms", "webhook"]);
        let feedback = target.one(&parse(&["feedback"]).unwrap()).unwrap();
        assert_eq!(
            (feedback.queue.as_str(), feedback.dlq.as_str()),
            ("acme-feedback", "acme-feedback-dlq")
        );
        assert_eq!(target.chosen(&parse(&[]).unwrap()).unwrap().len(), names.len());
        assert!(matches!(
            target.chosen(&parse(&["fax"]).unwrap()),
            Err(DlqError::UnknownQueue { name, .. }) if name == "fax"
        ));
        assert!(matches!(
            target.one(&parse(&["sms", "slack"]).unwrap()),
            Err(DlqError::Usage)
        ));
    }

    #[test]
    fn a_message_names_its_notification_as_an_envelope_or_as_ses_feedback() {
        let envelope = r#"{"v": 1, "tenant": "local", "notification_id": "ntf_019a9c0b6a4b7d1e8f2a3b4c5d6e7f81", "correlation_id": "c"}"#;
        let (tenant, id, said) = about(envelope).unwrap();
        assert_eq!(
            (tenant.as_str(), id.as_str(), said),
            ("local", "ntf_019a9c0b6a4b7d1e8f2a3b4c5d6e7f81", None)
        );
        let bounce = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/feedback-sqs-batch.json"
        ))
        .unwrap();
        let batch: serde_json::Value = serde_json::from_str(&bounce).unwrap();
        let (tenant, id, said) = about(batch["Records"][0]["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            (tenant.as_str(), id.as_str()),
            ("local", "ntf_019a9c0b6a4b7d1e8f2a3b4c5d6e7f81")
        );
        assert_eq!(
            said.as_deref(),
            Some("Permanent: General: smtp; 550 5.1.1 user unknown")
        );
        assert_eq!(about("{not json"), None);
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(95_000), "95 s");
        assert_eq!(age(12 * 60_000), "12 min");
        assert_eq!(age(3 * 3_600_000 + 1_800_000), "3.5 h");
        assert_eq!(age(2 * 86_400_000), "2.0 days");
        assert_eq!(age(-5), "0 s");
    }
}
