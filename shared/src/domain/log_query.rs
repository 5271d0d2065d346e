//! The notification log's query (`GET /v1/notifications?user_id=&event_id=&status=&channel=&since=&until=`)
//! and its order: newest first, ties broken by id, so every page starts exactly where the last one ended.

use crate::domain::notification::{Notification, NotificationStatus};
use crate::domain::validation::is_valid_name;
use crate::domain::{Channel, EventId, FieldError, NotificationId, Timestamp};
use std::cmp::Ordering;

/// What a caller asked the log for. Every filter is optional; all given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub user_id: Option<String>,
    pub event_id: Option<EventId>,
    pub status: Option<NotificationStatus>,
    pub channel: Option<Channel>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
}

/// Which of a tenant's notifications the log's indexes find: a user's, or all of them, within a time window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogWindow {
    pub user_id: Option<String>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
}

impl LogWindow {
    pub fn contains(&self, notification: &Notification) -> bool {
        self.user_id
            .as_ref()
            .is_none_or(|user| notification.user_id.as_ref() == Some(user))
            && self.since.is_none_or(|since| notification.created_at >= since)
            && self.until.is_none_or(|until| notification.created_at < until)
    }
}

/// The query parameters the log reads; `limit` and `cursor` are the paging's.
pub const LOG_PARAMETERS: [&str; 6] = ["user_id", "event_id", "status", "channel", "since", "until"];

impl LogQuery {
    /// Reads the filters from `(name, value)` query parameters; each bad one is a field error. An
    /// `event_id` that is no event id's shape is an error too: it could never match.
    pub fn parse(parameters: &[(String, String)]) -> Result<Self, Vec<FieldError>> {
        let mut query = Self::default();
        let mut errors = Vec::new();
        for name in LOG_PARAMETERS {
            let Some(value) = parameters
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
            else {
                continue;
            };
            let pointer = format!("/{name}");
            match name {
                "user_id" if is_valid_name(value) => query.user_id = Some(value.to_owned()),
                "user_id" => errors.push(FieldError::new(pointer, "must match [a-z0-9_.-]{1,64}")),
                "event_id" => match EventId::parse(value) {
                    Some(id) => query.event_id = Some(id),
                    None => errors.push(FieldError::new(
                        pointer,
                        "must be an event id (evt_ and 32 hex digits)",
                    )),
                },
                "status" => match value.parse() {
                    Ok(status) => query.status = Some(status),
                    Err(_) => errors.push(FieldError::new(pointer, "must be a notification status")),
                },
                "channel" => match value.parse() {
                    Ok(channel) => query.channel = Some(channel),
                    Err(_) => errors.push(FieldError::new(pointer, "must be email, sms or slack")),
                },
                _ => match Timestamp::parse_rfc3339(value) {
                    Some(at) if name == "since" => query.since = Some(at),
                    Some(at) => query.until = Some(at),
                    None => errors.push(FieldError::new(
                        pointer,
                        "must be an RFC 3339 date-time, such as 2026-12-01T09:30:00Z",
                    )),
                },
            }
        }
        if let (Some(since), Some(until)) = (query.since, query.until)
            && since >= until
        {
            errors.push(FieldError::new("/until", "must be later than since"));
        }
        if errors.is_empty() { Ok(query) } else { Err(errors) }
    }

    /// The query in one canonical line, so a cursor can be bound to it: the same filters give the same
    /// line whatever their order in the URL.
    pub fn canonical(&self) -> String {
        let field = |value: Option<String>| value.unwrap_or_default();
        format!(
            "user_id={}&event_id={}&status={}&channel={}&since={}&until={}",
            field(self.user_id.clone()),
            field(self.event_id.as_ref().map(ToString::to_string)),
            field(self.status.map(|status| status.as_str().to_owned())),
            field(self.channel.map(|channel| channel.as_str().to_owned())),
            field(self.since.map(|at| at.millis().to_string())),
            field(self.until.map(|at| at.millis().to_string())),
        )
    }

    /// Whether the notification passes every filter given.
    pub fn matches(&self, notification: &Notification) -> bool {
        self.window().contains(notification)
            && self
                .event_id
                .as_ref()
                .is_none_or(|id| &notification.event_id == id)
            && self.status.is_none_or(|status| notification.status == status)
            && self.channel.is_none_or(|channel| notification.channel == channel)
    }

    /// The part of the query the log's indexes answer.
    pub fn window(&self) -> LogWindow {
        LogWindow {
            user_id: self.user_id.clone(),
            since: self.since,
            until: self.until,
        }
    }
}

/// Where a notification sits in the log's order: its creation time, then its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    pub created_at: Timestamp,
    pub id: NotificationId,
}

impl LogPosition {
    pub fn of(notification: &Notification) -> Self {
        Self {
            created_at: notification.created_at,
            id: notification.id.clone(),
        }
    }

    /// The log's order: newest first, then the greater id first.
    pub fn newest_first(&self, other: &Self) -> Ordering {
        other
            .created_at
            .cmp(&self.created_at)
            .then_with(|| other.id.as_str().cmp(self.id.as_str()))
    }

    /// `<millis>:<id>`, the form a page's `next` carries it in.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.created_at.millis(), self.id)
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (millis, id) = raw.split_once(':')?;
        Some(Self {
            created_at: Timestamp::from_millis(millis.parse().ok()?),
            id: NotificationId::parse(id)?,
        })
    }
}

/// One page of `positions`: those after `after`, in the log's order, at most `limit`, with the position the
/// next page starts after when more are left.
pub fn page_after(
    positions: impl IntoIterator<Item = LogPosition>,
    after: Option<&LogPosition>,
    limit: u16,
) -> (Vec<NotificationId>, Option<String>) {
    let mut positions: Vec<LogPosition> = positions
        .into_iter()
        .filter(|position| after.is_none_or(|after| after.newest_first(position).is_lt()))
        .collect();
    positions.sort_by(LogPosition::newest_first);
    let more = positions.len() > usize::from(limit);
    positions.truncate(usize::from(limit));
    let next = more.then(|| positions.last().map(LogPosition::encode)).flatten();
    (positions.into_iter().map(|position| position.id).collect(), next)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parameters(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn reads_every_filter_and_binds_cursors_to_them_in_any_order() {
        let pairs = [
            ("user_id", "u-42"),
            ("status", "sent"),
            ("channel", "sms"),
            ("since", "2026-12-01T00:00:00Z"),
            ("until", "2026-12-02T00:00:00.5Z"),
        ];
        let query = LogQuery::parse(&parameters(&pairs)).unwrap();
        assert_eq!(query.user_id.as_deref(), Some("u-42"));
        assert_eq!(query.status, Some(NotificationStatus::Sent));
        assert_eq!(query.channel, Some(Channel::Sms));
        assert_eq!(
            query.until.unwrap().millis() - query.since.unwrap().millis(),
            86_400_500
        );
        let mut reversed = pairs;
        reversed.reverse();
        assert_eq!(
            LogQuery::parse(&parameters(&reversed)).unwrap().canonical(),
            query.canonical()
        );
        assert_ne!(LogQuery::default().canonical(), query.canonical());
    }

    #[test]
    fn each_bad_filter_is_named() {
        let errors = LogQuery::parse(&parameters(&[
            ("user_id", "Not A Name"),
            ("event_id", "evt_nope"),
            ("status", "lost"),
            ("channel", "pigeon"),
            ("since", "yesterday"),
        ]))
        .unwrap_err();
        let pointers: Vec<_> = errors.iter().map(|error| error.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/user_id", "/event_id", "/status", "/channel", "/since"]
        );
        let backwards = LogQuery::parse(&parameters(&[
            ("since", "2026-12-02T00:00:00Z"),
            ("until", "2026-12-01T00:00:00Z"),
        ]))
        .unwrap_err();
        assert_eq!(backwards[0].pointer, "/until");
    }

    #[test]
    fn positions_order_newest_first_then_by_id_and_survive_their_encoding() {
        let position = |millis, id: &str| LogPosition {
            created_at: Timestamp::from_millis(millis),
            id: NotificationId::parse(id).unwrap(),
        };
        let a = position(2, "ntf_00000000000000000000000000000001");
        let b = position(1, "ntf_00000000000000000000000000000002");
        let c = position(1, "ntf_00000000000000000000000000000001");
        let mut positions = vec![c.clone(), a.clone(), b.clone()];
        positions.sort_by(LogPosition::newest_first);
        assert_eq!(positions, vec![a.clone(), b, c]);
        assert_eq!(LogPosition::decode(&a.encode()), Some(a));
        assert_eq!(LogPosition::decode("12:not-an-id"), None);
        assert_eq!(
            LogPosition::decode("soon:ntf_00000000000000000000000000000001"),
            None
        );
    }
}
