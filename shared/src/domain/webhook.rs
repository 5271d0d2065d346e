//! Webhook endpoints a tenant registers, and the Standard Webhooks signature every delivery to them carries
//! (<https://www.standardwebhooks.com>): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one `v1,` entry per secret
//! in use, so a receiver that still holds the previous secret keeps verifying through a rotation.

use super::validation::{Violations, child, is_valid_name, type_name};
use super::{FieldError, Timestamp};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::fmt;

/// How a signing secret is written, as svix and the Standard Webhooks libraries expect it.
pub const SECRET_PREFIX: &str = "whsec_";
/// 192 bits, from the OS: the size svix generates. The specification asks for 24 to 64 bytes.
const SECRET_BYTES: usize = 24;
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;
/// Event types one endpoint may subscribe to; none means every event type.
pub const MAX_EVENT_TYPES: usize = 50;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_URL_BYTES: usize = 2048;

/// A key that signs deliveries. Never printed: `Debug` shows only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

impl SigningSecret {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// `whsec_` and the key in standard base64, as stored and as shown to the tenant once.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("must start with {SECRET_PREFIX}"))?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| format!("must be {SECRET_PREFIX} and standard base64"))?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(format!(
                "must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {}",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn sign(&self, content: &[u8]) -> String {
        // HMAC takes keys of every length, so this never fails; were it to, an empty signature is one
        // no receiver accepts, never one it should not.
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(content);
        STANDARD.encode(mac.finalize().into_bytes())
    }
}

/// The three headers that make a delivery verifiable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// The same for every attempt at one notification, so a receiver can drop a repeat.
    pub id: String,
    /// Seconds since the epoch, when this attempt was signed: receivers refuse old ones (replays).
    pub timestamp: i64,
    /// `v1,<signature>`, one per secret, separated by spaces.
    pub signature: String,
}

/// Signs `body` as message `id` at `timestamp` with every secret given (the current one first).
pub fn sign(secrets: &[&SigningSecret], id: &str, timestamp: Timestamp, body: &[u8]) -> SignedHeaders {
    let seconds = timestamp.millis().div_euclid(1000);
    let mut content = format!("{id}.{seconds}.").into_bytes();
    content.extend_from_slice(body);
    let signature = secrets
        .iter()
        .map(|secret| format!("v1,{}", secret.sign(&content)))
        .collect::<Vec<_>>()
        .join(" ");
    SignedHeaders {
        id: id.to_owned(),
        timestamp: seconds,
        signature,
    }
}

/// What a tenant says about an endpoint (`PUT /v1/webhooks/{id}`).
/// A tenant's endpoints at most. Each receiving endpoint is one more notification written in the event's
/// acceptance transaction (at most 100 items, the event's and its other notifications' among them).
pub const MAX_ENDPOINTS_PER_TENANT: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub url: String,
    pub description: Option<String>,
    /// The event types it receives; empty for all of them.
    pub event_types: Vec<String>,
    pub enabled: bool,
}

impl EndpointSpec {
    const FIELDS: [&'static str; 4] = ["url", "description", "event_types", "enabled"];

    /// `check_url` is the deployment's URL policy (https, a public host), applied again at every send.
    pub fn parse(
        value: &Value,
        check_url: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut violations = Violations::default();
        let Some(object) = violations.object(value, "", &Self::FIELDS) else {
            return Err(violations.into_errors());
        };
        let url = violations.string(object, "", "url", true).and_then(|url| {
            let checked = if url.len() > MAX_URL_BYTES {
                Err(format!("must be at most {MAX_URL_BYTES} bytes"))
            } else {
                check_url(url)
            };
            match checked {
                Ok(()) => Some(url.to_owned()),
                Err(why) => {
                    violations.add("/url", why);
                    None
                }
            }
        });
        let description = violations
            .string(object, "", "description", false)
            .and_then(|text| {
                if text.chars().count() > MAX_DESCRIPTION_CHARS {
                    violations.add(
                        "/description",
                        format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
                    );
                    None
                } else {
                    Some(text.to_owned())
                }
            });
        let event_types = parse_event_types(object.get("event_types"), &mut violations);
        let enabled = violations.boolean(object, "", "enabled").unwrap_or(true);
        let url = url.unwrap_or_default();
        violations.finish(Self {
            url,
            description,
            event_types,
            enabled,
        })
    }

    pub fn receives(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|subscribed| subscribed == event_type)
    }
}

fn parse_event_types(value: Option<&Value>, violations: &mut Violations) -> Vec<String> {
    let pointer = "/event_types";
    let items = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            violations.add(
                pointer,
                format!("must be an array of event type names, not {}", type_name(other)),
            );
            return Vec::new();
        }
    };
    if items.len() > MAX_EVENT_TYPES {
        violations.add(
            pointer,
            format!("must name at most {MAX_EVENT_TYPES} event types"),
        );
        return Vec::new();
    }
    let mut names: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let at = child(pointer, &index.to_string());
        match item.as_str() {
            Some(name) if is_valid_name(name) => {
                if names.iter().any(|seen| seen == name) {
                    violations.add(at, format!("{name} is listed twice"));
                } else {
                    names.push(name.to_owned());
                }
            }
            Some(_) => violations.add(at, "must match [a-z0-9_.-]{1,64}"),
            None => violations.add(at, format!("must be a string, not {}", type_name(item))),
        }
    }
    names
}

/// Why Herald stopped sending to an endpoint (the tenant's own `enabled: false` is in its spec). A PUT that
/// enables it again clears this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledBy {
    /// The endpoint answered 410 Gone: it asked not to be sent to again.
    Gone,
    /// Every delivery failed for longer than the deployment allows.
    Failing,
}

impl DisabledBy {
    pub const fn as_str(self) -> &'static str {
        match self {
            DisabledBy::Gone => "gone",
            DisabledBy::Failing => "failing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [DisabledBy::Gone, DisabledBy::Failing]
            .into_iter()
            .find(|by| by.as_str() == text)
    }
}

/// A secret that still signs after a rotation, until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiringSecret {
    pub secret: SigningSecret,
    pub until: Timestamp,
}

/// A registered endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub spec: EndpointSpec,
    pub secret: SigningSecret,
    pub previous_secret: Option<RetiringSecret>,
    /// Set when Herald (not the tenant) stopped sending: a 410, or failures for too long.
    pub disabled_by: Option<DisabledBy>,
    /// The first failure since the last success: how long the endpoint has been failing.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl WebhookEndpoint {
    /// Whether deliveries go to it now.
    pub fn is_active(&self) -> bool {
        self.spec.enabled && self.disabled_by.is_none()
    }

    /// The secrets that sign a delivery at `now`: the current one, and the previous one within its overlap.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&SigningSecret> {
        let mut secrets = vec![&self.secret];
        if let Some(previous) = self
            .previous_secret
            .as_ref()
            .filter(|previous| previous.until > now)
        {
            secrets.push(&previous.secret);
        }
        secrets
    }

    /// Whether failures since `failing_since` have lasted `for_longer_than` at `now`.
    pub fn failing_longer_than(&self, now: Timestamp, for_longer_than: std::time::Duration) -> bool {
        self.failing_since
            .is_some_and(|since| since.plus(for_longer_than) <= now)
    }

    /// The endpoint as the API shows it: never its secret.
    pub fn to_json(&self) -> Value {
        let status = if self.is_active() { "enabled" } else { "disabled" };
        let disabled_reason = match self.disabled_by {
            Some(DisabledBy::Gone) => Some("the endpoint answered 410 Gone"),
            Some(DisabledBy::Failing) => Some("every delivery failed for longer than the deployment allows"),
            None if !self.spec.enabled => Some("disabled by the tenant"),
            None => None,
        };
        json!({
            "id": self.id,
            "url": self.spec.url,
            "description": self.spec.description,
            "event_types": self.spec.event_types,
            "enabled": self.spec.enabled,
            "status": status,
            "disabled_reason": disabled_reason,
            "failing_since": self.failing_since.map(Timestamp::to_rfc3339),
            "previous_secret_expires_at": self.previous_secret.as_ref().map(|previous| previous.until.to_rfc3339()),
            "created_at": self.created_at.to_rfc3339(),
            "updated_at": self.updated_at.to_rfc3339(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A policy that takes every URL, for tests about the other fields.
    #[allow(clippy::unnecessary_wraps)] // the shape `EndpointSpec::parse` asks of a policy
    fn any_url(_: &str) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn signs_the_specifications_example() {
        // The example of the Standard Webhooks reference libraries (and svix's documentation).
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let headers = sign(
            &[&secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            Timestamp::from_millis(1_614_265_330_000),
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(headers.timestamp, 1_614_265_330);
        assert_eq!(
            headers.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_until_the_overlap_ends() {
        let now = Timestamp::from_millis(1_000_000);
        let old = SigningSecret::generate().unwrap();
        let new = SigningSecret::generate().unwrap();
        let endpoint = WebhookEndpoint {
            id: "billing".into(),
            spec: EndpointSpec::parse(&json!({"url": "https://example.com/hook"}), any_url).unwrap(),
            secret: new.clone(),
            previous_secret: Some(RetiringSecret {
                secret: old.clone(),
                until: now.plus(std::time::Duration::from_secs(60)),
            }),
            disabled_by: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        let during = sign(&endpoint.signing_secrets(now), "m", now, b"{}");
        let entries: Vec<&str> = during.signature.split(' ').collect();
        assert_eq!(
            entries,
            [
                sign(&[&new], "m", now, b"{}").signature,
                sign(&[&old], "m", now, b"{}").signature
            ]
        );
        let after = now.plus(std::time::Duration::from_secs(60));
        assert_eq!(endpoint.signing_secrets(after), vec![&new]);
    }

    #[test]
    fn secrets_are_192_random_bits_and_never_printed() {
        let secret = SigningSecret::generate().unwrap();
        assert_eq!(SigningSecret::parse(&secret.expose()).unwrap(), secret);
        assert_eq!(
            STANDARD
                .decode(&secret.expose()[SECRET_PREFIX.len()..])
                .unwrap()
                .len()
                * 8,
            192
        );
        assert_ne!(SigningSecret::generate().unwrap(), secret);
        assert_eq!(format!("{secret:?}"), "SigningSecret(***)");
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
        ] {
            assert!(SigningSecret::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_specs_are_checked_field_by_field() {
        let spec = EndpointSpec::parse(
            &json!({"url": "https://example.com/hook", "description": "billing", "event_types": ["order_created"]}),
            any_url,
        )
        .unwrap();
        assert!(spec.enabled);
        assert!(spec.receives("order_created"));
        assert!(!spec.receives("order_shipped"));
        assert!(
            EndpointSpec::parse(&json!({"url": "https://example.com"}), any_url)
                .unwrap()
                .receives("anything")
        );

        let refuse_http = |url: &str| {
            if url.starts_with("https://") {
                Ok(())
            } else {
                Err("must use https://".to_owned())
            }
        };
        let errors = EndpointSpec::parse(
            &json!({"url": "http://example.com", "event_types": ["a", "a", "Bad", 3], "enabled": "yes", "secret": "x"}),
            refuse_http,
        )
        .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|error| error.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/secret",
                "/url",
                "/event_types/1",
                "/event_types/2",
                "/event_types/3",
                "/enabled"
            ]
        );
        assert!(EndpointSpec::parse(&json!([]), any_url).is_err());
        assert!(EndpointSpec::parse(&json!({}), any_url).unwrap_err()[0].pointer == "/url");
    }

    proptest! {
        /// A receiver that recomputes the signature from the same id, timestamp and body accepts it; any
        /// change to one of them is refused.
        #[test]
        fn a_signature_covers_id_timestamp_and_body(
            id in "[a-zA-Z0-9_]{1,40}",
            seconds in 0i64..4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 0..200),
            flip in 0usize..200,
        ) {
            let secret = SigningSecret::generate().unwrap();
            let at = Timestamp::from_millis(seconds * 1000);
            let signed = sign(&[&secret], &id, at, &body);
            prop_assert_eq!(&signed, &sign(&[&secret], &id, at, &body));
            prop_assert_ne!(&signed.signature, &sign(&[&secret], &id, Timestamp::from_millis((seconds + 1) * 1000), &body).signature);
            prop_assert_ne!(&signed.signature, &sign(&[&secret], &format!("{id}x"), at, &body).signature);
            if !body.is_empty() {
                let mut changed = body.clone();
                let at_byte = flip % changed.len();
                changed[at_byte] ^= 1;
                prop_assert_ne!(&signed.signature, &sign(&[&secret], &id, at, &changed).signature);
            }
        }
    }
}
