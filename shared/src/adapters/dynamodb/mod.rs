//! DynamoDB adapters for the config and activity tables.
//!
//! Both tables have a string partition key `pk` and sort key `sk`; the tenant is part of every `pk`.
//!
//! | table | item | pk | sk |
//! |---|---|---|---|
//! | config | API key lookup | `KEY#<sha256>` | `KEY` |
//! | config | API key in its tenant's list | `TENANT#<t>` | `APIKEY#<key id>` |
//! | config | event type | `TENANT#<t>` | `ETYPE#<name>` |
//! | config | template head | `TENANT#<t>` | `TPL#<name>` |
//! | config | template version | `TENANT#<t>` | `TPLV#<name>#<locale>#<version, 10 digits>` |
//! | config | rule | `TENANT#<t>` | `RULE#<id>` (GSI `by_event`: `TENANT#<t>#EVENT#<event>`, `RULE#<id>`) |
//! | config | rules per event type | `TENANT#<t>` | `RULECOUNT#<event>` |
//! | config | a user's device (mobile push) | `TENANT#<t>` | `DEVICE#<user>#<sha256 of the token>` |
//! | config | tenant settings | `TENANT#<t>` | `SETTINGS` |
//! | config | the secret that signs list cursors | `HERALD` | `CURSOR_KEY` |
//! | activity | idempotency record | `T#<t>#IDEM#<key>` | `IDEM` |
//! | activity | event | `T#<t>#EVT#<id>` | `EVENT` |
//! | activity | rate counter (a recipient's, or an API key's ingest budget) | `T#<t>#RATE#…` / `T#<t>#BUDGET#<key id>#<minute>` | `RATE` |
//! | activity | notification | `T#<t>#NTF#<id>` | `NTF` (GSI `unsettled`: `U#<0-3>`, `due_at`, while owed a delivery; GSIs `log_by_tenant`: `T#<t>#L#<0-7>` and `log_by_user`: `T#<t>#U#<user>`, both by `created_at`) |
//!
//! JSON documents (payloads, schemas, template parts, conditions) are stored as JSON strings, not maps:
//! no 32-level nesting or 38-digit number limits, and they read back exactly as written.

mod activity_store;
mod api_keys;
mod circuit;
mod config_store;
mod cursor_key;
mod devices;
mod event_type_store;
mod feedback;
mod ingest_budget;
mod ledger;
mod notification_log;
mod rule_store;
mod suppressions;
mod tenant_settings;
#[cfg(test)]
mod tests;
mod unsettled;
mod user_store;
mod webhook_endpoints;

pub use activity_store::DynamoActivityStore;
pub use config_store::DynamoConfigStore;

use crate::adapters::backend_error;
use crate::ports::BackendError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// The name of the config table's index of rules by event type.
pub const RULES_BY_EVENT_INDEX: &str = "by_event";

/// A stable byte spread by a notification's random id, to pick an index partition from.
fn spread(id: &crate::domain::NotificationId) -> u8 {
    id.as_str().bytes().fold(0u8, u8::wrapping_add)
}

/// A rate counter's conditional raise (a recipient's in the acceptance transaction, a key's budget alone):
/// the update, its condition, and their values.
const COUNTER_UPDATE: &str = "SET sends = if_not_exists(sends, :zero) + :increment, expires_at = :expires";
const COUNTER_CONDITION: &str = "attribute_not_exists(sends) OR sends <= :room";

fn counter_values(counter: &crate::domain::rate_limit::RateCounter) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":zero".to_owned(), n(0)),
        (":increment".to_owned(), n(counter.increment)),
        (":room".to_owned(), n(counter.room_before())),
        (":expires".to_owned(), n(counter.expires_at.epoch_seconds())),
    ])
}

/// Whether an `UpdateItem` failed only because its condition did not hold.
fn is_condition_failed(
    error: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        aws_smithy_runtime_api::http::Response,
    >,
) -> bool {
    error.as_service_error().is_some_and(
        aws_sdk_dynamodb::operation::update_item::UpdateItemError::is_conditional_check_failed_exception,
    )
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl Into<i128>) -> AttributeValue {
    let value: i128 = value.into();
    AttributeValue::N(value.to_string())
}

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn corrupt(operation: &'static str, detail: impl Into<String>) -> BackendError {
    let detail: String = detail.into();
    BackendError {
        service: "DynamoDB",
        operation,
        message: format!("malformed item: {detail}"),
        retryable: false,
    }
}

/// Typed reads of item attributes; a missing or mistyped required attribute is a corrupt item.
trait ItemExt {
    fn str(&self, name: &str) -> Result<&str, BackendError>;
    fn opt_str(&self, name: &str) -> Option<&str>;
    fn int(&self, name: &str) -> Result<i64, BackendError>;
    fn opt_int(&self, name: &str) -> Option<i64>;
    fn flag(&self, name: &str) -> bool;
    fn json(&self, name: &str) -> Result<Option<serde_json::Value>, BackendError>;
}

impl ItemExt for Item {
    fn str(&self, name: &str) -> Result<&str, BackendError> {
        self.opt_str(name)
            .ok_or_else(|| corrupt("read", format!("string attribute {name} missing")))
    }

    fn opt_str(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|value| value.as_s().ok())
            .map(String::as_str)
    }

    fn int(&self, name: &str) -> Result<i64, BackendError> {
        self.opt_int(name)
            .ok_or_else(|| corrupt("read", format!("number attribute {name} missing")))
    }

    fn opt_int(&self, name: &str) -> Option<i64> {
        self.get(name)
            .and_then(|value| value.as_n().ok())
            .and_then(|number| number.parse().ok())
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name)
            .and_then(|value| value.as_bool().ok())
            .copied()
            .unwrap_or(false)
    }

    fn json(&self, name: &str) -> Result<Option<serde_json::Value>, BackendError> {
        self.opt_str(name)
            .map(|text| {
                serde_json::from_str(text).map_err(|error| corrupt("read", format!("{name}: {error}")))
            })
            .transpose()
    }
}

/// Puts an optional string attribute only when it has a value (DynamoDB has no use for nulls here).
fn put_opt(item: &mut Item, name: &str, value: Option<impl Into<String>>) {
    if let Some(value) = value {
        item.insert(name.to_owned(), s(value));
    }
}

/// Puts `item` unless an item with its key exists: `true` when this put wrote it.
async fn put_if_absent(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    item: Item,
    operation: &'static str,
) -> Result<bool, BackendError> {
    let written = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match written {
        Ok(_) => Ok(true),
        Err(error)
            if error.as_service_error().is_some_and(
                aws_sdk_dynamodb::operation::put_item::PutItemError::is_conditional_check_failed_exception,
            ) =>
        {
            Ok(false)
        }
        Err(error) => Err(crate::adapters::backend_error("DynamoDB", operation, &error)),
    }
}

/// A request builder refused its input: a bug in Herald, reported rather than panicking.
fn built<T>(result: Result<T, BuildError>) -> Result<T, BackendError> {
    result.map_err(|error| BackendError {
        service: "DynamoDB",
        operation: "build request",
        message: error.to_string(),
        retryable: false,
    })
}

/// A transactional put of `item`, with an optional condition and its values. A `#name` placeholder in the
/// condition stands for the attribute `name` (many plain words are DynamoDB reserved words).
fn put(
    table: &str,
    item: Item,
    condition: Option<&str>,
    values: &[(&str, AttributeValue)],
) -> Result<TransactWriteItem, BackendError> {
    let mut put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned));
    for (name, value) in values {
        put = put.expression_attribute_values(*name, value.clone());
    }
    for placeholder in condition
        .into_iter()
        .flat_map(str::split_whitespace)
        .filter(|word| word.starts_with('#'))
    {
        let attribute = placeholder
            .trim_start_matches('#')
            .trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_');
        put = put.expression_attribute_names(format!("#{attribute}"), attribute);
    }
    Ok(TransactWriteItem::builder().put(built(put.build())?).build())
}

/// Why a transaction did not commit.
#[derive(Debug)]
enum Cancelled {
    /// One code per item, in order: `None`, `ConditionalCheckFailed`, `TransactionConflict`, …
    Reasons(Vec<Option<Item>>, Vec<String>),
    Backend(BackendError),
}

impl Cancelled {
    fn failed_at(&self, index: usize) -> bool {
        matches!(self, Cancelled::Reasons(_, codes) if codes.get(index).is_some_and(|code| code == "ConditionalCheckFailed"))
    }

    fn conflicted(&self) -> bool {
        matches!(self, Cancelled::Reasons(_, codes) if codes.iter().any(|code| code == "TransactionConflict"))
    }
}

impl From<BackendError> for Cancelled {
    fn from(error: BackendError) -> Self {
        Cancelled::Backend(error)
    }
}

/// Runs a transaction, telling a cancellation (with each item's reason and, where asked for, the old
/// item) from a failure of the service.
async fn transact(
    client: &Client,
    operation: &'static str,
    items: Vec<TransactWriteItem>,
) -> Result<(), Cancelled> {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => Err(match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                let reasons = cancelled.cancellation_reasons();
                Cancelled::Reasons(
                    reasons.iter().map(|reason| reason.item().cloned()).collect(),
                    reasons
                        .iter()
                        .map(|reason| reason.code().unwrap_or("None").to_owned())
                        .collect(),
                )
            }
            _ => Cancelled::Backend(backend_error("DynamoDB", operation, &error)),
        }),
    }
}

/// Encodes a `LastEvaluatedKey` (less the tenant's partition key, which the caller always supplies) as
/// the opaque token of the next page.
fn page_token(last: Option<&Item>) -> Option<String> {
    let last = last?;
    let fields: serde_json::Map<String, serde_json::Value> = last
        .iter()
        .filter(|(name, _)| *name != "pk")
        .filter_map(|(name, value)| value.as_s().ok().map(|text| (name.clone(), text.clone().into())))
        .collect();
    Some(serde_json::Value::Object(fields).to_string())
}

/// Rebuilds an `ExclusiveStartKey` from a page token. The partition keys are forced to the caller's
/// (`fixed`), so a token can never reach another tenant's items, and a token whose `sk` lies outside
/// the listing (`sk_prefix`) starts from the beginning rather than failing the query.
fn start_key(fixed: &[(&str, &str)], sk_prefix: &str, token: Option<&str>) -> Option<Item> {
    let fields: HashMap<String, String> = serde_json::from_str(token?).ok()?;
    if !fields.get("sk").is_some_and(|sk| sk.starts_with(sk_prefix)) {
        return None;
    }
    let mut item: Item = fields.into_iter().map(|(name, value)| (name, s(value))).collect();
    for (name, value) in fixed {
        item.insert((*name).to_owned(), s(*value));
    }
    Some(item)
}
