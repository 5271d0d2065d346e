//! `herald keys create|list|revoke`: a tenant's API keys (decision 24). A key is printed once, when it is
//! created; only its hash is stored. Keys are listed and revoked by a short id that is not secret.

use crate::tenant::{TenantError, config_store, local_flag, tenant_id};
use herald::adapters::dynamodb::DynamoConfigStore;
use herald::domain::api_key::{ApiKeyRecord, KeyScope, NewApiKey, check_custom_key, generate_key};
use herald::domain::validation::is_valid_name;
use herald::domain::{TenantId, Timestamp};
use herald::ports::{ApiKeyStore, PageRequest, Revocation, WriteError};

/// Attempts of a create or revoke whose answer was lost (a timeout): each retry writes the same key, which
/// the store recognises as its own write.
const ATTEMPTS: usize = 3;

/// What `keys create` (and `tenant create`) were asked for.
#[derive(Debug, Default)]
pub(crate) struct CreateOptions<'a> {
    pub name: Option<&'a str>,
    pub scope: Option<KeyScope>,
    pub key: Option<&'a str>,
}

impl<'a> CreateOptions<'a> {
    /// `--name NAME`, `--scope ingest|full`, `--key KEY`, each at most once, in any order.
    fn parse(mut args: &[&'a str]) -> Result<Self, TenantError> {
        let mut options = Self::default();
        while let [flag, value, rest @ ..] = args {
            match *flag {
                "--name" if options.name.is_none() => options.name = Some(value),
                "--scope" if options.scope.is_none() => {
                    options.scope = Some(
                        KeyScope::parse(value)
                            .ok_or_else(|| TenantError::InvalidScope((*value).to_owned()))?,
                    );
                }
                "--key" if options.key.is_none() => options.key = Some(value),
                _ => return Err(TenantError::KeysUsage),
            }
            args = rest;
        }
        if args.is_empty() {
            Ok(options)
        } else {
            Err(TenantError::KeysUsage)
        }
    }
}

/// `herald keys …`.
pub async fn run(args: &[&str]) -> Result<(), TenantError> {
    match args {
        ["create", rest @ ..] => create(rest).await,
        ["list", rest @ ..] => list(rest).await,
        ["revoke", rest @ ..] => revoke(rest).await,
        ["adopt", rest @ ..] => adopt(rest).await,
        _ => Err(TenantError::KeysUsage),
    }
}

/// `herald keys create TENANT [--name NAME] [--scope ingest|full] [--key KEY] [--local]`.
async fn create(args: &[&str]) -> Result<(), TenantError> {
    let (args, local) = local_flag(args);
    let [tenant, options @ ..] = args.as_slice() else {
        return Err(TenantError::KeysUsage);
    };
    let options = CreateOptions::parse(options)?;
    create_and_print(tenant, &options, local).await
}

/// Creates the key and prints it, once. `tenant create` is this with its defaults.
pub(crate) async fn create_and_print(
    tenant: &str,
    options: &CreateOptions<'_>,
    local: bool,
) -> Result<(), TenantError> {
    let tenant = tenant_id(tenant)?;
    if let Some(name) = options.name
        && !is_valid_name(name)
    {
        return Err(TenantError::InvalidKeyName(name.to_owned()));
    }
    let key = match options.key {
        Some(key) => {
            check_custom_key(key).map_err(TenantError::WeakKey)?;
            key.to_owned()
        }
        None => generate_key().map_err(|error| TenantError::Random(error.to_string()))?,
    };
    let scope = options.scope.unwrap_or(KeyScope::Full);
    let new = NewApiKey::new(&tenant, &key, options.name, scope, Timestamp::now());
    let store = config_store(local).await?;
    create_key(&store, &new).await?;
    println!(
        "tenant {tenant}: API key {key} (id {}, scope {scope}{})",
        new.record.id,
        options
            .name
            .map(|name| format!(", name {name}"))
            .unwrap_or_default()
    );
    println!("(only its hash is stored: keep the key safe, it is not shown again)");
    Ok(())
}

async fn create_key(store: &DynamoConfigStore, new: &NewApiKey) -> Result<(), TenantError> {
    let mut attempt = 1;
    loop {
        match store.create_api_key(new).await {
            Err(WriteError::Backend(error)) if error.retryable && attempt < ATTEMPTS => attempt += 1,
            Err(WriteError::Conflict(why)) => return Err(TenantError::KeyRefused(why)),
            other => return Ok(other?),
        }
    }
}

/// `herald keys list TENANT [--local]`: every key of the tenant's, oldest first, revoked ones included.
async fn list(args: &[&str]) -> Result<(), TenantError> {
    let (args, local) = local_flag(args);
    let [tenant] = args.as_slice() else {
        return Err(TenantError::KeysUsage);
    };
    let tenant = tenant_id(tenant)?;
    let keys = all_keys(&config_store(local).await?, &tenant).await?;
    if keys.is_empty() {
        println!(
            "tenant {tenant} has no API keys (keys made before `herald keys` are listed once `herald keys adopt` ran)"
        );
        return Ok(());
    }
    println!(
        "{:<12}  {:<20}  {:<6}  {:<24}  REVOKED",
        "ID", "NAME", "SCOPE", "CREATED"
    );
    for key in keys {
        println!(
            "{:<12}  {:<20}  {:<6}  {:<24}  {}",
            key.id,
            key.name.as_deref().unwrap_or("-"),
            key.scope,
            key.created_at.to_rfc3339(),
            key.revoked_at
                .map_or_else(|| "-".to_owned(), Timestamp::to_rfc3339)
        );
    }
    Ok(())
}

async fn all_keys(store: &DynamoConfigStore, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>, TenantError> {
    let mut page = PageRequest {
        limit: 100,
        after: None,
    };
    let mut keys = Vec::new();
    loop {
        let listed = store.list_api_keys(tenant, &page).await?;
        keys.extend(listed.items);
        match listed.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(keys)
}

/// `herald keys revoke TENANT KEY_ID [--local]`.
async fn revoke(args: &[&str]) -> Result<(), TenantError> {
    let (args, local) = local_flag(args);
    let [tenant, id] = args.as_slice() else {
        return Err(TenantError::KeysUsage);
    };
    let tenant = tenant_id(tenant)?;
    let store = config_store(local).await?;
    let now = Timestamp::now();
    let mut attempt = 1;
    let revocation = loop {
        match store.revoke_api_key(&tenant, id, now).await {
            Err(error) if error.retryable && attempt < ATTEMPTS => attempt += 1,
            other => break other?,
        }
    };
    match revocation {
        Revocation::Revoked(key) | Revocation::AlreadyRevoked(key) if key.revoked_at == Some(now) => {
            println!("tenant {tenant}: API key {id} revoked");
            println!(
                "(functions that read it in the last HERALD_CONFIG_CACHE_SECONDS, 30 s by default, still accept it until then)"
            );
        }
        Revocation::Revoked(key) | Revocation::AlreadyRevoked(key) => println!(
            "tenant {tenant}: API key {id} was already revoked at {}",
            key.revoked_at.map_or_else(String::new, Timestamp::to_rfc3339)
        ),
        Revocation::NotFound => return Err(TenantError::NoSuchKey(tenant, (*id).to_owned())),
    }
    Ok(())
}

/// `herald keys adopt [--local]`: once, after upgrading a stack whose keys were made before `herald keys`,
/// gives each of them an id, so it is listed and can be revoked. Scans the config table.
async fn adopt(args: &[&str]) -> Result<(), TenantError> {
    let (args, local) = local_flag(args);
    if !args.is_empty() {
        return Err(TenantError::KeysUsage);
    }
    let adopted = config_store(local).await?.adopt_unlisted_keys().await?;
    for key in &adopted {
        println!(
            "tenant {}: API key {} (scope {}) is now listed",
            key.tenant, key.id, key.scope
        );
    }
    println!("{} keys made before `herald keys` adopted", adopted.len());
    Ok(())
}
