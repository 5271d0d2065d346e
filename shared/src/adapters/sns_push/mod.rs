//! Mobile push on SNS: one platform endpoint per device (APNs or FCM), created or revived when the device
//! registers, and a message published to it with the payload its platform reads.

use crate::adapters::{backend_error, send_error, sns};
use crate::domain::delivery::{FailureKind, SendError, SendReceipt};
use crate::domain::device::{DeviceToken, MAX_PUSH_PAYLOAD_BYTES, Platform, PushMessage};
use crate::ports::{BackendError, EndpointError, PushEndpoints};
use aws_sdk_sns::Client;
use aws_sdk_sns::operation::create_platform_endpoint::CreatePlatformEndpointError;
use aws_sdk_sns::operation::get_endpoint_attributes::GetEndpointAttributesError;
use aws_sdk_sns::operation::set_endpoint_attributes::SetEndpointAttributesError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Map, Value, json};

mod delivery;
#[cfg(test)]
mod tests;

pub use delivery::{PushDelivery, push_message};

/// The code a send to a device that is no more ends with: the notification fails, the device is forgotten.
pub const DEVICE_GONE: &str = crate::domain::notification::reason::DEVICE_GONE;

const ENABLED: &str = "Enabled";
const TOKEN: &str = "Token";
const CUSTOM_USER_DATA: &str = "CustomUserData";

/// Platform endpoints: what a device registration needs from SNS.
#[derive(Debug, Clone)]
pub struct PushPlatform {
    client: Client,
}

impl PushPlatform {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The ARN of the enabled endpoint of `token` in the platform application, with `user_data` on it.
    ///
    /// SNS's recommended token management: `CreatePlatformEndpoint` is idempotent only for the same token and
    /// attributes, so an existing endpoint with other attributes is found through the ARN its refusal names;
    /// and an existing endpoint may be disabled (APNs or FCM said the token was invalid once, and the app has
    /// since registered it again), so its attributes are read and, if they differ, set.
    pub async fn ensure_endpoint(
        &self,
        application_arn: &str,
        token: &DeviceToken,
        user_data: &str,
    ) -> Result<String, EndpointError> {
        // Twice at most: an endpoint deleted between its creation and the read is created again, once.
        for _ in 0..2 {
            let arn = self.create_endpoint(application_arn, token, user_data).await?;
            if self.revive(&arn, token, user_data).await? {
                return Ok(arn);
            }
        }
        Err(EndpointError::Backend(BackendError {
            service: "SNS",
            operation: "CreatePlatformEndpoint",
            message: "the endpoint vanished twice as it was created".into(),
            retryable: true,
        }))
    }

    async fn create_endpoint(
        &self,
        application_arn: &str,
        token: &DeviceToken,
        user_data: &str,
    ) -> Result<String, EndpointError> {
        let created = self
            .client
            .create_platform_endpoint()
            .platform_application_arn(application_arn)
            .token(token.expose())
            .custom_user_data(user_data)
            .send()
            .await;
        match created {
            Ok(output) => output.endpoint_arn.ok_or_else(|| {
                EndpointError::Backend(BackendError {
                    service: "SNS",
                    operation: "CreatePlatformEndpoint",
                    message: "no endpoint ARN in the answer".into(),
                    retryable: true,
                })
            }),
            Err(error) => {
                if let Some(CreatePlatformEndpointError::InvalidParameterException(refusal)) =
                    error.as_service_error()
                {
                    let message = refusal.message().unwrap_or_default();
                    return existing_endpoint(message)
                        .ok_or_else(|| EndpointError::Refused(message.to_owned()));
                }
                Err(backend_error("SNS", "CreatePlatformEndpoint", &error).into())
            }
        }
    }

    /// Makes the endpoint enabled, on `token`, with `user_data`. `false` when it does not exist (any more).
    async fn revive(&self, arn: &str, token: &DeviceToken, user_data: &str) -> Result<bool, EndpointError> {
        let attributes = match self
            .client
            .get_endpoint_attributes()
            .endpoint_arn(arn)
            .send()
            .await
        {
            Ok(output) => output.attributes.unwrap_or_default(),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(GetEndpointAttributesError::is_not_found_exception) =>
            {
                return Ok(false);
            }
            Err(error) => return Err(backend_error("SNS", "GetEndpointAttributes", &error).into()),
        };
        let current = |name: &str| attributes.get(name).map(String::as_str);
        let enabled = current(ENABLED).is_some_and(|value| value.eq_ignore_ascii_case("true"));
        if enabled && current(TOKEN) == Some(token.expose()) && current(CUSTOM_USER_DATA) == Some(user_data) {
            return Ok(true);
        }
        match self
            .client
            .set_endpoint_attributes()
            .endpoint_arn(arn)
            .attributes(TOKEN, token.expose())
            .attributes(ENABLED, "true")
            .attributes(CUSTOM_USER_DATA, user_data)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(SetEndpointAttributesError::is_not_found_exception) =>
            {
                Ok(false)
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(SetEndpointAttributesError::is_invalid_parameter_exception) =>
            {
                Err(EndpointError::Refused(
                    error
                        .as_service_error()
                        .and_then(ProvideErrorMetadata::message)
                        .unwrap_or_default()
                        .to_owned(),
                ))
            }
            Err(error) => Err(backend_error("SNS", "SetEndpointAttributes", &error).into()),
        }
    }
}

/// The ARN in SNS's refusal of a token that has an endpoint with other attributes: "Invalid parameter:
/// Token Reason: Endpoint <arn> already exists with the same Token, but different attributes." SNS names it
/// nowhere else; AWS's own token-management sample reads it from the message the same way.
fn existing_endpoint(message: &str) -> Option<String> {
    let (_, after) = message.split_once("Endpoint ")?;
    let (arn, rest) = after.split_once(' ')?;
    (arn.starts_with("arn:") && rest.starts_with("already exists")).then(|| arn.to_owned())
}

/// The deployment's platform applications, one per platform it pushes to (`ApnsPlatformApplicationArn`,
/// `FcmPlatformApplicationArn`), and the endpoints of devices in them.
#[derive(Debug, Clone)]
pub struct PushApplications {
    platform: PushPlatform,
    apns: Option<String>,
    fcm: Option<String>,
}

impl PushApplications {
    pub fn new(client: Client, apns: Option<String>, fcm: Option<String>) -> Self {
        Self {
            platform: PushPlatform::new(client),
            apns,
            fcm,
        }
    }
}

impl PushEndpoints for PushApplications {
    async fn ensure_endpoint(&self, token: &DeviceToken, user_data: &str) -> Result<String, EndpointError> {
        let application = match token.platform() {
            Platform::Apns => self.apns.as_deref(),
            Platform::Fcm => self.fcm.as_deref(),
        };
        let application = application.ok_or(EndpointError::NotConfigured(token.platform()))?;
        self.platform.ensure_endpoint(application, token, user_data).await
    }
}

/// Publishes rendered pushes to platform endpoints.
#[derive(Debug, Clone)]
pub struct PushSender {
    client: Client,
}

impl PushSender {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Publishes `message` to the endpoint, in the payload its platform reads. An endpoint SNS reports
    /// disabled (or gone) fails permanently with [`DEVICE_GONE`]: APNs or FCM said the token is no more,
    /// and only the app registering again brings it back.
    pub async fn publish(
        &self,
        endpoint_arn: &str,
        platform: Platform,
        message: &PushMessage,
    ) -> Result<SendReceipt, SendError> {
        let document = publish_document(endpoint_arn, platform, message)?;
        let output = self
            .client
            .publish()
            .target_arn(endpoint_arn)
            .message_structure("json")
            .message(document)
            .send()
            .await
            .map_err(|error| {
                let mut failure = send_error(&error, classify);
                if failure.kind == FailureKind::Recipient && is_gone(&failure.code) {
                    failure.detail = format!("{}: {}", failure.code, failure.detail);
                    DEVICE_GONE.clone_into(&mut failure.code);
                }
                failure
            })?;
        Ok(SendReceipt {
            provider_message_id: output.message_id().map(str::to_owned),
        })
    }
}

/// An endpoint SNS disabled (APNs or FCM refused its token) or one that was deleted: the device is gone.
fn is_gone(code: &str) -> bool {
    matches!(
        code,
        "EndpointDisabled" | "EndpointDisabledException" | "NotFound" | "NotFoundException"
    )
}

/// SNS's SMS codes mean the same for a push, but for a missing endpoint, which is a device gone, not
/// Herald's configuration.
fn classify(code: &str) -> Option<FailureKind> {
    if is_gone(code) {
        return Some(FailureKind::Recipient);
    }
    sns::classify(code)
}

/// The key of an APNs payload: a sandbox application's endpoints (development builds of the app) read
/// `APNS_SANDBOX`, and their ARNs say which they are (`…:endpoint/APNS_SANDBOX/<application>/<id>`).
fn apns_key(endpoint_arn: &str) -> &'static str {
    if endpoint_arn.contains(":endpoint/APNS_SANDBOX/") {
        "APNS_SANDBOX"
    } else {
        "APNS"
    }
}

/// The `Message` of a `MessageStructure=json` publish: the platform's payload as a JSON string under its
/// key, and the `default` SNS requires beside it.
fn publish_document(
    endpoint_arn: &str,
    platform: Platform,
    message: &PushMessage,
) -> Result<String, SendError> {
    message
        .check()
        .map_err(|why| SendError::new(FailureKind::Recipient, "invalid_message", why))?;
    let (key, payload) = match platform {
        Platform::Apns => (apns_key(endpoint_arn), apns_payload(message)),
        Platform::Fcm => ("GCM", fcm_payload(message)),
    };
    let payload = payload.to_string();
    if payload.len() > MAX_PUSH_PAYLOAD_BYTES {
        return Err(SendError::new(
            FailureKind::Recipient,
            "message_too_large",
            format!(
                "the {platform} payload is {} bytes; at most {MAX_PUSH_PAYLOAD_BYTES}",
                payload.len()
            ),
        ));
    }
    let default = if message.body.trim().is_empty() {
        &message.title
    } else {
        &message.body
    };
    Ok(json!({ "default": default, (key): payload }).to_string())
}

fn alert(message: &PushMessage) -> Map<String, Value> {
    let mut alert = Map::new();
    for (name, text) in [("title", &message.title), ("body", &message.body)] {
        if !text.trim().is_empty() {
            alert.insert(name.into(), Value::String(text.clone()));
        }
    }
    alert
}

/// APNs: the alert in `aps`, the app's data as custom keys beside it (Apple's "Generating a remote
/// notification").
fn apns_payload(message: &PushMessage) -> Value {
    let mut payload = Map::new();
    for (key, value) in &message.data {
        payload.insert(key.clone(), Value::String(value.clone()));
    }
    payload.insert("aps".into(), json!({ "alert": alert(message) }));
    Value::Object(payload)
}

/// FCM HTTP v1, as SNS takes it (https://docs.aws.amazon.com/sns/latest/dg/sns-fcm-v1-payloads.html):
/// the top-level `fcmV1Message` holds the v1 `message`, whose `notification` has `title` and `body` and
/// whose `data` maps strings to strings; the endpoint's token is SNS's to fill in.
fn fcm_payload(message: &PushMessage) -> Value {
    let mut inner = Map::new();
    inner.insert("notification".into(), Value::Object(alert(message)));
    if !message.data.is_empty() {
        inner.insert("data".into(), json!(message.data));
    }
    json!({ "fcmV1Message": { "message": inner } })
}
