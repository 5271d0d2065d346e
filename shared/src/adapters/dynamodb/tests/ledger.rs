//! The delivery ledger: settling an attempt.

use super::*;

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
        failures: 0,
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
