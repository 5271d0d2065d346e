//! The events a batch's notifications render from, read in one request before any of them is claimed.
//!
//! Each message of a batch is usually for a different event (an event sends one notification per
//! channel, and each channel has its own queue), so reading them one by one costs a request per message:
//! a quarter of a delivery's DynamoDB requests. Events never change once accepted, so reading them before
//! the claim is safe; a read wasted on a message that turns out settled or deferred costs only capacity.

use crate::domain::event::StoredEvent;
use crate::domain::notification::Envelope;
use crate::domain::{EventId, TenantId};
use crate::ports::ActivityStore;
use std::collections::HashMap;

/// Events by tenant and id. An event missing here is read on its own when it is needed: a message that
/// names no event (written before envelopes carried one), or a batch read that failed.
#[derive(Debug, Default)]
pub struct BatchEvents(HashMap<(TenantId, EventId), StoredEvent>);

impl BatchEvents {
    /// Reads the events of `envelopes` at once; a batch of one reads nothing here (its own read is the
    /// same single request). A failed read is logged and leaves every message to read its own.
    pub async fn read(store: &impl ActivityStore, envelopes: &[Envelope]) -> Self {
        let keys: Vec<(TenantId, EventId)> = envelopes
            .iter()
            .filter_map(|envelope| Some((envelope.tenant.clone(), envelope.event_id.clone()?)))
            .collect();
        if keys.len() < 2 {
            return Self::default();
        }
        match store.events(&keys).await {
            Ok(events) => Self(
                events
                    .into_iter()
                    .map(|event| ((event.tenant.clone(), event.id.clone()), event))
                    .collect(),
            ),
            Err(error) => {
                tracing::warn!(%error, events = keys.len(), "could not read the batch's events at once; reading each on its own");
                Self::default()
            }
        }
    }

    pub fn get(&self, tenant: &TenantId, id: &EventId) -> Option<&StoredEvent> {
        self.0.get(&(tenant.clone(), id.clone()))
    }
}
