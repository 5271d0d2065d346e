//! The sweeper Lambda: on a schedule, finishes the fan-out of every event left unfinished past its lease,
//! and dead-letters every notification nothing will deliver any more, so nothing accepted is ever lost.

use herald::adapters::dynamodb::DynamoActivityStore;
use herald::adapters::load_aws_config;
use herald::adapters::sqs::SqsNotificationQueue;
use herald::config::{Env, SweeperConfig};
use herald::outbox::Outbox;
use herald::reconcile::Reconciler;
use herald::sweeper::Sweeper;
use herald::telemetry::{Function, flushing};
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init(Function::Sweeper)?;
    let config = SweeperConfig::from_env(&Env::process())?;
    let aws = load_aws_config(&config.aws).await;
    let activity = DynamoActivityStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.tables.activity);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queues = SqsNotificationQueue::new(sqs.clone(), config.queues);
    let sweeper = Sweeper {
        outbox: Outbox::new(activity.clone(), queues.clone()),
        reconciler: Reconciler::new(
            activity,
            SqsNotificationQueue::new(sqs, config.dead_letter_queues),
            queues,
            config.reconcile,
        ),
    };
    lambda_runtime::run(flushing(service_fn(|event| sweeper.handle_schedule(event)))).await
}
