//! A channel that sends only to the allowed SMS destination countries: SMS pumping (a bot sending texts to
//! premium-rate numbers abroad) costs the sender, and most products text a few countries.

use crate::domain::Channel;
use crate::domain::address::CountryAllowList;
use crate::domain::delivery::{RenderedMessage, SendError, SendReceipt};
use crate::ports::Sender;

/// `inner`, refusing numbers outside `allowed` before any provider call.
#[derive(Debug)]
pub struct CountryLimited<S> {
    inner: S,
    allowed: CountryAllowList,
}

impl<S> CountryLimited<S> {
    pub fn new(inner: S, allowed: CountryAllowList) -> Self {
        Self { inner, allowed }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Sender> Sender for CountryLimited<S> {
    fn channel(&self) -> Channel {
        self.inner.channel()
    }

    fn refuse(&self, to: &str) -> Option<String> {
        self.allowed.check(to).err().or_else(|| self.inner.refuse(to))
    }

    async fn send(&self, to: &str, message: &RenderedMessage) -> Result<SendReceipt, SendError> {
        self.inner.send(to, message).await
    }
}
