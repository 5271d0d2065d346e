//! Creating the template's tables, queues, topics and subscriptions on the emulator.

use super::resources::{KeySpec, QueueSpec, TableSpec};
use super::topics::SubscriptionSpec;
use super::{Provisioned, StackTemplate, TemplateError, invalid};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

impl StackTemplate {
    /// Creates every table, queue and topic on the emulator, dead-letter queues before the queues that
    /// redrive to them, and subscribes the queues to their topics. Existing ones are reused (a queue's
    /// attributes are set to the template's).
    pub async fn provision(
        &self,
        dynamodb: &aws_sdk_dynamodb::Client,
        sqs: &aws_sdk_sqs::Client,
        sns: &aws_sdk_sns::Client,
    ) -> Result<Provisioned, TemplateError> {
        let mut provisioned = Provisioned::default();
        for table in &self.tables {
            create_table(dynamodb, table).await?;
            provisioned
                .table_names
                .insert(table.logical_id.clone(), table.name.clone());
        }
        for queue in &self.queues {
            let (url, arn) = create_queue(sqs, queue, &provisioned).await?;
            provisioned.queue_urls.insert(queue.logical_id.clone(), url);
            provisioned.queue_arns.insert(queue.logical_id.clone(), arn);
        }
        for topic in &self.topics {
            // CreateTopic answers the existing topic's ARN for a name already taken.
            let arn = sns
                .create_topic()
                .name(&topic.name)
                .send()
                .await
                .map_err(|error| emulator_error("CreateTopic", &topic.logical_id, error))?
                .topic_arn
                .ok_or_else(|| TemplateError::Emulator {
                    operation: "CreateTopic",
                    resource: topic.logical_id.clone(),
                    message: "the emulator returned no TopicArn".to_owned(),
                })?;
            provisioned.topic_arns.insert(topic.logical_id.clone(), arn);
        }
        for subscription in &self.subscriptions {
            subscribe(sns, subscription, &provisioned).await?;
        }
        Ok(provisioned)
    }
}

/// Subscribes the queue to the topic (SNS answers an existing subscription for the same pair).
async fn subscribe(
    sns: &aws_sdk_sns::Client,
    subscription: &SubscriptionSpec,
    provisioned: &Provisioned,
) -> Result<(), TemplateError> {
    let id = subscription.logical_id.as_str();
    let created = |logical_id: &str, of: &BTreeMap<String, String>| {
        of.get(logical_id)
            .cloned()
            .ok_or_else(|| invalid(id, "", &format!("{logical_id} is not created yet")))
    };
    let mut request = sns
        .subscribe()
        .topic_arn(created(&subscription.topic, &provisioned.topic_arns)?)
        .protocol("sqs")
        .endpoint(created(&subscription.queue, &provisioned.queue_arns)?);
    // Only when on: moto 5.2.5 delivers raw whenever the attribute is set at all, "false" included.
    if subscription.raw_message_delivery {
        request = request.attributes("RawMessageDelivery", "true");
    }
    request
        .send()
        .await
        .map_err(|error| emulator_error("Subscribe", id, error))?;
    Ok(())
}

fn emulator_error<E: std::error::Error>(operation: &'static str, resource: &str, error: E) -> TemplateError {
    TemplateError::Emulator {
        operation,
        resource: resource.to_owned(),
        message: aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
    }
}

fn key_schema(keys: &[KeySpec], resource: &str) -> Result<Vec<KeySchemaElement>, TemplateError> {
    keys.iter()
        .map(|key| {
            KeySchemaElement::builder()
                .attribute_name(&key.attribute_name)
                .key_type(KeyType::from(key.key_type.as_str()))
                .build()
                .map_err(|error| emulator_error("CreateTable", resource, error))
        })
        .collect()
}

/// Creates the table on demand (or reuses one of that name), waits for it to be ACTIVE, and turns its
/// TTL on where the emulator allows.
async fn create_table(client: &aws_sdk_dynamodb::Client, table: &TableSpec) -> Result<(), TemplateError> {
    let id = table.logical_id.as_str();
    let attributes = table
        .attributes
        .iter()
        .map(|attribute| {
            AttributeDefinition::builder()
                .attribute_name(&attribute.attribute_name)
                .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                .build()
                .map_err(|error| emulator_error("CreateTable", id, error))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let indexes = table
        .global_secondary_indexes
        .iter()
        .map(|index| {
            let projection = Projection::builder()
                .projection_type(ProjectionType::from(index.projection.projection_type.as_str()))
                .set_non_key_attributes(
                    (!index.projection.non_key_attributes.is_empty())
                        .then(|| index.projection.non_key_attributes.clone()),
                )
                .build();
            GlobalSecondaryIndex::builder()
                .index_name(&index.index_name)
                .set_key_schema(Some(key_schema(&index.key_schema, id)?))
                .projection(projection)
                .build()
                .map_err(|error| emulator_error("CreateTable", id, error))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let created = client
        .create_table()
        .table_name(&table.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(&table.key_schema, id)?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(error)
            if error.as_service_error().is_some_and(
                aws_sdk_dynamodb::operation::create_table::CreateTableError::is_resource_in_use_exception,
            ) => {}
        Err(error) => return Err(emulator_error("CreateTable", id, error)),
    }
    wait_until_active(client, table).await?;
    if let Some(attribute) = &table.ttl_attribute {
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true)
            .build()
            .map_err(|error| emulator_error("UpdateTimeToLive", id, error))?;
        // TTL changes nothing the local stack relies on; an emulator that refuses it (or a table that
        // already has it) is fine.
        if let Err(error) = client
            .update_time_to_live()
            .table_name(&table.name)
            .time_to_live_specification(specification)
            .send()
            .await
        {
            tracing::debug!(table = %table.name, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&error), "TTL not enabled");
        }
    }
    Ok(())
}

async fn wait_until_active(
    client: &aws_sdk_dynamodb::Client,
    table: &TableSpec,
) -> Result<(), TemplateError> {
    for _ in 0..100 {
        let described = client
            .describe_table()
            .table_name(&table.name)
            .send()
            .await
            .map_err(|error| emulator_error("DescribeTable", &table.logical_id, error))?;
        let status = described.table().and_then(|table| table.table_status());
        if status.is_none_or(|status| *status == TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(TemplateError::Emulator {
        operation: "DescribeTable",
        resource: table.logical_id.clone(),
        message: format!("{} did not become ACTIVE within 10 s", table.name),
    })
}

/// Creates the queue (or reuses one of that name, setting its attributes to the template's) and
/// returns its URL and ARN. Its dead-letter queue must be in `provisioned` already.
async fn create_queue(
    client: &aws_sdk_sqs::Client,
    queue: &QueueSpec,
    provisioned: &Provisioned,
) -> Result<(String, String), TemplateError> {
    let id = queue.logical_id.as_str();
    let mut attributes = HashMap::new();
    if let Some(seconds) = queue.visibility_timeout {
        attributes.insert(QueueAttributeName::VisibilityTimeout, seconds.to_string());
    }
    if let Some(seconds) = queue.message_retention_period {
        attributes.insert(QueueAttributeName::MessageRetentionPeriod, seconds.to_string());
    }
    if let Some(redrive) = &queue.redrive {
        let target = provisioned
            .queue_arns
            .get(&redrive.dead_letter_queue)
            .ok_or_else(|| {
                invalid(
                    id,
                    "Properties.RedrivePolicy",
                    &format!("{} is not created yet", redrive.dead_letter_queue),
                )
            })?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": target,
            "maxReceiveCount": redrive.max_receive_count,
        });
        attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let existing = client.get_queue_url().queue_name(&queue.name).send().await;
    let url = match existing {
        Ok(output) => {
            let url = output.queue_url().unwrap_or_default().to_owned();
            if !attributes.is_empty() {
                client
                    .set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attributes))
                    .send()
                    .await
                    .map_err(|error| emulator_error("SetQueueAttributes", id, error))?;
            }
            url
        }
        Err(error) if is_missing_queue(&error) => client
            .create_queue()
            .queue_name(&queue.name)
            .set_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .await
            .map_err(|error| emulator_error("CreateQueue", id, error))?
            .queue_url()
            .unwrap_or_default()
            .to_owned(),
        Err(error) => return Err(emulator_error("GetQueueUrl", id, error)),
    };
    if url.is_empty() {
        return Err(TemplateError::Emulator {
            operation: "CreateQueue",
            resource: id.to_owned(),
            message: "the emulator returned no queue URL".to_owned(),
        });
    }
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| emulator_error("GetQueueAttributes", id, error))?
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| TemplateError::Emulator {
            operation: "GetQueueAttributes",
            resource: id.to_owned(),
            message: "the emulator returned no QueueArn".to_owned(),
        })?;
    Ok((url, arn))
}

/// Whether GetQueueUrl failed because there is no such queue (the query-protocol code included).
fn is_missing_queue<R>(
    error: &aws_sdk_sqs::error::SdkError<aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError, R>,
) -> bool {
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    error.as_service_error().is_some_and(|error| {
        error.is_queue_does_not_exist()
            || error
                .code()
                .is_some_and(|code| code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist"))
    })
}
