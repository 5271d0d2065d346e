//! Webhook rules: one notification per active endpoint of the tenant that receives the event, addressed to
//! the endpoint's id, each with an id of its own; none for an endpoint disabled, filtered out, or another
//! tenant's; endpoints read once per cache lifetime, and a failed read refuses the event.

use super::*;
use crate::domain::webhook::{DisabledBy, EndpointSpec, SigningSecret};
use crate::ports::WebhookEndpointStore;

async fn register(ingest: &MemoryIngest, tenant: &TenantId, id: &str, spec: Value) {
    let spec = EndpointSpec::parse(&spec, |_| Ok(())).unwrap();
    let secret = SigningSecret::generate().unwrap();
    ingest
        .catalog
        .store()
        .put_endpoint(tenant, id, &spec, &secret, Timestamp::now())
        .await
        .unwrap();
}

/// The webhook notifications of an answer: endpoint id → notification id.
async fn webhooks(ingest: &MemoryIngest, answer: &Answer) -> BTreeMap<String, NotificationId> {
    let ids: Vec<NotificationId> = answer.notifications().into_values().collect();
    let all: Vec<NotificationId> = answer.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| NotificationId::parse(n["id"].as_str().unwrap()).unwrap())
        .collect();
    assert!(ids.iter().all(|id| all.contains(id)));
    let stored = ingest.activity().notifications(&acme(), &all).await.unwrap();
    stored
        .into_iter()
        .filter(|n| n.channel == Channel::Webhook)
        .map(|n| {
            assert_eq!(n.status, NotificationStatus::Queued, "{n:?}");
            (n.to.clone().unwrap(), n.id)
        })
        .collect()
}

#[tokio::test]
async fn each_active_endpoint_that_receives_the_event_gets_a_notification_of_its_own() {
    let ingest = ingest().await;
    let url = "https://hooks.example.com/in";
    register(&ingest, &acme(), "all", json!({"url": url})).await;
    register(
        &ingest,
        &acme(),
        "orders",
        json!({"url": url, "event_types": ["order_created"]}),
    )
    .await;
    register(
        &ingest,
        &acme(),
        "refunds",
        json!({"url": url, "event_types": ["refund_issued"]}),
    )
    .await;
    register(&ingest, &acme(), "paused", json!({"url": url, "enabled": false})).await;
    register(&ingest, &acme(), "gone", json!({"url": url})).await;
    let store = ingest.catalog.store();
    store
        .disable(&acme(), "gone", DisabledBy::Gone, Timestamp::now())
        .await
        .unwrap();
    register(&ingest, &TenantId::new("globex"), "theirs", json!({"url": url})).await;

    let answer = call(&ingest, post(&order(1), None)).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let sent_to = webhooks(&ingest, &answer).await;
    assert_eq!(sent_to.keys().collect::<Vec<_>>(), ["all", "orders"]);
    assert_ne!(sent_to["all"], sent_to["orders"]);
    let queued = ingest.outbox.queue().enqueued(Channel::Webhook);
    assert_eq!(queued.len(), 2, "each on the webhook queue once");
    assert!(
        queued.iter().all(|envelope| envelope
            .provider
            .as_deref()
            .is_some_and(|p| p.starts_with("webhook:acme:"))),
        "each endpoint its own circuit: {queued:?}"
    );

    // The same request again is the same notifications (ids derived from the event, rule and endpoint).
    let keyed = call(&ingest, post(&order(2), Some("k"))).await;
    let replayed = call(&ingest, post(&order(2), Some("k"))).await;
    assert_eq!(
        webhooks(&ingest, &keyed).await,
        webhooks(&ingest, &replayed).await
    );
}

#[tokio::test]
async fn without_endpoints_a_webhook_rule_makes_nothing_and_the_endpoints_are_read_once_per_cache() {
    let ingest = ingest().await;
    let answer = call(&ingest, post(&order(1), None)).await;
    assert_eq!(answer.status, 202);
    assert!(webhooks(&ingest, &answer).await.is_empty());
    assert!(ingest.outbox.queue().enqueued(Channel::Webhook).is_empty());

    // The fixture's cache lasts no time: an endpoint registered now receives the next event.
    register(
        &ingest,
        &acme(),
        "late",
        json!({"url": "https://hooks.example.com/in"}),
    )
    .await;
    let answer = call(&ingest, post(&order(2), None)).await;
    assert_eq!(webhooks(&ingest, &answer).await.len(), 1);
}

#[tokio::test]
async fn endpoints_that_cannot_be_read_refuse_the_event_with_503_and_record_nothing() {
    let ingest = ingest().await;
    ingest
        .catalog
        .store()
        .webhooks
        .failpoints
        .set("endpoints", Fault::Fail, 1);
    let refused = call(&ingest, post(&order(1), Some("k1"))).await;
    assert_eq!(
        (refused.status, refused.problem_code()),
        (503, "service_unavailable")
    );
    nothing_recorded(&ingest, "after a failed endpoint read");
    let retried = call(&ingest, post(&order(1), Some("k1"))).await;
    assert_eq!(retried.status, 202);
}
