//! `herald tenant …`: the settings an operator keeps for tenants, and `tenant create`, which makes a tenant's
//! first key (`herald keys` does the rest).

use crate::keys::{CreateOptions, create_and_print};
use crate::local::LocalError;
use crate::local::emulator;
use crate::local::up::{Ports, local_template};
use herald::adapters::dynamodb::DynamoConfigStore;
use herald::adapters::load_aws_config;
use herald::config::{AwsSettings, ConfigError, Env};
use herald::domain::address::CountryAllowList;
use herald::domain::tenant::TenantLimit;
use herald::domain::validation::is_valid_name;
use herald::domain::{TenantId, Timestamp};
use herald::ports::{BackendError, TenantSettingsStore, WriteError};

/// Why `herald tenant …` failed.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("usage: herald tenant create TENANT [--key KEY] [--local]")]
    Usage,
    #[error(
        "usage: herald keys create TENANT [--name NAME] [--scope ingest|full] [--key KEY] [--local]\n       \
         herald keys list TENANT [--local]\n       herald keys revoke TENANT KEY_ID [--local]\n       \
         herald keys adopt [--local]"
    )]
    KeysUsage,
    #[error("scope {0:?}: a key's scope is ingest (POST /v1/events and batches only) or full")]
    InvalidScope(String),
    #[error("key name {0:?} must match [a-z0-9_.-]{{1,64}}")]
    InvalidKeyName(String),
    #[error("the key is refused: {0}")]
    WeakKey(String),
    #[error("no random bytes for a new key: {0}")]
    Random(String),
    #[error("the key is not stored: {0}")]
    KeyRefused(String),
    #[error("tenant {0} has no API key {1} (herald keys list {0} shows its keys)")]
    NoSuchKey(TenantId, String),
    #[error("usage: herald tenant sms-countries TENANT [US,CA,… | * | --default] [--local]")]
    SmsCountriesUsage,
    #[error("SMS countries: {0}")]
    InvalidCountries(String),
    #[error("usage: herald tenant {0} TENANT [N | --default] [--local]   (N a minute; 0: none)")]
    LimitUsage(&'static str),
    #[error("tenant {0:?} must match [a-z0-9_.-]{{1,64}}")]
    InvalidName(String),
    #[error("set HERALD_CONFIG_TABLE to the config table's name, or pass --local for the local stack's")]
    NoConfigTable,
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Settings(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] BackendError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// `herald tenant create TENANT [--key KEY] [--local]`: a key of scope `full` for the tenant (`herald keys
/// create` with its defaults), printed once.
pub async fn create(args: &[&str]) -> Result<(), TenantError> {
    let (args, local) = local_flag(args);
    let (tenant, key) = match args.as_slice() {
        [tenant] => (*tenant, None),
        [tenant, "--key", key] => (*tenant, Some(*key)),
        _ => return Err(TenantError::Usage),
    };
    let options = CreateOptions {
        key,
        ..CreateOptions::default()
    };
    create_and_print(tenant, &options, local).await
}

/// `herald tenant sms-countries TENANT [LIST | --default] [--local]`: shows the countries the tenant's SMS
/// may go to, sets its own list (`US,CA,GB` or `*`), or gives it the deployment's `SmsAllowedCountries`
/// again. The SMS function reads a change within a minute.
pub async fn sms_countries(args: &[&str]) -> Result<(), TenantError> {
    let (args, local) = local_flag(args);
    let (tenant, change) = match args.as_slice() {
        [tenant] => (*tenant, None),
        [tenant, "--default"] => (*tenant, Some(None)),
        [tenant, list] if !list.starts_with("--") => {
            let countries = CountryAllowList::parse(list).map_err(TenantError::InvalidCountries)?;
            (*tenant, Some(Some(countries)))
        }
        _ => return Err(TenantError::SmsCountriesUsage),
    };
    let tenant = tenant_id(tenant)?;
    let store = config_store(local).await?;
    if let Some(countries) = change {
        store
            .set_sms_allowed_countries(&tenant, countries.as_ref(), Timestamp::now())
            .await?;
    }
    let settings = store.tenant_settings(&tenant).await?.unwrap_or_default();
    match settings.sms_allowed_countries {
        Some(countries) => println!("tenant {tenant}: SMS may go to {countries} (the tenant's own list)"),
        None => println!("tenant {tenant}: SMS may go to the deployment's SmsAllowedCountries"),
    }
    Ok(())
}

/// `herald tenant rate-limit TENANT [N | --default] [--local]`: shows or sets the notifications a minute
/// each recipient of the tenant gets per channel (an event type's own limit still wins).
pub async fn rate_limit(args: &[&str]) -> Result<(), TenantError> {
    limit(args, TenantLimit::RatePerMinute).await
}

/// `herald tenant ingest-budget TENANT [N | --default] [--local]`: shows or sets the events a minute each
/// of the tenant's API keys may send; past it, 429 until the minute is over.
pub async fn ingest_budget(args: &[&str]) -> Result<(), TenantError> {
    limit(args, TenantLimit::IngestBudgetPerMinute).await
}

async fn limit(args: &[&str], limit: TenantLimit) -> Result<(), TenantError> {
    let (command, deployment_parameter, what) = match limit {
        TenantLimit::RatePerMinute => (
            "rate-limit",
            "RateLimitPerMinute",
            "notifications a minute per recipient and channel",
        ),
        TenantLimit::IngestBudgetPerMinute => (
            "ingest-budget",
            "IngestBudgetPerMinute",
            "events a minute per API key",
        ),
    };
    let (args, local) = local_flag(args);
    let (tenant, change) = match args.as_slice() {
        [tenant] => (*tenant, None),
        [tenant, "--default"] => (*tenant, Some(None)),
        [tenant, value] => match value.parse::<u32>() {
            Ok(value) => (*tenant, Some(Some(value))),
            Err(_) => return Err(TenantError::LimitUsage(command)),
        },
        _ => return Err(TenantError::LimitUsage(command)),
    };
    let tenant = tenant_id(tenant)?;
    let store = config_store(local).await?;
    if let Some(value) = change {
        store.set_limit(&tenant, limit, value, Timestamp::now()).await?;
    }
    let settings = store.tenant_settings(&tenant).await?.unwrap_or_default();
    match limit.of(&settings) {
        Some(0) => println!("tenant {tenant}: no limit on {what} (the tenant's own setting)"),
        Some(value) => println!("tenant {tenant}: {value} {what} (the tenant's own setting)"),
        None => println!("tenant {tenant}: {what} as the deployment's {deployment_parameter}"),
    }
    Ok(())
}

/// The arguments without `--local`, and whether it was given.
pub(crate) fn local_flag<'a>(args: &[&'a str]) -> (Vec<&'a str>, bool) {
    let rest: Vec<&str> = args.iter().copied().filter(|arg| *arg != "--local").collect();
    let local = rest.len() < args.len();
    (rest, local)
}

pub(crate) fn tenant_id(name: &str) -> Result<TenantId, TenantError> {
    if !is_valid_name(name) {
        return Err(TenantError::InvalidName(name.to_owned()));
    }
    Ok(TenantId::new(name))
}

/// The config table of the stack `herald local up` runs (`local`), or the one `HERALD_CONFIG_TABLE` names
/// through the usual AWS environment.
pub(crate) async fn config_store(local: bool) -> Result<DynamoConfigStore, TenantError> {
    if local {
        let aws = emulator::sdk_config(&Ports::from_env()?.endpoints()).await;
        let root = emulator::project_root().map_err(LocalError::from)?;
        let table = local_template(&root)?
            .tables()
            .into_iter()
            .find(|table| table.logical_id == "ConfigTable")
            .map(|table| table.name)
            .ok_or(TenantError::NoConfigTable)?;
        return Ok(DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&aws), table));
    }
    let env = Env::process();
    let table = std::env::var("HERALD_CONFIG_TABLE").map_err(|_| TenantError::NoConfigTable)?;
    let aws = load_aws_config(&AwsSettings::from_env(&env)?).await;
    Ok(DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&aws), table))
}
