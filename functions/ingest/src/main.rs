//! The ingest Lambda: `POST /v1/events`, `POST /v1/events/batch`, `GET /v1/events/{id}`.

use herald::adapters::dynamodb::{DynamoActivityStore, DynamoConfigStore};
use herald::adapters::load_aws_config;
use herald::adapters::sqs::SqsNotificationQueue;
use herald::config::{Env, IngestConfig};
use herald::ingest::Ingest;
use herald::telemetry::{Function, flushing};
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init(Function::Ingest)?;
    let config = IngestConfig::from_env(&Env::process())?;
    let aws = load_aws_config(&config.aws).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let config_store = DynamoConfigStore::new(dynamodb.clone(), &config.tables.config);
    let ingest = Ingest::new(
        config_store.clone(),
        config_store,
        DynamoActivityStore::new(dynamodb, &config.tables.activity),
        SqsNotificationQueue::new(aws_sdk_sqs::Client::new(&aws), config.queues),
        config.http,
    );
    lambda_http::run(flushing(service_fn(|request| ingest.handle(request)))).await
}
