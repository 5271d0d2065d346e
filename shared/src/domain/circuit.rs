//! Circuit breakers: one per provider endpoint, so an outage is waited out without calling the provider
//! for every message and without using up anyone's retries.

use super::{Channel, TenantId, Timestamp};
use url::Url;

/// A provider's circuit as stored: closed while `open_until` is unset; open until then; half-open after,
/// when one delivery at a time (`probe_until`) may try the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CircuitState {
    /// Transient failures in a row (any success puts it back to 0).
    pub failures: u32,
    pub open_until: Option<Timestamp>,
    /// While a probe is out: no other delivery calls the provider until then.
    pub probe_until: Option<Timestamp>,
}

impl CircuitState {
    /// Whether the provider is believed to be failing: open, half-open, or counting failures.
    pub fn is_troubled(&self) -> bool {
        self.failures > 0 || self.open_until.is_some()
    }
}

/// The provider endpoint a notification is sent through, which names its circuit: `ses`, `sns`,
/// `slack:<host>` (each webhook host fails on its own), or `webhook:<tenant>:<endpoint>` (each tenant's
/// endpoint fails on its own; endpoint ids are the tenant's). A notification whose address is unknown here
/// shares its channel's name.
pub fn provider_key(tenant: &TenantId, channel: Channel, address: Option<&str>) -> String {
    match channel {
        Channel::Email => "ses".to_owned(),
        Channel::Sms => "sns".to_owned(),
        Channel::Slack => {
            let host = address
                .and_then(|address| Url::parse(address).ok())
                .and_then(|url| url.host_str().map(str::to_ascii_lowercase));
            host.map_or_else(|| "slack".to_owned(), |host| format!("slack:{host}"))
        }
        // Every device is reached through SNS's platform endpoints: one provider, one circuit.
        Channel::Push => "sns-push".to_owned(),
        Channel::Webhook => address.map_or_else(
            || "webhook".to_owned(),
            |endpoint| format!("webhook:{tenant}:{endpoint}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_provider_endpoint_has_its_own_circuit() {
        let acme = TenantId::new("acme");
        assert_eq!(
            provider_key(&acme, Channel::Email, Some("ada@example.com")),
            "ses"
        );
        assert_eq!(provider_key(&acme, Channel::Sms, None), "sns");
        assert_eq!(
            provider_key(
                &acme,
                Channel::Slack,
                Some("https://Hooks.Slack.com/services/T/B/secret")
            ),
            "slack:hooks.slack.com",
            "the host only: the path is a secret"
        );
        assert_eq!(provider_key(&acme, Channel::Slack, Some("not a url")), "slack");
        assert_eq!(provider_key(&acme, Channel::Slack, None), "slack");
        assert_eq!(
            provider_key(&acme, Channel::Webhook, Some("orders")),
            "webhook:acme:orders"
        );
        assert_ne!(
            provider_key(&TenantId::new("globex"), Channel::Webhook, Some("orders")),
            "webhook:acme:orders",
            "two tenants' endpoints of one name are two circuits"
        );
    }

    #[test]
    fn a_closed_circuit_with_no_failures_is_untroubled() {
        assert!(!CircuitState::default().is_troubled());
        let counting = CircuitState {
            failures: 1,
            ..CircuitState::default()
        };
        assert!(counting.is_troubled());
    }
}
