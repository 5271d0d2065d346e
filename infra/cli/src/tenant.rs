//! `herald tenant …`: API keys for tenants.

use herald::adapters::dynamodb::DynamoConfigStore;
use herald::adapters::load_aws_config;
use herald::config::{AwsSettings, ConfigError, Env};
use herald::domain::validation::is_valid_name;
use herald::domain::{TenantId, Timestamp};
use herald::http::key_hash;
use herald::ports::{ApiKeyStore, BackendError};

/// Why `herald tenant …` failed.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("usage: herald tenant create TENANT [--key KEY]")]
    Usage,
    #[error("tenant {0:?} must match [a-z0-9_.-]{{1,64}}")]
    InvalidName(String),
    #[error("set HERALD_CONFIG_TABLE to the config table's name")]
    NoConfigTable,
    #[error(transparent)]
    Settings(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] BackendError),
}

/// `herald tenant create TENANT [--key KEY]`: stores the key's hash; the key itself is printed once.
pub async fn create(args: &[&str]) -> Result<(), TenantError> {
    let (tenant, key) = match args {
        [tenant] => (*tenant, format!("hk_{}", uuid::Uuid::new_v4().simple())),
        [tenant, "--key", key] => (*tenant, (*key).to_owned()),
        _ => return Err(TenantError::Usage),
    };
    if !is_valid_name(tenant) {
        return Err(TenantError::InvalidName(tenant.to_owned()));
    }
    let env = Env::process();
    let table = std::env::var("HERALD_CONFIG_TABLE").map_err(|_| TenantError::NoConfigTable)?;
    let aws = load_aws_config(&AwsSettings::from_env(&env)?).await;
    let store = DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    store
        .put_api_key(&TenantId::new(tenant), &key_hash(&key), Timestamp::now())
        .await?;
    println!("tenant {tenant}: API key {key}");
    println!("(only its hash is stored; keep the key safe)");
    Ok(())
}
