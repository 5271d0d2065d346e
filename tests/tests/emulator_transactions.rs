//! The emulator's DynamoDB transactions keep DynamoDB's semantics where `scripts/emulator.py` patches moto: a
//! cancelled TransactWriteItems leaves every item (and so every index) as it was, a committed one applies every
//! item, an invalid one writes nothing, and concurrent requests never lose or resurrect each other's writes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)] // test code: a panic is a failed test

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ScalarAttributeType, TransactWriteItem};
use herald_integration_tests::table_fixture::*;
use herald_integration_tests::unique;
use std::collections::BTreeMap;

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
