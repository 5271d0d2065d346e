//! The config table in memory, as ingest and the API take it: one value for event types, rules,
//! templates, users, tenants' settings, suppression lists, webhook endpoints and devices (the DynamoDB adapter
//! is one type for all of them). Each part keeps its own failpoints.

use super::devices::MemoryDeviceStore;
use super::event_types::MemoryEventTypeStore;
use super::rules::MemoryRuleStore;
use super::suppressions::MemorySuppressionList;
use super::templates::MemoryTemplateStore;
use super::tenants::MemoryTenantSettingsStore;
use super::users::MemoryUserStore;
use super::webhooks::MemoryWebhookEndpoints;
use crate::domain::address::CountryAllowList;
use crate::domain::device::{DeviceRegistration, DeviceToken};
use crate::domain::event_type::{EventType, EventTypeSpec};
use crate::domain::rule::{Rule, RuleSpec};
use crate::domain::suppression::Suppression;
use crate::domain::template::{TemplateContent, TemplateHead, TemplateVersion};
use crate::domain::tenant::{TenantLimit, TenantSettings};
use crate::domain::user::{Preferences, User, UserProfile};
use crate::domain::webhook::{DisabledBy, EndpointSpec, SigningSecret, WebhookEndpoint};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{
    BackendError, DeviceStore, EventTypeStore, Page, PageRequest, RuleStore, Saved, SuppressionList,
    TemplateStore, TenantSettingsStore, UserStore, WebhookEndpointStore, WriteError,
};

#[derive(Debug, Default)]
pub struct MemoryConfigStore {
    pub event_types: MemoryEventTypeStore,
    pub rules: MemoryRuleStore,
    pub templates: MemoryTemplateStore,
    pub users: MemoryUserStore,
    pub tenants: MemoryTenantSettingsStore,
    pub suppressions: MemorySuppressionList,
    pub webhooks: MemoryWebhookEndpoints,
    pub devices: MemoryDeviceStore,
}

impl DeviceStore for MemoryConfigStore {
    async fn put_device(
        &self,
        tenant: &TenantId,
        registration: &DeviceRegistration,
    ) -> Result<Saved, WriteError> {
        self.devices.put_device(tenant, registration).await
    }

    async fn devices_of(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<DeviceRegistration>, BackendError> {
        self.devices.devices_of(tenant, user_id).await
    }

    async fn delete_device(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token: &DeviceToken,
    ) -> Result<bool, BackendError> {
        self.devices.delete_device(tenant, user_id, token).await
    }

    async fn forget_endpoint(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token: &DeviceToken,
        endpoint_arn: &str,
    ) -> Result<bool, BackendError> {
        self.devices
            .forget_endpoint(tenant, user_id, token, endpoint_arn)
            .await
    }
}

impl WebhookEndpointStore for MemoryConfigStore {
    async fn put_endpoint(
        &self,
        tenant: &TenantId,
        id: &str,
        spec: &EndpointSpec,
        secret: &SigningSecret,
        now: Timestamp,
    ) -> Result<(Saved, WebhookEndpoint), BackendError> {
        self.webhooks.put_endpoint(tenant, id, spec, secret, now).await
    }

    async fn endpoint(&self, tenant: &TenantId, id: &str) -> Result<Option<WebhookEndpoint>, BackendError> {
        self.webhooks.endpoint(tenant, id).await
    }

    async fn endpoints(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<WebhookEndpoint>, BackendError> {
        self.webhooks.endpoints(tenant, page).await
    }

    async fn delete_endpoint(&self, tenant: &TenantId, id: &str) -> Result<bool, BackendError> {
        self.webhooks.delete_endpoint(tenant, id).await
    }

    async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &str,
        secret: &SigningSecret,
        overlap_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, BackendError> {
        self.webhooks
            .rotate_secret(tenant, id, secret, overlap_until, now)
            .await
    }

    async fn mark_failing(&self, tenant: &TenantId, id: &str, since: Timestamp) -> Result<(), BackendError> {
        self.webhooks.mark_failing(tenant, id, since).await
    }

    async fn mark_healthy(&self, tenant: &TenantId, id: &str) -> Result<(), BackendError> {
        self.webhooks.mark_healthy(tenant, id).await
    }

    async fn disable(
        &self,
        tenant: &TenantId,
        id: &str,
        by: DisabledBy,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        self.webhooks.disable(tenant, id, by, now).await
    }
}

impl SuppressionList for MemoryConfigStore {
    async fn suppress(&self, tenant: &TenantId, entry: &Suppression) -> Result<bool, BackendError> {
        self.suppressions.suppress(tenant, entry).await
    }

    async fn suppression(
        &self,
        tenant: &TenantId,
        address: &str,
    ) -> Result<Option<Suppression>, BackendError> {
        self.suppressions.suppression(tenant, address).await
    }

    async fn suppressions(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Suppression>, BackendError> {
        self.suppressions.suppressions(tenant, page).await
    }

    async fn unsuppress(&self, tenant: &TenantId, address: &str) -> Result<bool, BackendError> {
        self.suppressions.unsuppress(tenant, address).await
    }
}

impl TenantSettingsStore for MemoryConfigStore {
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<Option<TenantSettings>, BackendError> {
        self.tenants.tenant_settings(tenant).await
    }

    async fn set_sms_allowed_countries(
        &self,
        tenant: &TenantId,
        countries: Option<&CountryAllowList>,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        self.tenants
            .set_sms_allowed_countries(tenant, countries, now)
            .await
    }

    async fn set_limit(
        &self,
        tenant: &TenantId,
        limit: TenantLimit,
        value: Option<u32>,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        self.tenants.set_limit(tenant, limit, value, now).await
    }
}

impl UserStore for MemoryConfigStore {
    async fn user(&self, tenant: &TenantId, user_id: &str) -> Result<Option<User>, BackendError> {
        self.users.user(tenant, user_id).await
    }

    async fn put_profile(
        &self,
        tenant: &TenantId,
        user_id: &str,
        profile: &UserProfile,
        now: Timestamp,
    ) -> Result<Saved, BackendError> {
        self.users.put_profile(tenant, user_id, profile, now).await
    }

    async fn put_preferences(
        &self,
        tenant: &TenantId,
        user_id: &str,
        preferences: &Preferences,
        now: Timestamp,
    ) -> Result<Saved, BackendError> {
        self.users
            .put_preferences(tenant, user_id, preferences, now)
            .await
    }

    async fn delete_user(&self, tenant: &TenantId, user_id: &str) -> Result<bool, BackendError> {
        self.users.delete_user(tenant, user_id).await
    }
}

impl EventTypeStore for MemoryConfigStore {
    async fn put_event_type(
        &self,
        tenant: &TenantId,
        name: &str,
        spec: &EventTypeSpec,
        now: Timestamp,
    ) -> Result<Saved, BackendError> {
        self.event_types.put_event_type(tenant, name, spec, now).await
    }

    async fn event_type(&self, tenant: &TenantId, name: &str) -> Result<Option<EventType>, BackendError> {
        self.event_types.event_type(tenant, name).await
    }

    async fn list_event_types(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<EventType>, BackendError> {
        self.event_types.list_event_types(tenant, page).await
    }

    async fn delete_event_type(&self, tenant: &TenantId, name: &str) -> Result<bool, BackendError> {
        self.event_types.delete_event_type(tenant, name).await
    }
}

impl RuleStore for MemoryConfigStore {
    async fn put_rule(
        &self,
        tenant: &TenantId,
        id: &str,
        spec: &RuleSpec,
        now: Timestamp,
    ) -> Result<Saved, WriteError> {
        self.rules.put_rule(tenant, id, spec, now).await
    }

    async fn rule(&self, tenant: &TenantId, id: &str) -> Result<Option<Rule>, BackendError> {
        self.rules.rule(tenant, id).await
    }

    async fn list_rules(
        &self,
        tenant: &TenantId,
        event: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Rule>, BackendError> {
        self.rules.list_rules(tenant, event, page).await
    }

    async fn rules_for_event(&self, tenant: &TenantId, event: &str) -> Result<Vec<Rule>, BackendError> {
        self.rules.rules_for_event(tenant, event).await
    }

    async fn delete_rule(&self, tenant: &TenantId, id: &str) -> Result<bool, WriteError> {
        self.rules.delete_rule(tenant, id).await
    }
}

impl TemplateStore for MemoryConfigStore {
    async fn put_template(
        &self,
        tenant: &TenantId,
        name: &str,
        content: &TemplateContent,
        now: Timestamp,
    ) -> Result<TemplateVersion, WriteError> {
        self.templates.put_template(tenant, name, content, now).await
    }

    async fn template_head(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<TemplateHead>, BackendError> {
        self.templates.template_head(tenant, name).await
    }

    async fn template_version(
        &self,
        tenant: &TenantId,
        name: &str,
        locale: &str,
        version: u32,
    ) -> Result<Option<TemplateVersion>, BackendError> {
        self.templates
            .template_version(tenant, name, locale, version)
            .await
    }

    async fn list_templates(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<TemplateHead>, BackendError> {
        self.templates.list_templates(tenant, page).await
    }

    async fn delete_template(&self, tenant: &TenantId, name: &str) -> Result<bool, BackendError> {
        self.templates.delete_template(tenant, name).await
    }
}
