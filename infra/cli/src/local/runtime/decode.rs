//! What a process answers, decoded: a buffered JSON (or text) response, a streamed response with its
//! metadata prelude (and any mid-stream error), or an error body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::InvokeError;

pub(super) const ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";
const ERROR_BODY_HEADER: &str = "lambda-runtime-function-error-body";
const RESPONSE_MODE_HEADER: &str = "lambda-runtime-function-response-mode";

/// The outcome of a `/response`: buffered JSON, or a streamed response.
pub(super) fn success_outcome(
    headers: &HeaderMap,
    trailers: Option<&HeaderMap>,
    body: &[u8],
) -> Result<Value, InvokeError> {
    if let Some((error_type, trailers)) = trailers.and_then(|trailers| {
        trailers
            .get(ERROR_TYPE_HEADER)
            .map(|error_type| (error_type, trailers))
    }) {
        let message = trailers
            .get(ERROR_BODY_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        return Err(stream_error(
            &String::from_utf8_lossy(error_type.as_bytes()),
            message,
        ));
    }
    let streaming = headers
        .get(RESPONSE_MODE_HEADER)
        .is_some_and(|mode| mode.as_bytes().eq_ignore_ascii_case(b"streaming"));
    if streaming {
        streamed_value(body)
    } else {
        Ok(json_or_text(body))
    }
}

fn json_or_text(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// A streamed response (`metadata prelude JSON`, eight NUL bytes, the body) as the buffered
/// API Gateway shape: the prelude's fields plus `body`.
fn streamed_value(body: &[u8]) -> Result<Value, InvokeError> {
    const DELIMITER: [u8; 8] = [0; 8];
    let (prelude, payload) = match find(body, &DELIMITER) {
        Some(at) => (&body[..at], &body[at + DELIMITER.len()..]),
        None => (&body[..0], body),
    };
    // lambda_runtime writes a mid-stream error into the body, in trailer syntax.
    let marker = b"Lambda-Runtime-Function-Error-Type: ";
    let (payload, error) = match find(payload, marker) {
        Some(at) => (&payload[..at], Some(&payload[at..])),
        None => (payload, None),
    };
    if let Some(error) = error {
        let text = String::from_utf8_lossy(error);
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|value| value.trim().to_owned())
                .unwrap_or_default()
        };
        let error_type = field("Lambda-Runtime-Function-Error-Type:");
        return Err(stream_error(
            &error_type,
            field("Lambda-Runtime-Function-Error-Body:").as_bytes(),
        ));
    }
    let mut value = serde_json::from_slice::<Value>(prelude)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let Value::Object(fields) = &mut value {
        if let Ok(text) = std::str::from_utf8(payload) {
            fields.insert("body".to_owned(), Value::String(text.to_owned()));
        } else {
            fields.insert("body".to_owned(), Value::String(BASE64.encode(payload)));
            fields.insert("isBase64Encoded".to_owned(), Value::Bool(true));
        }
    }
    Ok(value)
}

/// A streamed response's error: its type, and its body (base64, of JSON or of text).
fn stream_error(error_type: &str, encoded: &[u8]) -> InvokeError {
    let decoded = BASE64
        .decode(encoded.trim_ascii())
        .unwrap_or_else(|_| encoded.to_vec());
    match function_error(None, &decoded) {
        InvokeError::Function {
            error_type: parsed,
            error_message,
        } if parsed != "Unhandled" => InvokeError::Function {
            error_type: parsed,
            error_message,
        },
        InvokeError::Function { error_message, .. } => InvokeError::Function {
            error_type: error_type.to_owned(),
            error_message,
        },
        other => other,
    }
}

/// The error in an `/error` (or `/init/error`) body: `{errorType, errorMessage}` as lambda_runtime
/// sends it, else the `Lambda-Runtime-Function-Error-Type` header and the body's text.
pub(super) fn function_error(header: Option<&HeaderValue>, body: &[u8]) -> InvokeError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|value| value.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let error_type = field("errorType")
        .or_else(|| header.and_then(|value| value.to_str().ok()).map(str::to_owned))
        .unwrap_or_else(|| "Unhandled".to_owned());
    let error_message =
        field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    InvokeError::Function {
        error_type,
        error_message,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_read_like_lambda_reads_them() {
        let body = br#"{"errorType":"&alloc::string::String","errorMessage":"nope"}"#;
        assert_eq!(
            function_error(Some(&HeaderValue::from_static("unhandled")), body),
            InvokeError::Function {
                error_type: "&alloc::string::String".into(),
                error_message: "nope".into()
            }
        );
        assert_eq!(
            function_error(Some(&HeaderValue::from_static("Runtime.Custom")), b"plain text\n"),
            InvokeError::Function {
                error_type: "Runtime.Custom".into(),
                error_message: "plain text".into()
            }
        );
    }

    #[test]
    fn buffered_and_streamed_responses_become_json() {
        let buffered = HeaderMap::new();
        assert_eq!(
            success_outcome(&buffered, None, br#"{"a":1}"#),
            Ok(json!({ "a": 1 }))
        );
        assert_eq!(success_outcome(&buffered, None, b""), Ok(Value::Null));

        let mut streamed = HeaderMap::new();
        streamed.insert(RESPONSE_MODE_HEADER, HeaderValue::from_static("streaming"));
        let mut body = br#"{"statusCode":201,"headers":{"content-type":"text/plain"},"cookies":[]}"#.to_vec();
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(b"hello ");
        body.extend_from_slice(b"world");
        assert_eq!(
            success_outcome(&streamed, None, &body),
            Ok(
                json!({ "statusCode": 201, "headers": { "content-type": "text/plain" }, "cookies": [], "body": "hello world" })
            )
        );

        let mut failed = body.clone();
        failed.extend_from_slice(
            format!(
                "Lambda-Runtime-Function-Error-Type: Runtime.StreamError\r\nLambda-Runtime-Function-Error-Body: {}\r\n",
                BASE64.encode("midstream")
            )
            .as_bytes(),
        );
        assert_eq!(
            success_outcome(&streamed, None, &failed),
            Err(InvokeError::Function {
                error_type: "Runtime.StreamError".into(),
                error_message: "midstream".into()
            })
        );
    }
}
