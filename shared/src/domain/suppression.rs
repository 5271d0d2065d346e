//! The per-tenant suppression list: email addresses Herald will not send to again, because the address
//! bounced permanently or its owner complained (SES's feedback), or because the tenant said so.

use super::provider_feedback::{FeedbackKind, ProviderFeedback};
use super::{NotificationId, Timestamp};
use serde_json::{Value, json};

/// Why an address is on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionReason {
    Bounce,
    Complaint,
}

impl SuppressionReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Bounce => "bounce",
            SuppressionReason::Complaint => "complaint",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [SuppressionReason::Bounce, SuppressionReason::Complaint]
            .into_iter()
            .find(|reason| reason.as_str() == text)
    }
}

/// One suppressed address, with what put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// As [`suppression_key`] writes it.
    pub address: String,
    pub reason: SuppressionReason,
    /// The provider's words (the bounce's diagnostic, the complaint's type).
    pub detail: String,
    /// The notification whose message bounced or was complained about.
    pub notification_id: Option<NotificationId>,
    pub created_at: Timestamp,
}

impl Suppression {
    /// The entries a piece of feedback adds: one per address it names, for a permanent bounce or a
    /// complaint; none for anything else.
    pub fn from_feedback(feedback: &ProviderFeedback) -> Vec<Self> {
        let reason = match feedback.kind {
            FeedbackKind::Bounce { permanent: true } => SuppressionReason::Bounce,
            FeedbackKind::Complaint => SuppressionReason::Complaint,
            FeedbackKind::Bounce { permanent: false } | FeedbackKind::Delivery => return Vec::new(),
        };
        feedback
            .recipients
            .iter()
            .map(|address| Self {
                address: suppression_key(address),
                reason,
                detail: feedback.detail.clone(),
                notification_id: Some(feedback.notification_id.clone()),
                created_at: feedback.at,
            })
            .collect()
    }

    /// What a notification held back by this entry says (`suppressed`, `address_suppressed`).
    pub fn held_back_detail(&self) -> String {
        format!(
            "the address is on the suppression list ({} on {}); DELETE /v1/suppressions/{} to send to it again",
            self.reason.as_str(),
            self.created_at.to_rfc3339(),
            self.address
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "address": self.address,
            "reason": self.reason.as_str(),
            "detail": self.detail,
            "notification_id": self.notification_id.as_ref().map(ToString::to_string),
            "created_at": self.created_at.to_rfc3339(),
        })
    }
}

/// An address as the list keys it: trimmed and lowercased, as SES's own suppression list compares
/// addresses, so `Ada@Example.com` bouncing suppresses `ada@example.com`.
pub fn suppression_key(address: &str) -> String {
    address.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    fn feedback(kind: FeedbackKind) -> ProviderFeedback {
        ProviderFeedback {
            kind,
            tenant: TenantId::new("acme"),
            notification_id: NotificationId::parse("ntf_0193a5b27c4e7d108a2b3c4d5e6f7a8b").unwrap(),
            provider_message_id: "ses-1".into(),
            recipients: vec!["Ada@Example.com ".into(), "bob@example.com".into()],
            detail: "Permanent: General".into(),
            at: Timestamp::from_millis(1_800_000_000_000),
        }
    }

    #[test]
    fn permanent_bounces_and_complaints_suppress_every_address_they_name() {
        let entries = Suppression::from_feedback(&feedback(FeedbackKind::Bounce { permanent: true }));
        let addresses: Vec<&str> = entries.iter().map(|entry| entry.address.as_str()).collect();
        assert_eq!(addresses, ["ada@example.com", "bob@example.com"]);
        assert!(
            entries
                .iter()
                .all(|entry| entry.reason == SuppressionReason::Bounce)
        );
        let complained = Suppression::from_feedback(&feedback(FeedbackKind::Complaint));
        assert_eq!(complained[0].reason, SuppressionReason::Complaint);
        assert_eq!(complained[0].to_json()["reason"], "complaint");
    }

    #[test]
    fn transient_bounces_and_deliveries_suppress_nothing() {
        assert!(Suppression::from_feedback(&feedback(FeedbackKind::Bounce { permanent: false })).is_empty());
        assert!(Suppression::from_feedback(&feedback(FeedbackKind::Delivery)).is_empty());
    }
}
