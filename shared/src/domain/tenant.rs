//! What an operator sets for one tenant, above the deployment's defaults.

use super::Timestamp;
use super::address::CountryAllowList;

/// A tenant's own settings; each one left unset falls back to the deployment's parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSettings {
    /// The countries this tenant's SMS may go to, instead of `SmsAllowedCountries`.
    pub sms_allowed_countries: Option<CountryAllowList>,
    /// Notifications a minute per recipient and channel, instead of `RateLimitPerMinute` (0: no limit).
    pub rate_limit_per_minute: Option<u32>,
    /// Events a minute each of the tenant's API keys may send, instead of `IngestBudgetPerMinute` (0: no
    /// budget).
    pub ingest_budget_per_minute: Option<u32>,
    pub updated_at: Option<Timestamp>,
}

/// A number an operator sets per tenant with `herald tenant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantLimit {
    RatePerMinute,
    IngestBudgetPerMinute,
}

impl TenantLimit {
    /// Its attribute on the tenant's settings item.
    pub const fn attribute(self) -> &'static str {
        match self {
            Self::RatePerMinute => "rate_limit_per_minute",
            Self::IngestBudgetPerMinute => "ingest_budget_per_minute",
        }
    }

    pub fn of(self, settings: &TenantSettings) -> Option<u32> {
        match self {
            Self::RatePerMinute => settings.rate_limit_per_minute,
            Self::IngestBudgetPerMinute => settings.ingest_budget_per_minute,
        }
    }
}
