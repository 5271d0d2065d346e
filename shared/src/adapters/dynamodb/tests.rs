//! The DynamoDB adapters against a client mocked at the SDK boundary (`aws-smithy-mocks`): each rule
//! answers one call the way DynamoDB would, so these tests pin how the adapters read cancellations,
//! conditional-check failures and service errors, and what they send back.

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

// ------------------------------------------------------------------------------------ activity store

/// An accepted `user.signup` event with one queued email notification, keyed by `idempotency_key`.
fn acceptance(idempotency_key: Option<&str>) -> Acceptance {
    crate::test_fixtures::acceptance(TENANT, idempotency_key, &[Channel::Email])
}

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

// -------------------------------------------------------------------------------------- config store

fn rule_spec() -> RuleSpec {
    RuleSpec {
        event: "user.signup".into(),
        channel: Channel::Email,
        template: "welcome".into(),
        condition: None,
        enabled: true,
    }
}

fn no_item() -> GetItemOutput {
    GetItemOutput::builder().build()
}

#[tokio::test]
async fn put_rule_refuses_an_event_type_at_its_rule_limit() {
    let get = mock!(Client::get_item)
        .match_requests(|request| {
            is_consistent_get(request, &format!("TENANT#{TENANT}"), "RULE#welcome-email")
        })
        .then_output(no_item);
    let transact = mock!(Client::transact_write_items)
        .match_requests(|request| {
            // A new rule: its put, then the increment of the event type's rule count.
            let [rule, count] = request.transact_items() else {
                return false;
            };
            let counted = count.update().is_some_and(|update| {
                update.key().get("sk") == Some(&s("RULECOUNT#user.signup"))
                    && update.condition_expression().is_some()
            });
            rule.put()
                .is_some_and(|put| put.item().get("sk") == Some(&s("RULE#welcome-email")))
                && counted
        })
        .then_error(|| cancelled(vec![reason("None"), reason("ConditionalCheckFailed")]));
    let store = DynamoConfigStore::new(client(RuleMode::Sequential, &[&get, &transact]), TABLE);

    let result = store
        .put_rule(
            &TenantId::new(TENANT),
            "welcome-email",
            &rule_spec(),
            Timestamp::now(),
        )
        .await;

    let Err(WriteError::Invalid(error)) = result else {
        panic!("expected Invalid, got {result:?}")
    };
    assert_eq!(error.pointer, "/event");
    assert!(error.message.contains("user.signup"), "{}", error.message);
    assert_eq!((get.num_calls(), transact.num_calls()), (1, 1));
}

#[tokio::test]
async fn put_rule_answers_conflict_when_it_keeps_losing_the_race() {
    let get = mock!(Client::get_item).then_output(no_item);
    let transact = mock!(Client::transact_write_items)
        .then_error(|| cancelled(vec![reason("ConditionalCheckFailed"), reason("None")]));
    // MatchAny: each rule answers every call of its operation.
    let store = DynamoConfigStore::new(client(RuleMode::MatchAny, &[&get, &transact]), TABLE);

    let result = store
        .put_rule(
            &TenantId::new(TENANT),
            "welcome-email",
            &rule_spec(),
            Timestamp::now(),
        )
        .await;

    assert!(
        matches!(&result, Err(WriteError::Conflict(message)) if message.contains("welcome-email")),
        "{result:?}"
    );
    assert_eq!(
        get.num_calls(),
        WRITE_ATTEMPTS,
        "re-reads the rule before every attempt"
    );
    assert_eq!(transact.num_calls(), WRITE_ATTEMPTS);
}

fn email_template(locale: &str) -> TemplateContent {
    TemplateContent {
        channel: Channel::Email,
        locale: locale.into(),
        subject: Some("Welcome, {{ name }}".into()),
        text: Some("Hello {{ name }}".into()),
        html: None,
        blocks: None,
    }
}

fn template_head(channel: &str, live: &[(&str, u32)]) -> Item {
    let live = live
        .iter()
        .map(|(locale, version)| ((*locale).to_owned(), n(*version)))
        .collect::<HashMap<_, _>>();
    item([
        ("pk", s(format!("TENANT#{TENANT}"))),
        ("sk", s("TPL#welcome")),
        ("name", s("welcome")),
        ("channel", s(channel)),
        ("default_locale", s("en")),
        ("live", AttributeValue::M(live)),
        ("created_at", n(1_790_000_000_000_i64)),
        ("updated_at", n(1_790_000_000_000_i64)),
    ])
}

#[tokio::test]
async fn put_template_refuses_a_name_taken_by_another_channel() {
    let get = mock!(Client::get_item)
        .match_requests(|request| is_consistent_get(request, &format!("TENANT#{TENANT}"), "TPL#welcome"))
        .then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(template_head("sms", &[("en", 1)])))
                .build()
        });
    let transact =
        mock!(Client::transact_write_items).then_output(|| TransactWriteItemsOutput::builder().build());
    let store = DynamoConfigStore::new(client(RuleMode::MatchAny, &[&get, &transact]), TABLE);

    let result = store
        .put_template(
            &TenantId::new(TENANT),
            "welcome",
            &email_template("en"),
            Timestamp::now(),
        )
        .await;

    assert!(
        matches!(&result, Err(WriteError::Conflict(message)) if message.contains("sms")),
        "{result:?}"
    );
    assert_eq!(get.num_calls(), 1);
    assert_eq!(transact.num_calls(), 0, "nothing is written");
}

#[tokio::test]
async fn put_template_moves_the_live_version_only_from_the_one_it_read() {
    let get = mock!(Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .set_item(Some(template_head("email", &[("en", 3)])))
            .build()
    });
    let transact = mock!(Client::transact_write_items)
        .match_requests(|request| {
            let [head, version] = request.transact_items() else {
                return false;
            };
            let head_moves_from_3_to_4 = head.update().is_some_and(|update| {
                let values = update.expression_attribute_values();
                values.and_then(|values| values.get(":current")) == Some(&n(3))
                    && values.and_then(|values| values.get(":version")) == Some(&n(4))
            });
            let version_4_is_new = version.put().is_some_and(|put| {
                put.item().get("sk") == Some(&s("TPLV#welcome#en#0000000004"))
                    && put.condition_expression() == Some("attribute_not_exists(pk)")
            });
            head_moves_from_3_to_4 && version_4_is_new
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let store = DynamoConfigStore::new(client(RuleMode::Sequential, &[&get, &transact]), TABLE);
    let now = Timestamp::now();

    let saved = store
        .put_template(&TenantId::new(TENANT), "welcome", &email_template("en"), now)
        .await
        .unwrap();

    assert_eq!(
        (saved.name.as_str(), saved.version, saved.created_at),
        ("welcome", 4, now)
    );
    assert_eq!(saved.content, email_template("en"));
    assert_eq!((get.num_calls(), transact.num_calls()), (1, 1));
}

// ------------------------------------------------------------------------------------------ ledger

fn settle_inputs() -> (
    TenantId,
    crate::domain::NotificationId,
    crate::domain::delivery::Attempt,
    crate::ports::Settlement,
) {
    let accepted = acceptance(None);
    let notification = &accepted.notifications[0];
    let attempt = crate::domain::delivery::Attempt {
        number: 2,
        at: Timestamp::now(),
        outcome: crate::domain::delivery::AttemptOutcome::Sent,
        error: None,
        duration_ms: 12,
        provider_message_id: Some("m-1".into()),
    };
    let settlement = crate::ports::Settlement {
        status: crate::domain::notification::NotificationStatus::Sent,
        reason: None,
        detail: None,
        provider_message_id: Some("m-1".into()),
        next_attempt_at: None,
    };
    (
        notification.tenant.clone(),
        notification.id.clone(),
        attempt,
        settlement,
    )
}

#[tokio::test]
async fn settle_reads_its_own_attempt_record_as_already_recorded_and_a_moved_status_as_a_lost_claim() {
    use crate::ports::DeliveryLedger;
    // (cancellation reasons: attempt put, status update) → what settle answers
    let cases = [
        (["ConditionalCheckFailed", "ConditionalCheckFailed"], true),
        (["None", "ConditionalCheckFailed"], false),
    ];
    for (codes, recorded) in cases {
        let transact = mock!(Client::transact_write_items)
            .then_error(move || cancelled(codes.iter().map(|code| reason(code)).collect()));
        let store = DynamoActivityStore::new(client(RuleMode::Sequential, &[&transact]), TABLE);
        let (tenant, id, attempt, settlement) = settle_inputs();

        let answer = store
            .settle(&tenant, &id, &attempt, &settlement, Timestamp::now())
            .await
            .unwrap();

        assert_eq!(answer, recorded, "{codes:?}");
        assert_eq!(transact.num_calls(), 1);
    }
}
