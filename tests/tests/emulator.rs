//! The emulator's DynamoDB keeps DynamoDB's semantics where `scripts/emulator.py` patches moto: a cancelled
//! TransactWriteItems leaves every item (and so every index) as it was, a committed one applies every item,
//! concurrent requests never lose or resurrect each other's writes, and a Query on a table's key answers as
//! before (order, paging, filters, projections).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)] // test code: a panic is a failed test

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, Select, TransactWriteItem, Update,
};
use herald_integration_tests::{emulator_config, unique};
use std::collections::{BTreeMap, HashMap};

type Item = HashMap<String, AttributeValue>;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn item(attributes: &[(&str, AttributeValue)]) -> Item {
    attributes
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

/// The key of a table item: `sk` is empty in a table without a range key; a number `sk` is zero-padded
/// so that keys sort as the items do.
fn key_of(item: &Item) -> (String, String) {
    let text = |value: Option<&AttributeValue>| match value {
        Some(AttributeValue::S(text)) => text.clone(),
        Some(AttributeValue::N(number)) => format!("{number:0>12}"),
        None => String::new(),
        Some(other) => panic!("unexpected key {other:?}"),
    };
    (text(item.get("pk")), text(item.get("sk")))
}

async fn client() -> Client {
    Client::new(&emulator_config().await)
}

const GROUPS: &str = "by_group";

/// A table keyed by `pk` (and `sk` of the given type, if any), with the index `by_group` on `g`/`at`.
async fn create_table(client: &Client, name: &str, sort_key: Option<ScalarAttributeType>) {
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

async fn put(client: &Client, table: &str, item: Item) {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put item");
}

/// Every item of the table, by key (a consistent, paged scan).
async fn everything(client: &Client, table: &str) -> BTreeMap<(String, String), Item> {
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
async fn group(client: &Client, table: &str, group: &str) -> Keys {
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

type Keys = Vec<(String, String)>;

/// What a test can see of its two tables: every item of each, and the keys of every group of the index
/// in the index's order.
async fn state(
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

/// Two tables, one with a range key and one without, seeded with items the transactions below touch and
/// items they do not.
async fn seeded_tables(client: &Client) -> (String, String) {
    let ranged = unique("emulator-ranged");
    let hashed = unique("emulator-hashed");
    create_table(client, &ranged, Some(ScalarAttributeType::S)).await;
    create_table(client, &hashed, None).await;
    let seed = [
        item(&[
            ("pk", s("A")),
            ("sk", s("1")),
            ("g", s("G1")),
            ("at", s("01")),
            ("n", n(1)),
            ("note", s("keep")),
            ("tags", AttributeValue::L(vec![s("a")])),
            ("m", AttributeValue::M(item(&[("x", n(1))]))),
        ]),
        item(&[
            ("pk", s("A")),
            ("sk", s("2")),
            ("g", s("G1")),
            ("at", s("02")),
            ("n", n(2)),
        ]),
        item(&[
            ("pk", s("A")),
            ("sk", s("3")),
            ("g", s("G2")),
            ("at", s("03")),
            ("n", n(3)),
        ]),
        item(&[("pk", s("A")), ("sk", s("4")), ("g", s("G2")), ("at", s("04"))]),
        item(&[("pk", s("B")), ("sk", s("1")), ("g", s("G1")), ("at", s("05"))]),
        item(&[("pk", s("C")), ("sk", s("1")), ("g", s("G2")), ("at", s("06"))]),
        item(&[("pk", s("C")), ("sk", s("2")), ("g", s("G2")), ("at", s("07"))]),
    ];
    for seeded in seed {
        put(client, &ranged, seeded).await;
    }
    put(client, &hashed, item(&[("pk", s("H1")), ("n", n(1))])).await;
    put(client, &hashed, item(&[("pk", s("H2")), ("n", n(2))])).await;
    (ranged, hashed)
}

fn transact_put(table: &str, attributes: Item, condition: Option<&str>) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(attributes))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .expect("put");
    TransactWriteItem::builder().put(put).build()
}

fn transact_delete(table: &str, key: Item, condition: Option<(&str, Item)>) -> TransactWriteItem {
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

fn transact_update(
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

fn transact_check(table: &str, key: Item, condition: &str, all_old: bool) -> TransactWriteItem {
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

/// Thirteen operations on both tables: updates, puts and deletes of existing and new items (in existing and
/// new partitions, one emptying a partition), and condition checks. With `fail`, the operations at 5, 7
/// and 8 fail their conditions (5 and 8 asking for the old item, 8's being absent).
fn mixed_transaction(ranged: &str, hashed: &str, fail: bool) -> Vec<TransactWriteItem> {
    let key = |pk: &str, sk: &str| item(&[("pk", s(pk)), ("sk", s(sk))]);
    vec![
        transact_update(
            ranged,
            key("A", "1"),
            "SET g = :g3, tags = list_append(tags, :more), m.x = m.x + :one ADD n :one REMOVE note",
            &[],
            item(&[
                (":g3", s("G3")),
                (":more", AttributeValue::L(vec![s("b")])),
                (":one", n(1)),
            ]),
            Some("n = :one"),
        ),
        transact_put(
            ranged,
            item(&[("pk", s("A")), ("sk", s("9")), ("g", s("G1")), ("at", s("09"))]),
            None,
        ),
        transact_put(
            ranged,
            item(&[("pk", s("NEW")), ("sk", s("1")), ("g", s("G3")), ("at", s("10"))]),
            Some("attribute_not_exists(pk)"),
        ),
        transact_delete(ranged, key("B", "1"), None),
        transact_update(
            ranged,
            key("NEW2", "1"),
            "SET g = :g3, #at = :at",
            &[("#at", "at")],
            item(&[(":g3", s("G3")), (":at", s("11"))]),
            None,
        ),
        transact_check(
            ranged,
            key("A", "2"),
            if fail {
                "attribute_not_exists(pk)"
            } else {
                "attribute_exists(pk)"
            },
            true,
        ),
        transact_put(
            ranged,
            item(&[
                ("pk", s("A")),
                ("sk", s("3")),
                ("g", s("G3")),
                ("at", s("03")),
                ("n", n(30)),
            ]),
            Some("attribute_exists(pk)"),
        ),
        transact_delete(
            ranged,
            key("A", "4"),
            Some((
                if fail {
                    "n = :one"
                } else {
                    "attribute_not_exists(n) OR n = :one"
                },
                item(&[(":one", n(1))]),
            )),
        ),
        transact_check(
            ranged,
            key("GHOST", "1"),
            if fail {
                "attribute_exists(pk)"
            } else {
                "attribute_not_exists(pk)"
            },
            true,
        ),
        transact_put(hashed, item(&[("pk", s("H3")), ("n", n(3))]), None),
        transact_update(
            hashed,
            item(&[("pk", s("H1"))]),
            "ADD n :one",
            &[],
            item(&[(":one", n(1))]),
            None,
        ),
        transact_delete(hashed, item(&[("pk", s("H2"))]), None),
        transact_check(ranged, key("C", "1"), "attribute_exists(pk)", false),
    ]
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_every_item_and_index_as_it_was() {
    let client = client().await;
    let (ranged, hashed) = seeded_tables(&client).await;
    let before = state(&client, &ranged, &hashed).await;

    let error = client
        .transact_write_items()
        .set_transact_items(Some(mixed_transaction(&ranged, &hashed, true)))
        .send()
        .await
        .expect_err("a condition fails");
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error()
    else {
        panic!("not a cancellation: {error:?}");
    };
    let reasons = cancelled
        .cancellation_reasons()
        .iter()
        .map(|reason| (reason.code().unwrap_or_default(), reason.item().cloned()))
        .collect::<Vec<_>>();
    let none = ("None", None);
    let a2 = item(&[
        ("pk", s("A")),
        ("sk", s("2")),
        ("g", s("G1")),
        ("at", s("02")),
        ("n", n(2)),
    ]);
    assert_eq!(
        reasons,
        [
            none.clone(),
            none.clone(),
            none.clone(),
            none.clone(),
            none.clone(),
            ("ConditionalCheckFailed", Some(a2)),
            none.clone(),
            ("ConditionalCheckFailed", None),
            ("ConditionalCheckFailed", None),
            none.clone(),
            none.clone(),
            none.clone(),
            none,
        ]
    );

    assert_eq!(state(&client, &ranged, &hashed).await, before);
    // The emptied partition is back, the new ones are not there, and the in-place update was undone.
    let b = client
        .query()
        .table_name(&ranged)
        .key_condition_expression("pk = :b")
        .expression_attribute_values(":b", s("B"))
        .send()
        .await
        .expect("query B");
    assert_eq!(b.count, 1);
    for pk in ["NEW", "NEW2", "GHOST"] {
        let absent = client
            .query()
            .table_name(&ranged)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .send()
            .await
            .expect("query new");
        assert_eq!(absent.count, 0, "{pk}");
    }
}

#[tokio::test]
async fn a_committed_transaction_applies_every_item() {
    let client = client().await;
    let (ranged, hashed) = seeded_tables(&client).await;
    let mut expected = everything(&client, &ranged).await;
    let mut expected_hashed = everything(&client, &hashed).await;

    client
        .transact_write_items()
        .set_transact_items(Some(mixed_transaction(&ranged, &hashed, false)))
        .send()
        .await
        .expect("the transaction commits");

    let key = |pk: &str, sk: &str| (pk.to_owned(), sk.to_owned());
    expected.insert(
        key("A", "1"),
        item(&[
            ("pk", s("A")),
            ("sk", s("1")),
            ("g", s("G3")),
            ("at", s("01")),
            ("n", n(2)),
            ("tags", AttributeValue::L(vec![s("a"), s("b")])),
            ("m", AttributeValue::M(item(&[("x", n(2))]))),
        ]),
    );
    expected.insert(
        key("A", "9"),
        item(&[("pk", s("A")), ("sk", s("9")), ("g", s("G1")), ("at", s("09"))]),
    );
    expected.insert(
        key("NEW", "1"),
        item(&[("pk", s("NEW")), ("sk", s("1")), ("g", s("G3")), ("at", s("10"))]),
    );
    expected.remove(&key("B", "1"));
    expected.insert(
        key("NEW2", "1"),
        item(&[("pk", s("NEW2")), ("sk", s("1")), ("g", s("G3")), ("at", s("11"))]),
    );
    expected.insert(
        key("A", "3"),
        item(&[
            ("pk", s("A")),
            ("sk", s("3")),
            ("g", s("G3")),
            ("at", s("03")),
            ("n", n(30)),
        ]),
    );
    expected.remove(&key("A", "4"));
    expected_hashed.insert(key("H3", ""), item(&[("pk", s("H3")), ("n", n(3))]));
    expected_hashed.insert(key("H1", ""), item(&[("pk", s("H1")), ("n", n(2))]));
    expected_hashed.remove(&key("H2", ""));

    assert_eq!(everything(&client, &ranged).await, expected);
    assert_eq!(everything(&client, &hashed).await, expected_hashed);
    assert_eq!(
        group(&client, &ranged, "G3").await,
        [key("A", "1"), key("A", "3"), key("NEW", "1"), key("NEW2", "1")]
    );
    assert_eq!(
        group(&client, &ranged, "G1").await,
        [key("A", "2"), key("A", "9")]
    );
}

#[tokio::test]
async fn a_transaction_rejected_as_invalid_writes_nothing() {
    let client = client().await;
    let (ranged, hashed) = seeded_tables(&client).await;
    let before = state(&client, &ranged, &hashed).await;

    // Two operations on one item: moto finds it at the second, after applying the first ones.
    let mut twice = mixed_transaction(&ranged, &hashed, false);
    twice.push(transact_put(
        &ranged,
        item(&[("pk", s("A")), ("sk", s("9")), ("g", s("G2")), ("at", s("99"))]),
        None,
    ));
    let error = client
        .transact_write_items()
        .set_transact_items(Some(twice))
        .send()
        .await
        .expect_err("two operations on one item");
    assert_eq!(error.code(), Some("ValidationException"), "{error:?}");
    assert!(
        error
            .message()
            .is_some_and(|message| message.contains("multiple operations on one item")),
        "{error:?}"
    );
    assert_eq!(state(&client, &ranged, &hashed).await, before);

    // An entry with two operations: moto finds it after applying the entries before it.
    let mut two_in_one = mixed_transaction(&ranged, &hashed, false);
    two_in_one.push(
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&hashed)
                    .set_item(Some(item(&[("pk", s("H4"))])))
                    .build()
                    .expect("put"),
            )
            .delete(
                Delete::builder()
                    .table_name(&hashed)
                    .set_key(Some(item(&[("pk", s("H5"))])))
                    .build()
                    .expect("delete"),
            )
            .build(),
    );
    let error = client
        .transact_write_items()
        .set_transact_items(Some(two_in_one))
        .send()
        .await
        .expect_err("two operations in one entry");
    assert_eq!(error.code(), Some("ValidationException"), "{error:?}");
    assert_eq!(state(&client, &ranged, &hashed).await, before);

    let too_many = (0..101)
        .map(|i| transact_put(&hashed, item(&[("pk", s(&format!("many-{i}")))]), None))
        .collect();
    let error = client
        .transact_write_items()
        .set_transact_items(Some(too_many))
        .send()
        .await
        .expect_err("more than 100 operations");
    assert_eq!(error.code(), Some("ValidationException"), "{error:?}");
    assert!(
        error.message().is_some_and(|message| message.contains("100")),
        "{error:?}"
    );
    assert_eq!(state(&client, &ranged, &hashed).await, before);
}

const TASKS: i64 = 16;
const ROUNDS: i64 = 6;

/// Each task, round after round: a transaction that commits (its own item, its counter, a shared counter);
/// one that is cancelled after writing its own items, the shared counter and a delete; a conditional put
/// that fails; and a race with every other task for the round's claim. Returns the rounds it won and
/// whatever answered otherwise than DynamoDB would (a write lost by another request's rollback shows here
/// first).
async fn busy_task(client: Client, table: String, task: i64) -> (Vec<i64>, Vec<String>) {
    let own = format!("T#{task}");
    let key = |pk: &str, sk: &str| item(&[("pk", s(pk)), ("sk", s(sk))]);
    let add = |amount: i64| item(&[(":n", n(amount))]);
    let mut won = Vec::new();
    let mut surprises = Vec::new();
    let cancellation = |error: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, _>| {
        matches!(
            error.as_service_error(),
            Some(TransactWriteItemsError::TransactionCanceledException(_))
        )
    };
    for round in 0..ROUNDS {
        let mut committed = vec![
            transact_put(
                &table,
                item(&[("pk", s(&own)), ("sk", s(&format!("R#{round}"))), ("v", n(round))]),
                Some("attribute_not_exists(pk)"),
            ),
            transact_update(&table, key(&own, "COUNT"), "ADD n :n", &[], add(1), None),
            transact_update(&table, key("SHARED", "hits"), "ADD n :n", &[], add(1), None),
        ];
        committed.rotate_left(usize::try_from(task % 3).expect("small"));
        if let Err(error) = client
            .transact_write_items()
            .set_transact_items(Some(committed))
            .send()
            .await
        {
            surprises.push(format!(
                "{own} round {round}: the transaction did not commit: {error:?}"
            ));
        }

        let mut cancelled = vec![
            transact_put(&table, key(&own, &format!("X#{round}")), None),
            transact_update(&table, key(&own, "COUNT"), "ADD n :n", &[], add(100), None),
            transact_update(&table, key("SHARED", "hits"), "ADD n :n", &[], add(1000), None),
            transact_check(
                &table,
                key(&own, &format!("R#{round}")),
                "attribute_not_exists(pk)",
                false,
            ),
        ];
        if round > 0 {
            cancelled.push(transact_delete(
                &table,
                key(&own, &format!("R#{}", round - 1)),
                None,
            ));
        }
        match client
            .transact_write_items()
            .set_transact_items(Some(cancelled))
            .send()
            .await
        {
            Err(error) if cancellation(&error) => {}
            other => surprises.push(format!("{own} round {round}: R#{round} is gone: {other:?}")),
        }

        let overwrite = client
            .put_item()
            .table_name(&table)
            .set_item(Some(item(&[
                ("pk", s(&own)),
                ("sk", s(&format!("R#{round}"))),
                ("v", n(-1)),
            ])))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if overwrite.is_ok() {
            surprises.push(format!("{own} round {round}: R#{round} was overwritten"));
        }

        let claim = client
            .transact_write_items()
            .transact_items(transact_put(
                &table,
                item(&[
                    ("pk", s("CLAIM")),
                    ("sk", s(&round.to_string())),
                    ("owner", n(task)),
                ]),
                Some("attribute_not_exists(pk)"),
            ))
            .transact_items(transact_put(&table, key(&own, &format!("WON#{round}")), None))
            .send()
            .await;
        match claim {
            Ok(_) => won.push(round),
            Err(error) if cancellation(&error) => {}
            Err(error) => surprises.push(format!("{own} round {round}: claim failed: {error:?}")),
        }
    }
    (won, surprises)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_lose_or_resurrect_each_others_writes() {
    let client = client().await;
    let table = unique("emulator-busy");
    create_table(&client, &table, Some(ScalarAttributeType::S)).await;

    let tasks = (0..TASKS)
        .map(|task| tokio::spawn(busy_task(client.clone(), table.clone(), task)))
        .collect::<Vec<_>>();
    let mut expected = BTreeMap::new();
    let mut insert = |attributes: Item| {
        expected.insert(key_of(&attributes), attributes);
    };
    let mut winners = BTreeMap::new();
    let mut surprises = Vec::new();
    for (task, handle) in (0..TASKS).zip(tasks) {
        let own = format!("T#{task}");
        let (won, task_surprises) = handle.await.expect("task");
        surprises.extend(task_surprises);
        for round in won {
            if let Some(other) = winners.insert(round, task) {
                surprises.push(format!("round {round} won by {other} and {task}"));
            }
            insert(item(&[("pk", s(&own)), ("sk", s(&format!("WON#{round}")))]));
            insert(item(&[
                ("pk", s("CLAIM")),
                ("sk", s(&round.to_string())),
                ("owner", n(task)),
            ]));
        }
        for round in 0..ROUNDS {
            insert(item(&[
                ("pk", s(&own)),
                ("sk", s(&format!("R#{round}"))),
                ("v", n(round)),
            ]));
        }
        insert(item(&[("pk", s(&own)), ("sk", s("COUNT")), ("n", n(ROUNDS))]));
    }
    insert(item(&[
        ("pk", s("SHARED")),
        ("sk", s("hits")),
        ("n", n(TASKS * ROUNDS)),
    ]));
    assert_eq!(
        winners.len(),
        usize::try_from(ROUNDS).expect("small"),
        "every round has a winner: {winners:?}"
    );

    let actual = everything(&client, &table).await;
    let lost = expected
        .keys()
        .filter(|key| !actual.contains_key(key))
        .collect::<Vec<_>>();
    let extra = actual
        .keys()
        .filter(|key| !expected.contains_key(key))
        .collect::<Vec<_>>();
    let changed = actual
        .iter()
        .filter(|(key, item)| expected.get(*key).is_some_and(|expected| expected != *item))
        .collect::<Vec<_>>();
    assert!(
        surprises.is_empty() && lost.is_empty() && extra.is_empty() && changed.is_empty(),
        "{surprises:#?}\nlost {lost:?}\nresurrected or leaked {extra:?}\nchanged {changed:?}"
    );
    assert_eq!(actual, expected);
}

/// Item `i` of a partition of numbered items, in the index group `G` at `{pk}{i:03}`.
fn numbered(pk: &str, i: i64) -> Item {
    item(&[
        ("pk", s(pk)),
        ("sk", n(i)),
        ("odd", n(i % 2)),
        ("g", s("G")),
        ("at", s(&format!("{pk}{i:03}"))),
        ("body", s(&format!("{pk} item {i}"))),
    ])
}

/// A partition `P` of 25 numbered items (a number range key, so 10 sorts after 9) among neighbours `O` and
/// `P2`; returns the partition's items in key order.
async fn partitioned_table(client: &Client) -> (String, Vec<Item>) {
    let table = unique("emulator-query");
    create_table(client, &table, Some(ScalarAttributeType::N)).await;
    // Written out of order, neighbours interleaved.
    for i in [
        7, 25, 1, 13, 2, 24, 10, 3, 19, 4, 12, 5, 6, 8, 9, 11, 14, 15, 16, 17, 18, 20, 21, 22, 23,
    ] {
        put(client, &table, numbered("P", i)).await;
        if i % 5 == 0 {
            put(client, &table, numbered("O", i)).await;
            put(client, &table, numbered("P2", i)).await;
        }
    }
    (table, (1..=25).map(|i| numbered("P", i)).collect())
}

/// All pages of a query, with the size of each page.
async fn pages(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> (Vec<Item>, Vec<usize>) {
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut start = None;
    loop {
        let page = query
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query");
        let page_items = page.items.unwrap_or_default();
        assert_eq!(usize::try_from(page.count).ok(), Some(page_items.len()));
        sizes.push(page_items.len());
        items.extend(page_items);
        start = page.last_evaluated_key;
        if start.is_none() {
            return (items, sizes);
        }
    }
}

#[tokio::test]
async fn a_query_on_the_table_key_reads_its_partition_in_order_with_paging_filters_and_projections() {
    let client = client().await;
    let (table, partition) = partitioned_table(&client).await;
    let on = |pk: &str| {
        client
            .query()
            .table_name(&table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
    };
    let numbers = |items: &[Item]| {
        items
            .iter()
            .map(|item| {
                item["sk"]
                    .as_n()
                    .expect("number")
                    .parse::<i64>()
                    .expect("integer")
            })
            .collect::<Vec<_>>()
    };

    let (all, _) = pages(on("P")).await;
    assert_eq!(all, partition);
    assert_eq!(numbers(&all), (1..=25).collect::<Vec<_>>());

    let (forward, sizes) = pages(on("P").limit(7)).await;
    assert_eq!(forward, partition);
    assert_eq!(sizes[..3], [7, 7, 7]);
    let (backward, _) = pages(on("P").limit(7).scan_index_forward(false)).await;
    assert_eq!(numbers(&backward), (1..=25).rev().collect::<Vec<_>>());
    for (forward, last) in [(true, 7), (false, 19)] {
        let first = on("P")
            .limit(7)
            .scan_index_forward(forward)
            .send()
            .await
            .expect("page");
        assert_eq!(
            first.last_evaluated_key,
            Some(item(&[("pk", s("P")), ("sk", n(last))])),
            "forward: {forward}"
        );
    }

    let between = on("P")
        .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
        .expression_attribute_values(":low", n(9))
        .expression_attribute_values(":high", n(12));
    let (between, _) = pages(between.limit(3)).await;
    assert_eq!(numbers(&between), [9, 10, 11, 12]);
    let (top, _) = pages(
        on("P")
            .key_condition_expression("pk = :pk AND sk > :low")
            .expression_attribute_values(":low", n(20))
            .scan_index_forward(false)
            .limit(2),
    )
    .await;
    assert_eq!(numbers(&top), [25, 24, 23, 22, 21]);

    let (odd, _) = pages(
        on("P")
            .filter_expression("odd = :one")
            .expression_attribute_values(":one", n(1))
            .limit(5),
    )
    .await;
    assert_eq!(numbers(&odd), (1..=25).step_by(2).collect::<Vec<_>>());

    let (projected, _) = pages(on("P").projection_expression("sk, body").limit(10)).await;
    assert_eq!(
        projected,
        partition
            .iter()
            .map(|item| item
                .iter()
                .filter(|(name, _)| *name == "sk" || *name == "body")
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect::<Item>())
            .collect::<Vec<_>>()
    );

    let counted = on("P").select(Select::Count).send().await.expect("count");
    assert_eq!((counted.count, counted.scanned_count), (25, 25));
    let (neighbour, _) = pages(on("P2")).await;
    assert_eq!(numbers(&neighbour), [5, 10, 15, 20, 25]);
    for absent in ["Q", "P1"] {
        let (nothing, sizes) = pages(on(absent)).await;
        assert!(nothing.is_empty() && sizes == [0], "{absent}");
    }
    // A partition a failed condition check looked at (moto leaves an empty partition behind) and one
    // whose only item was deleted.
    let _ = client
        .transact_write_items()
        .transact_items(transact_check(
            &table,
            item(&[("pk", s("LOOKED")), ("sk", n(1))]),
            "attribute_exists(pk)",
            false,
        ))
        .send()
        .await
        .expect_err("absent");
    put(&client, &table, item(&[("pk", s("GONE")), ("sk", n(1))])).await;
    client
        .delete_item()
        .table_name(&table)
        .set_key(Some(item(&[("pk", s("GONE")), ("sk", n(1))])))
        .send()
        .await
        .expect("delete");
    for emptied in ["LOOKED", "GONE"] {
        let (nothing, _) = pages(on(emptied)).await;
        assert!(nothing.is_empty(), "{emptied}");
    }

    // A table without a range key: the partition is the one item.
    let hashed = unique("emulator-hashed-query");
    create_table(&client, &hashed, None).await;
    put(&client, &hashed, item(&[("pk", s("K")), ("v", n(1))])).await;
    put(&client, &hashed, item(&[("pk", s("K2")), ("v", n(2))])).await;
    let one = client
        .query()
        .table_name(&hashed)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s("K"))
        .send()
        .await
        .expect("query hashed");
    assert_eq!(
        one.items.unwrap_or_default(),
        [item(&[("pk", s("K")), ("v", n(1))])]
    );

    // The index still answers from the whole table.
    let (indexed, _) = pages(
        client
            .query()
            .table_name(&table)
            .index_name(GROUPS)
            .key_condition_expression("g = :g AND begins_with(#at, :p)")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":g", s("G"))
            .expression_attribute_values(":p", s("P"))
            .limit(4),
    )
    .await;
    let mut expected_index = partition.clone();
    expected_index.extend([5, 10, 15, 20, 25].map(|i| numbered("P2", i)));
    assert_eq!(indexed, expected_index);
}
