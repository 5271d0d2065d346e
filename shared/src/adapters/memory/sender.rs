//! A scripted channel and a recording channel queue, so the delivery loop's tests can count what a provider
//! received (a duplicate send is the failure that matters) and see how long each retry waits.

use super::lock;
use crate::domain::Channel;
use crate::domain::delivery::{FailureKind, Outgoing, RenderedMessage, SendError, SendReceipt};
use crate::ports::{BackendError, ChannelQueue, Sender};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// What the next sends do, in order; once the script is empty every send is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Refused with an error of this kind: the provider has nothing.
    Fail(FailureKind),
    /// The provider takes the message, but its answer never comes: an `Ambiguous` error.
    AcceptThenTimeOut,
    /// Refused as throttled, with this `Retry-After`.
    Throttle(Duration),
    /// Held back by Herald's own send rate for this long: the provider never sees it.
    HeldBack(Duration),
}

/// One call of [`Sender::send`].
#[derive(Debug, Clone, PartialEq)]
pub struct SendCall {
    pub to: String,
    pub message: RenderedMessage,
    /// Whether the provider took it (it was sent, whatever the caller heard).
    pub delivered: bool,
}

#[derive(Debug)]
pub struct ScriptedSender {
    channel: Channel,
    script: Mutex<VecDeque<Script>>,
    calls: Mutex<Vec<SendCall>>,
    latency: Mutex<Duration>,
}

impl ScriptedSender {
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            script: Mutex::new(VecDeque::new()),
            calls: Mutex::new(Vec::new()),
            latency: Mutex::new(Duration::ZERO),
        }
    }

    /// The next `times` sends (after those already scripted) meet `step`.
    pub fn then(&self, step: Script, times: u32) {
        let mut script = lock(&self.script);
        for _ in 0..times {
            script.push_back(step);
        }
    }

    /// The provider is back: whatever the script still held is dropped, and every send is accepted.
    pub fn recover(&self) {
        lock(&self.script).clear();
    }

    /// Every send from now on takes `latency` before the provider acts, so a concurrent delivery can
    /// run while this one is between its claim and its settle.
    pub fn slow_down(&self, latency: Duration) {
        *lock(&self.latency) = latency;
    }

    pub fn calls(&self) -> Vec<SendCall> {
        lock(&self.calls).clone()
    }

    /// How many messages the provider took for `to`: what its recipient received.
    pub fn delivered_to(&self, to: &str) -> usize {
        lock(&self.calls)
            .iter()
            .filter(|call| call.delivered && call.to == to)
            .count()
    }
}

impl Sender for ScriptedSender {
    fn channel(&self) -> Channel {
        self.channel
    }

    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<SendReceipt, SendError> {
        let Outgoing { to, message, .. } = *outgoing;
        let latency = *lock(&self.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let step = lock(&self.script).pop_front();
        let mut calls = lock(&self.calls);
        let number = calls.len() + 1;
        calls.push(SendCall {
            to: to.to_owned(),
            message: message.clone(),
            delivered: !matches!(
                step,
                Some(Script::Fail(_) | Script::Throttle(_) | Script::HeldBack(_))
            ),
        });
        match step {
            None => Ok(SendReceipt {
                provider_message_id: Some(format!("provider-{number}")),
            }),
            Some(Script::Fail(kind)) => Err(SendError::new(kind, "Scripted", "the script says no")),
            Some(Script::Throttle(after)) => {
                Err(SendError::new(FailureKind::Throttled, "Throttled", "slow down").retry_after(Some(after)))
            }
            Some(Script::HeldBack(wait)) => Err(SendError::held_back("no permit", wait)),
            Some(Script::AcceptThenTimeOut) => Err(SendError::new(
                FailureKind::Ambiguous,
                "Timeout",
                "no answer within the provider timeout",
            )),
        }
    }
}

/// The queue's side of the delivery loop: every `ChangeMessageVisibility` by receipt handle, every message
/// put back on the queue (with its delay) and every message put in the DLQ, in order. `fail_sends` makes
/// both sends fail, as an unreachable SQS would.
#[derive(Debug, Default)]
pub struct RecordingQueue {
    delays: Mutex<Vec<(String, Duration)>>,
    sent_later: Mutex<Vec<(String, Duration)>>,
    dead_letters: Mutex<Vec<String>>,
    failing_sends: Mutex<bool>,
}

impl RecordingQueue {
    pub fn delays(&self) -> Vec<(String, Duration)> {
        lock(&self.delays).clone()
    }

    /// The delays asked for the message received with `receipt_handle`.
    pub fn delays_of(&self, receipt_handle: &str) -> Vec<Duration> {
        lock(&self.delays)
            .iter()
            .filter(|(handle, _)| handle == receipt_handle)
            .map(|(_, delay)| *delay)
            .collect()
    }

    /// Bodies put back on the queue, each with its delay.
    pub fn sent_later(&self) -> Vec<(String, Duration)> {
        lock(&self.sent_later).clone()
    }

    /// Takes what was put back on the queue, so a test can hand it to the loop again.
    pub fn take_sent_later(&self) -> Vec<(String, Duration)> {
        std::mem::take(&mut *lock(&self.sent_later))
    }

    pub fn dead_letters(&self) -> Vec<String> {
        lock(&self.dead_letters).clone()
    }

    pub fn fail_sends(&self, failing: bool) {
        *lock(&self.failing_sends) = failing;
    }

    fn refuse_if_failing(&self, operation: &'static str) -> Result<(), BackendError> {
        if *lock(&self.failing_sends) {
            return Err(BackendError {
                service: "SQS",
                operation,
                message: "failpoint: SQS unreachable".into(),
                retryable: true,
            });
        }
        Ok(())
    }
}

impl ChannelQueue for RecordingQueue {
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), BackendError> {
        lock(&self.delays).push((receipt_handle.to_owned(), delay));
        Ok(())
    }

    async fn send_later(&self, body: &str, delay: Duration) -> Result<(), BackendError> {
        self.refuse_if_failing("SendMessage(retry)")?;
        lock(&self.sent_later).push((body.to_owned(), delay.min(Duration::from_secs(900))));
        Ok(())
    }

    async fn dead_letter(&self, body: &str) -> Result<(), BackendError> {
        self.refuse_if_failing("SendMessage(dead letter)")?;
        lock(&self.dead_letters).push(body.to_owned());
        Ok(())
    }
}
