//! What an operator sets for one tenant, above the deployment's defaults.

use super::Timestamp;
use super::address::CountryAllowList;

/// A tenant's own settings; each one left unset falls back to the deployment's parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSettings {
    /// The countries this tenant's SMS may go to, instead of `SmsAllowedCountries`.
    pub sms_allowed_countries: Option<CountryAllowList>,
    pub updated_at: Option<Timestamp>,
}
