//! The ingest function's HTTP side: `POST /v1/events`, `POST /v1/events/batch`, `GET /v1/events/{id}`,
//! `GET /v1/notifications/{id}` (and the list, in [`super::notification_log`]).

use super::IngestConfig;
use super::{Accepted, Ingest};
use crate::domain::api_key::KeyScope;
use crate::domain::validation::Violations;
use crate::domain::{EventId, FieldError, NotificationId, Problem, ProblemCode, TenantId};
use crate::http::{
    HttpResponse, MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES, backend_failure, correlation, json_body,
    json_response, method_not_allowed, not_found_route, path_segments, problem_response,
};
use crate::ports::{
    ActivityStore, ApiKeyStore, CursorKeyStore, DeliveryLedger, IngestBudgets, NotificationLog,
    NotificationQueue,
};
use crate::telemetry::catalogue::EventOutcome;
use crate::telemetry::record;
use lambda_http::Request;
use lambda_http::http::{HeaderValue, Method, header};
use serde_json::{Value, json};
use tracing::Instrument;

/// A batch holds at most this many events.
pub const MAX_BATCH_EVENTS: usize = 100;
/// Events of one batch accepted at once.
const BATCH_CONCURRENCY: usize = 8;

impl<K, C, A, Q> Ingest<K, C, A, Q>
where
    K: ApiKeyStore + CursorKeyStore,
    C: IngestConfig,
    A: ActivityStore + DeliveryLedger + IngestBudgets + NotificationLog,
    Q: NotificationQueue,
{
    /// The Lambda handler: every outcome, problems included, is an HTTP answer.
    pub async fn handle(&self, request: Request) -> Result<HttpResponse, lambda_http::Error> {
        let correlation_id = correlation::correlation_id(&request);
        let span = correlation::request_span(&request, &correlation_id);
        // Boxed: the routes' futures together are ~20 KB, too large to move around on the stack.
        let outcome = Box::pin(self.route(&request, &correlation_id))
            .instrument(span)
            .await;
        let response =
            outcome.unwrap_or_else(|problem| problem_response(&problem, &self.settings.problem_type_base));
        Ok(correlation::answer_with(response, &correlation_id))
    }

    async fn route(&self, request: &Request, correlation_id: &str) -> Result<HttpResponse, Problem> {
        match (request.method(), path_segments(request).as_slice()) {
            (&Method::POST, ["v1", "events"]) => self.post_event(request, correlation_id).await,
            (&Method::POST, ["v1", "events", "batch"]) => self.post_batch(request, correlation_id).await,
            // A literal path before a templated one, as OpenAPI matches: `batch` is no event id.
            (_, ["v1", "events"] | ["v1", "events", "batch"]) => Err(method_not_allowed(request, "POST")),
            (&Method::GET, ["v1", "events", id]) => self.get_event(request, id).await,
            (&Method::GET, ["v1", "notifications"]) => self.list_notifications(request).await,
            (&Method::GET, ["v1", "notifications", id]) => self.get_notification(request, id).await,
            (_, ["v1", "notifications"] | ["v1", "events" | "notifications", _]) => {
                Err(method_not_allowed(request, "GET"))
            }
            _ => Err(not_found_route(request)),
        }
    }

    async fn post_event(&self, request: &Request, correlation_id: &str) -> Result<HttpResponse, Problem> {
        let accepted = self.submit_event(request, correlation_id).await;
        count_event(&accepted);
        accepted.map(accepted_response)
    }

    async fn submit_event(&self, request: &Request, correlation_id: &str) -> Result<Accepted, Problem> {
        let caller = self.auth.authenticate_key(request, KeyScope::Ingest).await?;
        let body = json_body(request, MAX_BODY_BYTES)?;
        let header_key = idempotency_header(request)?;
        self.spend_budget(&caller, 1).await?;
        self.accept(&caller.tenant, &body, header_key, correlation_id)
            .await
    }

    /// A batch refused whole (its key, its body) counts as one refused event: how many it held is unknown.
    async fn post_batch(&self, request: &Request, correlation_id: &str) -> Result<HttpResponse, Problem> {
        let answered = self.submit_batch(request, correlation_id).await;
        if let Err(problem) = &answered {
            record::event_refused(problem.code);
        }
        answered
    }

    async fn submit_batch(&self, request: &Request, correlation_id: &str) -> Result<HttpResponse, Problem> {
        let caller = self.auth.authenticate_key(request, KeyScope::Ingest).await?;
        let body = json_body(request, MAX_BATCH_BODY_BYTES)?;
        if idempotency_header(request)?.is_some() {
            return Err(Problem::validation(vec![FieldError::new(
                "/events",
                "a batch takes no Idempotency-Key header; give each event its own idempotency_key",
            )]));
        }
        let events = batch_events(&body)?;
        self.spend_budget(&caller, u32::try_from(events.len()).unwrap_or(u32::MAX))
            .await?;
        let mut results = Vec::with_capacity(events.len());
        for chunk in events.chunks(BATCH_CONCURRENCY) {
            results.extend(
                futures::future::join_all(
                    chunk
                        .iter()
                        .map(|event| self.batch_item(&caller.tenant, event, correlation_id)),
                )
                .await,
            );
        }
        Ok(json_response(207, &json!({"results": results})))
    }

    /// One event of a batch, answered exactly as a single POST would be.
    async fn batch_item(&self, tenant: &TenantId, event: &Value, correlation_id: &str) -> Value {
        // An event in a batch is held to a single POST's size: a larger one would exceed DynamoDB's 400 KB
        // item, a refusal no retry can change. Measured compact, as it would be stored.
        let size = serde_json::to_vec(event).map_or(0, |bytes| bytes.len());
        if size > MAX_BODY_BYTES {
            let problem = Problem::new(
                ProblemCode::PayloadTooLarge,
                format!(
                    "this event is {size} bytes; an event, alone or in a batch, is at most {MAX_BODY_BYTES}"
                ),
            );
            record::event_refused(problem.code);
            return json!({"status": problem.status(), "problem": problem.to_json(&self.settings.problem_type_base)});
        }
        let accepted = self.accept(tenant, event, None, correlation_id).await;
        count_event(&accepted);
        match accepted {
            Ok(Accepted::New { body, .. }) => json!({"status": 202, "body": body}),
            Ok(Accepted::Replayed { body, .. }) => json!({"status": 200, "body": body}),
            Err(problem) => {
                json!({"status": problem.status(), "problem": problem.to_json(&self.settings.problem_type_base)})
            }
        }
    }

    async fn get_event(&self, request: &Request, id: &str) -> Result<HttpResponse, Problem> {
        let tenant = self.auth.authenticate(request, KeyScope::Full).await?;
        let not_found = || Problem::not_found(&format!("event {id}"));
        let id = EventId::parse(id).ok_or_else(not_found)?;
        let activity = self.activity();
        let event = activity
            .event(&tenant, &id)
            .await
            .map_err(|error| backend_failure(&error))?
            .ok_or_else(not_found)?;
        let notifications = activity
            .notifications(&tenant, &event.notification_ids)
            .await
            .map_err(|error| backend_failure(&error))?;
        Ok(json_response(200, &event.to_json(&notifications)))
    }
}

impl<K, C, A, Q> Ingest<K, C, A, Q>
where
    K: ApiKeyStore + CursorKeyStore,
    C: IngestConfig,
    A: ActivityStore + DeliveryLedger + IngestBudgets + NotificationLog,
    Q: NotificationQueue,
{
    /// `GET /v1/notifications/{id}`: the notification with every attempt, addresses masked.
    async fn get_notification(&self, request: &Request, id: &str) -> Result<HttpResponse, Problem> {
        let tenant = self.auth.authenticate(request, KeyScope::Full).await?;
        let not_found = || Problem::not_found(&format!("notification {id}"));
        let id = NotificationId::parse(id).ok_or_else(not_found)?;
        let (notification, attempts) = self
            .activity()
            .notification_with_attempts(&tenant, &id)
            .await
            .map_err(|error| backend_failure(&error))?
            .ok_or_else(not_found)?;
        Ok(json_response(
            200,
            &super::notification_log::with_attempts(&notification, &attempts),
        ))
    }
}

fn count_event(accepted: &Result<Accepted, Problem>) {
    match accepted {
        Ok(Accepted::New { .. }) => record::event(EventOutcome::Accepted),
        Ok(Accepted::Replayed { .. }) => record::event(EventOutcome::Replayed),
        Err(problem) => record::event_refused(problem.code),
    }
}

fn idempotency_header(request: &Request) -> Result<Option<&str>, Problem> {
    request
        .headers()
        .get("idempotency-key")
        .map(|value| {
            value.to_str().map_err(|_| {
                Problem::validation(vec![FieldError::new(
                    "/idempotency_key",
                    "the Idempotency-Key header must be ASCII",
                )])
            })
        })
        .transpose()
}

fn batch_events(body: &Value) -> Result<&[Value], Problem> {
    let mut violations = Violations::default();
    let events = violations
        .object(body, "", &["events"])
        .and_then(|object| match object.get("events") {
            Some(Value::Array(events)) if (1..=MAX_BATCH_EVENTS).contains(&events.len()) => {
                Some(events.as_slice())
            }
            Some(Value::Array(_)) => {
                violations.add("/events", format!("must hold 1 to {MAX_BATCH_EVENTS} events"));
                None
            }
            _ => {
                violations.add("/events", "is required: an array of events");
                None
            }
        });
    match events {
        Some(events) if violations.is_empty() => Ok(events),
        _ => Err(Problem::validation(violations.into_errors())),
    }
}

fn accepted_response(accepted: Accepted) -> HttpResponse {
    let (status, event_id, body, replayed) = match accepted {
        Accepted::New { event_id, body } => (202, event_id, body, false),
        Accepted::Replayed { event_id, body } => (200, event_id, body, true),
    };
    let mut response = json_response(status, &body);
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/events/{event_id}")) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
