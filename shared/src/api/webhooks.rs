//! `/v1/webhooks`: the endpoints where a tenant's own systems receive its events, signed (decision 30).
//! A signing secret is shown in exactly one answer: that of the PUT that created the endpoint, or of the
//! rotation that made the secret. Nothing that reads an endpoint shows one, so a listing on a screen or in
//! a log of answers never holds what signs the deliveries.

use super::{Api, backend, list_response, path_name, saved_status};
use crate::domain::validation::{Violations, is_valid_name};
use crate::domain::webhook::{
    DisabledBy, EndpointSpec, MAX_ENDPOINTS_PER_TENANT, SigningSecret, WebhookEndpoint,
};
use crate::domain::{Problem, ProblemCode, TenantId, Timestamp};
use crate::http::{HttpResponse, MAX_BODY_BYTES, empty_response, json_body, json_response};
use crate::ports::{ApiKeyStore, CursorKeyStore, PageRequest, Saved, WebhookEndpointStore};
use lambda_http::Request;
use serde_json::{Value, json};
use std::time::Duration;

/// How long a replaced secret keeps signing unless the rotation says otherwise: a day for the receivers
/// to deploy the new one.
const DEFAULT_OVERLAP_SECONDS: u64 = 86_400;
/// A secret is rotated because it may be known to someone else; it must not keep signing for long.
const MAX_OVERLAP_SECONDS: u64 = 7 * 86_400;

/// The list name cursors are bound to.
const LIST: &str = "webhooks";

/// The endpoint as every answer shows it: `WebhookEndpoint::to_json` (never a secret) and the machine
/// word for what disabled it, beside the sentence.
pub(super) fn view(endpoint: &WebhookEndpoint) -> Value {
    let mut body = endpoint.to_json();
    body["disabled_by"] = json!(endpoint.disabled_by.map(DisabledBy::as_str));
    body
}

fn not_found(id: &str) -> Problem {
    Problem::not_found(&format!("webhook endpoint {id}"))
}

/// A fresh secret from the OS. Its failure is Herald's own fault and no retry of the request cures it
/// quickly, so it is a 500, not a 503.
fn new_secret() -> Result<SigningSecret, Problem> {
    SigningSecret::generate().map_err(|error| {
        tracing::error!(error = %error, "the OS gave no random bytes for a webhook signing secret");
        Problem::new(
            ProblemCode::InternalError,
            "could not generate a signing secret; this needs the operator, not a retry",
        )
    })
}

/// How long the replaced secret keeps signing: `{"overlap_seconds": n}`, or no body at all.
fn overlap(request: &Request) -> Result<Duration, Problem> {
    if request.body().as_ref().is_empty() {
        return Ok(Duration::from_secs(DEFAULT_OVERLAP_SECONDS));
    }
    let body = json_body(request, MAX_BODY_BYTES)?;
    let mut violations = Violations::default();
    let Some(object) = violations.object(&body, "", &["overlap_seconds"]) else {
        return Err(Problem::validation(violations.into_errors()));
    };
    let seconds = match object.get("overlap_seconds") {
        None | Some(Value::Null) => DEFAULT_OVERLAP_SECONDS,
        Some(value) => value
            .as_u64()
            .filter(|seconds| *seconds <= MAX_OVERLAP_SECONDS)
            .unwrap_or_else(|| {
                violations.add(
                    "/overlap_seconds",
                    format!("must be a whole number of seconds from 0 to {MAX_OVERLAP_SECONDS} (7 days)"),
                );
                0
            }),
    };
    violations
        .finish(Duration::from_secs(seconds))
        .map_err(Problem::validation)
}

impl<K, C, P> Api<K, C, P>
where
    K: ApiKeyStore + CursorKeyStore,
    C: WebhookEndpointStore,
{
    pub(super) async fn put_webhook(
        &self,
        request: &Request,
        tenant: &TenantId,
        id: &str,
    ) -> Result<HttpResponse, Problem> {
        let id = path_name(id)?;
        let spec = EndpointSpec::parse(&json_body(request, MAX_BODY_BYTES)?, |url| self.check_url(url))
            .map_err(Problem::validation)?;
        // Offered to every PUT: the store keeps it only when the PUT creates the endpoint, which only the
        // store can tell when two PUTs race.
        let secret = new_secret()?;
        self.refuse_past_the_limit(tenant, id).await?;
        let (saved, endpoint) = self
            .store
            .put_endpoint(tenant, id, &spec, &secret, Timestamp::now())
            .await
            .map_err(|e| backend(&e))?;
        let mut body = view(&endpoint);
        if saved == Saved::Created {
            body["secret"] = json!(endpoint.secret.expose());
        }
        Ok(json_response(saved_status(saved), &body))
    }

    /// A new endpoint past [`MAX_ENDPOINTS_PER_TENANT`] is refused (409). Two creations racing at the limit
    /// may both pass: the bound it keeps, the acceptance transaction's 100 items, is far above it.
    async fn refuse_past_the_limit(&self, tenant: &TenantId, id: &str) -> Result<(), Problem> {
        let exists = self
            .store
            .endpoint(tenant, id)
            .await
            .map_err(|e| backend(&e))?
            .is_some();
        if exists {
            return Ok(());
        }
        let page = PageRequest {
            limit: u16::try_from(MAX_ENDPOINTS_PER_TENANT).unwrap_or(u16::MAX),
            after: None,
        };
        let listed = self
            .store
            .endpoints(tenant, &page)
            .await
            .map_err(|e| backend(&e))?;
        if listed.items.len() >= MAX_ENDPOINTS_PER_TENANT {
            return Err(Problem::new(
                ProblemCode::Conflict,
                format!(
                    "this tenant has {MAX_ENDPOINTS_PER_TENANT} webhook endpoints, the most it may have; \
                     delete one, or point one at a receiver that fans out"
                ),
            ));
        }
        Ok(())
    }

    /// The deployment's endpoint URL policy: https to a public host (loopback only in the local stack),
    /// checked again by name resolution at every send.
    fn check_url(&self, url: &str) -> Result<(), String> {
        self.endpoint_policy.check(url).map(|_| ())
    }

    pub(super) async fn get_webhook(&self, tenant: &TenantId, id: &str) -> Result<HttpResponse, Problem> {
        let found = if is_valid_name(id) {
            self.store.endpoint(tenant, id).await.map_err(|e| backend(&e))?
        } else {
            None
        };
        let endpoint = found.ok_or_else(|| not_found(id))?;
        Ok(json_response(200, &view(&endpoint)))
    }

    pub(super) async fn list_webhooks(
        &self,
        request: &Request,
        tenant: &TenantId,
    ) -> Result<HttpResponse, Problem> {
        let cursor = self.cursors.signer(self.auth.keys()).await?;
        let page = cursor.page_request(request, tenant, LIST)?;
        let listed = self
            .store
            .endpoints(tenant, &page)
            .await
            .map_err(|e| backend(&e))?;
        Ok(list_response(&cursor, tenant, LIST, listed, view))
    }

    pub(super) async fn delete_webhook(&self, tenant: &TenantId, id: &str) -> Result<HttpResponse, Problem> {
        let deleted = is_valid_name(id)
            && self
                .store
                .delete_endpoint(tenant, id)
                .await
                .map_err(|e| backend(&e))?;
        if deleted {
            Ok(empty_response(204))
        } else {
            Err(not_found(id))
        }
    }

    pub(super) async fn rotate_webhook_secret(
        &self,
        request: &Request,
        tenant: &TenantId,
        id: &str,
    ) -> Result<HttpResponse, Problem> {
        let overlap = overlap(request)?;
        if !is_valid_name(id) {
            return Err(not_found(id));
        }
        let secret = new_secret()?;
        let now = Timestamp::now();
        let rotated = self
            .store
            .rotate_secret(tenant, id, &secret, now.plus(overlap), now)
            .await
            .map_err(|e| backend(&e))?
            .ok_or_else(|| not_found(id))?;
        let mut body = view(&rotated);
        body["secret"] = json!(rotated.secret.expose());
        Ok(json_response(200, &body))
    }
}
