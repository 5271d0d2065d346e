//! A push delivery around the publish: the device looked up, the message made from the rendered parts,
//! and a device its platform says is gone forgotten.

use super::{DEVICE_GONE, PushSender};
use crate::domain::Channel;
use crate::domain::delivery::{FailureKind, Outgoing, RenderedMessage, SendError, SendReceipt};
use crate::domain::device::PushMessage;
use crate::ports::{DeviceStore, Sender};
use serde_json::Value;

/// One push delivery: the user's device read for each send (a device the user removed, or renewed with
/// a new endpoint, applies at once), published to, and removed when SNS reports its endpoint disabled.
#[derive(Debug)]
pub struct PushDelivery<D> {
    sender: PushSender,
    devices: D,
}

impl<D: DeviceStore> PushDelivery<D> {
    pub fn new(sender: PushSender, devices: D) -> Self {
        Self { sender, devices }
    }

    /// The store the devices are read from and removed from.
    pub fn devices(&self) -> &D {
        &self.devices
    }
}

/// The push the rendered parts make: `title`, the body from `text`, and `data` as strings (a template's
/// data values render to strings already; anything else is written as JSON).
pub fn push_message(message: &RenderedMessage) -> PushMessage {
    let data = message
        .data
        .as_ref()
        .and_then(Value::as_object)
        .map(|object| {
            object
                .iter()
                .map(|(key, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (key.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    PushMessage {
        title: message.title.clone().unwrap_or_default(),
        body: message.text.clone().unwrap_or_default(),
        data,
    }
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;

fn gone(detail: String) -> SendError {
    SendError::new(FailureKind::Recipient, DEVICE_GONE, detail)
}

/// The push channel: its address is the device token's key, on the notification's user.
impl<D: DeviceStore> Sender for PushDelivery<D> {
    fn channel(&self) -> Channel {
        Channel::Push
    }

    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<SendReceipt, SendError> {
        let tenant = outgoing.tenant;
        let Some(user_id) = outgoing.user_id else {
            return Err(gone(
                "a push goes to a user's device, and the event named no user".into(),
            ));
        };
        let devices = self.devices.devices_of(tenant, user_id).await.map_err(|error| {
            SendError::new(FailureKind::Configuration, "device_unreadable", error.to_string())
        })?;
        let Some(device) = devices.iter().find(|device| device.token.key() == outgoing.to) else {
            return Err(gone(format!(
                "the device is no longer registered for user {user_id} (removed after the event was accepted)"
            )));
        };
        let sent = self
            .sender
            .publish(
                &device.endpoint_arn,
                device.platform(),
                &push_message(outgoing.message),
            )
            .await;
        if let Err(error) = &sent
            && error.code == DEVICE_GONE
        {
            // Kept only if the app registered it again meanwhile (a new endpoint); the next event's push
            // goes to the devices the user still has.
            let forgotten = self
                .devices
                .forget_endpoint(tenant, user_id, &device.token, &device.endpoint_arn)
                .await;
            if let Err(error) = forgotten {
                tracing::warn!(error = %error, "the gone device was not removed; the next push removes it");
            }
        }
        sent
    }
}
