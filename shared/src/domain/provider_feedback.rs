//! What a provider says about a message after it accepted it: SES's bounces, complaints and deliveries, as
//! SES event publishing sends them (configuration set → SNS → SQS). Each names the notification it is about
//! through the message tags Herald sends every email with, so no lookup by SES message id is needed.

use super::{NotificationId, TenantId, Timestamp};
use serde::Deserialize;
use std::collections::HashMap;

/// The message tag that names the tenant, hex-encoded: SES tag values allow only letters, digits, `_` and
/// `-`, and a tenant id may hold a `.`.
pub const TENANT_TAG: &str = "herald-tenant-hex";
/// The message tag that names the notification (`ntf_` and 32 hex digits: characters SES allows).
pub const NOTIFICATION_TAG: &str = "herald-notification";

pub fn tenant_tag_value(tenant: &TenantId) -> String {
    hex::encode(tenant.as_str())
}

/// What happened to the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedbackKind {
    /// The recipient's server refused it. A permanent bounce (no such mailbox) will happen again.
    Bounce { permanent: bool },
    /// The recipient marked it as spam.
    Complaint,
    /// The recipient's server accepted it.
    Delivery,
}

impl FeedbackKind {
    /// Whether the address must not be sent to again (the suppression list).
    pub fn suppresses(&self) -> bool {
        matches!(
            self,
            FeedbackKind::Bounce { permanent: true } | FeedbackKind::Complaint
        )
    }
}

/// One event about one notification's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFeedback {
    pub kind: FeedbackKind,
    pub tenant: TenantId,
    pub notification_id: NotificationId,
    pub provider_message_id: String,
    /// The addresses the event is about (a bounce may name some of a message's recipients only).
    pub recipients: Vec<String>,
    /// The provider's words: bounce type and diagnostic, complaint type, or the SMTP answer.
    pub detail: String,
    pub at: Timestamp,
}

/// Why a message on the feedback queue is not feedback Herald can act on. Never worth retrying: the same
/// message will be the same tomorrow.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FeedbackError {
    #[error("not an SES event: {0}")]
    NotAnSesEvent(String),
    #[error("an SES event about a message Herald did not tag (no {0} tag)")]
    Untagged(&'static str),
    #[error("malformed {0}")]
    Malformed(&'static str),
}

#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesEvent {
    event_type: String,
    mail: Mail,
    bounce: Option<SesBounce>,
    complaint: Option<SesComplaint>,
    delivery: Option<SesDelivery>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail {
    message_id: String,
    #[serde(default)]
    tags: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
    diagnostic_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesBounce {
    bounce_type: String,
    bounce_sub_type: Option<String>,
    bounced_recipients: Vec<Recipient>,
    timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesComplaint {
    complained_recipients: Vec<Recipient>,
    complaint_feedback_type: Option<String>,
    timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesDelivery {
    recipients: Vec<String>,
    smtp_response: Option<String>,
    timestamp: String,
}

fn tag<'a>(mail: &'a Mail, name: &'static str) -> Result<&'a str, FeedbackError> {
    mail.tags
        .get(name)
        .and_then(|values| values.first())
        .map(String::as_str)
        .ok_or(FeedbackError::Untagged(name))
}

fn at(timestamp: &str) -> Result<Timestamp, FeedbackError> {
    Timestamp::parse_rfc3339(timestamp).ok_or(FeedbackError::Malformed("timestamp"))
}

/// An SQS message body from the feedback queue: the SES event itself (raw message delivery) or inside the
/// SNS notification that carried it. `Ok(None)` for an event Herald does not act on (a send, an open, a
/// delay): acknowledged and dropped.
pub fn parse_ses_event(body: &str) -> Result<Option<ProviderFeedback>, FeedbackError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|error| FeedbackError::NotAnSesEvent(error.to_string()))?;
    let event_json = match serde_json::from_value::<SnsEnvelope>(value.clone()) {
        Ok(envelope) if envelope.kind == "Notification" => serde_json::from_str(&envelope.message)
            .map_err(|error| FeedbackError::NotAnSesEvent(error.to_string()))?,
        Ok(envelope) => {
            return Err(FeedbackError::NotAnSesEvent(format!(
                "an SNS {} message",
                envelope.kind
            )));
        }
        Err(_) => value,
    };
    let event: SesEvent = serde_json::from_value(event_json)
        .map_err(|error| FeedbackError::NotAnSesEvent(error.to_string()))?;
    let (kind, recipients, detail, timestamp) = match event.event_type.as_str() {
        "Bounce" => {
            let bounce = event.bounce.ok_or(FeedbackError::Malformed("bounce"))?;
            let diagnostic = bounce
                .bounced_recipients
                .iter()
                .find_map(|recipient| recipient.diagnostic_code.clone());
            let detail = [
                Some(bounce.bounce_type.clone()),
                bounce.bounce_sub_type,
                diagnostic,
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
            let recipients = bounce
                .bounced_recipients
                .into_iter()
                .map(|r| r.email_address)
                .collect();
            let kind = FeedbackKind::Bounce {
                permanent: bounce.bounce_type == "Permanent",
            };
            (kind, recipients, detail, bounce.timestamp)
        }
        "Complaint" => {
            let complaint = event.complaint.ok_or(FeedbackError::Malformed("complaint"))?;
            let detail = complaint
                .complaint_feedback_type
                .map_or_else(|| "complaint".to_owned(), |kind| format!("complaint: {kind}"));
            let recipients = complaint
                .complained_recipients
                .into_iter()
                .map(|r| r.email_address)
                .collect();
            (FeedbackKind::Complaint, recipients, detail, complaint.timestamp)
        }
        "Delivery" => {
            let delivery = event.delivery.ok_or(FeedbackError::Malformed("delivery"))?;
            let detail = delivery.smtp_response.unwrap_or_else(|| "delivered".to_owned());
            (
                FeedbackKind::Delivery,
                delivery.recipients,
                detail,
                delivery.timestamp,
            )
        }
        _ => return Ok(None),
    };
    let tenant_hex = tag(&event.mail, TENANT_TAG)?;
    let tenant = hex::decode(tenant_hex)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(FeedbackError::Malformed("tenant tag"))?;
    let notification_id = tag(&event.mail, NOTIFICATION_TAG)?;
    Ok(Some(ProviderFeedback {
        kind,
        tenant: TenantId::new(tenant),
        notification_id: NotificationId::parse(notification_id)
            .ok_or(FeedbackError::Malformed("notification tag"))?,
        provider_message_id: event.mail.message_id,
        recipients,
        detail,
        at: at(&timestamp)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOTIFICATION: &str = "ntf_0193a5b27c4e7d108a2b3c4d5e6f7a8b";

    /// SES's event, as the SES developer guide's examples have it, tagged as Herald tags its emails.
    fn event(event_type: &str, detail: serde_json::Value) -> serde_json::Value {
        let mut event = json!({
            "eventType": event_type,
            "mail": {
                "timestamp": "2026-12-02T15:00:00.000Z",
                "source": "notifications@example.com",
                "messageId": "010f0193a5b2-example-000000",
                "destination": ["ada@example.com"],
                "tags": {
                    TENANT_TAG: [tenant_tag_value(&TenantId::new("acme.eu"))],
                    NOTIFICATION_TAG: [NOTIFICATION],
                    "ses:configuration-set": ["herald"]
                }
            }
        });
        let field = event_type.to_ascii_lowercase();
        event[field.as_str()] = detail;
        event
    }

    fn permanent_bounce() -> serde_json::Value {
        event(
            "Bounce",
            json!({
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [{
                    "emailAddress": "ada@example.com",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown"
                }],
                "timestamp": "2026-12-02T15:00:01.000Z",
                "feedbackId": "feedback-1"
            }),
        )
    }

    #[test]
    fn a_permanent_bounce_names_its_notification_and_suppresses() {
        let feedback = parse_ses_event(&permanent_bounce().to_string()).unwrap().unwrap();
        assert_eq!(feedback.kind, FeedbackKind::Bounce { permanent: true });
        assert!(feedback.kind.suppresses());
        assert_eq!(feedback.tenant, TenantId::new("acme.eu"));
        assert_eq!(feedback.notification_id.to_string(), NOTIFICATION);
        assert_eq!(feedback.provider_message_id, "010f0193a5b2-example-000000");
        assert_eq!(feedback.recipients, ["ada@example.com"]);
        assert_eq!(
            feedback.detail,
            "Permanent: General: smtp; 550 5.1.1 user unknown"
        );
        assert_eq!(
            feedback.at,
            Timestamp::parse_rfc3339("2026-12-02T15:00:01.000Z").unwrap()
        );
    }

    #[test]
    fn inside_an_sns_notification_it_reads_the_same() {
        let envelope = json!({
            "Type": "Notification",
            "MessageId": "sns-1",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:herald-ses-feedback",
            "Message": permanent_bounce().to_string(),
        });
        assert_eq!(
            parse_ses_event(&envelope.to_string()).unwrap(),
            parse_ses_event(&permanent_bounce().to_string()).unwrap()
        );
    }

    #[test]
    fn complaints_suppress_and_transient_bounces_and_deliveries_do_not() {
        let complaint = event(
            "Complaint",
            json!({
                "complainedRecipients": [{"emailAddress": "ada@example.com"}],
                "complaintFeedbackType": "abuse",
                "timestamp": "2026-12-02T16:00:00.000Z",
                "feedbackId": "feedback-2"
            }),
        );
        let feedback = parse_ses_event(&complaint.to_string()).unwrap().unwrap();
        assert_eq!(
            (feedback.kind.clone(), feedback.detail.as_str()),
            (FeedbackKind::Complaint, "complaint: abuse")
        );
        assert!(feedback.kind.suppresses());

        let transient = event(
            "Bounce",
            json!({
                "bounceType": "Transient",
                "bounceSubType": "MailboxFull",
                "bouncedRecipients": [{"emailAddress": "ada@example.com"}],
                "timestamp": "2026-12-02T16:00:00.000Z"
            }),
        );
        assert!(
            !parse_ses_event(&transient.to_string())
                .unwrap()
                .unwrap()
                .kind
                .suppresses()
        );

        let delivery = event(
            "Delivery",
            json!({
                "timestamp": "2026-12-02T15:00:02.000Z",
                "processingTimeMillis": 546,
                "recipients": ["ada@example.com"],
                "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "a8-70.smtp-out.amazonses.com"
            }),
        );
        let feedback = parse_ses_event(&delivery.to_string()).unwrap().unwrap();
        assert_eq!(
            (feedback.kind.clone(), feedback.detail.as_str()),
            (FeedbackKind::Delivery, "250 2.6.0 Message received")
        );
        assert!(!feedback.kind.suppresses());
    }

    #[test]
    fn other_events_are_dropped_and_strangers_refused() {
        let open = event("Open", json!({"timestamp": "2026-12-02T15:00:00.000Z"}));
        assert_eq!(parse_ses_event(&open.to_string()), Ok(None));

        let mut untagged = permanent_bounce();
        untagged["mail"]["tags"] = json!({});
        assert_eq!(
            parse_ses_event(&untagged.to_string()),
            Err(FeedbackError::Untagged(TENANT_TAG))
        );

        let mut bad_tenant = permanent_bounce();
        bad_tenant["mail"]["tags"][TENANT_TAG] = json!(["not hex"]);
        assert_eq!(
            parse_ses_event(&bad_tenant.to_string()),
            Err(FeedbackError::Malformed("tenant tag"))
        );

        for stranger in [
            "",
            "[]",
            "{\"Type\":\"SubscriptionConfirmation\",\"Message\":\"x\"}",
            "{\"eventType\":\"Bounce\"}",
        ] {
            assert!(
                matches!(parse_ses_event(stranger), Err(FeedbackError::NotAnSesEvent(_))),
                "{stranger}"
            );
        }
    }

    #[test]
    fn tenant_tags_hold_only_what_ses_allows_and_read_back() {
        for tenant in ["acme", "acme.eu", "a_b-c.d"] {
            let value = tenant_tag_value(&TenantId::new(tenant));
            assert!(value.bytes().all(|b| b.is_ascii_alphanumeric()), "{value}");
            assert_eq!(String::from_utf8(hex::decode(&value).unwrap()).unwrap(), tenant);
        }
    }
}
