//! What ingest needs to know about an event type — its schema, rules and their templates — compiled once,
//! its tenant's limits and its tenant's webhook endpoints, each cached per container for a short while.

use crate::domain::TenantId;
use crate::domain::event_type::{EventType, compile_schema};
use crate::domain::rule::RuleSet;
use crate::domain::template::TemplateHead;
use crate::domain::tenant::TenantSettings;
use crate::domain::webhook::WebhookEndpoint;
use crate::ports::{
    BackendError, EventTypeStore, PageRequest, RuleStore, TemplateStore, TenantSettingsStore,
    WebhookEndpointStore,
};
use jsonschema::Validator;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An event type ready for ingest.
#[derive(Debug)]
pub struct CompiledEventType {
    pub event_type: EventType,
    pub validator: Option<Validator>,
    pub rules: RuleSet,
    /// The head of every template a rule names; `None` for a template that does not exist.
    pub templates: HashMap<String, Option<TemplateHead>>,
}

type CacheKey = (TenantId, String);

/// A tenant's webhook endpoints that deliveries go to now.
pub type ActiveEndpoints = Arc<Vec<WebhookEndpoint>>;

/// Pages of a tenant's webhook endpoints read (100 a page): a tenant has at most this many hundred.
const MAX_ENDPOINT_PAGES: usize = 10;

/// Loads and caches compiled event types. Unknown types are not cached, so a type created a moment ago
/// is usable at once.
#[derive(Debug)]
pub struct Catalog<C> {
    store: C,
    ttl: Duration,
    cache: Mutex<HashMap<CacheKey, (Arc<CompiledEventType>, Instant)>>,
    settings: Mutex<HashMap<TenantId, (TenantSettings, Instant)>>,
    endpoints: Mutex<HashMap<TenantId, (ActiveEndpoints, Instant)>>,
}

impl<C: EventTypeStore + RuleStore + TemplateStore + TenantSettingsStore> Catalog<C> {
    pub fn new(store: C, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            cache: Mutex::new(HashMap::new()),
            settings: Mutex::new(HashMap::new()),
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's active webhook endpoints, cached as the event types are: an endpoint registered a
    /// moment ago receives events within the cache's lifetime, as a new rule does.
    pub async fn active_endpoints(&self, tenant: &TenantId) -> Result<ActiveEndpoints, BackendError>
    where
        C: WebhookEndpointStore,
    {
        if let Ok(cache) = self.endpoints.lock()
            && let Some((endpoints, at)) = cache.get(tenant)
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(endpoints));
        }
        let mut active = Vec::new();
        let mut page = PageRequest {
            limit: 100,
            after: None,
        };
        for _ in 0..MAX_ENDPOINT_PAGES {
            let listed = self.store.endpoints(tenant, &page).await?;
            active.extend(listed.items.into_iter().filter(WebhookEndpoint::is_active));
            match listed.next {
                Some(after) => page.after = Some(after),
                None => break,
            }
        }
        let active = Arc::new(active);
        if let Ok(mut cache) = self.endpoints.lock() {
            cache.insert(tenant.clone(), (Arc::clone(&active), Instant::now()));
        }
        Ok(active)
    }

    /// The tenant's own limits (its ingest budget, its rate limit), cached as the event types are.
    pub async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettings, BackendError> {
        if let Ok(cache) = self.settings.lock()
            && let Some((settings, at)) = cache.get(tenant)
            && at.elapsed() < self.ttl
        {
            return Ok(settings.clone());
        }
        let settings = self.store.tenant_settings(tenant).await?.unwrap_or_default();
        if let Ok(mut cache) = self.settings.lock() {
            cache.insert(tenant.clone(), (settings.clone(), Instant::now()));
        }
        Ok(settings)
    }

    pub fn store(&self) -> &C {
        &self.store
    }

    pub async fn event_type(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<Arc<CompiledEventType>>, BackendError> {
        let cache_key = (tenant.clone(), name.to_owned());
        if let Some(compiled) = self.cached(&cache_key) {
            return Ok(Some(compiled));
        }
        let (event_type, rules) = futures::try_join!(
            self.store.event_type(tenant, name),
            self.store.rules_for_event(tenant, name)
        )?;
        let Some(event_type) = event_type else {
            return Ok(None);
        };
        let names: BTreeSet<&str> = rules.iter().map(|rule| rule.spec.template.as_str()).collect();
        let heads =
            futures::future::try_join_all(names.iter().map(|name| self.store.template_head(tenant, name)))
                .await?;
        let templates = names.iter().map(|name| (*name).to_owned()).zip(heads).collect();
        let validator = event_type.spec.schema.as_ref().and_then(|schema| {
            compile_schema(schema)
                .map_err(|error| tracing::error!(event_type = name, %error, "stored schema does not compile; payloads are not checked"))
                .ok()
        });
        let compiled = Arc::new(CompiledEventType {
            event_type,
            validator,
            rules: RuleSet::new(rules),
            templates,
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(cache_key, (Arc::clone(&compiled), Instant::now()));
        }
        Ok(Some(compiled))
    }

    fn cached(&self, key: &CacheKey) -> Option<Arc<CompiledEventType>> {
        let cache = self.cache.lock().ok()?;
        let (compiled, at) = cache.get(key)?;
        (at.elapsed() < self.ttl).then(|| Arc::clone(compiled))
    }
}
