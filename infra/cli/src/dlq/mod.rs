//! `herald dlq …`: the dead-letter queues of a deployed stack or of the local one. `list` shows how deep
//! each is, `show` what is in one (each message's notification, masked address, last error, attempts),
//! `redrive` moves messages back to their channel's queue (all, one channel, or chosen notifications, at a
//! chosen rate), `purge` empties one after asking. A redriven notification that was `sent` meanwhile is
//! acknowledged without sending: the delivery loop claims before it sends.

mod redrive;

use crate::local::LocalError;
use crate::local::emulator;
use crate::local::up::{Ports, STACK_NAME, local_template};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use herald::adapters::dynamodb::DynamoActivityStore;
use herald::adapters::load_aws_config;
use herald::config::{AwsSettings, ConfigError, Env};
use herald::domain::notification::Envelope;
use herald::domain::{Channel, Timestamp};
use herald::ports::{BackendError, DeliveryLedger};
use std::io::{BufRead, Write};
use std::time::Duration;

const USAGE: &str = "usage:
  herald dlq list    [--local | --stack NAME]
  herald dlq show    CHANNEL [--limit N] [--local | --stack NAME] [--activity-table TABLE]
  herald dlq redrive [CHANNEL] [--ids ntf_1,ntf_2] [--rate PER_SECOND] [--local | --stack NAME]
  herald dlq purge   CHANNEL [--yes] [--local | --stack NAME]

CHANNEL is email, sms or slack. --local: the stack `herald local up` runs; otherwise the deployed stack NAME
(default herald, as in samconfig.toml) in the account and region of the usual AWS environment. Queues are
<stack>-<channel> and <stack>-<channel>-dlq; `show` reads the activity table (the stack's ActivityTableName
output, or HERALD_ACTIVITY_TABLE).";

/// Why `herald dlq …` failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("{USAGE}")]
    Usage,
    #[error("{0:?} is not a channel (email, sms or slack)")]
    UnknownChannel(String),
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
    channels: Vec<Channel>,
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
            channel => options.channels.push(
                channel
                    .parse()
                    .map_err(|_| DlqError::UnknownChannel(channel.to_owned()))?,
            ),
        }
    }
    if options.local && options.stack.is_some() {
        return Err(DlqError::Usage);
    }
    Ok(options)
}

/// The queues and table of one stack, and clients for them.
#[derive(Debug)]
struct Target {
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    stack: String,
    activity_table: Option<String>,
}

impl Target {
    async fn new(options: &Options) -> Result<Self, DlqError> {
        if options.local {
            let ports = Ports::from_env()?;
            let aws = emulator::sdk_config(&ports.endpoints()).await;
            let root = emulator::project_root().map_err(LocalError::from)?;
            let activity_table = local_template(&root)?
                .tables()
                .into_iter()
                .find(|table| table.logical_id == "ActivityTable")
                .map(|table| table.name);
            return Ok(Self {
                sqs: aws_sdk_sqs::Client::new(&aws),
                dynamodb: aws_sdk_dynamodb::Client::new(&aws),
                stack: STACK_NAME.to_owned(),
                activity_table,
            });
        }
        let aws = load_aws_config(&AwsSettings::from_env(&Env::process())?).await;
        Ok(Self {
            sqs: aws_sdk_sqs::Client::new(&aws),
            dynamodb: aws_sdk_dynamodb::Client::new(&aws),
            stack: options.stack.clone().unwrap_or_else(|| "herald".to_owned()),
            activity_table: options
                .activity_table
                .clone()
                .or_else(|| std::env::var("HERALD_ACTIVITY_TABLE").ok()),
        })
    }

    fn queue_name(&self, channel: Channel) -> String {
        format!("{}-{channel}", self.stack)
    }

    fn dlq_name(&self, channel: Channel) -> String {
        format!("{}-{channel}-dlq", self.stack)
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

fn channels_or_all(options: &Options) -> Vec<Channel> {
    if options.channels.is_empty() {
        Channel::ALL.to_vec()
    } else {
        options.channels.clone()
    }
}

fn one_channel(options: &Options) -> Result<Channel, DlqError> {
    match options.channels.as_slice() {
        [channel] => Ok(*channel),
        _ => Err(DlqError::Usage),
    }
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
    for channel in channels_or_all(options) {
        let name = target.dlq_name(channel);
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
    let channel = one_channel(options)?;
    let table = target.activity_table.clone().ok_or(DlqError::NoActivityTable)?;
    let ledger = DynamoActivityStore::new(target.dynamodb.clone(), table);
    let url = target.url(&target.dlq_name(channel)).await?;
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
            let Ok(envelope) = serde_json::from_str::<Envelope>(message.body().unwrap_or_default()) else {
                println!(
                    "{}  unreadable message (not a Herald envelope)",
                    message.message_id().unwrap_or("?")
                );
                continue;
            };
            match ledger
                .notification_with_attempts(&envelope.tenant, &envelope.notification_id)
                .await?
            {
                Some((notification, attempts)) => {
                    let last_error = attempts
                        .iter()
                        .rev()
                        .find_map(|attempt| attempt.error.clone())
                        .unwrap_or_else(|| "-".to_owned());
                    println!(
                        "{}  tenant {}  event {}  to {}  status {}  attempts {}\n    last error: {last_error}",
                        notification.id,
                        notification.tenant,
                        notification.event_id,
                        notification.masked_to().unwrap_or_else(|| "-".to_owned()),
                        notification.status,
                        attempts.len(),
                    );
                }
                None => println!(
                    "{}  tenant {}  (no such notification: expired or never written)",
                    envelope.notification_id, envelope.tenant
                ),
            }
        }
    }
    if shown == 0 {
        println!("{} is empty", target.dlq_name(channel));
    }
    Ok(())
}

async fn purge(target: &Target, options: &Options) -> Result<(), DlqError> {
    let channel = one_channel(options)?;
    let name = target.dlq_name(channel);
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
                channels: vec![Channel::Slack],
                local: true,
                ids: vec!["ntf_1".into(), "ntf_2".into()],
                rate: Some(5),
                ..Options::default()
            }
        );
        assert!(matches!(parse(&["fax"]), Err(DlqError::UnknownChannel(_))));
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
    fn ages_read_naturally() {
        assert_eq!(age(95_000), "95 s");
        assert_eq!(age(12 * 60_000), "12 min");
        assert_eq!(age(3 * 3_600_000 + 1_800_000), "3.5 h");
        assert_eq!(age(2 * 86_400_000), "2.0 days");
        assert_eq!(age(-5), "0 s");
    }
}
