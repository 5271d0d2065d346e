//! The channels wired as their functions wire them, with the provider endpoint chosen by the test
//! (the emulator itself, or a fault proxy in front of it).

use crate::{BREAKER, RETRY_SCHEDULE, Stack, emulator_config, unique};
use herald::adapters::dynamodb::{DynamoActivityStore, DynamoConfigStore};
use herald::adapters::ses::SesSender;
use herald::adapters::slack::SlackSender;
use herald::adapters::sns::SnsSender;
use herald::adapters::sns_push::{PushDelivery, PushSender};
use herald::adapters::sqs::SqsChannelQueue;
use herald::config::{DeliverySettings, SlackSettings};
use herald::delivery::{Delivery, provider_config};
use herald::domain::retry::RetrySchedule;
use herald::ports::Sender;
use std::time::Duration;

/// The providers' answer time before a send counts as ambiguous, in tests: the emulator answers in
/// milliseconds, and a fault proxy's late answer (tests/tests/delivery.rs) comes after this.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(2);

pub type TestDelivery<S> = Delivery<S, DynamoActivityStore, DynamoConfigStore, SqsChannelQueue>;

impl Stack {
    /// The delivery loop for `sender`'s channel, over this stack's tables and queue.
    pub fn delivery<S: Sender>(&self, sender: S) -> TestDelivery<S> {
        self.delivery_with_concurrency(sender, 10)
    }

    /// As [`Self::delivery`], delivering at most `concurrency` messages of a batch at once.
    pub fn delivery_with_concurrency<S: Sender>(&self, sender: S, concurrency: usize) -> TestDelivery<S> {
        self.delivery_over(
            sender,
            self.dynamodb.clone(),
            concurrency,
            Duration::from_secs(60),
        )
    }

    /// As [`Self::delivery`], reaching DynamoDB through `dynamodb` (a fault proxy's client, say), holding
    /// each claim for `lease`.
    pub fn delivery_over<S: Sender>(
        &self,
        sender: S,
        dynamodb: aws_sdk_dynamodb::Client,
        concurrency: usize,
        lease: Duration,
    ) -> TestDelivery<S> {
        let queue_url = self.queues.get(sender.channel()).expect("queue").to_owned();
        let dead_letter_url = self
            .dead_letter_queues
            .get(sender.channel())
            .expect("dlq")
            .to_owned();
        let settings = DeliverySettings {
            queue_url: queue_url.clone(),
            dead_letter_queue_url: dead_letter_url.clone(),
            schedule: RetrySchedule::parse(RETRY_SCHEDULE).expect("the tests' schedule"),
            default_max_age: Duration::from_secs(86_400),
            concurrency,
            lease,
            retention: Duration::from_secs(86_400),
            provider_timeout: PROVIDER_TIMEOUT,
            breaker: BREAKER,
        };
        Delivery::new(
            sender,
            DynamoActivityStore::new(dynamodb, &self.tables.activity),
            self.config_store(),
            SqsChannelQueue::new(self.sqs.clone(), queue_url, dead_letter_url),
            settings,
        )
    }

    /// An SES sender talking to `endpoint`, from a sender identity created for this test.
    pub async fn email_sender(&self, endpoint: &str) -> SesSender {
        self.email_sender_through(endpoint, None).await
    }

    /// As [`Self::email_sender`], sending through `configuration_set`.
    pub async fn email_sender_through(&self, endpoint: &str, configuration_set: Option<String>) -> SesSender {
        let config = aws_sdk_sesv2::config::Builder::from(&provider_config(
            &emulator_config().await,
            PROVIDER_TIMEOUT,
        ))
        .endpoint_url(endpoint)
        .build();
        let client = aws_sdk_sesv2::Client::from_conf(config);
        let from = format!("{}@herald.example.com", unique("sender"));
        client
            .create_email_identity()
            .email_identity(&from)
            .send()
            .await
            .expect("create the sender identity");
        SesSender::new(client, from, configuration_set)
    }

    /// An SNS sender talking to `endpoint`.
    pub async fn sms_sender(&self, endpoint: &str) -> SnsSender {
        let config =
            aws_sdk_sns::config::Builder::from(&provider_config(&emulator_config().await, PROVIDER_TIMEOUT))
                .endpoint_url(endpoint)
                .build();
        SnsSender::new(aws_sdk_sns::Client::from_conf(config), None)
    }

    /// The push channel as its function wires it, publishing through the SNS at `endpoint`, reading and
    /// forgetting devices in this stack's config table.
    pub async fn push_delivery(&self, endpoint: &str) -> PushDelivery<DynamoConfigStore> {
        let config =
            aws_sdk_sns::config::Builder::from(&provider_config(&emulator_config().await, PROVIDER_TIMEOUT))
                .endpoint_url(endpoint)
                .build();
        let sender = PushSender::new(aws_sdk_sns::Client::from_conf(config));
        PushDelivery::new(sender, self.config_store())
    }

    /// A Slack sender with this stack's webhook policy and short timeouts.
    pub fn slack_sender(&self) -> SlackSender {
        let settings = SlackSettings::from_env(&self.env()).expect("slack settings");
        SlackSender::new(
            settings.webhook_policy,
            Duration::from_secs(2),
            Duration::from_secs(3),
        )
        .expect("slack client")
    }
}

/// A phone number no other test uses, so the emulator's sent SMS can be filtered by it.
pub fn unique_phone() -> String {
    let digits: String = uuid::Uuid::now_v7()
        .as_u128()
        .to_string()
        .chars()
        .rev()
        .take(7)
        .collect();
    format!("+1555{digits}")
}
