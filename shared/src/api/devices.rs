//! `/v1/users/{id}/devices` and `/v1/users/{id}/devices/{token}`: a user's mobile devices, each given its
//! push platform endpoint when it registers.

use super::{Api, backend, path_name, saved_status, write_problem};
use crate::domain::device::{DeviceRegistration, DeviceSpec, DeviceToken, MAX_DEVICES_PER_USER};
use crate::domain::{FieldError, Problem, ProblemCode, TenantId, Timestamp};
use crate::http::{HttpResponse, MAX_BODY_BYTES, empty_response, json_body, json_response};
use crate::ports::{ApiKeyStore, DeviceStore, EndpointError, PushEndpoints};
use lambda_http::Request;
use serde_json::json;

impl<K: ApiKeyStore, C: DeviceStore, P: PushEndpoints> Api<K, C, P> {
    /// Registers the device (201) or renews its endpoint (200). The endpoint is made before the item is
    /// written: a device Herald lists is always one it can push to, and a retried PUT finds the endpoint
    /// SNS already has.
    pub(super) async fn put_device(
        &self,
        request: &Request,
        tenant: &TenantId,
        user_id: &str,
        segment: &str,
    ) -> Result<HttpResponse, Problem> {
        let user_id = path_name(user_id)?;
        let spec = DeviceSpec::parse(&json_body(request, MAX_BODY_BYTES)?).map_err(Problem::validation)?;
        let token = path_token(spec, segment)?;
        let devices = self.user_devices(tenant, user_id).await?;
        let known = devices.iter().find(|device| device.token.key() == token.key());
        if known.is_none() && devices.len() >= MAX_DEVICES_PER_USER {
            return Err(Problem::new(
                ProblemCode::Conflict,
                format!(
                    "user {user_id} has {MAX_DEVICES_PER_USER} devices, the most a user may have; delete one first"
                ),
            ));
        }
        let endpoint_arn = self
            .push
            .ensure_endpoint(&token, &format!("{tenant}/{user_id}"))
            .await
            .map_err(|error| endpoint_problem(&error))?;
        let now = Timestamp::now();
        let registration = DeviceRegistration {
            user_id: user_id.to_owned(),
            token,
            endpoint_arn,
            created_at: known.map_or(now, |device| device.created_at),
            updated_at: now,
        };
        let saved = self
            .store
            .put_device(tenant, &registration)
            .await
            .map_err(write_problem)?;
        Ok(json_response(saved_status(saved), &registration.to_json()))
    }

    async fn user_devices(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<DeviceRegistration>, Problem> {
        self.store
            .devices_of(tenant, user_id)
            .await
            .map_err(|e| backend(&e))
    }

    pub(super) async fn list_devices(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<HttpResponse, Problem> {
        let user_id = path_name(user_id)?;
        let devices = self.user_devices(tenant, user_id).await?;
        let items: Vec<_> = devices.iter().map(DeviceRegistration::to_json).collect();
        Ok(json_response(200, &json!({ "items": items })))
    }

    /// Herald stops pushing to the device; its endpoint stays in SNS, where registering it again finds it.
    pub(super) async fn delete_device(
        &self,
        tenant: &TenantId,
        user_id: &str,
        segment: &str,
    ) -> Result<HttpResponse, Problem> {
        let user_id = path_name(user_id)?;
        let devices = self.user_devices(tenant, user_id).await?;
        let registered = decode(segment)?;
        // The token is read as its platform reads it (an APNs token in any case), so find it either way.
        let device = devices.iter().find(|device| {
            DeviceToken::parse(device.platform(), &registered).is_ok_and(|token| token == device.token)
        });
        let deleted = match device {
            Some(device) => self
                .store
                .delete_device(tenant, user_id, &device.token)
                .await
                .map_err(|e| backend(&e))?,
            None => false,
        };
        if deleted {
            Ok(empty_response(204))
        } else {
            Err(Problem::not_found(&format!("device of user {user_id}")))
        }
    }
}

/// The path segment as the client meant it: tokens have no character that needs encoding, but a client
/// may encode `:` anyway.
fn decode(segment: &str) -> Result<String, Problem> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| {
            Problem::validation(vec![FieldError::new(
                "/token",
                "the token in the path is not UTF-8 once percent-decoded",
            )])
        })
}

fn path_token(spec: DeviceSpec, segment: &str) -> Result<DeviceToken, Problem> {
    DeviceToken::parse(spec.platform, &decode(segment)?)
        .map_err(|why| Problem::validation(vec![FieldError::new("/token", why)]))
}

/// A token SNS refused, or a platform the deployment does not push to, is the request's to fix (422); SNS
/// itself failing is a 503 the client may retry.
fn endpoint_problem(error: &EndpointError) -> Problem {
    match error {
        EndpointError::Refused(_) => Problem::validation(vec![FieldError::new("/token", error.to_string())]),
        EndpointError::NotConfigured(_) => {
            Problem::validation(vec![FieldError::new("/platform", error.to_string())])
        }
        EndpointError::Backend(error) => backend(error),
    }
}
