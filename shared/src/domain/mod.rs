//! The domain: types, validation and the rules of Herald, with no AWS or HTTP detail.

pub mod address;
pub mod api_key;
pub mod channel;
pub mod circuit;
pub mod delivery;
pub mod device;
pub mod event;
pub mod event_type;
pub mod ids;
pub mod log_query;
pub mod notification;
pub mod problem;
pub mod provider_feedback;
pub mod rate_limit;
pub mod retry;
pub mod rule;
pub mod suppression;
pub mod template;
pub mod tenant;
pub mod time;
pub mod user;
pub mod validation;
pub mod webhook;

pub use channel::Channel;
pub use ids::{EventId, NotificationId, TenantId};
pub use problem::{FieldError, Problem, ProblemCode};
pub use time::Timestamp;
