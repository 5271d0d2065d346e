//! Which notifications an accepted event makes: one per rule that applies (one per receiving endpoint for a
//! webhook rule, one per registered device for a push rule), each with the status it starts in.

use super::CompiledEventType;
use crate::domain::device::DeviceRegistration;
use crate::domain::event::EventSubmission;
use crate::domain::notification::{Notification, NotificationStatus, PinnedTemplate, reason};
use crate::domain::rule::Rule;
use crate::domain::user::Preferences;
use crate::domain::webhook::WebhookEndpoint;
use crate::domain::{Channel, EventId, NotificationId, TenantId, Timestamp};

/// What every notification of one accepted event shares.
pub(super) struct Accepting<'a> {
    pub(super) tenant: &'a TenantId,
    pub(super) event_id: &'a EventId,
    pub(super) correlation_id: &'a str,
    pub(super) now: Timestamp,
}

/// Where the channels that fan out send: the tenant's active webhook endpoints, the recipient's devices.
pub(super) struct Targets<'a> {
    pub(super) endpoints: &'a [WebhookEndpoint],
    pub(super) devices: &'a [DeviceRegistration],
}

/// One notification per rule that applies and whose channel the submission allows (for a webhook rule, one
/// per endpoint of the tenant that receives the event; for a push rule, one per device of the user);
/// `suppressed` where the user opted out (unless the event type is critical), never queued.
pub(super) fn resolve_notifications(
    accepting: &Accepting<'_>,
    submission: &EventSubmission,
    compiled: &CompiledEventType,
    preferences: Option<&Preferences>,
    targets: &Targets<'_>,
) -> Vec<Notification> {
    let recipient = serde_json::to_value(&submission.recipient).unwrap_or_default();
    compiled
        .rules
        .matching(&submission.payload, &recipient)
        .into_iter()
        .filter(|rule| submission.wants(rule.spec.channel))
        .flat_map(|rule| {
            // Each endpoint and each device is its own notification, with an id of its own: retried,
            // recorded and dead-lettered apart, so one failing endpoint or phone holds back no other.
            let per_target = |target: String| (format!("{}#{target}", rule.id), Some(target));
            let addressed: Vec<(String, Option<String>)> = match rule.spec.channel {
                Channel::Webhook => targets
                    .endpoints
                    .iter()
                    .filter(|endpoint| endpoint.spec.receives(&submission.event))
                    .map(|endpoint| per_target(endpoint.id.clone()))
                    .collect(),
                // A device is addressed by its token's key: the token itself stays in the device's item.
                Channel::Push if !targets.devices.is_empty() => targets
                    .devices
                    .iter()
                    .map(|device| per_target(device.token.key()))
                    .collect(),
                channel => vec![(
                    rule.id.clone(),
                    submission.recipient.address(channel).map(str::to_owned),
                )],
            };
            addressed
                .into_iter()
                .map(|(key, to)| resolve_one(accepting, submission, compiled, preferences, rule, &key, to))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The notification of `rule` to `to`, its id derived from the event and `key` (the rule, and for a
/// webhook its endpoint), so a retried acceptance writes the same ids.
fn resolve_one(
    accepting: &Accepting<'_>,
    submission: &EventSubmission,
    compiled: &CompiledEventType,
    preferences: Option<&Preferences>,
    rule: &Rule,
    key: &str,
    to: Option<String>,
) -> Notification {
    let Accepting {
        tenant,
        event_id,
        correlation_id,
        now,
    } = *accepting;
    let spec = &compiled.event_type.spec;
    let channel = rule.spec.channel;
    let opted_out = channel.reaches_a_person()
        && !spec.critical
        && preferences.is_some_and(|preferences| {
            !preferences.allows(channel, &submission.event, spec.category.as_deref())
        });
    let head = compiled
        .templates
        .get(&rule.spec.template)
        .and_then(Option::as_ref);
    let (status, reason, detail, pinned) = match (head, &to) {
        (Some(head), _) if head.channel != channel => (
            NotificationStatus::Failed,
            Some(reason::TEMPLATE_NOT_FOUND),
            Some(format!(
                "template {} is for {}, not {channel}",
                head.name, head.channel
            )),
            None,
        ),
        (None, _) => (
            NotificationStatus::Failed,
            Some(reason::TEMPLATE_NOT_FOUND),
            Some(format!("template {} does not exist", rule.spec.template)),
            None,
        ),
        (Some(_), _) if opted_out => (
            NotificationStatus::Suppressed,
            Some(reason::OPTED_OUT),
            Some(format!("the user opted out of {channel} for this event")),
            None,
        ),
        (Some(_), None) => (
            NotificationStatus::Skipped,
            Some(reason::NO_ADDRESS),
            Some(if channel == Channel::Push {
                "the recipient has no registered device (or no user_id to find one by)".to_owned()
            } else {
                format!("the recipient has no {channel} address")
            }),
            None,
        ),
        (Some(head), Some(_)) => {
            let (locale, version) = head.resolve_locale(submission.recipient.locale.as_deref());
            let pinned = PinnedTemplate {
                name: head.name.clone(),
                locale: locale.to_owned(),
                version,
            };
            (NotificationStatus::Queued, None, None, Some(pinned))
        }
    };
    Notification {
        id: NotificationId::for_rule(event_id, key),
        tenant: tenant.clone(),
        event_id: event_id.clone(),
        event: submission.event.clone(),
        rule_id: rule.id.clone(),
        channel,
        status,
        reason: reason.map(str::to_owned),
        detail,
        to,
        template: rule.spec.template.clone(),
        pinned,
        user_id: submission.recipient.user_id.clone(),
        created_at: now,
        updated_at: now,
        sent_at: None,
        provider_message_id: None,
        next_attempt_at: None,
        failures: 0,
        deliver_by: spec
            .max_age_seconds
            .map(|seconds| now.plus_seconds(i64::try_from(seconds).unwrap_or(i64::MAX))),
        correlation_id: Some(correlation_id.to_owned()),
    }
}
