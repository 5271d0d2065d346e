//! The feedback Lambda: SES's deliveries, bounces and complaints, from the feedback queue, recorded on the
//! notifications they are about; a bounced or complained address goes on its tenant's suppression list.

use herald::adapters::dynamodb::{DynamoActivityStore, DynamoConfigStore};
use herald::adapters::load_aws_config;
use herald::config::{AwsSettings, Env, Tables};
use herald::feedback::FeedbackHandler;
use herald::telemetry::{Function, flushing};
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init(Function::Feedback)?;
    let env = Env::process();
    let tables = Tables::from_env(&env)?;
    let aws = load_aws_config(&AwsSettings::from_env(&env)?).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let handler = FeedbackHandler::new(
        DynamoConfigStore::new(dynamodb.clone(), &tables.config),
        DynamoActivityStore::new(dynamodb, &tables.activity),
    );
    lambda_runtime::run(flushing(service_fn(|event| handler.handle(event)))).await
}
