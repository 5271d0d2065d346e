//! `herald tenant …` run as an operator runs it, against the AWS emulator (`scripts/test` starts it) and a
//! config table made from template.yaml.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use herald::adapters::dynamodb::DynamoConfigStore;
use herald::config::{AwsSettings, Env, Tables};
use herald::domain::TenantId;
use herald::domain::address::CountryAllowList;
use herald::http::key_hash;
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
    let provisioned = template.provision(&dynamodb, &sqs).await.unwrap();
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
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("tenant")
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
    let key = created
        .split_whitespace()
        .find(|word| word.starts_with("hk_"))
        .unwrap_or_else(|| panic!("no key printed: {created}"));
    assert_eq!(
        store.tenant_for_key(&key_hash(key)).await.unwrap(),
        Some(tenant.clone())
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
