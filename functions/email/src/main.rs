//! The email Lambda: delivers the email queue's notifications through Amazon SES v2.

use herald::adapters::load_aws_config;
use herald::adapters::ses::SesSender;
use herald::config::{DeliveryConfig, EmailSettings, Env};
use herald::delivery::{provider_config, serve};
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init();
    let env = Env::process();
    let config = DeliveryConfig::from_env(&env)?;
    let email = EmailSettings::from_env(&env)?;
    let aws = load_aws_config(&config.aws).await;
    let ses = aws_sdk_sesv2::Client::new(&provider_config(&aws, config.delivery.provider_timeout));
    serve(
        SesSender::new(ses, email.from, email.configuration_set),
        &aws,
        config,
    )
    .await
}
