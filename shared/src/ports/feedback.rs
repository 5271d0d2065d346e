//! The port through which a provider's later word about a message reaches its notification.

use super::BackendError;
use crate::domain::notification::NotificationStatus;
use crate::domain::{NotificationId, TenantId, Timestamp};
use std::future::Future;

/// What providers say after they accepted a message (delivered, bounced, complained), recorded on the
/// notification it was sent for.
pub trait FeedbackLedger: Send + Sync {
    /// Moves the notification to `status` with `reason` (a `reason` code, or none) and the provider's
    /// `detail`, conditionally: only from a status `status.after_feedback_from()` names. `Ok(false)` when it changed nothing (no such notification,
    /// or it is there or past it already: feedback comes more than once and out of order).
    fn record_feedback(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        status: NotificationStatus,
        reason: Option<&str>,
        detail: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
}
