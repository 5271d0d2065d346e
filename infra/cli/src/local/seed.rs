//! The local stack's demo data: tenant `local` with key `herald-dev-key`, and the README's example
//! (event type `order_created`, a template and a rule per channel), so the README's curl works at once. The
//! webhook rule sends to every endpoint the tenant registers (none at first: the README registers the sink);
//! the push rule to every device the event's user registered (none at first: the README registers one).

use herald::adapters::dynamodb::DynamoConfigStore;
use herald::domain::api_key::{KeyScope, NewApiKey, key_hash};
use herald::domain::event_type::EventTypeSpec;
use herald::domain::rule::RuleSpec;
use herald::domain::template::TemplateContent;
use herald::domain::{FieldError, TenantId, Timestamp};
use herald::ports::{ApiKeyStore, BackendError, EventTypeStore, RuleStore, TemplateStore, WriteError};
use serde_json::{Value, json};

pub const TENANT: &str = "local";
pub const API_KEY: &str = "herald-dev-key";

/// Why the demo data could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The demo data itself is wrong (a bug here, not the user's).
    #[error("demo {what} is invalid: {errors:?}")]
    InvalidDemo {
        what: &'static str,
        errors: Vec<FieldError>,
    },
    #[error("seeding the demo data failed: {0}")]
    Backend(#[from] BackendError),
    #[error("seeding the demo data failed: {0}")]
    Write(#[from] WriteError),
}

fn spec<T>(parsed: Result<T, Vec<FieldError>>, what: &'static str) -> Result<T, SeedError> {
    parsed.map_err(|errors| SeedError::InvalidDemo { what, errors })
}

/// Writes the demo data; running it again changes nothing that is already there.
pub async fn seed(store: &DynamoConfigStore) -> Result<(), SeedError> {
    let tenant = TenantId::new(TENANT);
    let now = Timestamp::now();
    // The dev key is well known and short: it is written here, never through `herald keys`' checks.
    if store.key_grant(&key_hash(API_KEY)).await?.is_none() {
        let key = NewApiKey::new(&tenant, API_KEY, Some("dev"), KeyScope::Full, now);
        store.create_api_key(&key).await?;
    }
    let event_type = spec(
        EventTypeSpec::from_json(&json!({
            "description": "An order was placed",
            "category": "orders",
            "schema": {"type": "object", "required": ["order_id"],
                       "properties": {"order_id": {"type": ["integer", "string"]}, "total": {"type": "number"}}}
        })),
        "event type",
    )?;
    store
        .put_event_type(&tenant, "order_created", &event_type, now)
        .await?;
    let templates: [(&str, Value); 5] = [
        (
            "order-confirmation",
            json!({"channel": "email", "locale": "en",
            "subject": "Order #{{ payload.order_id }} confirmed",
            "text": "Thanks for your order #{{ payload.order_id }}. Total: {{ payload.total }}.",
            "html": "<h1>Thanks!</h1><p>Your order <b>#{{ payload.order_id }}</b> is confirmed. Total: {{ payload.total }}.</p>"}),
        ),
        (
            "order-sms",
            json!({"channel": "sms", "locale": "en",
            "text": "Order #{{ payload.order_id }} confirmed. Total: {{ payload.total }}."}),
        ),
        (
            "order-slack",
            json!({"channel": "slack", "locale": "en",
            "text": "New order #{{ payload.order_id }} ({{ payload.total }})",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*New order* #{{ payload.order_id }} — total {{ payload.total }}"}}]}),
        ),
        (
            "order-webhook",
            json!({"channel": "webhook", "locale": "en",
            "text": "{\"type\": {{ event.name }}, \"event_id\": {{ event.id }}, \"data\": {{ payload }}}"}),
        ),
        (
            "order-push",
            json!({"channel": "push", "locale": "en",
            "title": "Order #{{ payload.order_id }} confirmed",
            "text": "Total: {{ payload.total }}. We will tell you when it ships.",
            "data": {"order_id": "{{ payload.order_id }}"}}),
        ),
    ];
    for (name, body) in templates {
        if store.template_head(&tenant, name).await?.is_none() {
            let content = spec(TemplateContent::from_json(&body), "template")?;
            store.put_template(&tenant, name, &content, now).await?;
        }
    }
    for (id, channel, template) in [
        ("order-email", "email", "order-confirmation"),
        ("order-sms", "sms", "order-sms"),
        ("order-slack", "slack", "order-slack"),
        ("order-webhook", "webhook", "order-webhook"),
        ("order-push", "push", "order-push"),
    ] {
        let rule = spec(
            RuleSpec::from_json(&json!({"event": "order_created", "channel": channel, "template": template})),
            "rule",
        )?;
        store.put_rule(&tenant, id, &rule, now).await?;
    }
    Ok(())
}
