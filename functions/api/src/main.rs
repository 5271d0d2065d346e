//! The management API Lambda: health, event types, templates, rules, users and their devices, webhook
//! endpoints, the suppression list.

use herald::adapters::dynamodb::DynamoConfigStore;
use herald::adapters::load_aws_config;
use herald::adapters::sns_push::PushApplications;
use herald::api::Api;
use herald::config::{ApiConfig, Env};
use herald::telemetry::{Function, flushing};
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init(Function::Api)?;
    let config = ApiConfig::from_env(&Env::process())?;
    let aws = load_aws_config(&config.aws).await;
    let store = DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.tables.config);
    let push = PushApplications::new(
        aws_sdk_sns::Client::new(&aws),
        config.push.apns_application_arn,
        config.push.fcm_application_arn,
    );
    let api = Api::new(store.clone(), store, config.http).with_push(push);
    lambda_http::run(flushing(service_fn(|request| api.handle(request)))).await
}
