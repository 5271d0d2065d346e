//! Tables for the emulator's own tests: a table with an index (`by_group`), items built tersely, and the
//! whole state of a table read back (every item, and the index's answer per group) to compare before and after.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use crate::emulator_config;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TransactWriteItem, Update,
};
use std::collections::{BTreeMap, HashMap};

pub type Item = HashMap<String, AttributeValue>;

pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn item(attributes: &[(&str, AttributeValue)]) -> Item {
    attributes
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

/// The key of a table item: `sk` is empty in a table without a range key; a number `sk` is zero-padded
/// so that keys sort as the items do.
pub fn key_of(item: &Item) -> (String, String) {
    let text = |value: Option<&AttributeValue>| match value {
        Some(AttributeValue::S(text)) => text.clone(),
        Some(AttributeValue::N(number)) => format!("{number:0>12}"),
        None => String::new(),
        Some(other) => panic!("unexpected key {other:?}"),
    };
    (text(item.get("pk")), text(item.get("sk")))
}

pub async fn client() -> Client {
    Client::new(&emulator_config().await)
}

pub const GROUPS: &str = "by_group";

/// A table keyed by `pk` (and `sk` of the given type, if any), with the index `by_group` on `g`/`at`.
pub async fn create_table(client: &Client, name: &str, sort_key: Option<ScalarAttributeType>) {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    let attribute = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("attribute")
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("g", ScalarAttributeType::S))
        .attribute_definitions(attribute("at", ScalarAttributeType::S))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(GROUPS)
                .key_schema(key("g", KeyType::Hash))
                .key_schema(key("at", KeyType::Range))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("index"),
        );
    if let Some(kind) = sort_key {
        request = request
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attribute("sk", kind));
    }
    request.send().await.expect("create table");
}

pub async fn put(client: &Client, table: &str, item: Item) {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put item");
}

/// Every item of the table, by key (a consistent, paged scan).
pub async fn everything(client: &Client, table: &str) -> BTreeMap<(String, String), Item> {
    let mut items = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .limit(3)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items.unwrap_or_default() {
            assert!(
                items.insert(key_of(&item), item).is_none(),
                "scan returned an item twice"
            );
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// The keys of a group in the index, in the index's order (paged by two).
pub async fn group(client: &Client, table: &str, group: &str) -> Keys {
    let mut keys = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .index_name(GROUPS)
            .key_condition_expression("g = :g")
            .expression_attribute_values(":g", s(group))
            .limit(2)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query index");
        keys.extend(page.items.unwrap_or_default().iter().map(key_of));
        start = page.last_evaluated_key;
        if start.is_none() {
            return keys;
        }
    }
}

pub type Keys = Vec<(String, String)>;

/// What a test can see of its two tables: every item of each, and the keys of every group of the index
/// in the index's order.
pub async fn state(
    client: &Client,
    ranged: &str,
    hashed: &str,
) -> (
    BTreeMap<(String, String), Item>,
    BTreeMap<(String, String), Item>,
    [Keys; 3],
) {
    (
        everything(client, ranged).await,
        everything(client, hashed).await,
        [
            group(client, ranged, "G1").await,
            group(client, ranged, "G2").await,
            group(client, ranged, "G3").await,
        ],
    )
}

pub fn transact_put(table: &str, attributes: Item, condition: Option<&str>) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(attributes))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .expect("put");
    TransactWriteItem::builder().put(put).build()
}

pub fn transact_delete(table: &str, key: Item, condition: Option<(&str, Item)>) -> TransactWriteItem {
    let (condition, values) = condition.unzip();
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_values(values)
        .build()
        .expect("delete");
    TransactWriteItem::builder().delete(delete).build()
}

pub fn transact_update(
    table: &str,
    key: Item,
    expression: &str,
    names: &[(&str, &str)],
    values: Item,
    condition: Option<&str>,
) -> TransactWriteItem {
    let names = names
        .iter()
        .map(|(placeholder, name)| ((*placeholder).to_owned(), (*name).to_owned()))
        .collect::<HashMap<_, _>>();
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression)
        .set_expression_attribute_names((!names.is_empty()).then_some(names))
        .set_expression_attribute_values(Some(values))
        .set_condition_expression(condition.map(str::to_owned))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("update");
    TransactWriteItem::builder().update(update).build()
}

pub fn transact_check(table: &str, key: Item, condition: &str, all_old: bool) -> TransactWriteItem {
    let check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression(condition)
        .set_return_values_on_condition_check_failure(
            all_old.then_some(ReturnValuesOnConditionCheckFailure::AllOld),
        )
        .build()
        .expect("condition check");
    TransactWriteItem::builder().condition_check(check).build()
}
