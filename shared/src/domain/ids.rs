//! Prefixed, time-ordered identifiers (`evt_…`, `ntf_…`) built on UUIDv7.

use super::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use uuid::{Builder, Uuid};

/// The tenant that owns every resource and activity record; part of every partition key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[doc = concat!("An id of the form `", $prefix, "<32 hex digits of a UUIDv7>`.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            fn from_uuid(uuid: Uuid) -> Self {
                Self(format!("{}{}", $prefix, uuid.simple()))
            }

            /// Accepts only well-formed ids, so a malformed path segment never reaches a key.
            pub fn parse(raw: &str) -> Option<Self> {
                let hex = raw.strip_prefix($prefix)?;
                let well_formed = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                well_formed.then(|| Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(EventId, "evt_");
prefixed_id!(NotificationId, "ntf_");

impl EventId {
    /// A fresh id whose leading bits are `at`, so ids sort by acceptance time.
    pub fn generate(at: Timestamp) -> Self {
        let millis = u64::try_from(at.millis()).unwrap_or(0);
        let (secs, subsec_millis) = (millis / 1000, u32::try_from(millis % 1000).unwrap_or(0));
        let timestamp = uuid::Timestamp::from_unix(uuid::NoContext, secs, subsec_millis * 1_000_000);
        Self::from_uuid(Uuid::new_v7(timestamp))
    }

    fn millis(&self) -> u64 {
        Uuid::try_parse(&self.0[Self::PREFIX.len()..])
            .ok()
            .and_then(|uuid| uuid.get_timestamp())
            .map_or(0, |ts| {
                let (secs, nanos) = ts.to_unix();
                secs * 1000 + u64::from(nanos / 1_000_000)
            })
    }
}

impl NotificationId {
    /// The notification a rule makes for an event. Derived, not random, so a retried ingest that
    /// rebuilds the notifications lands on the same ids and the same items.
    pub fn for_rule(event: &EventId, rule_id: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(event.as_str().as_bytes())
            .chain_update([0])
            .chain_update(rule_id.as_bytes())
            .finalize();
        let mut tail = [0u8; 10];
        tail.copy_from_slice(&digest[..10]);
        Self::from_uuid(Builder::from_unix_timestamp_millis(event.millis(), &tail).into_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_prefixed_and_time_ordered() {
        let earlier = EventId::generate(Timestamp::from_millis(1_700_000_000_000));
        let later = EventId::generate(Timestamp::from_millis(1_700_000_000_001));
        assert!(earlier.as_str().starts_with("evt_"));
        assert_eq!(earlier.as_str().len(), 36);
        assert!(earlier < later);
        assert_eq!(EventId::parse(earlier.as_str()), Some(earlier));
    }

    #[test]
    fn notification_ids_derive_from_event_and_rule() {
        let event = EventId::generate(Timestamp::from_millis(1_700_000_000_000));
        let first = NotificationId::for_rule(&event, "welcome-email");
        assert_eq!(first, NotificationId::for_rule(&event, "welcome-email"));
        assert_ne!(first, NotificationId::for_rule(&event, "welcome-sms"));
        assert!(first.as_str().starts_with("ntf_"));
        assert_eq!(
            first.as_str()[4..16],
            event.as_str()[4..16],
            "shares the event's time prefix"
        );
    }

    #[test]
    fn parse_rejects_malformed_ids() {
        for raw in [
            "evt_",
            "evt_XYZ",
            "ntf_0123456789abcdef0123456789abcdef",
            "evt_0123456789ABCDEF0123456789abcdef",
        ] {
            assert_eq!(EventId::parse(raw), None, "{raw}");
        }
    }
}
