//! `herald tenant …` and `herald keys …` run as an operator runs them, against the AWS emulator (`scripts/test` starts it) and a
//! config table made from template.yaml.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use herald::adapters::dynamodb::DynamoConfigStore;
use herald::config::{AwsSettings, Env, Tables};
use herald::domain::TenantId;
use herald::domain::address::CountryAllowList;
use herald::domain::api_key::{KeyGrant, KeyScope, key_hash};
use herald::ports::{ApiKeyStore, TenantSettingsStore};
use herald_cli::local::template::StackTemplate;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use tokio::process::Command;

/// The config table of a stack of this test's own, made as `herald local up` makes it.
async fn config_table() -> (DynamoConfigStore, String) {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|url| !url.is_empty()),
        "AWS_ENDPOINT_URL is not set: run the tests with ./scripts/test, which starts the AWS emulator"
    );
    let aws = herald::adapters::load_aws_config(&AwsSettings::from_env(&Env::process()).unwrap()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    let stack_name = format!(
        "herald-tenant-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    let template = StackTemplate::load(&template, &stack_name, &BTreeMap::new()).unwrap();
    let sns = aws_sdk_sns::Client::new(&aws);
    let provisioned = template.provision(&dynamodb, &sqs, &sns).await.unwrap();
    let api = template
        .functions()
        .into_iter()
        .find(|function| function.binary == "api")
        .unwrap();
    let environment = template.environment(&api, &provisioned).unwrap();
    let tables = Tables::from_env(&Env::from_fn(|name| environment.get(name).cloned())).unwrap();
    (DynamoConfigStore::new(dynamodb, &tables.config), tables.config)
}

async fn herald_tenant(table: &str, args: &[&str]) -> Output {
    herald(table, "tenant", args).await
}

async fn herald_keys(table: &str, args: &[&str]) -> Output {
    herald(table, "keys", args).await
}

async fn herald(table: &str, command: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg(command)
        .args(args)
        .env("HERALD_CONFIG_TABLE", table)
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn an_operator_creates_a_tenants_key_and_sets_its_sms_countries() {
    let (store, table) = config_table().await;
    let tenant = TenantId::new("acme");

    let created = stdout(&herald_tenant(&table, &["create", "acme"]).await);
    let (key, id) = key_and_id(&created);
    let grant = store.key_grant(&key_hash(&key)).await.unwrap();
    assert_eq!(
        grant,
        Some(KeyGrant {
            tenant: tenant.clone(),
            key_id: id,
            scope: KeyScope::Full
        })
    );

    let shown = stdout(&herald_tenant(&table, &["sms-countries", "acme"]).await);
    assert!(shown.contains("the deployment's SmsAllowedCountries"), "{shown}");

    let set = stdout(&herald_tenant(&table, &["sms-countries", "acme", "gb, ie"]).await);
    assert!(set.contains("GB,IE (the tenant's own list)"), "{set}");
    let stored = store.tenant_settings(&tenant).await.unwrap().unwrap();
    assert_eq!(
        stored.sms_allowed_countries,
        Some(CountryAllowList::parse("GB,IE").unwrap())
    );

    let refused = herald_tenant(&table, &["sms-countries", "acme", "GB,XX"]).await;
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("XX is not an ISO 3166-1 alpha-2 country code"),
        "{why}"
    );
    let unchanged = store.tenant_settings(&tenant).await.unwrap().unwrap();
    assert_eq!(unchanged.sms_allowed_countries, stored.sms_allowed_countries);

    let reset = stdout(&herald_tenant(&table, &["sms-countries", "acme", "--default"]).await);
    assert!(reset.contains("the deployment's SmsAllowedCountries"), "{reset}");
    let stored = store.tenant_settings(&tenant).await.unwrap().unwrap();
    assert_eq!(stored.sms_allowed_countries, None);

    let misused = herald_tenant(&table, &["sms-countries", "acme", "--all"]).await;
    assert!(String::from_utf8_lossy(&misused.stderr).contains("usage: herald tenant sms-countries"));
}

#[tokio::test]
async fn an_operator_sets_and_resets_a_tenants_rate_limit_and_ingest_budget() {
    let (store, table) = config_table().await;
    let tenant = TenantId::new("acme");
    for (command, parameter) in [
        ("rate-limit", "RateLimitPerMinute"),
        ("ingest-budget", "IngestBudgetPerMinute"),
    ] {
        let shown = stdout(&herald_tenant(&table, &[command, "acme"]).await);
        assert!(
            shown.contains(&format!("the deployment's {parameter}")),
            "{shown}"
        );
        let set = stdout(&herald_tenant(&table, &[command, "acme", "12"]).await);
        assert!(
            set.contains("12 ") && set.contains("the tenant's own setting"),
            "{set}"
        );
        let off = stdout(&herald_tenant(&table, &[command, "acme", "0"]).await);
        assert!(off.contains("no limit"), "{off}");
        let misused = herald_tenant(&table, &[command, "acme", "lots"]).await;
        assert!(stderr_of_failure(&misused).contains(&format!("usage: herald tenant {command}")));
    }
    let stored = store.tenant_settings(&tenant).await.unwrap().unwrap();
    assert_eq!(
        (stored.rate_limit_per_minute, stored.ingest_budget_per_minute),
        (Some(0), Some(0))
    );
    let reset = stdout(&herald_tenant(&table, &["rate-limit", "acme", "--default"]).await);
    assert!(reset.contains("the deployment's RateLimitPerMinute"), "{reset}");
    let stored = store.tenant_settings(&tenant).await.unwrap().unwrap();
    assert_eq!(
        (stored.rate_limit_per_minute, stored.ingest_budget_per_minute),
        (None, Some(0)),
        "each setting on its own"
    );
}

fn stderr_of_failure(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The word after `(id ` in `keys create`'s line.
fn key_and_id(created: &str) -> (String, String) {
    let key = created
        .split_whitespace()
        .find(|word| word.starts_with("hk_"))
        .unwrap_or_else(|| panic!("no key printed: {created}"));
    let id = created
        .split("(id ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no id printed: {created}"));
    (key.to_owned(), id.to_owned())
}

#[tokio::test]
async fn an_operator_creates_lists_and_revokes_a_tenants_keys_and_no_tenant_reaches_anothers() {
    let (store, table) = config_table().await;
    let acme = TenantId::new("acme");

    let created =
        stdout(&herald_keys(&table, &["create", "acme", "--name", "ci", "--scope", "ingest"]).await);
    let (key, id) = key_and_id(&created);
    assert!(created.contains("scope ingest, name ci"), "{created}");
    let grant = store.key_grant(&key_hash(&key)).await.unwrap();
    assert_eq!(
        grant,
        Some(KeyGrant {
            tenant: acme.clone(),
            key_id: id.clone(),
            scope: KeyScope::Ingest
        })
    );

    let weak = herald_keys(&table, &["create", "acme", "--key", "herald-dev-key"]).await;
    assert!(stderr_of_failure(&weak).contains("at least 32 characters"));
    let custom = "an-operators-own-key-7f3a9c1e5b2d8046";
    stdout(&herald_keys(&table, &["create", "acme", "--key", custom]).await);
    let stolen = herald_keys(&table, &["create", "globex", "--key", custom]).await;
    assert!(stderr_of_failure(&stolen).contains("belongs to another tenant"));
    let owner = store.key_grant(&key_hash(custom)).await.unwrap().unwrap();
    assert_eq!(owner.tenant, acme, "the key stayed acme's");

    let listed = stdout(&herald_keys(&table, &["list", "acme"]).await);
    let line = listed
        .lines()
        .find(|line| line.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (columns[1], columns[2], columns[4]),
        ("ci", "ingest", "-"),
        "{line}"
    );
    assert_eq!(listed.lines().count(), 3, "a header and two keys: {listed}");
    assert!(
        !listed.contains(custom) && !listed.contains(&key_hash(custom)),
        "{listed}"
    );
    let others = stdout(&herald_keys(&table, &["list", "globex"]).await);
    assert!(others.contains("tenant globex has no API keys"), "{others}");

    let refused = herald_keys(&table, &["revoke", "globex", &id]).await;
    assert!(stderr_of_failure(&refused).contains("tenant globex has no API key"));
    assert!(store.key_grant(&key_hash(&key)).await.unwrap().is_some());

    let revoked = stdout(&herald_keys(&table, &["revoke", "acme", &id]).await);
    assert!(revoked.contains(&format!("API key {id} revoked")), "{revoked}");
    assert_eq!(store.key_grant(&key_hash(&key)).await.unwrap(), None);
    let listed = stdout(&herald_keys(&table, &["list", "acme"]).await);
    let line = listed.lines().find(|line| line.starts_with(&id)).unwrap();
    assert!(!line.ends_with(" -"), "revoked, with its time: {line}");
    let again = stdout(&herald_keys(&table, &["revoke", "acme", &id]).await);
    assert!(again.contains("was already revoked at"), "{again}");

    let misused = herald_keys(&table, &["create", "acme", "--scope", "admin"]).await;
    assert!(stderr_of_failure(&misused).contains("ingest (POST /v1/events and batches only) or full"));
    let misused = herald_keys(&table, &["list"]).await;
    assert!(stderr_of_failure(&misused).contains("usage: herald keys create"));
}

#[tokio::test]
async fn the_local_stacks_seed_stores_the_dev_key_once_as_a_listed_full_key() {
    let (store, _) = config_table().await;
    herald_cli::local::seed::seed(&store).await.unwrap();
    herald_cli::local::seed::seed(&store).await.unwrap();

    let local = TenantId::new(herald_cli::local::seed::TENANT);
    let grant = store
        .key_grant(&key_hash(herald_cli::local::seed::API_KEY))
        .await
        .unwrap();
    assert_eq!(
        grant.map(|grant| (grant.tenant, grant.scope)),
        Some((local.clone(), KeyScope::Full))
    );
    let page = herald::ports::PageRequest {
        limit: 10,
        after: None,
    };
    let listed = store.list_api_keys(&local, &page).await.unwrap().items;
    assert_eq!(listed.len(), 1, "stored once: {listed:?}");
    assert_eq!(listed[0].name.as_deref(), Some("dev"));
}
