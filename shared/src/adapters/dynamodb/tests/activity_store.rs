//! The activity store: accepting events, the fan-out lease, the sparse index.

use super::*;

/// The idempotency item a first request stored under `key`, and the record it stands for.
fn first_request(key: &str) -> (Item, IdempotencyRecord) {
    let event_id = EventId::generate(Timestamp::from_millis(1_790_000_000_000));
    let response =
        json!({ "event_id": event_id, "notifications": [{ "channel": "email", "status": "queued" }] });
    let expires_at_seconds: i64 = 1_790_604_800;
    let stored = item([
        ("pk", s(format!("T#{TENANT}#IDEM#{key}"))),
        ("sk", s("IDEM")),
        ("key", s(key)),
        ("fingerprint", s("sha256:first-request")),
        ("event_id", s(event_id.as_str())),
        ("response", s(response.to_string())),
        ("expires_at", n(expires_at_seconds)),
    ]);
    let record = IdempotencyRecord {
        key: key.to_owned(),
        fingerprint: "sha256:first-request".into(),
        event_id,
        response,
        expires_at: Timestamp::from_millis(expires_at_seconds * 1000),
    };
    (stored, record)
}

#[tokio::test]
async fn record_acceptance_replays_the_record_returned_with_the_cancellation() {
    let acceptance = acceptance(Some("order-42"));
    let (old_item, old_record) = first_request("order-42");
    let transact = mock!(Client::transact_write_items)
        .match_requests(|request| {
            // The idempotency put is the first write, and asks for the old item when its condition fails.
            let first = request.transact_items().first().and_then(|write| write.put());
            request.transact_items().len() == 3
                && first.is_some_and(|put| {
                    put.item().get("pk") == Some(&s(format!("T#{TENANT}#IDEM#order-42")))
                        && put.return_values_on_condition_check_failure()
                            == Some(&ReturnValuesOnConditionCheckFailure::AllOld)
                })
        })
        .then_error(move || {
            let with_old_item = CancellationReason::builder()
                .code("ConditionalCheckFailed")
                .set_item(Some(old_item.clone()))
                .build();
            cancelled(vec![with_old_item, reason("None"), reason("None")])
        });
    let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&transact]), TABLE);

    let recorded = store.record_acceptance(&acceptance, LEASE).await.unwrap();

    assert_eq!(recorded, Recorded::Existing(old_record));
    assert_eq!(transact.num_calls(), 1);
}

#[tokio::test]
async fn record_acceptance_reads_the_record_when_the_cancellation_carries_no_item() {
    let acceptance = acceptance(Some("order-42"));
    let (old_item, old_record) = first_request("order-42");
    let transact = mock!(Client::transact_write_items).then_error(|| {
        cancelled(vec![
            reason("ConditionalCheckFailed"),
            reason("None"),
            reason("None"),
        ])
    });
    let get = mock!(Client::get_item)
        .match_requests(|request| is_consistent_get(request, &format!("T#{TENANT}#IDEM#order-42"), "IDEM"))
        .then_output(move || GetItemOutput::builder().set_item(Some(old_item.clone())).build());
    let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&transact, &get]), TABLE);

    let recorded = store.record_acceptance(&acceptance, LEASE).await.unwrap();

    assert_eq!(recorded, Recorded::Existing(old_record));
    assert_eq!((transact.num_calls(), get.num_calls()), (1, 1));
}

#[tokio::test]
async fn record_acceptance_takes_a_record_of_its_own_event_for_its_own_committed_write() {
    // The SDK retried a transaction whose first attempt committed but timed out: the retry meets the
    // record this very request wrote (its event id is made fresh per request).
    let acceptance = acceptance(Some("order-42"));
    let own = acceptance.idempotency.clone().unwrap();
    let own_item = item([
        ("pk", s(format!("T#{TENANT}#IDEM#order-42"))),
        ("sk", s("IDEM")),
        ("key", s("order-42")),
        ("fingerprint", s(&own.fingerprint)),
        ("event_id", s(own.event_id.as_str())),
        ("response", s(own.response.to_string())),
        ("expires_at", n(own.expires_at.epoch_seconds())),
    ]);
    let transact = mock!(Client::transact_write_items).then_error(move || {
        let with_own_item = CancellationReason::builder()
            .code("ConditionalCheckFailed")
            .set_item(Some(own_item.clone()))
            .build();
        cancelled(vec![
            with_own_item,
            reason("ConditionalCheckFailed"),
            reason("ConditionalCheckFailed"),
        ])
    });
    let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&transact]), TABLE);

    assert_eq!(
        store.record_acceptance(&acceptance, LEASE).await.unwrap(),
        Recorded::New
    );
    assert_eq!(transact.num_calls(), 1);
}

#[tokio::test]
async fn record_acceptance_without_a_key_takes_its_existing_event_for_its_own_committed_write() {
    let transact = mock!(Client::transact_write_items).then_error(|| {
        cancelled(vec![
            reason("ConditionalCheckFailed"),
            reason("ConditionalCheckFailed"),
        ])
    });
    let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&transact]), TABLE);

    assert_eq!(
        store.record_acceptance(&acceptance(None), LEASE).await.unwrap(),
        Recorded::New
    );
}

#[tokio::test]
async fn pending_fanouts_are_one_query_of_the_sparse_index() {
    let now = Timestamp::from_millis(1_790_000_000_000);
    let (first, second) = (EventId::generate(now), EventId::generate(now));
    let keys = [("acme", first.clone()), ("other#tenant", second.clone())];
    let query = mock!(Client::query)
        .match_requests(|request| {
            request.index_name() == Some("fanout_pending")
                && request.limit() == Some(100)
                && request.expression_attribute_values().is_some_and(|values| {
                    values.get(":pending") == Some(&s("PENDING"))
                        && values.get(":before") == Some(&n(1_790_000_000_000_i64))
                })
        })
        .then_output(move || {
            let items = keys
                .iter()
                .map(|(tenant, id)| item([("pk", s(format!("T#{tenant}#EVT#{id}"))), ("sk", s("EVENT"))]))
                .collect();
            aws_sdk_dynamodb::operation::query::QueryOutput::builder()
                .set_items(Some(items))
                .build()
        });
    let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&query]), TABLE);

    let pending = store.pending_fanouts(now, 100).await.unwrap();

    assert_eq!(
        pending,
        [
            (TenantId::new("acme"), first),
            (TenantId::new("other#tenant"), second)
        ]
    );
    assert_eq!(query.num_calls(), 1);
}

#[tokio::test]
async fn record_acceptance_retries_a_transaction_conflict() {
    let acceptance = acceptance(Some("order-42"));
    let conflict = mock!(Client::transact_write_items).then_error(|| {
        cancelled(vec![
            reason("TransactionConflict"),
            reason("None"),
            reason("None"),
        ])
    });
    let success = mock!(Client::transact_write_items)
        .match_requests(|request| request.transact_items().len() == 3)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&conflict, &success]), TABLE);

    let recorded = store.record_acceptance(&acceptance, LEASE).await.unwrap();

    assert_eq!(recorded, Recorded::New);
    assert_eq!((conflict.num_calls(), success.num_calls()), (1, 1));
}

#[tokio::test]
async fn record_acceptance_gives_up_on_a_conflict_that_never_clears() {
    let acceptance = acceptance(None);
    let conflict = mock!(Client::transact_write_items)
        .then_error(|| cancelled(vec![reason("None"), reason("TransactionConflict")]));
    let store = DynamoActivityStore::new(client(RuleMode::MatchAny, &[&conflict]), TABLE);

    let error = store.record_acceptance(&acceptance, LEASE).await.unwrap_err();

    assert!(error.retryable, "{error}");
    assert_eq!(error.operation, "TransactWriteItems(accept event)");
    assert_eq!(
        conflict.num_calls(),
        usize::try_from(TRANSACTION_ATTEMPTS).unwrap()
    );
}

#[tokio::test]
async fn record_acceptance_reports_throttling_as_retryable() {
    // A modeled error carries the code DynamoDB sent in its metadata, as the SDK's deserializer sets it.
    let throttled = mock!(Client::transact_write_items).then_error(|| {
        TransactWriteItemsError::ThrottlingException(
            ThrottlingException::builder()
                .message("Rate of requests exceeds the allowed throughput.")
                .meta(ErrorMetadata::builder().code("ThrottlingException").build())
                .build(),
        )
    });
    let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&throttled]), TABLE);

    let error = store
        .record_acceptance(&acceptance(Some("order-42")), LEASE)
        .await
        .unwrap_err();

    assert!(error.retryable, "{error}");
    assert_eq!(
        (error.service, error.operation),
        ("DynamoDB", "TransactWriteItems(accept event)")
    );
    assert!(error.message.starts_with("ThrottlingException:"), "{error}");
    assert_eq!(
        throttled.num_calls(),
        1,
        "a service error is not retried by the adapter"
    );
}

#[tokio::test]
async fn record_acceptance_classifies_service_errors_by_code() {
    // (HTTP status, error code, retryable)
    let cases = [
        (400, "ProvisionedThroughputExceededException", true),
        (400, "RequestLimitExceeded", true),
        (500, "InternalServerError", true),
        (503, "ServiceUnavailable", true),
        (500, "InternalFailure", true),
        (400, "AccessDeniedException", false),
        (400, "ResourceNotFoundException", false),
        (400, "ValidationException", false),
    ];
    for (status, code, retryable) in cases {
        let failing = mock!(Client::transact_write_items)
            .sequence()
            .http_status(status, Some(json_error(code)))
            .build();
        let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&failing]), TABLE);

        let error: BackendError = store
            .record_acceptance(&acceptance(Some("order-42")), LEASE)
            .await
            .unwrap_err();

        assert_eq!(error.retryable, retryable, "{code}: {error}");
        assert!(error.message.starts_with(&format!("{code}:")), "{code}: {error}");
        assert_eq!(failing.num_calls(), 1, "{code}");
    }
}

#[tokio::test]
async fn claim_fanout_takes_a_free_lease() {
    let now = Timestamp::from_millis(1_790_000_000_000);
    let id = EventId::generate(now);
    let event_pk = format!("T#{TENANT}#EVT#{id}");
    let update = mock!(Client::update_item)
        .match_requests(move |request| {
            let values = request.expression_attribute_values();
            request
                .key()
                .is_some_and(|key| key.get("pk") == Some(&s(&event_pk)) && key.get("sk") == Some(&s("EVENT")))
                && values.and_then(|values| values.get(":now")) == Some(&n(1_790_000_000_000_i64))
                && values.and_then(|values| values.get(":until")) == Some(&n(1_790_000_030_000_i64))
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&update]), TABLE);

    assert!(
        store
            .claim_fanout(&TenantId::new(TENANT), &id, now, LEASE)
            .await
            .unwrap()
    );
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test]
async fn claim_fanout_is_refused_when_the_condition_fails() {
    let held = mock!(Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .meta(
                    ErrorMetadata::builder()
                        .code("ConditionalCheckFailedException")
                        .build(),
                )
                .build(),
        )
    });
    let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&held]), TABLE);
    let now = Timestamp::now();

    let claimed = store
        .claim_fanout(&TenantId::new(TENANT), &EventId::generate(now), now, LEASE)
        .await
        .unwrap();

    assert!(!claimed);
    assert_eq!(held.num_calls(), 1);
}
