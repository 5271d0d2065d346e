//! Typed configuration, read once at init from the environment the template sets, failing loudly.

mod channels;

pub use channels::{
    EmailSettings, PushSettings, SendRateSettings, SlackSettings, SmsSettings, WebhookSettings,
};

use crate::delivery::breaker::BreakerSettings;
use crate::domain::Channel;
use crate::domain::address::WebhookPolicy;
use crate::domain::retry::RetrySchedule;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?} is not valid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Reads variables from any source, so tests need not touch the process environment.
#[derive(Debug)]
pub struct Env<F>(F);

impl Env<fn(&str) -> Option<String>> {
    pub fn process() -> Self {
        Env(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn from_fn(lookup: F) -> Self {
        Env(lookup)
    }

    pub(crate) fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        (self.0)(name).ok_or(ConfigError::Missing(name))
    }

    fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name)
    }

    fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        self.optional(name).map_or(Ok(default), |value| {
            value.parse().map_err(|_| ConfigError::Invalid {
                name,
                value,
                reason: "must be a whole number",
            })
        })
    }

    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.optional(name).as_deref() {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(ConfigError::Invalid {
                name,
                value: other.to_owned(),
                reason: "must be true or false",
            }),
        }
    }
}

/// How Herald calls AWS. An attempt that times out is retried by the SDK, so the attempt timeout must
/// sit well above the service's normal latency (a retried `SendMessage` is a duplicate message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
    pub max_attempts: u32,
}

impl AwsSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let millis = |name, default| env.number(name, default).map(Duration::from_millis);
        let max_attempts = env.number("HERALD_AWS_MAX_ATTEMPTS", 3)?;
        Ok(Self {
            connect_timeout: millis("HERALD_AWS_CONNECT_TIMEOUT_MS", 2_000)?,
            attempt_timeout: millis("HERALD_AWS_ATTEMPT_TIMEOUT_MS", 3_000)?,
            operation_timeout: millis("HERALD_AWS_OPERATION_TIMEOUT_MS", 8_000)?,
            max_attempts: u32::try_from(max_attempts).ok().filter(|n| *n >= 1).ok_or(
                ConfigError::Invalid {
                    name: "HERALD_AWS_MAX_ATTEMPTS",
                    value: max_attempts.to_string(),
                    reason: "must be at least 1",
                },
            )?,
        })
    }
}

/// The two DynamoDB tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// Tenants, keys, event types, templates, rules, users: kept until deleted.
    pub config: String,
    /// Idempotency records, events, notifications, attempts: expire by TTL.
    pub activity: String,
}

impl Tables {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            config: env.required("HERALD_CONFIG_TABLE")?,
            activity: env.required("HERALD_ACTIVITY_TABLE")?,
        })
    }
}

/// One SQS queue URL per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls(HashMap<Channel, String>);

impl QueueUrls {
    pub fn new(urls: impl IntoIterator<Item = (Channel, String)>) -> Self {
        Self(urls.into_iter().collect())
    }

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self::new([
            (Channel::Email, env.required("HERALD_EMAIL_QUEUE_URL")?),
            (Channel::Sms, env.required("HERALD_SMS_QUEUE_URL")?),
            (Channel::Slack, env.required("HERALD_SLACK_QUEUE_URL")?),
            (Channel::Webhook, env.required("HERALD_WEBHOOK_QUEUE_URL")?),
            (Channel::Push, env.required("HERALD_PUSH_QUEUE_URL")?),
        ]))
    }

    /// Each channel's dead-letter queue.
    pub fn dead_letter_from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self::new([
            (Channel::Email, env.required("HERALD_EMAIL_DLQ_URL")?),
            (Channel::Sms, env.required("HERALD_SMS_DLQ_URL")?),
            (Channel::Slack, env.required("HERALD_SLACK_DLQ_URL")?),
            (Channel::Webhook, env.required("HERALD_WEBHOOK_DLQ_URL")?),
            (Channel::Push, env.required("HERALD_PUSH_DLQ_URL")?),
        ]))
    }

    pub fn get(&self, channel: Channel) -> Option<&str> {
        self.0.get(&channel).map(String::as_str)
    }
}

/// What both HTTP functions need besides their clients.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Prefix of every problem's `type`; ends in `/problems/`.
    pub problem_type_base: String,
    /// How long keys, event types, rules and templates are cached per container.
    pub cache_ttl: Duration,
    pub webhook_policy: WebhookPolicy,
    /// How long events and notifications are kept (the activity table's TTL).
    pub retention: Duration,
    /// Notifications a minute per recipient and channel unless the event type says otherwise
    /// (`HERALD_RATE_LIMIT_PER_MINUTE`, 5 by default; 0 turns the limit off).
    pub rate_limit_per_minute: Option<u32>,
    /// Events a minute each API key may send unless its tenant's settings say otherwise
    /// (`HERALD_INGEST_BUDGET_PER_MINUTE`, 6,000 by default; 0 turns the budget off).
    pub ingest_budget_per_minute: Option<u32>,
}

impl HttpSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let problem_type_base = env
            .optional("HERALD_PROBLEM_TYPE_BASE")
            .unwrap_or_else(|| "https://herald.dev/problems/".to_owned());
        if !problem_type_base.ends_with("/problems/") {
            return Err(ConfigError::Invalid {
                name: "HERALD_PROBLEM_TYPE_BASE",
                value: problem_type_base,
                reason: "must end with /problems/",
            });
        }
        Ok(Self {
            problem_type_base,
            cache_ttl: Duration::from_secs(env.number("HERALD_CONFIG_CACHE_SECONDS", 30)?),
            webhook_policy: webhook_policy(env)?,
            retention: retention(env)?,
            rate_limit_per_minute: per_minute(
                env,
                "HERALD_RATE_LIMIT_PER_MINUTE",
                crate::domain::rate_limit::DEFAULT_PER_MINUTE,
            )?,
            ingest_budget_per_minute: per_minute(
                env,
                "HERALD_INGEST_BUDGET_PER_MINUTE",
                crate::domain::rate_limit::DEFAULT_INGEST_BUDGET_PER_MINUTE,
            )?,
        })
    }
}

/// A count a minute from `name` (`default` when unset); 0 is `None`, no limit.
fn per_minute<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
    default: u32,
) -> Result<Option<u32>, ConfigError> {
    let per_minute = env.number(name, u64::from(default))?;
    let per_minute = u32::try_from(per_minute).map_err(|_| ConfigError::Invalid {
        name,
        value: per_minute.to_string(),
        reason: "must be at most 4294967295",
    })?;
    Ok((per_minute > 0).then_some(per_minute))
}

/// Where Slack webhooks may point: `HERALD_SLACK_ALLOWED_HOSTS` (comma-separated, default
/// `hooks.slack.com`), plus loopback when `HERALD_ALLOW_LOOPBACK_WEBHOOKS` (the local stack only).
fn webhook_policy<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<WebhookPolicy, ConfigError> {
    let allowed_hosts = env
        .optional("HERALD_SLACK_ALLOWED_HOSTS")
        .unwrap_or_else(|| "hooks.slack.com".to_owned())
        .split(',')
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .collect::<Vec<_>>();
    Ok(WebhookPolicy::new(
        allowed_hosts,
        env.flag("HERALD_ALLOW_LOOPBACK_WEBHOOKS")?,
    ))
}

fn retention<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(
        env.number("HERALD_RETENTION_DAYS", 30)? * 86_400,
    ))
}

/// What the delivery loop needs, whatever the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// The channel's own queue, for delaying and re-sending a message.
    pub queue_url: String,
    /// The channel's DLQ, where a notification goes once its retry schedule is used up.
    pub dead_letter_queue_url: String,
    /// The waits between attempts after failures (`HERALD_RETRY_SCHEDULE`, e.g. `10s,1m,5m`).
    pub schedule: RetrySchedule,
    /// How late a notification may still be sent when its event type sets no maximum age.
    pub default_max_age: Duration,
    /// Messages of one batch delivered at once.
    pub concurrency: usize,
    /// How long a claim holds a notification; at least the function's timeout.
    pub lease: Duration,
    pub retention: Duration,
    /// How long a provider (SES, SNS) may take to answer a send before the attempt counts as ambiguous.
    pub provider_timeout: Duration,
    /// The providers' circuit breakers.
    pub breaker: BreakerSettings,
}

impl DeliverySettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let schedule = match env.optional("HERALD_RETRY_SCHEDULE") {
            None => RetrySchedule::default(),
            Some(value) => RetrySchedule::parse(&value).map_err(|_| ConfigError::Invalid {
                name: "HERALD_RETRY_SCHEDULE",
                value,
                reason: "must be waits like 10s,1m,5m,1h (each from 1ms to 12h)",
            })?,
        };
        let default_max_age = env.number("HERALD_MAX_AGE_SECONDS", 86_400)?;
        if !crate::domain::event_type::MAX_AGE_RANGE.contains(&default_max_age) {
            return Err(ConfigError::Invalid {
                name: "HERALD_MAX_AGE_SECONDS",
                value: default_max_age.to_string(),
                reason: "must be from 60 to 1209600 (14 days)",
            });
        }
        let provider_timeout =
            Duration::from_millis(env.number("HERALD_PROVIDER_TIMEOUT_MS", 10_000)?.max(1));
        let breaker = BreakerSettings {
            threshold: u32::try_from(env.number("HERALD_CIRCUIT_THRESHOLD", 5)?.clamp(1, 1000)).unwrap_or(5),
            cooldown: Duration::from_secs(env.number("HERALD_CIRCUIT_COOLDOWN_SECONDS", 30)?.clamp(1, 3600)),
            cache_for: Duration::from_millis(env.number("HERALD_CIRCUIT_CACHE_MS", 2000)?),
            // A probe sends and records its outcome; nobody else calls the provider meanwhile.
            probe_lease: provider_timeout + Duration::from_secs(5),
        };
        Ok(Self {
            queue_url: env.required("HERALD_QUEUE_URL")?,
            dead_letter_queue_url: env.required("HERALD_DLQ_URL")?,
            schedule,
            default_max_age: Duration::from_secs(default_max_age),
            concurrency: usize::try_from(env.number("HERALD_DELIVERY_CONCURRENCY", 10)?.clamp(1, 100))
                .unwrap_or(10),
            lease: Duration::from_secs(env.number("HERALD_DELIVERY_LEASE_SECONDS", 60)?),
            retention: retention(env)?,
            provider_timeout,
            breaker,
        })
    }
}

/// A channel function's configuration; the channel's own settings are read beside it.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub aws: AwsSettings,
    pub tables: Tables,
    pub delivery: DeliverySettings,
}

impl DeliveryConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            aws: AwsSettings::from_env(env)?,
            tables: Tables::from_env(env)?,
            delivery: DeliverySettings::from_env(env)?,
        })
    }
}

/// The ingest function's configuration.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub aws: AwsSettings,
    pub tables: Tables,
    pub queues: QueueUrls,
    pub http: HttpSettings,
}

impl IngestConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            aws: AwsSettings::from_env(env)?,
            tables: Tables::from_env(env)?,
            queues: QueueUrls::from_env(env)?,
            http: HttpSettings::from_env(env)?,
        })
    }
}

/// When the reconciler takes an unsettled notification for stalled: nothing will deliver it any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// Untouched this long while its channel's queue is empty: no message for it is left. Longer than a
    /// lease plus the queue's visibility timeout, after which a crashed delivery's message comes back.
    pub stall_after: Duration,
    /// Untouched this long, whatever its queue holds: any message for it is past the queue's retention.
    pub queue_retention: Duration,
}

impl ReconcileSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            stall_after: Duration::from_secs(env.number("HERALD_STALL_AFTER_SECONDS", 900)?.max(1)),
            // SQS's default retention, which the template's channel queues keep.
            queue_retention: Duration::from_secs(
                env.number("HERALD_QUEUE_RETENTION_SECONDS", 345_600)?.max(1),
            ),
        })
    }
}

/// The sweeper function's configuration.
#[derive(Debug, Clone)]
pub struct SweeperConfig {
    pub aws: AwsSettings,
    pub tables: Tables,
    pub queues: QueueUrls,
    pub dead_letter_queues: QueueUrls,
    pub reconcile: ReconcileSettings,
}

impl SweeperConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            aws: AwsSettings::from_env(env)?,
            tables: Tables::from_env(env)?,
            queues: QueueUrls::from_env(env)?,
            dead_letter_queues: QueueUrls::dead_letter_from_env(env)?,
            reconcile: ReconcileSettings::from_env(env)?,
        })
    }
}

/// The management API function's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub aws: AwsSettings,
    pub tables: Tables,
    pub http: HttpSettings,
    pub push: PushSettings,
}

impl ApiConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            aws: AwsSettings::from_env(env)?,
            tables: Tables::from_env(env)?,
            http: HttpSettings::from_env(env)?,
            push: PushSettings::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::address::CountryAllowList;
    use std::num::NonZeroU32;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::from_fn(move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn reads_a_complete_ingest_config_with_defaults() {
        let config = IngestConfig::from_env(&env(&[
            ("HERALD_CONFIG_TABLE", "cfg"),
            ("HERALD_ACTIVITY_TABLE", "act"),
            ("HERALD_EMAIL_QUEUE_URL", "http://q/email"),
            ("HERALD_SMS_QUEUE_URL", "http://q/sms"),
            ("HERALD_SLACK_QUEUE_URL", "http://q/slack"),
            ("HERALD_WEBHOOK_QUEUE_URL", "http://q/webhook"),
            ("HERALD_PUSH_QUEUE_URL", "http://q/push"),
        ]))
        .unwrap();
        assert_eq!(config.queues.get(Channel::Sms), Some("http://q/sms"));
        assert_eq!(config.http.cache_ttl, Duration::from_secs(30));
        assert!(
            config
                .http
                .webhook_policy
                .check("https://hooks.slack.com/services/x")
                .is_ok()
        );
        assert!(config.http.webhook_policy.check("http://127.0.0.1:9/x").is_err());
    }

    #[test]
    fn push_applications_are_optional_and_each_must_be_its_platforms() {
        assert_eq!(
            PushSettings::from_env(&env(&[])).unwrap(),
            PushSettings::default()
        );
        let both = PushSettings::from_env(&env(&[
            (
                "HERALD_PUSH_APNS_APPLICATION_ARN",
                "arn:aws:sns:us-east-1:1:app/APNS_SANDBOX/herald",
            ),
            (
                "HERALD_PUSH_FCM_APPLICATION_ARN",
                "arn:aws:sns:us-east-1:1:app/GCM/herald",
            ),
        ]))
        .unwrap();
        assert!(both.apns_application_arn.is_some() && both.fcm_application_arn.is_some());
        for pairs in [
            &[(
                "HERALD_PUSH_APNS_APPLICATION_ARN",
                "arn:aws:sns:us-east-1:1:app/GCM/herald",
            )][..],
            &[(
                "HERALD_PUSH_FCM_APPLICATION_ARN",
                "arn:aws:sns:us-east-1:1:app/APNS/herald",
            )][..],
            &[("HERALD_PUSH_FCM_APPLICATION_ARN", "herald")][..],
        ] {
            assert!(
                matches!(
                    PushSettings::from_env(&env(pairs)),
                    Err(ConfigError::Invalid { .. })
                ),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn a_send_rate_is_optional_and_its_concurrency_required() {
        let unset = SendRateSettings::from_env(&env(&[("HERALD_MAX_CONCURRENCY", "5")])).unwrap();
        assert_eq!((unset.per_second, unset.max_concurrency.get()), (None, 5));
        let zero = env(&[
            ("HERALD_SEND_RATE_PER_SECOND", "0"),
            ("HERALD_MAX_CONCURRENCY", "5"),
        ]);
        assert_eq!(SendRateSettings::from_env(&zero).unwrap().per_second, None);
        let set = env(&[
            ("HERALD_SEND_RATE_PER_SECOND", "14"),
            ("HERALD_MAX_CONCURRENCY", "2"),
        ]);
        assert_eq!(
            SendRateSettings::from_env(&set).unwrap().per_second,
            NonZeroU32::new(14)
        );
        assert_eq!(
            SendRateSettings::from_env(&env(&[("HERALD_SEND_RATE_PER_SECOND", "5")])).unwrap_err(),
            ConfigError::Missing("HERALD_MAX_CONCURRENCY")
        );
        for pairs in [
            &[("HERALD_MAX_CONCURRENCY", "0")][..],
            &[("HERALD_MAX_CONCURRENCY", "five")][..],
            &[
                ("HERALD_SEND_RATE_PER_SECOND", "2.5"),
                ("HERALD_MAX_CONCURRENCY", "5"),
            ][..],
            &[
                ("HERALD_SEND_RATE_PER_SECOND", "4294967296"),
                ("HERALD_MAX_CONCURRENCY", "5"),
            ][..],
        ] {
            let error = SendRateSettings::from_env(&env(pairs)).unwrap_err();
            assert!(error.to_string().contains(pairs[0].0), "{error}");
        }
    }

    #[test]
    fn fails_loudly_on_missing_or_invalid_values() {
        assert_eq!(
            ApiConfig::from_env(&env(&[])).unwrap_err(),
            ConfigError::Missing("HERALD_CONFIG_TABLE")
        );
        let error = ApiConfig::from_env(&env(&[
            ("HERALD_CONFIG_TABLE", "c"),
            ("HERALD_ACTIVITY_TABLE", "a"),
            ("HERALD_ALLOW_LOOPBACK_WEBHOOKS", "yes"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("HERALD_ALLOW_LOOPBACK_WEBHOOKS"));
    }

    #[test]
    fn sms_countries_default_to_the_templates_and_fail_loudly_when_invalid() {
        let default = SmsSettings::from_env(&env(&[])).unwrap();
        assert_eq!(
            default.allowed_countries,
            CountryAllowList::parse("US,CA").unwrap()
        );
        let error = SmsSettings::from_env(&env(&[("HERALD_SMS_ALLOWED_COUNTRIES", "US,XX")])).unwrap_err();
        assert!(error.to_string().contains("HERALD_SMS_ALLOWED_COUNTRIES"));
    }
}
