//! The Slack Lambda: delivers the Slack queue's notifications to incoming webhooks, within its send rate
//! and Slack's one message a second per webhook.

use herald::adapters::load_aws_config;
use herald::adapters::rate_limit::{Pacing, RateLimited};
use herald::adapters::slack::SlackSender;
use herald::config::{DeliveryConfig, Env, SendRateSettings, SlackSettings};
use herald::delivery::serve;
use herald::telemetry::Function;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init(Function::Slack)?;
    let env = Env::process();
    let config = DeliveryConfig::from_env(&env)?;
    let slack = SlackSettings::from_env(&env)?;
    let pacing = Pacing::configured(&SendRateSettings::from_env(&env)?)?;
    let aws = load_aws_config(&config.aws).await;
    let sender = SlackSender::new(slack.webhook_policy, slack.connect_timeout, slack.timeout)?;
    let sender = RateLimited::new(sender, pacing).per_address(Pacing::slack_webhook());
    serve(sender, &aws, config).await
}
