//! The management API: health, event types, templates, rules, users and their devices, webhook endpoints and
//! the suppression list, each tenant's alone.

mod devices;
#[cfg(test)]
mod devices_tests;
mod suppressions;
#[cfg(test)]
mod suppressions_tests;
#[cfg(test)]
mod testing;
mod users;
mod webhooks;
#[cfg(test)]
mod webhooks_tests;

use crate::config::HttpSettings;
use crate::domain::address::WebhookPolicy;
use crate::domain::api_key::KeyScope;
use crate::domain::event_type::EventTypeSpec;
use crate::domain::rule::RuleSpec;
use crate::domain::template::{TemplateContent, Usage};
use crate::domain::validation::is_valid_name;
use crate::domain::{FieldError, Problem, ProblemCode, TenantId, Timestamp};
use crate::http::{
    Authenticator, Cursor, Cursors, HttpResponse, MAX_BODY_BYTES, backend_failure, correlation,
    empty_response, json_body, json_response, method_not_allowed, not_found_route, path_segments,
    problem_response, query_parameter,
};
use crate::ports::{
    ApiKeyStore, BackendError, CursorKeyStore, DeviceStore, EventTypeStore, NoPushEndpoints, Page,
    PageRequest, PushEndpoints, RuleStore, Saved, SuppressionList, TemplateStore, UserStore,
    WebhookEndpointStore, WriteError,
};
use lambda_http::Request;
use lambda_http::http::Method;
use serde_json::{Value, json};
use tracing::Instrument;

/// Pages of rules read to find the event types a template serves (100 rules a page).
const MAX_RULE_PAGES: usize = 20;

/// Everything the API function holds between invocations.
#[derive(Debug)]
pub struct Api<K, C, P = NoPushEndpoints> {
    auth: Authenticator<K>,
    cursors: Cursors,
    store: C,
    /// Where a registered device gets its platform endpoint; push is off until [`Api::with_push`].
    push: P,
    settings: HttpSettings,
    /// Where a tenant's endpoints may point: any public host, and loopback only where the deployment
    /// allows it for every webhook (`HERALD_ALLOW_LOOPBACK_WEBHOOKS`: the local stack).
    endpoint_policy: WebhookPolicy,
}

fn backend(error: &BackendError) -> Problem {
    backend_failure(error)
}

fn write_problem(error: WriteError) -> Problem {
    match error {
        WriteError::Backend(error) => backend_failure(&error),
        WriteError::Conflict(detail) => Problem::new(ProblemCode::Conflict, detail),
        WriteError::Invalid(error) => Problem::validation(vec![error]),
    }
}

fn path_name(name: &str) -> Result<&str, Problem> {
    if is_valid_name(name) {
        Ok(name)
    } else {
        Err(Problem::new(
            ProblemCode::ValidationFailed,
            format!("{name:?} is not a valid name: use [a-z0-9_.-]{{1,64}}"),
        ))
    }
}

fn saved_status(saved: Saved) -> u16 {
    match saved {
        Saved::Created => 201,
        Saved::Replaced => 200,
    }
}

fn list_response<T>(
    cursor: &Cursor<'_>,
    tenant: &TenantId,
    list: &str,
    page: Page<T>,
    to_json: impl Fn(&T) -> Value,
) -> HttpResponse {
    let next_cursor = page.next.map(|after| cursor.encode(tenant, list, &after));
    json_response(
        200,
        &json!({"items": page.items.iter().map(to_json).collect::<Vec<_>>(), "next_cursor": next_cursor}),
    )
}

impl<K: ApiKeyStore, C> Api<K, C> {
    pub fn new(keys: K, store: C, settings: HttpSettings) -> Self {
        Self {
            auth: Authenticator::new(keys, settings.cache_ttl),
            cursors: Cursors::default(),
            store,
            push: NoPushEndpoints,
            endpoint_policy: WebhookPolicy::any_public_host(settings.webhook_policy.allows_loopback()),
            settings,
        }
    }

    /// The API registering devices with `push`'s platform endpoints.
    pub fn with_push<P: PushEndpoints>(self, push: P) -> Api<K, C, P> {
        Api {
            auth: self.auth,
            cursors: self.cursors,
            store: self.store,
            push,
            settings: self.settings,
            endpoint_policy: self.endpoint_policy,
        }
    }
}

impl<K, C, P> Api<K, C, P>
where
    K: ApiKeyStore + CursorKeyStore,
    C: EventTypeStore
        + TemplateStore
        + RuleStore
        + UserStore
        + WebhookEndpointStore
        + SuppressionList
        + DeviceStore,
    P: PushEndpoints,
{
    /// The Lambda handler: every outcome, problems included, is an HTTP answer.
    pub async fn handle(&self, request: Request) -> Result<HttpResponse, lambda_http::Error> {
        let correlation_id = correlation::correlation_id(&request);
        let span = correlation::request_span(&request, &correlation_id);
        let outcome = self.route(&request).instrument(span).await;
        let response =
            outcome.unwrap_or_else(|problem| problem_response(&problem, &self.settings.problem_type_base));
        Ok(correlation::answer_with(response, &correlation_id))
    }

    async fn route(&self, request: &Request) -> Result<HttpResponse, Problem> {
        let segments = path_segments(request);
        if segments == ["v1", "health"] {
            return match *request.method() {
                Method::GET => Ok(json_response(200, &json!({"status": "ok"}))),
                _ => Err(method_not_allowed(request, "GET")),
            };
        }
        let known = matches!(segments.as_slice(), ["v1", "event-types" | "templates" | "rules" | "webhooks" | "suppressions", ..] if segments.len() <= 3)
            || matches!(
                segments.as_slice(),
                ["v1", "users", _]
                    | ["v1", "users", _, "preferences" | "devices"]
                    | ["v1", "users", _, "devices", _]
                    | ["v1", "webhooks", _, "rotate-secret"]
            );
        if !known {
            return Err(not_found_route(request));
        }
        let tenant = self.auth.authenticate(request, KeyScope::Full).await?;
        let method = request.method().clone();
        match (method, segments.as_slice()) {
            (Method::GET, ["v1", "event-types"]) => self.list_event_types(request, &tenant).await,
            (Method::PUT, ["v1", "event-types", name]) => {
                self.put_event_type(request, &tenant, path_name(name)?).await
            }
            (Method::GET, ["v1", "event-types", name]) => self.get_event_type(&tenant, name).await,
            (Method::DELETE, ["v1", "event-types", name]) => self.delete_event_type(&tenant, name).await,
            (Method::GET, ["v1", "templates"]) => self.list_templates(request, &tenant).await,
            (Method::PUT, ["v1", "templates", name]) => {
                self.put_template(request, &tenant, path_name(name)?).await
            }
            (Method::GET, ["v1", "templates", name]) => self.get_template(request, &tenant, name).await,
            (Method::DELETE, ["v1", "templates", name]) => self.delete_template(&tenant, name).await,
            (Method::GET, ["v1", "rules"]) => self.list_rules(request, &tenant).await,
            (Method::PUT, ["v1", "rules", id]) => self.put_rule(request, &tenant, path_name(id)?).await,
            (Method::GET, ["v1", "rules", id]) => self.get_rule(&tenant, id).await,
            (Method::DELETE, ["v1", "rules", id]) => self.delete_rule(&tenant, id).await,
            (Method::PUT, ["v1", "users", id]) => self.put_user(request, &tenant, id).await,
            (Method::GET, ["v1", "users", id]) => self.get_user(&tenant, id).await,
            (Method::DELETE, ["v1", "users", id]) => self.delete_user(&tenant, id).await,
            (Method::PUT, ["v1", "users", id, "preferences"]) => {
                self.put_preferences(request, &tenant, id).await
            }
            (Method::GET, ["v1", "users", id, "preferences"]) => self.get_preferences(&tenant, id).await,
            (Method::GET, ["v1", "webhooks"]) => self.list_webhooks(request, &tenant).await,
            (Method::PUT, ["v1", "webhooks", id]) => self.put_webhook(request, &tenant, id).await,
            (Method::GET, ["v1", "webhooks", id]) => self.get_webhook(&tenant, id).await,
            (Method::DELETE, ["v1", "webhooks", id]) => self.delete_webhook(&tenant, id).await,
            (Method::POST, ["v1", "webhooks", id, "rotate-secret"]) => {
                self.rotate_webhook_secret(request, &tenant, id).await
            }
            (Method::GET, ["v1", "users", id, "devices"]) => self.list_devices(&tenant, id).await,
            (Method::PUT, ["v1", "users", id, "devices", token]) => {
                self.put_device(request, &tenant, id, token).await
            }
            (Method::DELETE, ["v1", "users", id, "devices", token]) => {
                self.delete_device(&tenant, id, token).await
            }
            (_, [_, _, _, "preferences"]) => Err(method_not_allowed(request, "GET, PUT")),
            (_, [_, _, _, "devices", _]) => Err(method_not_allowed(request, "PUT, DELETE")),
            (_, [_, _, _, "rotate-secret"]) => Err(method_not_allowed(request, "POST")),
            (Method::GET, ["v1", "suppressions"]) => self.list_suppressions(request, &tenant).await,
            (Method::GET, ["v1", "suppressions", address]) => self.get_suppression(&tenant, address).await,
            (Method::DELETE, ["v1", "suppressions", address]) => {
                self.delete_suppression(&tenant, address).await
            }
            // Entries are added by the provider's feedback alone.
            (_, ["v1", "suppressions", _]) => Err(method_not_allowed(request, "GET, DELETE")),
            // A collection is listed; its items are read, replaced and deleted.
            (_, [_, _] | [_, _, _, "devices"]) => Err(method_not_allowed(request, "GET")),
            _ => Err(method_not_allowed(request, "GET, PUT, DELETE")),
        }
    }

    // ------------------------------------------------------------------------------------ event types

    async fn put_event_type(
        &self,
        request: &Request,
        tenant: &TenantId,
        name: &str,
    ) -> Result<HttpResponse, Problem> {
        let spec =
            EventTypeSpec::from_json(&json_body(request, MAX_BODY_BYTES)?).map_err(Problem::validation)?;
        let saved = self
            .store
            .put_event_type(tenant, name, &spec, Timestamp::now())
            .await
            .map_err(|e| backend(&e))?;
        let stored = self
            .store
            .event_type(tenant, name)
            .await
            .map_err(|e| backend(&e))?;
        let body = stored.map_or_else(|| json!({"name": name}), |event_type| event_type.to_json());
        Ok(json_response(saved_status(saved), &body))
    }

    async fn get_event_type(&self, tenant: &TenantId, name: &str) -> Result<HttpResponse, Problem> {
        let found = if is_valid_name(name) {
            self.store
                .event_type(tenant, name)
                .await
                .map_err(|e| backend(&e))?
        } else {
            None
        };
        let event_type = found.ok_or_else(|| Problem::not_found(&format!("event type {name}")))?;
        Ok(json_response(200, &event_type.to_json()))
    }

    async fn list_event_types(&self, request: &Request, tenant: &TenantId) -> Result<HttpResponse, Problem> {
        let cursor = self.cursors.signer(self.auth.keys()).await?;
        let page = cursor.page_request(request, tenant, "event-types")?;
        let listed = self
            .store
            .list_event_types(tenant, &page)
            .await
            .map_err(|e| backend(&e))?;
        Ok(list_response(
            &cursor,
            tenant,
            "event-types",
            listed,
            super::domain::event_type::EventType::to_json,
        ))
    }

    async fn delete_event_type(&self, tenant: &TenantId, name: &str) -> Result<HttpResponse, Problem> {
        let deleted = is_valid_name(name)
            && self
                .store
                .delete_event_type(tenant, name)
                .await
                .map_err(|e| backend(&e))?;
        if deleted {
            Ok(empty_response(204))
        } else {
            Err(Problem::not_found(&format!("event type {name}")))
        }
    }

    // -------------------------------------------------------------------------------------- templates

    async fn put_template(
        &self,
        request: &Request,
        tenant: &TenantId,
        name: &str,
    ) -> Result<HttpResponse, Problem> {
        let content =
            TemplateContent::from_json(&json_body(request, MAX_BODY_BYTES)?).map_err(Problem::validation)?;
        // Refused now what would fail every notification later: rendered on an example of each event
        // type whose rules name it (docs/api.md says what is refused and what is not).
        let usages = self.usages_of(tenant, name).await?;
        let errors = content.test_render(&usages);
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        let stored = self
            .store
            .put_template(tenant, name, &content, Timestamp::now())
            .await
            .map_err(write_problem)?;
        Ok(json_response(
            201,
            &json!({"name": stored.name, "channel": stored.content.channel, "locale": stored.content.locale, "version": stored.version}),
        ))
    }

    /// The event types whose rules name template `name`, with their schemas.
    async fn usages_of(&self, tenant: &TenantId, name: &str) -> Result<Vec<Usage>, Problem> {
        let mut event_types = std::collections::BTreeSet::new();
        let mut page = PageRequest {
            limit: 100,
            after: None,
        };
        // A tenant has at most 50 rules per event type; past this many pages the check is partial, not slow.
        for _ in 0..MAX_RULE_PAGES {
            let listed = self
                .store
                .list_rules(tenant, None, &page)
                .await
                .map_err(|e| backend(&e))?;
            event_types.extend(
                listed
                    .items
                    .into_iter()
                    .filter(|rule| rule.spec.template == name)
                    .map(|rule| rule.spec.event),
            );
            match listed.next {
                Some(after) => page.after = Some(after),
                None => break,
            }
        }
        let found = futures::future::try_join_all(
            event_types
                .iter()
                .map(|event_type| self.store.event_type(tenant, event_type)),
        )
        .await
        .map_err(|e| backend(&e))?;
        Ok(found
            .into_iter()
            .flatten()
            .map(|event_type| Usage {
                event_type: event_type.name,
                schema: event_type.spec.schema,
            })
            .collect())
    }

    /// Test-renders every live locale of template `name` for one event type, as a rule's errors.
    async fn test_render_for(
        &self,
        tenant: &TenantId,
        name: &str,
        live: &std::collections::BTreeMap<String, u32>,
        usage: Usage,
    ) -> Result<Vec<FieldError>, Problem> {
        let versions = futures::future::try_join_all(
            live.iter()
                .map(|(locale, version)| self.store.template_version(tenant, name, locale, *version)),
        )
        .await
        .map_err(|e| backend(&e))?;
        Ok(versions
            .into_iter()
            .flatten()
            .flat_map(|version| {
                let locale = version.content.locale.clone();
                version
                    .content
                    .test_render(std::slice::from_ref(&usage))
                    .into_iter()
                    .map(move |error| {
                        FieldError::new(
                            "/template",
                            format!("template {name} ({locale}) {}: {}", error.pointer, error.message),
                        )
                    })
            })
            .collect())
    }

    async fn get_template(
        &self,
        request: &Request,
        tenant: &TenantId,
        name: &str,
    ) -> Result<HttpResponse, Problem> {
        let not_found = || Problem::not_found(&format!("template {name}"));
        if !is_valid_name(name) {
            return Err(not_found());
        }
        let head = self
            .store
            .template_head(tenant, name)
            .await
            .map_err(|e| backend(&e))?
            .ok_or_else(not_found)?;
        let locale = query_parameter(request, "locale").unwrap_or_else(|| head.default_locale.clone());
        let version = match query_parameter(request, "version") {
            None => head.live_versions.get(&locale).copied(),
            Some(raw) => Some(raw.parse::<u32>().map_err(|_| {
                Problem::validation(vec![FieldError::new(
                    "/version",
                    "must be a positive whole number",
                )])
            })?),
        };
        let not_found_version = || Problem::not_found(&format!("template {name} in locale {locale}"));
        let version = version.ok_or_else(not_found_version)?;
        let stored = self
            .store
            .template_version(tenant, name, &locale, version)
            .await
            .map_err(|e| backend(&e))?
            .ok_or_else(not_found_version)?;
        let mut body = stored.to_json();
        body["default_locale"] = json!(head.default_locale);
        body["locales"] = json!(head.live_versions);
        body["live"] = json!(head.live_versions.get(&locale) == Some(&version));
        Ok(json_response(200, &body))
    }

    async fn list_templates(&self, request: &Request, tenant: &TenantId) -> Result<HttpResponse, Problem> {
        let cursor = self.cursors.signer(self.auth.keys()).await?;
        let page = cursor.page_request(request, tenant, "templates")?;
        let listed = self
            .store
            .list_templates(tenant, &page)
            .await
            .map_err(|e| backend(&e))?;
        Ok(list_response(
            &cursor,
            tenant,
            "templates",
            listed,
            super::domain::template::TemplateHead::to_json,
        ))
    }

    async fn delete_template(&self, tenant: &TenantId, name: &str) -> Result<HttpResponse, Problem> {
        let deleted = is_valid_name(name)
            && self
                .store
                .delete_template(tenant, name)
                .await
                .map_err(|e| backend(&e))?;
        if deleted {
            Ok(empty_response(204))
        } else {
            Err(Problem::not_found(&format!("template {name}")))
        }
    }

    // ------------------------------------------------------------------------------------------ rules

    async fn put_rule(
        &self,
        request: &Request,
        tenant: &TenantId,
        id: &str,
    ) -> Result<HttpResponse, Problem> {
        let spec = RuleSpec::from_json(&json_body(request, MAX_BODY_BYTES)?).map_err(Problem::validation)?;
        // A rule naming a type or template that does not exist would silently never send: refuse it now.
        let (event_type, template) = futures::try_join!(
            self.store.event_type(tenant, &spec.event),
            self.store.template_head(tenant, &spec.template)
        )
        .map_err(|e| backend(&e))?;
        let mut errors = Vec::new();
        if event_type.is_none() {
            errors.push(FieldError::new(
                "/event",
                format!("event type {} does not exist", spec.event),
            ));
        }
        match template {
            None => errors.push(FieldError::new(
                "/template",
                format!("template {} does not exist", spec.template),
            )),
            Some(head) if head.channel != spec.channel => errors.push(FieldError::new(
                "/template",
                format!(
                    "template {} is for {}, not {}",
                    spec.template, head.channel, spec.channel
                ),
            )),
            Some(head) => {
                if let Some(event_type) = event_type {
                    let usage = Usage {
                        event_type: event_type.name,
                        schema: event_type.spec.schema,
                    };
                    errors.extend(
                        self.test_render_for(tenant, &spec.template, &head.live_versions, usage)
                            .await?,
                    );
                }
            }
        }
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        let saved = self
            .store
            .put_rule(tenant, id, &spec, Timestamp::now())
            .await
            .map_err(write_problem)?;
        let stored = self.store.rule(tenant, id).await.map_err(|e| backend(&e))?;
        Ok(json_response(
            saved_status(saved),
            &stored.map_or_else(|| json!({"id": id}), |rule| rule.to_json()),
        ))
    }

    async fn get_rule(&self, tenant: &TenantId, id: &str) -> Result<HttpResponse, Problem> {
        let found = if is_valid_name(id) {
            self.store.rule(tenant, id).await.map_err(|e| backend(&e))?
        } else {
            None
        };
        let rule = found.ok_or_else(|| Problem::not_found(&format!("rule {id}")))?;
        Ok(json_response(200, &rule.to_json()))
    }

    async fn list_rules(&self, request: &Request, tenant: &TenantId) -> Result<HttpResponse, Problem> {
        let event = query_parameter(request, "event");
        if event.as_deref().is_some_and(|event| !is_valid_name(event)) {
            return Err(Problem::validation(vec![FieldError::new(
                "/event",
                "must match [a-z0-9_.-]{1,64}",
            )]));
        }
        let list = format!("rules:{}", event.as_deref().unwrap_or("*"));
        let cursor = self.cursors.signer(self.auth.keys()).await?;
        let page = cursor.page_request(request, tenant, &list)?;
        let listed = self
            .store
            .list_rules(tenant, event.as_deref(), &page)
            .await
            .map_err(|e| backend(&e))?;
        Ok(list_response(
            &cursor,
            tenant,
            &list,
            listed,
            super::domain::rule::Rule::to_json,
        ))
    }

    async fn delete_rule(&self, tenant: &TenantId, id: &str) -> Result<HttpResponse, Problem> {
        let deleted = is_valid_name(id) && self.store.delete_rule(tenant, id).await.map_err(write_problem)?;
        if deleted {
            Ok(empty_response(204))
        } else {
            Err(Problem::not_found(&format!("rule {id}")))
        }
    }
}
