//! The Slack Lambda: delivers the Slack queue's notifications to incoming webhooks.

use herald::adapters::load_aws_config;
use herald::adapters::slack::SlackSender;
use herald::config::{DeliveryConfig, Env, SlackSettings};
use herald::delivery::serve;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init();
    let env = Env::process();
    let config = DeliveryConfig::from_env(&env)?;
    let slack = SlackSettings::from_env(&env)?;
    let aws = load_aws_config(&config.aws).await;
    let sender = SlackSender::new(slack.webhook_policy, slack.connect_timeout, slack.timeout)?;
    serve(sender, &aws, config).await
}
