//! The one delivery loop every channel function runs; a channel is only its [`Sender`].
//!
//! Per SQS message: claim the notification (a conditional update, so a duplicate or redriven message
//! never sends twice what was sent), render its pinned template version, send, record the attempt and
//! the new status. A batch runs concurrently and answers with the messages that failed, so one bad
//! message never fails its neighbours.

use crate::config::DeliverySettings;
use crate::domain::circuit::provider_key;
use crate::domain::delivery::{DestinationRefusal, FailureKind, Outgoing, RenderedMessage, backoff};
use crate::domain::notification::{Envelope, Notification, NotificationStatus, reason};
use crate::domain::template::TemplateContent;
use crate::domain::{TenantId, Timestamp};
use crate::ports::{
    ActivityStore, ChannelQueue, CircuitStore, Claim, DeliveryLedger, Sender, Settlement, TemplateStore,
};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use batch_events::BatchEvents;
use breaker::{Admission, Breaker, Verdict as ProviderVerdict};
use lambda_runtime::LambdaEvent;
use plan::{Next, Policy, final_settlement};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracing::Instrument;

mod batch_events;
pub mod breaker;
mod outcome;
mod plan;

/// Template versions never change once written, so a container keeps the ones it has used.
const TEMPLATE_CACHE_ENTRIES: usize = 512;
/// Attempts at recording an outcome before giving up on it (the send itself is never repeated for it).
const SETTLE_ATTEMPTS: u32 = 3;
/// Time kept, beyond the provider's timeout, to record an attempt (with its retries) before the deadline.
const RECORD_RESERVE: Duration = Duration::from_secs(3);

type TemplateKey = (TenantId, String, String, u32);

/// What became of one message: acknowledged (deleted by Lambda) or reported failed (delivered again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Done,
    Retry,
}

/// Everything a channel function holds between invocations.
#[derive(Debug)]
pub struct Delivery<S, L, T, Q> {
    sender: S,
    ledger: L,
    templates: T,
    queue: Q,
    settings: DeliverySettings,
    breaker: Breaker,
    template_cache: Mutex<HashMap<TemplateKey, Arc<TemplateContent>>>,
}

impl<S, L, T, Q> Delivery<S, L, T, Q>
where
    S: Sender,
    L: DeliveryLedger + ActivityStore + CircuitStore,
    T: TemplateStore,
    Q: ChannelQueue,
{
    pub fn new(sender: S, ledger: L, templates: T, queue: Q, settings: DeliverySettings) -> Self {
        Self {
            breaker: Breaker::new(settings.breaker, sender.channel()),
            sender,
            ledger,
            templates,
            queue,
            settings,
            template_cache: Mutex::new(HashMap::new()),
        }
    }

    /// The Lambda handler: a partial batch response naming every message to deliver again.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let permits = &Semaphore::new(self.settings.concurrency);
        let deadline = event.context.deadline;
        let envelopes: Vec<Envelope> = event
            .payload
            .records
            .iter()
            .filter_map(|message| parse_envelope(message).ok())
            .collect();
        let events = &BatchEvents::read(&self.ledger, &envelopes).await;
        let verdicts = futures::future::join_all(event.payload.records.iter().map(|message| async move {
            let _permit = permits.acquire().await;
            if !self.time_for_one_more(deadline) {
                // Not claimed, so nothing is held: back on the queue at once for the next invocation.
                tracing::warn!(
                    message_id = message.message_id.as_deref().unwrap_or("unknown"),
                    "too little time left to send and record; returned to the queue"
                );
                self.delay(message, Duration::ZERO).await;
                return (message, Verdict::Retry);
            }
            (message, self.deliver(message, events).await)
        }))
        .await;
        let mut response = SqsBatchResponse::default();
        for (message, verdict) in verdicts {
            if verdict == Verdict::Retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        Ok(response)
    }

    /// Whether the invocation, which ends at `deadline` (milliseconds since the epoch; 0 when unknown), still
    /// has time for a whole attempt: a send that takes the provider's full timeout, and recording it.
    fn time_for_one_more(&self, deadline: u64) -> bool {
        if deadline == 0 {
            return true;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let left = Duration::from_millis(deadline).saturating_sub(now);
        left >= self.settings.provider_timeout + RECORD_RESERVE
    }

    async fn deliver(&self, message: &SqsMessage, events: &BatchEvents) -> Verdict {
        let message_id = message.message_id.as_deref().unwrap_or("unknown");
        let envelope = match parse_envelope(message) {
            Ok(envelope) => envelope,
            Err(problem) => {
                // Left on the queue: after its retries it lands in the DLQ, where a person can look at it.
                tracing::error!(message_id, %problem, "unreadable message");
                return Verdict::Retry;
            }
        };
        let span = tracing::info_span!(
            "deliver",
            message_id,
            tenant = %envelope.tenant,
            notification_id = %envelope.notification_id,
            correlation_id = %envelope.correlation_id,
            channel = %self.sender.channel(),
            // Known once claimed: the trace-by-id query finds an event's deliveries by it.
            event_id = tracing::field::Empty,
        );
        self.deliver_envelope(message, &envelope, events)
            .instrument(span)
            .await
    }

    async fn deliver_envelope(
        &self,
        message: &SqsMessage,
        envelope: &Envelope,
        events: &BatchEvents,
    ) -> Verdict {
        if let Some(channel) = envelope
            .channel
            .filter(|channel| *channel != self.sender.channel())
        {
            // Refused before any claim: left on the queue, it ends in the DLQ where a person can look.
            tracing::error!(envelope_channel = %channel, "message on the wrong channel's queue");
            return Verdict::Retry;
        }
        let provider = envelope
            .provider
            .clone()
            .unwrap_or_else(|| provider_key(&envelope.tenant, self.sender.channel(), None));
        let admission = self
            .breaker
            .admit(&self.ledger, &provider, Timestamp::now())
            .await;
        if let Admission::Defer(wait) = admission {
            // Nothing claimed, no step used: the message comes back once the provider may be up.
            tracing::info!(circuit = %provider, ?wait, "the provider's circuit is open; deferred");
            return self
                .retry_later(message, wait + wait.mul_f64(0.2 * jitter()))
                .await;
        }
        let receive_count = receive_count(message);
        let claim = self
            .ledger
            .claim(
                &envelope.tenant,
                &envelope.notification_id,
                Timestamp::now(),
                self.settings.lease,
            )
            .await;
        let (notification, attempt) = match claim {
            Ok(Claim::Claimed {
                notification,
                attempt,
            }) => {
                tracing::Span::current().record("event_id", tracing::field::display(&notification.event_id));
                (notification, attempt)
            }
            Ok(Claim::Settled(status)) => {
                tracing::info!(%status, "already settled; nothing to send");
                return Verdict::Done;
            }
            Ok(Claim::Missing) => {
                tracing::warn!("no such notification (expired or never written); dropping the message");
                return Verdict::Done;
            }
            Ok(Claim::Busy { lease_remaining }) => {
                tracing::info!(
                    ?lease_remaining,
                    "another delivery holds it, or its retry is not due yet; checking back then"
                );
                self.delay(message, lease_remaining.max(Duration::from_secs(1)))
                    .await;
                return Verdict::Retry;
            }
            Err(error) => {
                tracing::error!(%error, "could not claim the notification");
                self.delay(message, backoff(receive_count, jitter(), None)).await;
                return Verdict::Retry;
            }
        };
        if notification.channel != self.sender.channel() {
            tracing::error!(notification_channel = %notification.channel, "message on the wrong channel's queue");
            return Verdict::Retry;
        }
        let call = ProviderCall {
            key: &provider,
            admission,
        };
        self.attempt(message, &notification, attempt, call, events).await
    }

    /// Renders, sends and settles one claimed notification.
    async fn attempt(
        &self,
        message: &SqsMessage,
        notification: &Notification,
        attempt: u32,
        call: ProviderCall<'_>,
        events: &BatchEvents,
    ) -> Verdict {
        let started = Instant::now();
        let deadline = plan::deadline(notification, self.settings.default_max_age);
        let (to, rendered) = match self.ready_to_send(notification, deadline, events).await {
            Ok(ready) => ready,
            Err(next) => {
                return self
                    .conclude(message, notification, attempt, started, None, next)
                    .await;
            }
        };
        let outgoing = Outgoing {
            tenant: &notification.tenant,
            notification_id: &notification.id,
            user_id: notification.user_id.as_deref(),
            to,
            message: &rendered,
        };
        let sent = self.sender.send(&outgoing).await;
        let verdict = match &sent {
            // Held back by Herald's own send rate: the provider was not asked, so nothing is learnt.
            Err(error) if !error.reached_provider() => None,
            Err(error) if matches!(error.kind, FailureKind::Transient | FailureKind::Ambiguous) => {
                Some(ProviderVerdict::Down)
            }
            _ => Some(ProviderVerdict::Up),
        };
        if let Some(verdict) = verdict {
            self.breaker
                .record(&self.ledger, call.key, call.admission, verdict, Timestamp::now())
                .await;
        }
        let (next, error) = match sent {
            Ok(receipt) => {
                let settlement = Settlement {
                    status: NotificationStatus::Sent,
                    reason: None,
                    detail: None,
                    provider_message_id: receipt.provider_message_id.clone(),
                    next_attempt_at: None,
                    failures: notification.failures,
                };
                (Next::Final(settlement), None)
            }
            Err(error) => {
                let policy = Policy {
                    probing: call.admission == Admission::Probe,
                    ..self.policy(deadline)
                };
                let next = policy.after_send_failure(&error, notification.failures);
                tracing::warn!(kind = ?error.kind, code = %error.code, detail = %error.detail, next = ?next, "send failed");
                (next, Some(error))
            }
        };
        self.conclude(message, notification, attempt, started, error.as_ref(), next)
            .await
    }

    /// The address and the rendered message, or what becomes of a notification that cannot be sent now:
    /// too late, not renderable, no address, a destination its sender refuses.
    async fn ready_to_send<'n>(
        &self,
        notification: &'n Notification,
        deadline: Timestamp,
        events: &BatchEvents,
    ) -> Result<(&'n str, RenderedMessage), Next> {
        let failed = |code: &str, detail: &str| {
            Next::Final(final_settlement(NotificationStatus::Failed, code, detail))
        };
        if Timestamp::now() > deadline {
            let detail = format!("not sent by {}, the latest it may be sent", deadline.to_rfc3339());
            tracing::warn!(%detail, "too late to send");
            return Err(Next::Final(plan::expired(&detail)));
        }
        let rendered = match self.render(notification, events).await {
            Ok(rendered) => rendered,
            Err(Rendering::Unavailable(error)) => {
                tracing::error!(%error, "could not load what the notification renders from");
                return Err(self
                    .policy(deadline)
                    .after_own_failure(&error, notification.failures));
            }
            Err(Rendering::Failed(code, detail)) => {
                tracing::warn!(%detail, "the notification cannot be rendered");
                return Err(failed(code, &detail));
            }
        };
        let Some(to) = notification.to.as_deref() else {
            return Err(failed(reason::NO_ADDRESS, "no address to send to"));
        };
        match self.sender.refuse(&notification.tenant, to).await {
            Ok(None) => Ok((to, rendered)),
            Ok(Some(DestinationRefusal::NotAllowed(why))) => {
                Err(failed(reason::DESTINATION_NOT_ALLOWED, &why))
            }
            Ok(Some(DestinationRefusal::Suppressed(why))) => Err(Next::Final(final_settlement(
                NotificationStatus::Suppressed,
                reason::ADDRESS_SUPPRESSED,
                &why,
            ))),
            Err(error) => {
                tracing::error!(%error, "could not read whether the destination is allowed");
                Err(self
                    .policy(deadline)
                    .after_own_failure(&error.to_string(), notification.failures))
            }
        }
    }

    fn policy(&self, deadline: Timestamp) -> Policy<'_> {
        Policy {
            schedule: &self.settings.schedule,
            deadline,
            now: Timestamp::now(),
            unit: jitter(),
            probing: false,
        }
    }

    async fn render(
        &self,
        notification: &Notification,
        events: &BatchEvents,
    ) -> Result<RenderedMessage, Rendering> {
        let Some(pinned) = &notification.pinned else {
            return Err(Rendering::Failed(
                reason::TEMPLATE_NOT_FOUND,
                "no template version was pinned".into(),
            ));
        };
        let read_alone;
        let event = if let Some(event) = events.get(&notification.tenant, &notification.event_id) {
            event
        } else {
            read_alone = self
                .ledger
                .event(&notification.tenant, &notification.event_id)
                .await
                .map_err(|error| Rendering::Unavailable(error.to_string()))?
                .ok_or_else(|| {
                    Rendering::Failed(
                        reason::EVENT_EXPIRED,
                        format!("event {} is gone", notification.event_id),
                    )
                })?;
            &read_alone
        };
        let template = self
            .template(&notification.tenant, &pinned.name, &pinned.locale, pinned.version)
            .await?;
        let context = json!({
            "payload": event.payload,
            "recipient": event.recipient,
            "event": {"name": event.event, "id": event.id, "received_at": event.received_at.to_rfc3339()},
        });
        template
            .render(&context)
            .map_err(|error| Rendering::Failed(reason::RENDER_ERROR, error.to_string()))
    }

    async fn template(
        &self,
        tenant: &TenantId,
        name: &str,
        locale: &str,
        version: u32,
    ) -> Result<Arc<TemplateContent>, Rendering> {
        let key = (tenant.clone(), name.to_owned(), locale.to_owned(), version);
        if let Some(content) = self
            .template_cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(&key).cloned())
        {
            return Ok(content);
        }
        let stored = self
            .templates
            .template_version(tenant, name, locale, version)
            .await
            .map_err(|error| Rendering::Unavailable(error.to_string()))?
            .ok_or_else(|| {
                Rendering::Failed(
                    reason::TEMPLATE_NOT_FOUND,
                    format!("template {name} version {version} ({locale}) was deleted"),
                )
            })?;
        let content = Arc::new(stored.content);
        if let Ok(mut cache) = self.template_cache.lock() {
            if cache.len() >= TEMPLATE_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, Arc::clone(&content));
        }
        Ok(content)
    }
}

/// The provider a delivery calls, and what its circuit allowed.
#[derive(Debug, Clone, Copy)]
struct ProviderCall<'a> {
    key: &'a str,
    admission: Admission,
}

/// Why a notification could not be rendered.
enum Rendering {
    /// A backing service failed: try again later.
    Unavailable(String),
    /// It never will render: fail the notification with this reason.
    Failed(&'static str, String),
}

fn parse_envelope(message: &SqsMessage) -> Result<Envelope, String> {
    let body = message.body.as_deref().ok_or("the message has no body")?;
    let version: Option<u32> = serde_json::from_str::<serde_json::Value>(body)
        .map_err(|error| format!("the body is not JSON: {error}"))?
        .get("v")
        .and_then(serde_json::Value::as_u64)
        .and_then(|v| u32::try_from(v).ok());
    match version {
        Some(Envelope::VERSION) => {
            serde_json::from_str(body).map_err(|error| format!("not a v1 envelope: {error}"))
        }
        Some(other) => Err(format!("envelope version {other} is not one this function reads")),
        None => Err("the body has no envelope version".into()),
    }
}

/// How many times SQS has handed this message out, this time included.
fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// A number in `[0, 1)` for backoff jitter; it need not be cryptographic, only spread.
fn jitter() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u64_pair().0 >> 11;
    #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64's mantissa exactly
    let unit = bits as f64 / (1u64 << 53) as f64;
    unit
}

/// Serves the delivery loop for `sender` as a Lambda function, over the AWS adapters: what every channel
/// function's `main` does once it has built its sender.
pub async fn serve<S: Sender>(
    sender: S,
    aws: &aws_config::SdkConfig,
    config: crate::config::DeliveryConfig,
) -> Result<(), lambda_runtime::Error> {
    use crate::adapters::dynamodb::{DynamoActivityStore, DynamoConfigStore};
    use crate::adapters::sqs::SqsChannelQueue;

    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let delivery = Delivery::new(
        sender,
        DynamoActivityStore::new(dynamodb.clone(), &config.tables.activity),
        DynamoConfigStore::new(dynamodb, &config.tables.config),
        SqsChannelQueue::new(
            aws_sdk_sqs::Client::new(aws),
            &config.delivery.queue_url,
            &config.delivery.dead_letter_queue_url,
        ),
        config.delivery,
    );
    let handler = lambda_runtime::service_fn(|event| delivery.handle(event));
    lambda_runtime::run(crate::telemetry::flushing(handler)).await
}

/// The AWS configuration for a provider client (SES, SNS): the SDK's own retries are off, because a
/// failed send is retried by the delivery loop through SQS, with backoff and a record of each attempt;
/// two layers retrying blindly would multiply the calls a throttled provider sees.
///
/// Its timeout is `timeout` (the delivery settings' provider timeout), long enough that a provider that is
/// only slow is not taken for one that failed: a timed-out send may have been sent, and is retried only
/// after a long wait, recorded as ambiguous.
pub fn provider_config(aws: &aws_config::SdkConfig, timeout: Duration) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3).min(timeout))
        .operation_attempt_timeout(timeout)
        .operation_timeout(timeout)
        .build();
    aws.to_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(timeouts)
        .build()
}

#[cfg(test)]
mod batch_events_tests;
#[cfg(test)]
mod breaker_tests;
#[cfg(test)]
mod retry_tests;
#[cfg(test)]
mod sms_countries_tests;
#[cfg(test)]
mod suppression_tests;
#[cfg(test)]
mod tests;
