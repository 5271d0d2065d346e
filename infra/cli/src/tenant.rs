//! `herald tenant …`: API keys for tenants.

use herald::adapters::dynamodb::DynamoConfigStore;
use herald::adapters::load_aws_config;
use herald::config::{AwsSettings, Env};
use herald::domain::validation::is_valid_name;
use herald::domain::{TenantId, Timestamp};
use herald::http::key_hash;
use herald::ports::ApiKeyStore;

/// `herald tenant create TENANT [--key KEY]`: stores the key's hash; the key itself is printed once.
pub async fn create(args: &[&str]) -> Result<(), String> {
    let (tenant, key) = match args {
        [tenant] => (*tenant, format!("hk_{}", uuid::Uuid::new_v4().simple())),
        [tenant, "--key", key] => (*tenant, (*key).to_owned()),
        _ => return Err("usage: herald tenant create TENANT [--key KEY]".into()),
    };
    if !is_valid_name(tenant) {
        return Err(format!("tenant {tenant:?} must match [a-z0-9_.-]{{1,64}}"));
    }
    let env = Env::process();
    let table = std::env::var("HERALD_CONFIG_TABLE")
        .map_err(|_| "set HERALD_CONFIG_TABLE to the config table's name")?;
    let aws = load_aws_config(&AwsSettings::from_env(&env).map_err(|error| error.to_string())?).await;
    let store = DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    store
        .put_api_key(&TenantId::new(tenant), &key_hash(&key), Timestamp::now())
        .await
        .map_err(|error| error.to_string())?;
    println!("tenant {tenant}: API key {key}");
    println!("(only its hash is stored; keep the key safe)");
    Ok(())
}
