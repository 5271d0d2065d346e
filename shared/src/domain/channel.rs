//! The delivery channels Herald knows.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A channel a notification is delivered on; each has its own queue, DLQ and function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Slack,
    /// A POST to each of the tenant's own endpoints that receives the event (`/v1/webhooks`), signed.
    Webhook,
    /// A mobile push to each device the user registered (`/v1/users/{id}/devices`), through SNS.
    Push,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::Email,
        Channel::Sms,
        Channel::Slack,
        Channel::Webhook,
        Channel::Push,
    ];

    /// Whether it reaches a person (the recipient), whose opt-outs and rate limit then apply; a webhook
    /// reaches the tenant's own systems.
    pub const fn reaches_a_person(self) -> bool {
        !matches!(self, Channel::Webhook)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Slack => "slack",
            Channel::Webhook => "webhook",
            Channel::Push => "push",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown channel {0:?}; known channels are email, sms, slack, webhook and push")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|channel| channel.as_str() == s)
            .ok_or_else(|| UnknownChannel(s.to_owned()))
    }
}
