//! A channel that sends only to the allowed SMS destination countries: SMS pumping (a bot sending texts to
//! premium-rate numbers abroad) costs the sender, and most products text a few countries.
//!
//! The deployment allows `SmsAllowedCountries`; an operator may give one tenant its own list
//! (`herald tenant sms-countries`). A container keeps what it read of a tenant's list for
//! [`TENANT_SETTINGS_TTL`], so a change takes effect within that time without a read per message.

use crate::domain::address::CountryAllowList;
use crate::domain::delivery::{DestinationRefusal, Outgoing, SendError, SendReceipt};
use crate::domain::{Channel, TenantId};
use crate::ports::{BackendError, Sender, TenantSettingsStore};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a container trusts what it read of a tenant's settings.
pub const TENANT_SETTINGS_TTL: Duration = Duration::from_secs(60);
/// Tenants whose settings a container keeps at once; past it, the cache starts again empty.
const CACHED_TENANTS: usize = 1024;

/// `inner`, refusing numbers outside the tenant's allowed countries before any provider call.
#[derive(Debug)]
pub struct CountryLimited<S, T> {
    inner: S,
    deployment: CountryAllowList,
    tenants: T,
    /// Per tenant: when it was read, and its own list (`None`: the deployment's).
    cache: Mutex<HashMap<TenantId, (Instant, Option<CountryAllowList>)>>,
}

impl<S, T: TenantSettingsStore> CountryLimited<S, T> {
    /// `deployment` applies to every tenant without a list of its own in `tenants`.
    pub fn new(inner: S, deployment: CountryAllowList, tenants: T) -> Self {
        Self {
            inner,
            deployment,
            tenants,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn tenants(&self) -> &T {
        &self.tenants
    }

    /// The tenant's own list, from the cache while it is fresh.
    async fn tenant_list(&self, tenant: &TenantId) -> Result<Option<CountryAllowList>, BackendError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .filter(|(read_at, _)| read_at.elapsed() < TENANT_SETTINGS_TTL)
            .map(|(_, list)| list.clone());
        if let Some(list) = cached {
            return Ok(list);
        }
        let settings = self.tenants.tenant_settings(tenant).await?;
        let list = settings.and_then(|settings| settings.sms_allowed_countries);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHED_TENANTS {
            cache.clear();
        }
        cache.insert(tenant.clone(), (Instant::now(), list.clone()));
        Ok(list)
    }
}

impl<S: Sender, T: TenantSettingsStore> Sender for CountryLimited<S, T> {
    fn channel(&self) -> Channel {
        self.inner.channel()
    }

    async fn refuse(&self, tenant: &TenantId, to: &str) -> Result<Option<DestinationRefusal>, BackendError> {
        let own = self.tenant_list(tenant).await?;
        if let Err(why) = own.as_ref().unwrap_or(&self.deployment).check(to) {
            return Ok(Some(DestinationRefusal::NotAllowed(why)));
        }
        self.inner.refuse(tenant, to).await
    }

    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<SendReceipt, SendError> {
        self.inner.send(outgoing).await
    }
}
