//! The sweeper Lambda: on a schedule, finishes the fan-out of every event left unfinished past its lease
//! (the request that accepted it died, or SQS failed it), so nothing accepted is ever left unsent.

use herald::adapters::dynamodb::DynamoActivityStore;
use herald::adapters::load_aws_config;
use herald::adapters::sqs::SqsNotificationQueue;
use herald::config::{Env, SweeperConfig};
use herald::outbox::Outbox;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init();
    let config = SweeperConfig::from_env(&Env::process())?;
    let aws = load_aws_config(&config.aws).await;
    let outbox = Outbox::new(
        DynamoActivityStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.tables.activity),
        SqsNotificationQueue::new(aws_sdk_sqs::Client::new(&aws), config.queues),
    );
    lambda_runtime::run(service_fn(|event| outbox.handle_schedule(event))).await
}
