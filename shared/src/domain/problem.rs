//! RFC 9457 problem details: the one shape of every error Herald answers.

use serde::Serialize;

/// The stable machine word at the end of a problem's `type` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    ValidationFailed,
    UnknownEventType,
    IdempotencyKeyReused,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    InvalidCursor,
    RateLimited,
    Conflict,
    InternalError,
    ServiceUnavailable,
}

impl ProblemCode {
    /// Every code: the values of the `Reason` dimension of refused events (telemetry::catalogue).
    pub const ALL: [Self; 15] = [
        Self::MalformedJson,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::ValidationFailed,
        Self::UnknownEventType,
        Self::IdempotencyKeyReused,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::InvalidCursor,
        Self::RateLimited,
        Self::Conflict,
        Self::InternalError,
        Self::ServiceUnavailable,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ValidationFailed => "validation_failed",
            Self::UnknownEventType => "unknown_event_type",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidCursor => "invalid_cursor",
            Self::RateLimited => "rate_limited",
            Self::Conflict => "conflict",
            Self::InternalError => "internal_error",
            Self::ServiceUnavailable => "service_unavailable",
        }
    }

    pub const fn status(self) -> u16 {
        match self {
            Self::MalformedJson | Self::InvalidCursor => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::IdempotencyKeyReused | Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ValidationFailed | Self::UnknownEventType => 422,
            Self::RateLimited => 429,
            Self::InternalError => 500,
            Self::ServiceUnavailable => 503,
        }
    }

    const fn title(self) -> &'static str {
        match self {
            Self::MalformedJson => "The body is not valid UTF-8 JSON",
            Self::UnsupportedMediaType => "The body must be application/json",
            Self::PayloadTooLarge => "The body is too large",
            Self::ValidationFailed => "The request is not valid",
            Self::UnknownEventType => "The event type is not known",
            Self::IdempotencyKeyReused => "The idempotency key was used for a different request",
            Self::Unauthorized => "A valid API key is required",
            Self::Forbidden => "The API key's scope does not allow this request",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::InvalidCursor => "The cursor is not valid",
            Self::RateLimited => "Too many requests",
            Self::Conflict => "The request conflicts with the current state",
            Self::InternalError => {
                "Herald could not complete the request; retrying the same request will not help"
            }
            Self::ServiceUnavailable => "A backing service is unavailable; retrying the same request is safe",
        }
    }
}

/// One violation, located by a JSON Pointer (RFC 6901) into the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub pointer: String,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem. `type` is built from the configured base URI and the code when serialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: ProblemCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds, sent as `Retry-After` (for 503 and 429).
    pub retry_after: Option<u32>,
    /// The methods the path does allow, sent as `Allow` with a 405 (RFC 9110 requires it).
    pub allow: Option<&'static str>,
}

impl Problem {
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            allow: None,
        }
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [only] => format!("{}: {}", display_pointer(&only.pointer), only.message),
            many => format!("{} fields are not valid", many.len()),
        };
        Self {
            code: ProblemCode::ValidationFailed,
            detail,
            errors,
            retry_after: None,
            allow: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ProblemCode::NotFound, format!("{what} was not found"))
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(ProblemCode::ServiceUnavailable, detail)
        }
    }

    pub const fn status(&self) -> u16 {
        self.code.status()
    }

    /// The `application/problem+json` body.
    pub fn to_json(&self, type_base: &str) -> serde_json::Value {
        let mut body = serde_json::json!({
            "type": format!("{type_base}{}", self.code.as_str()),
            "title": self.code.title(),
            "status": self.status(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = serde_json::to_value(&self.errors).unwrap_or_default();
        }
        body
    }
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() { "the body" } else { pointer }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_rfc9457_with_errors() {
        let problem = Problem::validation(vec![FieldError::new("/payload/total", "must be a number")]);
        let body = problem.to_json("https://herald.dev/problems/");
        assert_eq!(body["type"], "https://herald.dev/problems/validation_failed");
        assert_eq!(body["status"], 422);
        assert_eq!(body["detail"], "/payload/total: must be a number");
        assert_eq!(body["errors"][0]["pointer"], "/payload/total");
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let problem = Problem::unavailable("queue down");
        assert_eq!((problem.status(), problem.retry_after), (503, Some(1)));
        assert!(problem.to_json("x/").get("errors").is_none());
    }
}
