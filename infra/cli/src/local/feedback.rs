//! `herald local feedback bounce|complaint|delivery NOTIFICATION_ID [--tenant T] [--transient]`: what SES
//! would say about an email the local stack sent. The emulator's SES publishes no events (it takes a
//! configuration set's name and ignores it), so this builds the event as SES event publishing does, from the
//! notification as the activity table has it, and publishes it to the topic the feedback function's queue
//! subscribes to: it travels SNS → SQS → the feedback function as on AWS.

use super::LocalError;
use super::emulator;
use super::seed;
use super::template::{ACCOUNT_ID, StackTemplate};
use super::up::{Ports, local_template};
use aws_sdk_sns::error::DisplayErrorContext;
use herald::adapters::dynamodb::DynamoActivityStore;
use herald::domain::notification::Notification;
use herald::domain::provider_feedback::{FeedbackKind, NOTIFICATION_TAG, TENANT_TAG, tenant_tag_value};
use herald::domain::{Channel, NotificationId, TenantId, Timestamp};
use herald::ports::{BackendError, DeliveryLedger};
use herald::telemetry::Function;
use serde_json::{Value, json};

const USAGE: &str =
    "usage: herald local feedback bounce|complaint|delivery NOTIFICATION_ID [--tenant TENANT] [--transient]

Publishes to the running local stack's feedback topic what SES would say about an email notification it
sent: a bounce (permanent, unless --transient), a complaint (abuse) or a delivery. TENANT defaults to the
seeded tenant, local.";

/// The subject SES gives the SNS notifications of event publishing.
const SUBJECT: &str = "Amazon SES Email Event Notification";

/// Why `herald local feedback` did not publish.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackCommandError {
    #[error("{USAGE}")]
    Usage,
    #[error("no local stack answers on port {0}: start one with herald local up")]
    NoStack(u16),
    #[error("tenant {tenant} has no notification {id} (expired, another tenant's: --tenant, or never made)")]
    NoSuchNotification { tenant: TenantId, id: String },
    #[error("{id} is a {channel} notification; SES reports on email only")]
    NotAnEmail { id: NotificationId, channel: Channel },
    #[error("{id} is {status}, never sent: SES has nothing to say about it")]
    NotSent { id: NotificationId, status: String },
    #[error("template.yaml has no topic the {0} function's queue subscribes to")]
    NoFeedbackTopic(&'static str),
    #[error("the emulator has no topic {0}: is the stack on these ports the one herald local up started?")]
    TopicMissing(String),
    #[error(transparent)]
    Store(#[from] BackendError),
    #[error("SNS {operation}: {message}")]
    Sns {
        operation: &'static str,
        message: String,
    },
}

impl FeedbackCommandError {
    fn sns<E: std::error::Error + 'static>(operation: &'static str, error: E) -> Self {
        Self::Sns {
            operation,
            message: DisplayErrorContext(error).to_string(),
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    kind: FeedbackKind,
    id: String,
    tenant: TenantId,
}

fn parse(args: &[&str]) -> Result<Request, FeedbackCommandError> {
    let [kind, id, flags @ ..] = args else {
        return Err(FeedbackCommandError::Usage);
    };
    let mut tenant = TenantId::new(seed::TENANT);
    let mut transient = false;
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        match *flag {
            "--tenant" => tenant = TenantId::new(*flags.next().ok_or(FeedbackCommandError::Usage)?),
            "--transient" => transient = true,
            _ => return Err(FeedbackCommandError::Usage),
        }
    }
    let kind = match *kind {
        "bounce" => FeedbackKind::Bounce {
            permanent: !transient,
        },
        "complaint" if !transient => FeedbackKind::Complaint,
        "delivery" if !transient => FeedbackKind::Delivery,
        _ => return Err(FeedbackCommandError::Usage),
    };
    Ok(Request {
        kind,
        id: (*id).to_owned(),
        tenant,
    })
}

/// An email SES accepted: what its events say about it.
#[derive(Debug, Clone)]
pub struct SentEmail<'a> {
    pub tenant: &'a TenantId,
    pub notification_id: &'a NotificationId,
    pub to: &'a str,
    /// SES's message id (the notification's `provider_message_id`).
    pub message_id: &'a str,
    pub sent_at: Timestamp,
    /// The sender identity.
    pub from: &'a str,
    pub configuration_set: Option<&'a str>,
}

/// The event SES event publishing sends about `email` at `at`, with the message tags SES copies from the
/// send (Herald's two, and SES's own), in the shape of the SES developer guide's examples.
pub fn ses_event(kind: &FeedbackKind, email: &SentEmail<'_>, at: Timestamp) -> Value {
    let sender_domain = email.from.rsplit('@').next().unwrap_or(email.from);
    let mut tags = json!({
        TENANT_TAG: [tenant_tag_value(email.tenant)],
        NOTIFICATION_TAG: [email.notification_id.as_str()],
        "ses:source-ip": ["127.0.0.1"],
        "ses:from-domain": [sender_domain],
        "ses:caller-identity": ["herald-email"],
    });
    if let Some(set) = email.configuration_set {
        tags["ses:configuration-set"] = json!([set]);
    }
    let mail = json!({
        "timestamp": email.sent_at.to_rfc3339(),
        "source": email.from,
        "sourceArn": format!("arn:aws:ses:{}:{ACCOUNT_ID}:identity/{}", emulator::REGION, email.from),
        "sendingAccountId": ACCOUNT_ID,
        "messageId": email.message_id,
        "destination": [email.to],
        "headersTruncated": false,
        "headers": [{"name": "From", "value": email.from}, {"name": "To", "value": email.to}],
        "commonHeaders": {"from": [email.from], "to": [email.to], "messageId": email.message_id},
        "tags": tags,
    });
    let feedback_id = format!("{}-000000", uuid::Uuid::new_v4());
    let when = at.to_rfc3339();
    let (event_type, field, detail) = match kind {
        FeedbackKind::Bounce { permanent } => {
            let (bounce_type, sub_type, status, diagnostic) = if *permanent {
                ("Permanent", "General", "5.1.1", "smtp; 550 5.1.1 user unknown")
            } else {
                (
                    "Transient",
                    "MailboxFull",
                    "4.2.2",
                    "smtp; 452 4.2.2 mailbox full",
                )
            };
            let bounce = json!({
                "feedbackId": feedback_id, "bounceType": bounce_type, "bounceSubType": sub_type,
                "bouncedRecipients": [{"emailAddress": email.to, "action": "failed", "status": status,
                                       "diagnosticCode": diagnostic}],
                "timestamp": when, "reportingMTA": "dsn; herald.local",
            });
            ("Bounce", "bounce", bounce)
        }
        FeedbackKind::Complaint => (
            "Complaint",
            "complaint",
            json!({
                "feedbackId": feedback_id, "complaintSubType": null,
                "complainedRecipients": [{"emailAddress": email.to}],
                "timestamp": when, "userAgent": "herald local feedback",
                "complaintFeedbackType": "abuse", "arrivalDate": when,
            }),
        ),
        FeedbackKind::Delivery => (
            "Delivery",
            "delivery",
            json!({
                "timestamp": when,
                "processingTimeMillis": (at.millis() - email.sent_at.millis()).max(0),
                "recipients": [email.to], "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "herald.local",
            }),
        ),
    };
    json!({"eventType": event_type, "mail": mail, field: detail})
}

/// The ARN (on the emulator) of the topic the feedback function's queue subscribes to.
async fn feedback_topic(
    template: &StackTemplate,
    sns: &aws_sdk_sns::Client,
) -> Result<String, FeedbackCommandError> {
    let function = Function::Feedback.as_str();
    let queues: Vec<String> = template
        .functions()
        .into_iter()
        .filter(|spec| spec.binary == function)
        .flat_map(|spec| spec.sqs_events)
        .map(|event| event.queue)
        .collect();
    let topic = template
        .subscriptions()
        .into_iter()
        .find(|subscription| queues.contains(&subscription.queue))
        .and_then(|subscription| {
            template
                .topics()
                .into_iter()
                .find(|topic| topic.logical_id == subscription.topic)
        })
        .ok_or(FeedbackCommandError::NoFeedbackTopic(function))?;
    let suffix = format!(":{}", topic.name);
    let mut next = None;
    loop {
        let page = sns
            .list_topics()
            .set_next_token(next)
            .send()
            .await
            .map_err(|error| FeedbackCommandError::sns("ListTopics", error))?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|topic| topic.topic_arn())
            .find(|arn| arn.ends_with(&suffix))
        {
            return Ok(arn.to_owned());
        }
        next = page.next_token;
        if next.is_none() {
            return Err(FeedbackCommandError::TopicMissing(topic.name));
        }
    }
}

/// The sender identity and configuration set the email function sends with.
fn email_settings(template: &StackTemplate) -> Result<(String, Option<String>), LocalError> {
    let email = template
        .functions()
        .into_iter()
        .find(|spec| spec.binary == Function::Email.as_str())
        .ok_or(LocalError::MissingResource("the email function"))?;
    let mut environment = template.environment(&email, &template.unprovisioned("http://unused"))?;
    let from = environment
        .remove("HERALD_EMAIL_FROM")
        .ok_or(LocalError::MissingResource("HERALD_EMAIL_FROM"))?;
    Ok((from, environment.remove("HERALD_SES_CONFIGURATION_SET")))
}

/// The notification, when it is an email SES accepted.
fn sent_email(notification: &Notification) -> Result<(&str, &str, Timestamp), FeedbackCommandError> {
    if notification.channel != Channel::Email {
        return Err(FeedbackCommandError::NotAnEmail {
            id: notification.id.clone(),
            channel: notification.channel,
        });
    }
    match (
        notification.to.as_deref(),
        notification.provider_message_id.as_deref(),
        notification.sent_at,
    ) {
        (Some(to), Some(message_id), Some(sent_at)) => Ok((to, message_id, sent_at)),
        _ => Err(FeedbackCommandError::NotSent {
            id: notification.id.clone(),
            status: notification.status.to_string(),
        }),
    }
}

/// `herald local feedback …`.
pub async fn run(args: &[&str]) -> Result<(), LocalError> {
    let request = parse(args)?;
    let root = emulator::project_root()?;
    let ports = Ports::from_env()?;
    if !emulator::is_running(ports.emulator).await {
        return Err(FeedbackCommandError::NoStack(ports.emulator).into());
    }
    let aws = emulator::sdk_config(&ports.endpoints()).await;
    let template = local_template(&root)?;
    let activity_table = template
        .tables()
        .into_iter()
        .find(|table| table.logical_id == "ActivityTable")
        .ok_or(LocalError::MissingResource("ActivityTable"))?
        .name;
    let missing = || FeedbackCommandError::NoSuchNotification {
        tenant: request.tenant.clone(),
        id: request.id.clone(),
    };
    let id = NotificationId::parse(&request.id).ok_or_else(missing)?;
    let store = DynamoActivityStore::new(aws_sdk_dynamodb::Client::new(&aws), activity_table);
    let (notification, _) = store
        .notification_with_attempts(&request.tenant, &id)
        .await
        .map_err(FeedbackCommandError::from)?
        .ok_or_else(missing)?;
    let (to, message_id, sent_at) = sent_email(&notification)?;
    let (from, configuration_set) = email_settings(&template)?;
    let event = ses_event(
        &request.kind,
        &SentEmail {
            tenant: &request.tenant,
            notification_id: &id,
            to,
            message_id,
            sent_at,
            from: &from,
            configuration_set: configuration_set.as_deref(),
        },
        Timestamp::now(),
    );
    let sns = aws_sdk_sns::Client::new(&aws);
    let topic = feedback_topic(&template, &sns).await?;
    sns.publish()
        .topic_arn(&topic)
        .subject(SUBJECT)
        .message(event.to_string())
        .send()
        .await
        .map_err(|error| FeedbackCommandError::sns("Publish", error))?;
    println!(
        "published SES's {} of {id} (to {}) to {topic}; the feedback function records it within seconds",
        event["eventType"].as_str().unwrap_or_default().to_lowercase(),
        notification.masked_to().unwrap_or_default(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald::domain::provider_feedback::parse_ses_event;

    #[test]
    fn the_command_line_names_the_kind_the_notification_and_perhaps_the_tenant() {
        let id = "ntf_0193a5b27c4e7d108a2b3c4d5e6f7a8b";
        let request = parse(&["bounce", id]).unwrap();
        assert_eq!(
            request,
            Request {
                kind: FeedbackKind::Bounce { permanent: true },
                id: id.into(),
                tenant: TenantId::new("local"),
            }
        );
        let transient = parse(&["bounce", id, "--transient", "--tenant", "acme"]).unwrap();
        assert_eq!(
            (transient.kind, transient.tenant),
            (FeedbackKind::Bounce { permanent: false }, TenantId::new("acme"))
        );
        assert_eq!(parse(&["complaint", id]).unwrap().kind, FeedbackKind::Complaint);
        assert_eq!(parse(&["delivery", id]).unwrap().kind, FeedbackKind::Delivery);
        for refused in [
            &["open", id][..],
            &["bounce"],
            &["complaint", id, "--transient"],
            &["bounce", id, "--tenant"],
            &["bounce", id, "--force"],
        ] {
            assert!(
                matches!(parse(refused), Err(FeedbackCommandError::Usage)),
                "{refused:?}"
            );
        }
    }

    /// What the feedback function reads from each event is what the notification was.
    #[test]
    fn each_event_reads_back_as_feedback_on_its_notification() {
        let tenant = TenantId::new("acme.eu");
        let id = NotificationId::parse("ntf_0193a5b27c4e7d108a2b3c4d5e6f7a8b").unwrap();
        let sent_at = Timestamp::from_millis(1_800_000_000_000);
        let at = sent_at.plus_seconds(2);
        let email = SentEmail {
            tenant: &tenant,
            notification_id: &id,
            to: "ada@example.com",
            message_id: "0100-ses-id",
            sent_at,
            from: "notifications@herald.local",
            configuration_set: Some("herald-local-EmailConfigurationSet"),
        };
        for (kind, detail) in [
            (
                FeedbackKind::Bounce { permanent: true },
                "Permanent: General: smtp; 550 5.1.1 user unknown",
            ),
            (
                FeedbackKind::Bounce { permanent: false },
                "Transient: MailboxFull: smtp; 452 4.2.2 mailbox full",
            ),
            (FeedbackKind::Complaint, "complaint: abuse"),
            (FeedbackKind::Delivery, "250 2.6.0 Message received"),
        ] {
            let event = ses_event(&kind, &email, at);
            assert_eq!(
                event["mail"]["tags"]["ses:configuration-set"],
                json!(["herald-local-EmailConfigurationSet"])
            );
            let feedback = parse_ses_event(&event.to_string()).unwrap().unwrap();
            assert_eq!(feedback.kind, kind);
            assert_eq!(
                (feedback.tenant, feedback.notification_id),
                (tenant.clone(), id.clone())
            );
            assert_eq!(feedback.provider_message_id, "0100-ses-id");
            assert_eq!(feedback.recipients, ["ada@example.com"]);
            assert_eq!((feedback.detail.as_str(), feedback.at), (detail, at));
        }
    }
}
