//! A webhook delivery around the POST: the endpoint looked up, and what its answer teaches recorded on it.

use super::{Refusal, RefusedBy, WebhookPoster};
use crate::domain::Channel;
use crate::domain::Timestamp;
use crate::domain::delivery::{FailureKind, Outgoing, SendError, SendReceipt};
use crate::domain::webhook::DisabledBy;
use crate::ports::{BackendError, Sender, WebhookEndpointStore};
use std::time::Duration;

/// One webhook delivery: the endpoint the tenant registered, looked up for each send (a change, a rotation
/// or a disabling applies at once), posted to, and what the answer teaches about the endpoint recorded on
/// it: a success ends a run of failures; a failure starts one (or continues it); a run longer than
/// `disable_after`, or a 410, disables the endpoint.
#[derive(Debug)]
pub struct WebhookDelivery<E> {
    poster: WebhookPoster,
    endpoints: E,
    disable_after: Duration,
}

impl<E: WebhookEndpointStore> WebhookDelivery<E> {
    pub fn new(poster: WebhookPoster, endpoints: E, disable_after: Duration) -> Self {
        Self {
            poster,
            endpoints,
            disable_after,
        }
    }

    /// The store the endpoints are read from and their state written to.
    pub fn endpoints(&self) -> &E {
        &self.endpoints
    }

    /// Sends `outgoing` (its address is the endpoint's id; its text, the JSON body) at `now`.
    pub async fn deliver(&self, outgoing: &Outgoing<'_>, now: Timestamp) -> Result<SendReceipt, SendError> {
        let tenant = outgoing.tenant;
        let id = outgoing.to;
        let endpoint = self.endpoints.endpoint(tenant, id).await.map_err(|error| {
            SendError::new(
                FailureKind::Configuration,
                "endpoint_unreadable",
                error.to_string(),
            )
        })?;
        let Some(endpoint) = endpoint else {
            let detail =
                format!("webhook endpoint {id} does not exist (deleted after the event was accepted)");
            return Err(SendError::new(
                FailureKind::Recipient,
                "endpoint_not_found",
                detail,
            ));
        };
        if !endpoint.is_active() {
            let detail = format!("webhook endpoint {id} is disabled");
            return Err(SendError::new(
                FailureKind::Recipient,
                "endpoint_disabled",
                detail,
            ));
        }
        let body = outgoing.message.text.as_deref().unwrap_or_default();
        let message_id = outgoing.notification_id.to_string();
        match self.poster.post(&endpoint, &message_id, body, now).await {
            Ok(()) => {
                if endpoint.failing_since.is_some() {
                    remember(self.endpoints.mark_healthy(tenant, id).await);
                }
                Ok(SendReceipt {
                    provider_message_id: Some(message_id),
                })
            }
            Err(Refusal {
                error,
                said_by: RefusedBy::EndpointGone,
            }) => {
                remember(self.endpoints.disable(tenant, id, DisabledBy::Gone, now).await);
                Err(error)
            }
            Err(Refusal {
                error,
                said_by: RefusedBy::Herald,
            }) => Err(error),
            Err(Refusal {
                error,
                said_by: RefusedBy::Endpoint,
            }) => {
                if endpoint.failing_longer_than(now, self.disable_after) {
                    remember(self.endpoints.disable(tenant, id, DisabledBy::Failing, now).await);
                    let detail = format!(
                        "webhook endpoint {id} has failed every delivery since {}; disabled ({})",
                        endpoint
                            .failing_since
                            .map_or_else(String::new, Timestamp::to_rfc3339),
                        error.detail
                    );
                    return Err(SendError::new(
                        FailureKind::Recipient,
                        "endpoint_disabled",
                        detail,
                    ));
                }
                remember(self.endpoints.mark_failing(tenant, id, now).await);
                Err(error)
            }
        }
    }
}

/// What a delivery learnt about the endpoint is worth keeping, not worth failing the delivery for: the next
/// delivery learns it again.
fn remember(written: Result<(), BackendError>) {
    if let Err(error) = written {
        tracing::warn!(error = %error, "the webhook endpoint's state was not recorded");
    }
}

/// The webhook channel: its address is the endpoint's id.
impl<E: WebhookEndpointStore> Sender for WebhookDelivery<E> {
    fn channel(&self) -> Channel {
        Channel::Webhook
    }

    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<SendReceipt, SendError> {
        self.deliver(outgoing, Timestamp::now()).await
    }
}
