//! Values the unit tests of several modules build alike.

use crate::domain::delivery::{Outgoing, RenderedMessage, SendError, SendReceipt};
use crate::domain::event::{Acceptance, IdempotencyRecord, Recipient, StoredEvent};
use crate::domain::notification::{Notification, NotificationStatus, PinnedTemplate};
use crate::domain::{Channel, EventId, NotificationId, TenantId, Timestamp};
use crate::ports::Sender;
use serde_json::json;

/// `send` for tests that care about the address and the message only: one tenant and notification for all.
pub trait SendTo {
    async fn send_to(&self, to: &str, message: &RenderedMessage) -> Result<SendReceipt, SendError>;
}

impl<S: Sender> SendTo for S {
    async fn send_to(&self, to: &str, message: &RenderedMessage) -> Result<SendReceipt, SendError> {
        let tenant = TenantId::new("acme");
        let notification_id = NotificationId::for_rule(&EventId::generate(Timestamp::from_millis(0)), "test");
        self.send(&Outgoing {
            tenant: &tenant,
            notification_id: &notification_id,
            user_id: None,
            to,
            message,
        })
        .await
    }
}

/// An accepted `user.signup` event of `tenant`, received now, keyed by `idempotency_key`, with one queued
/// notification per channel (rule `welcome-{channel}`).
pub fn acceptance(tenant: &str, idempotency_key: Option<&str>, channels: &[Channel]) -> Acceptance {
    let now = Timestamp::now();
    let tenant = TenantId::new(tenant);
    let id = EventId::generate(now);
    let expires_at = now.plus_seconds(7 * 86_400);
    let notifications: Vec<Notification> = channels
        .iter()
        .map(|&channel| {
            let rule_id = format!("welcome-{channel}");
            Notification {
                id: NotificationId::for_rule(&id, &rule_id),
                tenant: tenant.clone(),
                event_id: id.clone(),
                event: "user.signup".into(),
                rule_id,
                channel,
                status: NotificationStatus::Queued,
                reason: None,
                detail: None,
                to: Some("ada@example.com".into()),
                template: "welcome".into(),
                pinned: Some(PinnedTemplate {
                    name: "welcome".into(),
                    locale: "en".into(),
                    version: 3,
                }),
                user_id: Some("user-1".into()),
                created_at: now,
                updated_at: now,
                sent_at: None,
                provider_message_id: None,
                next_attempt_at: None,
                failures: 0,
                deliver_by: None,
                correlation_id: Some("req-1".into()),
            }
        })
        .collect();
    let idempotency = idempotency_key.map(|key| IdempotencyRecord {
        key: key.to_owned(),
        fingerprint: "sha256:this-request".into(),
        event_id: id.clone(),
        response: json!({ "event_id": id }),
        expires_at,
    });
    let event = StoredEvent {
        tenant,
        id,
        event: "user.signup".into(),
        received_at: now,
        payload: json!({ "plan": "pro" }),
        recipient: Recipient {
            email: Some("ada@example.com".into()),
            ..Recipient::default()
        },
        notification_ids: notifications.iter().map(|n| n.id.clone()).collect(),
        idempotency_key: idempotency_key.map(str::to_owned),
        fanout_pending: true,
        expires_at,
    };
    Acceptance {
        idempotency,
        event,
        notifications,
        rate_counters: Vec::new(),
    }
}
