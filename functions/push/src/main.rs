//! The push Lambda: delivers the push queue's notifications to users' registered devices, through their SNS
//! platform endpoints, within its send rate.

use herald::adapters::dynamodb::DynamoConfigStore;
use herald::adapters::load_aws_config;
use herald::adapters::rate_limit::{Pacing, RateLimited};
use herald::adapters::sns_push::{PushDelivery, PushSender};
use herald::config::{DeliveryConfig, Env, SendRateSettings};
use herald::delivery::{provider_config, serve};
use herald::telemetry::Function;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init(Function::Push)?;
    let env = Env::process();
    let config = DeliveryConfig::from_env(&env)?;
    let pacing = Pacing::configured(&SendRateSettings::from_env(&env)?)?;
    let aws = load_aws_config(&config.aws).await;
    let sns = aws_sdk_sns::Client::new(&provider_config(&aws, config.delivery.provider_timeout));
    let devices = DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.tables.config);
    let sender = PushDelivery::new(PushSender::new(sns), devices);
    serve(RateLimited::new(sender, pacing), &aws, config).await
}
