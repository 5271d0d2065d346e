//! The emulator's other patches (`scripts/emulator.py` 4–7) keep what Herald and its tools read from it: SQS
//! queue counts stay exact although sends no longer take them, `/moto-api/data.json` still holds what SES
//! and SNS sent (and no longer every DynamoDB item ever written), and every request is counted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use herald_integration_tests::poller::emulator_data;
use herald_integration_tests::{emulator_config, unique};
use serde_json::Value;
use std::collections::BTreeSet;

async fn queue_counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let count =
        |name: QueueAttributeName| -> u64 { attributes.attributes().unwrap()[&name].parse().unwrap() };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

#[tokio::test]
async fn queue_counts_stay_exact_through_sends_receives_and_deletes() {
    let sqs = aws_sdk_sqs::Client::new(&emulator_config().await);
    let url = sqs
        .create_queue()
        .queue_name(unique("counts"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let mut sent = BTreeSet::new();
    for batch in 0..3 {
        let entries = (0..10).map(|n| {
            let body = format!("message {batch}-{n}");
            sent.insert(body.clone());
            SendMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .message_body(body)
                .build()
                .unwrap()
        });
        let answer = sqs
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .unwrap();
        assert!(answer.failed().is_empty());
    }
    assert_eq!(queue_counts(&sqs, &url).await, (30, 0));

    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .visibility_timeout(120)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let bodies: BTreeSet<String> = received.iter().map(|m| m.body().unwrap().to_owned()).collect();
    assert_eq!(bodies.len(), 10, "ten distinct messages");
    assert!(bodies.is_subset(&sent));
    assert_eq!(queue_counts(&sqs, &url).await, (20, 10));

    for message in &received {
        sqs.delete_message()
            .queue_url(&url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    assert_eq!(queue_counts(&sqs, &url).await, (20, 0));
}

#[tokio::test]
async fn data_json_holds_what_ses_and_sns_sent_and_no_dynamodb_item() {
    let aws = emulator_config().await;
    let marker = unique("record");
    let sender = format!("{marker}@herald.test");
    let ses = aws_sdk_sesv2::Client::new(&aws);
    ses.create_email_identity()
        .email_identity(&sender)
        .send()
        .await
        .unwrap();
    let content = aws_sdk_sesv2::types::EmailContent::builder()
        .simple(
            aws_sdk_sesv2::types::Message::builder()
                .subject(
                    aws_sdk_sesv2::types::Content::builder()
                        .data(&marker)
                        .build()
                        .unwrap(),
                )
                .body(
                    aws_sdk_sesv2::types::Body::builder()
                        .text(
                            aws_sdk_sesv2::types::Content::builder()
                                .data("body")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build(),
        )
        .build();
    ses.send_email()
        .from_email_address(&sender)
        .destination(
            aws_sdk_sesv2::types::Destination::builder()
                .to_addresses("someone@example.com")
                .build(),
        )
        .content(content)
        .send()
        .await
        .unwrap();
    aws_sdk_sns::Client::new(&aws)
        .publish()
        .phone_number("+15555550123")
        .message(&marker)
        .send()
        .await
        .unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let table = unique("records");
    dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    dynamodb
        .put_item()
        .table_name(&table)
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(marker.clone()))
        .send()
        .await
        .unwrap();

    let data = emulator_data().await;
    let holds = |list: &Value, field: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .any(|record| record[field].as_str() == Some(marker.as_str()))
    };
    assert!(
        holds(&data["ses"]["Message"], "subject"),
        "the email is in data.json"
    );
    assert!(holds(&data["sns"]["SMS"], "message"), "the SMS is in data.json");
    let items = data["dynamodb"]["Item"].as_array().map_or(0, Vec::len);
    assert_eq!(items, 0, "DynamoDB items are not remembered for data.json");
}

#[tokio::test]
async fn every_request_is_counted_once_by_operation() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let counts = || async {
        reqwest::get(format!("{endpoint}/moto-api/herald/requests"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let aws = emulator_config().await;
    let (sqs, dynamodb) = (
        aws_sdk_sqs::Client::new(&aws),
        aws_sdk_dynamodb::Client::new(&aws),
    );
    let before = counts().await;
    for _ in 0..3 {
        sqs.list_queues().send().await.unwrap();
        dynamodb.describe_limits().send().await.unwrap();
    }
    let after = counts().await;
    // No other test makes these two calls, so their counts are exact although the emulator is shared.
    let made = |operation: &str| {
        let count = |counts: &Value| counts["by_operation"][operation].as_u64().unwrap_or(0);
        count(&after) - count(&before)
    };
    assert_eq!(made("sqs.ListQueues"), 3, "{before} → {after}");
    assert_eq!(made("dynamodb.DescribeLimits"), 3, "{before} → {after}");
    assert!(after["dynamodb"].as_u64().unwrap() >= before["dynamodb"].as_u64().unwrap() + 3);
    assert!(after["all"].as_u64().unwrap() >= before["all"].as_u64().unwrap() + 6);
}
