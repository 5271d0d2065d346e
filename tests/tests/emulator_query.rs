//! A Query on a table's key answers on the emulator as before `scripts/emulator.py` made it read only that
//! partition: order, paging both ways, key conditions, filters with a limit, projections, counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)] // test code: a panic is a failed test

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{ScalarAttributeType, Select};
use herald_integration_tests::table_fixture::*;
use herald_integration_tests::unique;

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
