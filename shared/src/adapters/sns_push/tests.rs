//! Endpoints and publishes against an SNS client mocked at the SDK boundary (`aws-smithy-mocks`).

use super::*;
use aws_sdk_sns::config::retry::RetryConfig;
use aws_sdk_sns::error::ErrorMetadata;
use aws_sdk_sns::operation::create_platform_endpoint::CreatePlatformEndpointOutput;
use aws_sdk_sns::operation::get_endpoint_attributes::{
    GetEndpointAttributesError, GetEndpointAttributesOutput,
};
use aws_sdk_sns::operation::publish::{PublishError, PublishInput, PublishOutput};
use aws_sdk_sns::operation::set_endpoint_attributes::SetEndpointAttributesOutput;
use aws_sdk_sns::types::error::{EndpointDisabledException, InvalidParameterException, NotFoundException};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use std::collections::{BTreeMap, HashMap};

const APPLICATION: &str = "arn:aws:sns:us-east-1:123456789012:app/APNS/herald";
const ENDPOINT: &str =
    "arn:aws:sns:us-east-1:123456789012:endpoint/APNS/herald/5e3e9847-3183-3f18-a7e8-671c3a57d4b3";
const SANDBOX: &str = "arn:aws:sns:us-east-1:123456789012:endpoint/APNS_SANDBOX/herald/5e3e9847";
const GCM: &str = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald/0c5b9d0e";
const APNS_TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const USER_DATA: &str = "tenant-a/u-1";

fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_sns, RuleMode::Sequential, rules, |config| {
        config.retry_config(RetryConfig::disabled())
    })
}

fn token() -> DeviceToken {
    DeviceToken::parse(Platform::Apns, APNS_TOKEN).unwrap()
}

fn message() -> PushMessage {
    PushMessage {
        title: "Order #444 shipped".into(),
        body: "It is on its way.".into(),
        data: BTreeMap::from([
            ("order_id".to_owned(), "444".to_owned()),
            ("deep_link".to_owned(), "app://orders/444".to_owned()),
        ]),
    }
}

/// The published document's platform payload under `key`, parsed, if the request is a JSON-structured
/// publish to `endpoint` whose `default` is the body.
fn payload(request: &PublishInput, endpoint: &str, key: &str) -> Option<Value> {
    if request.target_arn() != Some(endpoint) || request.message_structure() != Some("json") {
        return None;
    }
    let document: Value = serde_json::from_str(request.message()?).ok()?;
    let keys: Vec<&String> = document.as_object()?.keys().collect();
    if document["default"] != "It is on its way." || keys.len() != 2 {
        return None;
    }
    serde_json::from_str(document[key].as_str()?).ok()
}

fn accepted() -> PublishOutput {
    PublishOutput::builder().message_id("sns-push-id").build()
}

#[tokio::test]
async fn an_apns_push_has_the_alert_in_aps_and_the_data_beside_it() {
    let expected = json!({
        "aps": {"alert": {"title": "Order #444 shipped", "body": "It is on its way."}},
        "order_id": "444",
        "deep_link": "app://orders/444",
    });
    for (endpoint, key) in [(ENDPOINT, "APNS"), (SANDBOX, "APNS_SANDBOX")] {
        let wanted = expected.clone();
        let publish = mock!(Client::publish)
            .match_requests(move |request| payload(request, endpoint, key) == Some(wanted.clone()))
            .then_output(accepted);

        let receipt = PushSender::new(client(&[&publish]))
            .publish(endpoint, Platform::Apns, &message())
            .await
            .unwrap();

        assert_eq!(receipt.provider_message_id.as_deref(), Some("sns-push-id"));
        assert_eq!(publish.num_calls(), 1, "{key}");
    }
}

#[tokio::test]
async fn an_fcm_push_is_an_fcm_v1_message_with_string_data() {
    let expected = json!({"fcmV1Message": {"message": {
        "notification": {"title": "Order #444 shipped", "body": "It is on its way."},
        "data": {"order_id": "444", "deep_link": "app://orders/444"},
    }}});
    let publish = mock!(Client::publish)
        .match_requests(move |request| payload(request, GCM, "GCM") == Some(expected.clone()))
        .then_output(accepted);

    PushSender::new(client(&[&publish]))
        .publish(GCM, Platform::Fcm, &message())
        .await
        .unwrap();

    assert_eq!(publish.num_calls(), 1);
}

#[tokio::test]
async fn a_push_without_data_or_title_leaves_them_out() {
    let bare = PushMessage {
        title: String::new(),
        body: "It is on its way.".into(),
        data: BTreeMap::new(),
    };
    let publish = mock!(Client::publish)
        .match_requests(|request| {
            payload(request, GCM, "GCM")
                == Some(json!({"fcmV1Message": {"message": {"notification": {"body": "It is on its way."}}}}))
        })
        .then_output(accepted);

    PushSender::new(client(&[&publish]))
        .publish(GCM, Platform::Fcm, &bare)
        .await
        .unwrap();

    assert_eq!(publish.num_calls(), 1);
}

fn modeled(code: &str) -> PublishError {
    let meta = ErrorMetadata::builder().code(code).message("test").build();
    match code {
        "EndpointDisabled" => PublishError::EndpointDisabledException(
            EndpointDisabledException::builder()
                .message("test")
                .meta(meta)
                .build(),
        ),
        "NotFound" => {
            PublishError::NotFoundException(NotFoundException::builder().message("test").meta(meta).build())
        }
        "InvalidParameter" => PublishError::InvalidParameterException(
            InvalidParameterException::builder()
                .message("test")
                .meta(meta)
                .build(),
        ),
        _ => PublishError::generic(meta),
    }
}

/// How a publish that `failing` answers fails.
async fn failed_publish(failing: &Rule) -> SendError {
    PushSender::new(client(&[failing]))
        .publish(ENDPOINT, Platform::Apns, &message())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_disabled_or_deleted_endpoint_is_a_gone_device_and_the_rest_as_for_sms() {
    let cases = [
        ("EndpointDisabled", FailureKind::Recipient, DEVICE_GONE),
        ("NotFound", FailureKind::Recipient, DEVICE_GONE),
        ("InvalidParameter", FailureKind::Recipient, "InvalidParameter"),
        ("Throttled", FailureKind::Throttled, "Throttled"),
        ("Throttling", FailureKind::Throttled, "Throttling"),
        ("InternalError", FailureKind::Transient, "InternalError"),
        (
            "AuthorizationError",
            FailureKind::Configuration,
            "AuthorizationError",
        ),
        ("KMSDisabled", FailureKind::Configuration, "KMSDisabled"),
    ];
    for (code, kind, reported) in cases {
        let failing = mock!(Client::publish).then_error(move || modeled(code));

        let error = failed_publish(&failing).await;

        assert_eq!(
            (error.kind, error.code.as_str()),
            (kind, reported),
            "{code}: {error}"
        );
        assert!(error.detail.contains("test"), "{error}");
        assert_eq!(failing.num_calls(), 1);
    }
}

#[tokio::test]
async fn a_disabled_endpoint_read_from_the_wire_is_a_gone_device() {
    let body = r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
        <Error><Type>Sender</Type><Code>EndpointDisabled</Code><Message>Endpoint is disabled</Message></Error>
        <RequestId>8d2f5c7e-0000-0000-0000-000000000000</RequestId></ErrorResponse>"#;
    let failing = mock!(Client::publish)
        .sequence()
        .http_status(400, Some(body.to_owned()))
        .build();

    let error = failed_publish(&failing).await;

    assert_eq!(
        (error.kind, error.code.as_str()),
        (FailureKind::Recipient, DEVICE_GONE)
    );
    assert!(!error.kind.retryable());
}

#[tokio::test]
async fn a_message_no_platform_takes_never_reaches_sns() {
    let unused = mock!(Client::publish).then_output(accepted);
    let sender = PushSender::new(client(&[&unused]));
    let huge = PushMessage {
        body: "x".repeat(MAX_PUSH_PAYLOAD_BYTES),
        ..message()
    };
    let reserved = PushMessage {
        data: BTreeMap::from([("aps".to_owned(), "{}".to_owned())]),
        ..message()
    };
    let empty = PushMessage::default();

    for (bad, code) in [
        (huge, "message_too_large"),
        (reserved, "invalid_message"),
        (empty, "invalid_message"),
    ] {
        for platform in Platform::ALL {
            let error = sender.publish(ENDPOINT, platform, &bad).await.unwrap_err();
            assert_eq!((error.kind, error.code.as_str()), (FailureKind::Recipient, code));
        }
    }
    assert_eq!(unused.num_calls(), 0);
}

// ------------------------------------------------------------------------------------------- endpoints

fn created() -> CreatePlatformEndpointOutput {
    CreatePlatformEndpointOutput::builder()
        .endpoint_arn(ENDPOINT)
        .build()
}

fn attributes(enabled: &str, token: &str) -> GetEndpointAttributesOutput {
    attributes_of(enabled, token, USER_DATA)
}

fn attributes_of(enabled: &str, token: &str, user_data: &str) -> GetEndpointAttributesOutput {
    GetEndpointAttributesOutput::builder()
        .set_attributes(Some(HashMap::from([
            (ENABLED.to_owned(), enabled.to_owned()),
            (TOKEN.to_owned(), token.to_owned()),
            (CUSTOM_USER_DATA.to_owned(), user_data.to_owned()),
        ])))
        .build()
}

fn creates() -> Rule {
    mock!(Client::create_platform_endpoint)
        .match_requests(|request| {
            request.platform_application_arn() == Some(APPLICATION)
                && request.token() == Some(APNS_TOKEN)
                && request.custom_user_data() == Some(USER_DATA)
        })
        .then_output(created)
}

fn sets_enabled() -> Rule {
    mock!(Client::set_endpoint_attributes)
        .match_requests(|request| {
            let attributes = request.attributes().cloned().unwrap_or_default();
            request.endpoint_arn() == Some(ENDPOINT)
                && attributes.get(ENABLED).map(String::as_str) == Some("true")
                && attributes.get(TOKEN).map(String::as_str) == Some(APNS_TOKEN)
                && attributes.get(CUSTOM_USER_DATA).map(String::as_str) == Some(USER_DATA)
        })
        .then_output(|| SetEndpointAttributesOutput::builder().build())
}

/// The endpoint of the test's token, on a client whose calls must meet `rules` in order.
async fn ensure(rules: &[&Rule]) -> Result<String, EndpointError> {
    PushPlatform::new(client(rules))
        .ensure_endpoint(APPLICATION, &token(), USER_DATA)
        .await
}

/// SNS refusing the token, in its words.
fn refusing(message: String) -> Rule {
    mock!(Client::create_platform_endpoint).then_error(move || {
        CreatePlatformEndpointError::InvalidParameterException(
            InvalidParameterException::builder()
                .message(message.clone())
                .meta(
                    ErrorMetadata::builder()
                        .code("InvalidParameter")
                        .message(message.clone())
                        .build(),
                )
                .build(),
        )
    })
}

#[tokio::test]
async fn a_new_enabled_endpoint_is_used_as_it_is() {
    let create = creates();
    let read = mock!(Client::get_endpoint_attributes).then_output(|| attributes("true", APNS_TOKEN));

    let arn = ensure(&[&create, &read]).await.unwrap();

    assert_eq!(arn, ENDPOINT);
    assert_eq!((create.num_calls(), read.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_disabled_endpoint_or_one_on_another_token_is_set_enabled_on_this_one() {
    for (enabled, on) in [("false", APNS_TOKEN), ("true", "an-old-token")] {
        let create = creates();
        let read = mock!(Client::get_endpoint_attributes).then_output(move || attributes(enabled, on));
        let set = sets_enabled();

        let arn = ensure(&[&create, &read, &set]).await.unwrap();

        assert_eq!(arn, ENDPOINT);
        assert_eq!(set.num_calls(), 1, "Enabled {enabled}, Token {on}");
    }
}

#[tokio::test]
async fn an_endpoint_with_other_attributes_is_found_through_the_refusal_and_updated() {
    let refusal = format!(
        "Invalid parameter: Token Reason: Endpoint {ENDPOINT} already exists with the same Token, but different attributes."
    );
    let create = refusing(refusal);
    let read = mock!(Client::get_endpoint_attributes)
        .match_requests(|request| request.endpoint_arn() == Some(ENDPOINT))
        .then_output(|| attributes_of("true", APNS_TOKEN, "someone-else"));
    let set = sets_enabled();

    let arn = ensure(&[&create, &read, &set]).await.unwrap();

    assert_eq!(arn, ENDPOINT);
    assert_eq!(set.num_calls(), 1);
}

#[tokio::test]
async fn a_token_sns_refuses_is_a_refused_device_and_an_outage_a_backend_error() {
    let refused = refusing(
        "Invalid parameter: Token Reason: iOS device tokens must be no more than 400 hexadecimal characters"
            .to_owned(),
    );
    let error = ensure(&[&refused]).await.unwrap_err();
    assert!(
        matches!(&error, EndpointError::Refused(why) if why.contains("hexadecimal")),
        "{error}"
    );

    let down = mock!(Client::create_platform_endpoint)
        .sequence()
        .http_status(503, None)
        .build();
    let error = ensure(&[&down]).await.unwrap_err();
    assert!(
        matches!(&error, EndpointError::Backend(backend) if backend.retryable),
        "{error}"
    );
}

#[tokio::test]
async fn an_endpoint_deleted_as_it_was_created_is_created_again() {
    let first = creates();
    let gone = mock!(Client::get_endpoint_attributes).then_error(|| {
        GetEndpointAttributesError::NotFoundException(
            NotFoundException::builder()
                .message("Endpoint does not exist")
                .meta(ErrorMetadata::builder().code("NotFound").build())
                .build(),
        )
    });
    let second = creates();
    let read = mock!(Client::get_endpoint_attributes).then_output(|| attributes("true", APNS_TOKEN));

    let arn = ensure(&[&first, &gone, &second, &read]).await.unwrap();

    assert_eq!(arn, ENDPOINT);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[test]
fn the_existing_endpoint_is_read_only_from_sns_words() {
    assert_eq!(
        existing_endpoint(&format!(
            "Invalid parameter: Token Reason: Endpoint {ENDPOINT} already exists with the same Token, but different attributes."
        )),
        Some(ENDPOINT.to_owned())
    );
    assert_eq!(
        existing_endpoint("Invalid parameter: Token Reason: Endpoint is malformed"),
        None
    );
    assert_eq!(
        existing_endpoint("Invalid parameter: Endpoint nope already exists"),
        None
    );
}
