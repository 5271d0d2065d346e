//! The SMS Lambda: delivers the SMS queue's notifications through Amazon SNS, within its send rate.

use herald::adapters::country_limited::CountryLimited;
use herald::adapters::dynamodb::DynamoConfigStore;
use herald::adapters::load_aws_config;
use herald::adapters::rate_limit::{Pacing, RateLimited};
use herald::adapters::sns::SnsSender;
use herald::config::{DeliveryConfig, Env, SendRateSettings, SmsSettings};
use herald::delivery::{provider_config, serve};
use herald::telemetry::Function;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init(Function::Sms)?;
    let env = Env::process();
    let config = DeliveryConfig::from_env(&env)?;
    let sms = SmsSettings::from_env(&env)?;
    let pacing = Pacing::configured(&SendRateSettings::from_env(&env)?)?;
    let aws = load_aws_config(&config.aws).await;
    let sns = aws_sdk_sns::Client::new(&provider_config(&aws, config.delivery.provider_timeout));
    let sender = RateLimited::new(SnsSender::new(sns, sms.sender_id), pacing);
    let tenants = DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.tables.config);
    // The allow-list outside the rate: a number it refuses costs no permit.
    let sender = CountryLimited::new(sender, sms.allowed_countries, tenants);
    serve(sender, &aws, config).await
}
