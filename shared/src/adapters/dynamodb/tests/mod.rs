//! The DynamoDB adapters against a client mocked at the SDK boundary (`aws-smithy-mocks`): each rule
//! answers one call the way DynamoDB would, so these tests pin how the adapters read cancellations,
//! conditional-check failures and service errors, and what they send back. One file per adapter; the
//! helpers every one uses are here.

use super::activity_store::TRANSACTION_ATTEMPTS;
use super::config_store::WRITE_ATTEMPTS;
use super::{DynamoActivityStore, DynamoConfigStore, Item, n, s};
use crate::domain::event::{Acceptance, IdempotencyRecord};
use crate::domain::rule::RuleSpec;
use crate::domain::template::TemplateContent;
use crate::domain::{Channel, EventId, TenantId, Timestamp};
use crate::ports::{ActivityStore, BackendError, Recorded, RuleStore, TemplateStore, WriteError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, ThrottlingException, TransactionCanceledException,
};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, ReturnValuesOnConditionCheckFailure};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const TABLE: &str = "herald-test-table";
const TENANT: &str = "acme";
const LEASE: Duration = Duration::from_secs(30);

/// A client whose every call must meet one of `rules`. The SDK's own retries are off, so the number of
/// calls a rule sees is the number the adapter made.
fn client(mode: RuleMode, rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_dynamodb, mode, rules, |config| config
        .retry_config(RetryConfig::disabled()))
}

fn item<const N: usize>(attributes: [(&str, AttributeValue); N]) -> Item {
    attributes
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// A `TransactionCanceledException` as DynamoDB sends it: one reason per item, in order.
fn cancelled(reasons: Vec<CancellationReason>) -> TransactWriteItemsError {
    TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder()
            .message("Transaction cancelled, please refer cancellation reasons for specific reasons")
            .set_cancellation_reasons(Some(reasons))
            .meta(
                ErrorMetadata::builder()
                    .code("TransactionCanceledException")
                    .build(),
            )
            .build(),
    )
}

fn reason(code: &str) -> CancellationReason {
    CancellationReason::builder().code(code).build()
}

/// A 400 carrying a DynamoDB (awsJson 1.0) error body, read by the SDK's real error deserializer.
fn json_error(code: &str) -> String {
    json!({ "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": format!("{code} (test)") })
        .to_string()
}

fn is_consistent_get(request: &GetItemInput, pk: &str, sk: &str) -> bool {
    request.table_name() == Some(TABLE)
        && request.consistent_read() == Some(true)
        && request
            .key()
            .is_some_and(|key| key.get("pk") == Some(&s(pk)) && key.get("sk") == Some(&s(sk)))
}

/// An accepted `user.signup` event with one queued email notification, keyed by `idempotency_key`.
fn acceptance(idempotency_key: Option<&str>) -> Acceptance {
    crate::test_fixtures::acceptance(TENANT, idempotency_key, &[Channel::Email])
}

mod activity_store;
mod config_store;
mod ledger;
