//! The email channel, on SES (v2).

use crate::adapters::{backend_error, send_error};
use crate::domain::Channel;
use crate::domain::address::check_email;
use crate::domain::delivery::{FailureKind, Outgoing, RenderedMessage, SendError, SendReceipt};
use crate::domain::provider_feedback::{NOTIFICATION_TAG, TENANT_TAG, tenant_tag_value};
use crate::ports::{BackendError, Sender};
use crate::telemetry::record::provider_call;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageTag, SendQuota};
use std::num::NonZeroU32;

const CHARSET: &str = "UTF-8";

#[derive(Debug, Clone)]
pub struct SesSender {
    client: Client,
    from: String,
    configuration_set: Option<String>,
}

impl SesSender {
    /// Sends as `from` (a verified identity), through `configuration_set` when there is one.
    pub fn new(client: Client, from: String, configuration_set: Option<String>) -> Self {
        Self {
            client,
            from,
            configuration_set,
        }
    }
}

/// One part of a message, in UTF-8.
fn content(data: &str) -> Result<Content, SendError> {
    Content::builder()
        .data(data)
        .charset(CHARSET)
        .build()
        .map_err(|error| SendError::new(FailureKind::Configuration, "invalid_request", error.to_string()))
}

/// The subject and the text and/or HTML body. A message without them cannot be sent, now or later.
fn email_content(message: &RenderedMessage) -> Result<EmailContent, SendError> {
    let Some(subject) = message.subject.as_deref() else {
        return Err(SendError::new(
            FailureKind::Recipient,
            "empty_message",
            "an email needs a subject",
        ));
    };
    if message.text.is_none() && message.html.is_none() {
        return Err(SendError::new(
            FailureKind::Recipient,
            "empty_message",
            "an email needs a text or an HTML body",
        ));
    }
    let body = Body::builder()
        .set_text(message.text.as_deref().map(content).transpose()?)
        .set_html(message.html.as_deref().map(content).transpose()?)
        .build();
    let simple = Message::builder().subject(content(subject)?).body(body).build();
    Ok(EmailContent::builder().simple(simple).build())
}

/// The tags SES hands back in every event it publishes about the message (a bounce, a complaint, a
/// delivery), so the feedback names its notification without a lookup by SES message id.
fn feedback_tags(outgoing: &Outgoing<'_>) -> Result<Vec<MessageTag>, SendError> {
    let tag = |name: &str, value: String| {
        MessageTag::builder()
            .name(name)
            .value(value)
            .build()
            .map_err(|error| SendError::new(FailureKind::Configuration, "invalid_request", error.to_string()))
    };
    Ok(vec![
        tag(TENANT_TAG, tenant_tag_value(outgoing.tenant))?,
        tag(NOTIFICATION_TAG, outgoing.notification_id.to_string())?,
    ])
}

/// SES's own error codes; throttling, 5xx and unknown codes are left to [`send_error`].
fn classify(code: &str) -> Option<FailureKind> {
    match code {
        // The message or its recipient: sending it again will not change SES's mind.
        "MessageRejected" | "BadRequestException" => Some(FailureKind::Recipient),
        // The account, the sending identity or the configuration set: a person must fix them.
        "MailFromDomainNotVerifiedException"
        | "AccountSuspendedException"
        | "SendingPausedException"
        | "NotFoundException" => Some(FailureKind::Configuration),
        // SES's rate and its daily quota: later, without using up a retry.
        "TooManyRequestsException" | "LimitExceededException" => Some(FailureKind::Throttled),
        _ => None,
    }
}

impl Sender for SesSender {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<SendReceipt, SendError> {
        let Outgoing { to, message, .. } = *outgoing;
        check_email(to).map_err(|why| SendError::new(FailureKind::Recipient, "invalid_address", why))?;
        let content = email_content(message)?;
        let request = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(to).build())
            .content(content)
            .set_email_tags(Some(feedback_tags(outgoing)?))
            .set_configuration_set_name(self.configuration_set.clone());
        let output = provider_call(Channel::Email, request.send())
            .await
            .map_err(|error| send_error(&error, classify))?;
        Ok(SendReceipt {
            provider_message_id: output.message_id().map(str::to_owned),
        })
    }
}

/// What email is paced at when SES cannot say its own rate: the least an SES account has (a new one, in the
/// sandbox), so a failed read slows email down rather than getting it throttled.
pub const FALLBACK_SEND_RATE: NonZeroU32 = NonZeroU32::MIN;

/// The account's `MaxSendRate` in this region (SES v2 `GetAccount`), in whole sends a second, at least one.
pub async fn account_send_rate(client: &Client) -> Result<NonZeroU32, BackendError> {
    let output = client
        .get_account()
        .send()
        .await
        .map_err(|error| backend_error("ses", "GetAccount", &error))?;
    let rate = output
        .send_quota()
        .map(SendQuota::max_send_rate)
        .filter(|rate| rate.is_finite() && *rate > 0.0)
        .ok_or_else(|| BackendError {
            service: "ses",
            operation: "GetAccount",
            message: "the answer has no positive SendQuota.MaxSendRate".to_owned(),
            retryable: false,
        })?;
    // Rounded down: a fraction of a send a second above the whole is not one more send.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // finite, positive, clamped to u32
    let whole = rate.floor().min(f64::from(u32::MAX)) as u32;
    Ok(NonZeroU32::new(whole).unwrap_or(NonZeroU32::MIN))
}

/// [`account_send_rate`]; or, when SES cannot say (no `ses:GetAccount` permission, SES failing at
/// start-up, an emulator without the call), [`FALLBACK_SEND_RATE`] with a warning saying how to choose one.
pub async fn account_send_rate_or_fallback(client: &Client) -> NonZeroU32 {
    match account_send_rate(client).await {
        Ok(rate) => {
            tracing::info!(max_send_rate = rate, "read SES's MaxSendRate for this account");
            rate
        }
        Err(error) => {
            tracing::warn!(
                %error,
                fallback = FALLBACK_SEND_RATE,
                "could not read SES's MaxSendRate, so email is sent at the fallback rate; set the \
                 EmailSendRate parameter (HERALD_SEND_RATE_PER_SECOND) to choose the rate"
            );
            FALLBACK_SEND_RATE
        }
    }
}

#[cfg(test)]
mod tests;
