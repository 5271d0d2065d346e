//! An email channel that never sends to an address on the tenant's suppression list. Ingest holds back the
//! emails of events accepted after an address went on the list; this catches the ones accepted before it
//! (still queued, or retrying for hours), at one read per send. The read is never cached: a bounce that
//! arrived a second ago must already hold.

use crate::domain::delivery::{DestinationRefusal, Outgoing, SendError, SendReceipt};
use crate::domain::{Channel, TenantId};
use crate::ports::{BackendError, Sender, SuppressionList};

/// `inner`, refusing addresses on `list` before any provider call.
#[derive(Debug)]
pub struct SuppressionChecked<S, L> {
    inner: S,
    list: L,
}

impl<S, L> SuppressionChecked<S, L> {
    pub fn new(inner: S, list: L) -> Self {
        Self { inner, list }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn list(&self) -> &L {
        &self.list
    }
}

impl<S: Sender, L: SuppressionList> Sender for SuppressionChecked<S, L> {
    fn channel(&self) -> Channel {
        self.inner.channel()
    }

    async fn refuse(&self, tenant: &TenantId, to: &str) -> Result<Option<DestinationRefusal>, BackendError> {
        if let Some(entry) = self.list.suppression(tenant, to).await? {
            return Ok(Some(DestinationRefusal::Suppressed(entry.held_back_detail())));
        }
        self.inner.refuse(tenant, to).await
    }

    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<SendReceipt, SendError> {
        self.inner.send(outgoing).await
    }
}
