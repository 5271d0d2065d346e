//! The email Lambda: delivers the email queue's notifications through Amazon SES v2, within its send rate.

use herald::adapters::dynamodb::DynamoConfigStore;
use herald::adapters::load_aws_config;
use herald::adapters::rate_limit::{Pacing, RateLimited};
use herald::adapters::ses::{SesSender, account_send_rate_or_fallback};
use herald::adapters::suppression_checked::SuppressionChecked;
use herald::config::{DeliveryConfig, EmailSettings, Env, SendRateSettings};
use herald::delivery::{provider_config, serve};
use herald::telemetry::Function;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init(Function::Email)?;
    let env = Env::process();
    let config = DeliveryConfig::from_env(&env)?;
    let email = EmailSettings::from_env(&env)?;
    let rate = SendRateSettings::from_env(&env)?;
    let aws = load_aws_config(&config.aws).await;
    // None configured: SES's own quota, asked with Herald's usual AWS retries (the provider client has none).
    let per_second = match rate.per_second {
        Some(per_second) => per_second,
        None => account_send_rate_or_fallback(&aws_sdk_sesv2::Client::new(&aws)).await,
    };
    let pacing = Pacing::shared(per_second, rate.max_concurrency)?;
    let ses = aws_sdk_sesv2::Client::new(&provider_config(&aws, config.delivery.provider_timeout));
    let sender = RateLimited::new(
        SesSender::new(ses, email.from, email.configuration_set),
        Some(pacing),
    );
    let suppressions = DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.tables.config);
    // The suppression list outside the rate: an address it refuses costs no permit.
    serve(SuppressionChecked::new(sender, suppressions), &aws, config).await
}
