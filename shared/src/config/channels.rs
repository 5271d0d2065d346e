//! Each channel function's own settings: the email sender, SMS countries, Slack's and webhooks' HTTP limits,
//! push's platform applications, and the send rate every channel function shares out among its invocations.

use super::{ConfigError, Env, webhook_policy};
use crate::domain::address::{CountryAllowList, WebhookPolicy};
use std::num::NonZeroU32;
use std::time::Duration;

/// The email channel: SES v2 sender identity and optional configuration set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    pub from: String,
    pub configuration_set: Option<String>,
}

impl EmailSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            from: env.required("HERALD_EMAIL_FROM")?,
            configuration_set: env.optional("HERALD_SES_CONFIGURATION_SET"),
        })
    }
}

/// The countries SMS may go to when the template does not say: the default of its `SmsAllowedCountries`.
pub const DEFAULT_SMS_COUNTRIES: &str = "US,CA";

/// The SMS channel: an optional alphanumeric sender id (where the destination country allows one), and
/// the destination countries allowed (`HERALD_SMS_ALLOWED_COUNTRIES`, from the template's
/// `SmsAllowedCountries`; one list for the deployment, since tenants have no settings of their own yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSettings {
    pub sender_id: Option<String>,
    pub allowed_countries: CountryAllowList,
}

impl SmsSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let countries = env
            .optional("HERALD_SMS_ALLOWED_COUNTRIES")
            .unwrap_or_else(|| DEFAULT_SMS_COUNTRIES.to_owned());
        let allowed_countries = CountryAllowList::parse(&countries).map_err(|_| ConfigError::Invalid {
            name: "HERALD_SMS_ALLOWED_COUNTRIES",
            value: countries.clone(),
            reason: "must be comma-separated ISO 3166-1 alpha-2 country codes, or *",
        })?;
        Ok(Self {
            sender_id: env.optional("HERALD_SMS_SENDER_ID"),
            allowed_countries,
        })
    }
}

/// The Slack channel: where webhooks may point, and how long a webhook may take.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub webhook_policy: WebhookPolicy,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl SlackSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            webhook_policy: webhook_policy(env)?,
            connect_timeout: Duration::from_millis(env.number("HERALD_SLACK_CONNECT_TIMEOUT_MS", 2_000)?),
            timeout: Duration::from_millis(env.number("HERALD_SLACK_TIMEOUT_MS", 10_000)?),
        })
    }
}

/// The webhook channel: how long a POST may take, and how long an endpoint may keep failing before
/// Herald disables it.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// `HERALD_ALLOW_LOOPBACK_WEBHOOKS`: the local stack's capture sink stands in for an endpoint.
    pub allow_loopback: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// `HERALD_WEBHOOK_DISABLE_AFTER_HOURS` (default 120: five days, as Svix does): a run of failures
    /// longer than this disables the endpoint, and the tenant sees why on `GET /v1/webhooks/{id}`.
    pub disable_after: Duration,
}

impl WebhookSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            allow_loopback: env.flag("HERALD_ALLOW_LOOPBACK_WEBHOOKS")?,
            connect_timeout: Duration::from_millis(env.number("HERALD_WEBHOOK_CONNECT_TIMEOUT_MS", 2_000)?),
            timeout: Duration::from_millis(env.number("HERALD_WEBHOOK_TIMEOUT_MS", 15_000)?),
            disable_after: Duration::from_secs(
                env.number("HERALD_WEBHOOK_DISABLE_AFTER_HOURS", 120)? * 3_600,
            ),
        })
    }
}

/// Mobile push: the deployment's SNS platform applications, one per platform (`HERALD_PUSH_APNS_APPLICATION_ARN`,
/// `HERALD_PUSH_FCM_APPLICATION_ARN`, from the template's `ApnsPlatformApplicationArn` and
/// `FcmPlatformApplicationArn`). A platform without one registers no devices; neither is push turned off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushSettings {
    pub apns_application_arn: Option<String>,
    pub fcm_application_arn: Option<String>,
}

impl PushSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        // An application's ARN names its platform (`…:app/APNS/<name>`, `…:app/GCM/<name>`): one given for
        // the wrong platform would register every device where it can never receive a push.
        let application = |name: &'static str, platforms: &[&str]| {
            env.optional(name)
                .map(|arn| {
                    let platform = arn.split(":app/").nth(1).and_then(|rest| rest.split('/').next());
                    if arn.starts_with("arn:") && platform.is_some_and(|p| platforms.contains(&p)) {
                        Ok(arn)
                    } else {
                        Err(ConfigError::Invalid {
                            name,
                            value: arn,
                            reason: "must be the ARN of an SNS platform application of that platform (arn:…:app/APNS/… or app/APNS_SANDBOX/… for APNs, app/GCM/… for FCM)",
                        })
                    }
                })
                .transpose()
        };
        Ok(Self {
            apns_application_arn: application("HERALD_PUSH_APNS_APPLICATION_ARN", &["APNS", "APNS_SANDBOX"])?,
            fcm_application_arn: application("HERALD_PUSH_FCM_APPLICATION_ARN", &["GCM"])?,
        })
    }
}

/// A channel function's send rate, and how many invocations share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRateSettings {
    /// `HERALD_SEND_RATE_PER_SECOND`: sends a second across every invocation of the function; 0 or absent
    /// for none configured (email then asks SES for its own; SMS and Slack are then unlimited).
    pub per_second: Option<NonZeroU32>,
    /// `HERALD_MAX_CONCURRENCY`: the most invocations running at once (the SQS event's
    /// `MaximumConcurrency`), each of which gets an equal share of the rate.
    pub max_concurrency: NonZeroU32,
}

impl SendRateSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let whole = |name: &'static str, value: u64| {
            u32::try_from(value).map_err(|_| ConfigError::Invalid {
                name,
                value: value.to_string(),
                reason: "must be below 2^32",
            })
        };
        let per_second = NonZeroU32::new(whole(
            "HERALD_SEND_RATE_PER_SECOND",
            env.number("HERALD_SEND_RATE_PER_SECOND", 0)?,
        )?);
        let max_concurrency = env.required("HERALD_MAX_CONCURRENCY")?;
        let max_concurrency =
            max_concurrency
                .parse()
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or(ConfigError::Invalid {
                    name: "HERALD_MAX_CONCURRENCY",
                    value: max_concurrency,
                    reason: "must be a whole number of at least 1",
                })?;
        Ok(Self {
            per_second,
            max_concurrency,
        })
    }
}
