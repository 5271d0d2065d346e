//! The webhook Lambda: delivers the webhook queue's notifications to the tenants' own endpoints, signed to
//! the Standard Webhooks specification, within its send rate.

use herald::adapters::dynamodb::DynamoConfigStore;
use herald::adapters::load_aws_config;
use herald::adapters::rate_limit::{Pacing, RateLimited};
use herald::adapters::webhook::{WebhookDelivery, WebhookPoster};
use herald::config::{DeliveryConfig, Env, SendRateSettings, WebhookSettings};
use herald::delivery::serve;
use herald::telemetry::Function;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init(Function::Webhook)?;
    let env = Env::process();
    let config = DeliveryConfig::from_env(&env)?;
    let webhook = WebhookSettings::from_env(&env)?;
    let pacing = Pacing::configured(&SendRateSettings::from_env(&env)?)?;
    let aws = load_aws_config(&config.aws).await;
    let poster = WebhookPoster::new(webhook.allow_loopback, webhook.connect_timeout, webhook.timeout)?;
    let endpoints = DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.tables.config);
    let sender = WebhookDelivery::new(poster, endpoints, webhook.disable_after);
    serve(RateLimited::new(sender, pacing), &aws, config).await
}
