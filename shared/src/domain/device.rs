//! A user's mobile devices: the platform a token belongs to, the token itself, and the SNS platform endpoint
//! Herald publishes to for it; and the push message a template renders for one.

use super::validation::{Violations, type_name};
use super::{FieldError, Timestamp};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Where a device receives pushes: Apple's service or Google's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    Apns,
    Fcm,
}

impl Platform {
    pub const ALL: [Platform; 2] = [Platform::Apns, Platform::Fcm];

    pub const fn as_str(self) -> &'static str {
        match self {
            Platform::Apns => "apns",
            Platform::Fcm => "fcm",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|platform| platform.as_str() == text)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An APNs token is a 32-byte value in hex; Apple has said it may grow, so longer ones pass (up to the
/// 100 bytes SNS accepts for one).
const APNS_TOKEN_HEX: std::ops::RangeInclusive<usize> = 64..=200;
/// FCM registration tokens have no published length; this is SNS's own limit on a token.
const MAX_FCM_TOKEN: usize = 4096;

/// A device token checked against its platform's shape. It addresses one person's phone, so it is kept out
/// of logs (`Debug` shows a prefix) and out of keys ([`DeviceToken::key`]).
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceToken {
    platform: Platform,
    token: String,
}

impl DeviceToken {
    /// An APNs token is read case-insensitively (hex), so the same device registered twice is one device.
    pub fn parse(platform: Platform, text: &str) -> Result<Self, String> {
        let token = match platform {
            Platform::Apns => {
                if !APNS_TOKEN_HEX.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "an APNs device token is {} to {} hexadecimal characters",
                        APNS_TOKEN_HEX.start(),
                        APNS_TOKEN_HEX.end()
                    ));
                }
                text.to_ascii_lowercase()
            }
            Platform::Fcm => {
                let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-');
                if text.is_empty() || text.len() > MAX_FCM_TOKEN || !text.bytes().all(allowed) {
                    return Err(format!(
                        "an FCM registration token is 1 to {MAX_FCM_TOKEN} characters of [A-Za-z0-9_:-]"
                    ));
                }
                text.to_owned()
            }
        };
        Ok(Self { platform, token })
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    pub fn expose(&self) -> &str {
        &self.token
    }

    /// What stands for the token in a key: its SHA-256, hex. Keys show up in logs, metrics and consoles
    /// where the token itself should not.
    pub fn key(&self) -> String {
        hex::encode(Sha256::digest(self.token.as_bytes()))
    }
}

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.token.chars().take(8).collect();
        write!(f, "DeviceToken({}, {shown}…)", self.platform)
    }
}

/// The body of `PUT /v1/users/{id}/devices/{token}`: the token is in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSpec {
    pub platform: Platform,
}

impl DeviceSpec {
    const FIELDS: [&'static str; 1] = ["platform"];

    pub fn parse(value: &Value) -> Result<Self, Vec<FieldError>> {
        let mut violations = Violations::default();
        let Some(object) = violations.object(value, "", &Self::FIELDS) else {
            return Err(violations.into_errors());
        };
        let platform = match object.get("platform") {
            Some(Value::String(text)) => Platform::parse(text).or_else(|| {
                violations.add("/platform", "must be apns or fcm");
                None
            }),
            Some(other) => {
                violations.add("/platform", format!("must be a string, not {}", type_name(other)));
                None
            }
            None => {
                violations.add("/platform", "is required");
                None
            }
        };
        violations.finish(())?;
        platform.map(|platform| Self { platform }).ok_or_else(Vec::new)
    }
}

/// One registered device of one user, with the SNS platform endpoint that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRegistration {
    pub user_id: String,
    pub token: DeviceToken,
    pub endpoint_arn: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A user's devices at most: each is a notification of every push an event makes, and an event's
/// notifications are written in one transaction.
pub const MAX_DEVICES_PER_USER: usize = 10;

impl DeviceRegistration {
    pub fn platform(&self) -> Platform {
        self.token.platform()
    }

    /// The API's form: the token is the tenant's own to see (it is in the path that registered it).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "user_id": self.user_id,
            "token": self.token.expose(),
            "platform": self.platform().as_str(),
            "endpoint_arn": self.endpoint_arn,
            "created_at": self.created_at.to_rfc3339(),
            "updated_at": self.updated_at.to_rfc3339(),
        })
    }
}

/// APNs and FCM both refuse a notification payload above 4 KB.
pub const MAX_PUSH_PAYLOAD_BYTES: usize = 4096;

/// Data keys a platform keeps for itself: `aps` is APNs' own dictionary (the data sits beside it), and FCM
/// refuses `from`, `notification`, `message_type` and the `google.`/`gcm.` prefixes in `data`.
pub(crate) fn is_reserved_data_key(key: &str) -> bool {
    matches!(key, "aps" | "from" | "notification" | "message_type")
        || key.starts_with("google")
        || key.starts_with("gcm")
}

/// One rendered push: what the notification shows, and the key-value data the app receives with it (FCM
/// carries only string values, so every platform gets strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushMessage {
    pub title: String,
    pub body: String,
    pub data: BTreeMap<String, String>,
}

impl PushMessage {
    /// Why the message cannot be sent as it is, on any platform.
    pub fn check(&self) -> Result<(), String> {
        if self.title.trim().is_empty() && self.body.trim().is_empty() {
            return Err("a push needs a title or a body".into());
        }
        match self
            .data
            .keys()
            .find(|key| key.is_empty() || is_reserved_data_key(key))
        {
            Some(key) => Err(format!("the data key {key:?} is reserved by the push platforms")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const APNS: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

    #[test]
    fn every_platform_reads_back_as_written() {
        for platform in Platform::ALL {
            assert_eq!(Platform::parse(platform.as_str()), Some(platform));
        }
        assert_eq!(Platform::parse("APNS"), None);
        assert_eq!(Platform::parse("gcm"), None);
    }

    #[test]
    fn an_apns_token_is_hex_of_at_least_32_bytes_and_read_in_lower_case() {
        let token = DeviceToken::parse(Platform::Apns, &APNS.to_ascii_uppercase()).unwrap();
        assert_eq!(token.expose(), APNS);
        assert_eq!(token, DeviceToken::parse(Platform::Apns, APNS).unwrap());
        assert!(DeviceToken::parse(Platform::Apns, &format!("{APNS}{APNS}")).is_ok());

        for bad in [
            &APNS[..62],
            &APNS[..63],
            &format!("{}g", &APNS[..63]),
            "",
            &"a".repeat(202),
        ] {
            let why = DeviceToken::parse(Platform::Apns, bad).unwrap_err();
            assert!(why.contains("hexadecimal"), "{bad}: {why}");
        }
    }

    #[test]
    fn an_fcm_token_is_its_alphabet_up_to_4096_characters_and_kept_as_given() {
        let given = "dQw4w9WgXcQ:APA91bH-x_Yz";
        assert_eq!(DeviceToken::parse(Platform::Fcm, given).unwrap().expose(), given);
        assert!(DeviceToken::parse(Platform::Fcm, &"A".repeat(4096)).is_ok());

        for bad in ["", "has space", "slash/", "plus+", "é", &"A".repeat(4097)] {
            let why = DeviceToken::parse(Platform::Fcm, bad).unwrap_err();
            assert!(why.contains("[A-Za-z0-9_:-]"), "{bad}: {why}");
        }
    }

    #[test]
    fn the_key_is_a_hash_and_debug_hides_the_token() {
        let token = DeviceToken::parse(Platform::Apns, APNS).unwrap();
        assert_eq!(token.key().len(), 64);
        assert!(!token.key().contains(APNS));
        assert_ne!(
            token.key(),
            DeviceToken::parse(Platform::Fcm, "other").unwrap().key()
        );
        let shown = format!("{token:?}");
        assert!(shown.contains("apns") && !shown.contains(APNS), "{shown}");
    }

    #[test]
    fn a_device_spec_names_its_platform_and_nothing_else() {
        assert_eq!(
            DeviceSpec::parse(&json!({"platform": "fcm"})),
            Ok(DeviceSpec {
                platform: Platform::Fcm
            })
        );
        let cases = [
            (json!({}), vec!["/platform"]),
            (json!({"platform": "android"}), vec!["/platform"]),
            (json!({"platform": 1}), vec!["/platform"]),
            (json!({"platform": "apns", "token": "x"}), vec!["/token"]),
            (json!([]), vec![""]),
        ];
        for (body, pointers) in cases {
            let errors = DeviceSpec::parse(&body).unwrap_err();
            let found: Vec<&str> = errors.iter().map(|error| error.pointer.as_str()).collect();
            assert_eq!(found, pointers, "{body}");
        }
    }

    #[test]
    fn a_push_needs_words_and_keeps_off_the_platforms_keys() {
        let message = |title: &str, body: &str, key: &str| PushMessage {
            title: title.into(),
            body: body.into(),
            data: BTreeMap::from([(key.to_owned(), "1".to_owned())]),
        };
        assert_eq!(message("Shipped", "", "order_id").check(), Ok(()));
        assert_eq!(message("", "On its way", "order_id").check(), Ok(()));
        assert!(message(" ", "\n", "order_id").check().is_err());
        for reserved in [
            "aps",
            "from",
            "notification",
            "message_type",
            "google.c.a",
            "gcm.n",
            "",
        ] {
            assert!(message("t", "b", reserved).check().is_err(), "{reserved}");
        }
    }

    proptest! {
        #[test]
        fn a_token_parses_exactly_when_it_has_its_platform_shape(text in "[0-9a-fA-F:_\\-/ ]{0,210}") {
            let hex = text.bytes().all(|b| b.is_ascii_hexdigit());
            let fcm_alphabet = text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b));
            prop_assert_eq!(
                DeviceToken::parse(Platform::Apns, &text).is_ok(),
                hex && (64..=200).contains(&text.len())
            );
            prop_assert_eq!(
                DeviceToken::parse(Platform::Fcm, &text).is_ok(),
                fcm_alphabet && !text.is_empty()
            );
        }

        #[test]
        fn a_parsed_token_parses_again_to_itself(text in "[0-9a-fA-F]{64,200}") {
            for platform in Platform::ALL {
                let token = DeviceToken::parse(platform, &text).unwrap();
                prop_assert_eq!(DeviceToken::parse(platform, token.expose()), Ok(token.clone()));
            }
        }
    }
}
