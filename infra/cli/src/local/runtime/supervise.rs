//! Process supervision: each slot runs its function's binary, one process after the other. A process
//! that exits, overruns an invocation's deadline or fails its init is replaced (after a backoff that
//! grows with failures in a row), and the invocation it held, or one waiting for it, gets the outcome.

use std::io;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Inner, InvokeError, Slot, SlotEvent};

/// Lambda's limit on init (the time before a process first asks for work).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a dead process's output to drain.
const DRAIN_MAX: Duration = Duration::from_millis(250);
/// Restart backoff: doubles with each failure in a row, up to the maximum.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// At most this many log lines are kept per invocation (all of them are still forwarded).
const MAX_KEPT_LINES: usize = 10_000;
/// Environment passed through from ours to the function's, besides [`CREDENTIALS`]. Everything else is
/// cleared: in Lambda only the template's environment and the runtime's own variables are there, and a
/// variable that only the developer's shell has would hide one missing from the template.
const PASS_THROUGH: &[&str] = &["PATH", "HOME", "AWS_ENDPOINT_URL", "RUST_BACKTRACE", "RUST_LOG"];

/// The credentials passed through (all or none of them: they come from one place).
const CREDENTIALS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
];

impl Inner {
    /// Starts a process of the function's binary for `slot`, with the environment Lambda would give it.
    fn spawn_process(&self, slot: &Slot) -> io::Result<Child> {
        let config = &self.config;
        let mut command = Command::new(&config.binary);
        command.env_clear();
        // Our credentials and endpoints only when the function's environment has none of its own.
        let own_credentials = config.environment.contains_key("AWS_ACCESS_KEY_ID");
        let own_endpoint = config.environment.contains_key("AWS_ENDPOINT_URL");
        for key in CREDENTIALS.iter().chain(PASS_THROUGH) {
            let skip = (own_credentials && CREDENTIALS.contains(key))
                || (own_endpoint && key.starts_with("AWS_ENDPOINT_URL"));
            if let Some(value) = std::env::var_os(key).filter(|_| !skip) {
                command.env(key, value);
            }
        }
        if !own_endpoint {
            for (key, value) in std::env::vars_os() {
                if key
                    .to_str()
                    .is_some_and(|key| key.starts_with("AWS_ENDPOINT_URL_"))
                {
                    command.env(key, value);
                }
            }
        }
        let log_stream = format!("local/{}/{}", slot.index, uuid::Uuid::new_v4().simple());
        command
            .env("TZ", ":UTC")
            .envs(&config.environment)
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", slot.port))
            .envs(lambda_environment(&config.name, config.memory_mb, &log_stream));
        if let Some(region) = &self.region {
            command
                .env("AWS_REGION", region)
                .env("AWS_DEFAULT_REGION", region);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
    }
}

/// The variables Lambda itself sets for a function's process, besides `AWS_LAMBDA_RUNTIME_API`.
pub fn lambda_environment(name: &str, memory_mb: u64, log_stream: &str) -> [(&'static str, String); 8] {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
    ]
}

/// Why a process's watch ended.
enum End {
    Exited,
    Timeout,
    InitTimeout,
    InitError,
    Stop,
}

/// Runs the processes of one slot, one after the other, until the host stops.
pub(super) async fn supervise(
    inner: Arc<Inner>,
    index: usize,
    mut events: mpsc::UnboundedReceiver<SlotEvent>,
) {
    let slot = &inner.slots[index];
    // Failures in a row (init failures, crashes of processes that never answered anything).
    let mut failures: u32 = 0;
    while !inner.stopping.load(Ordering::SeqCst) {
        // Ready for the process before it exists: it may ask for work before `spawn` returns.
        let generation = {
            let mut state = slot.lock();
            state.generation += 1;
            state.alive = true;
            state.asked_for_work = false;
            state.served = 0;
            state.init_logs.clear();
            state.init_error = None;
            state.last_line = Instant::now();
            state.generation
        };
        let mut child = match inner.spawn_process(slot) {
            Ok(child) => child,
            Err(error) => {
                slot.lock().alive = false;
                let message = format!("could not start {}: {error}", inner.config.binary.display());
                failures = failures.saturating_add(1);
                let delay = backoff(failures);
                inner.say(&format!("{message}; retrying in {} ms", delay.as_millis()));
                inner.fail_one_queued(&message, Vec::new());
                if wait_backoff(&mut events, delay).await {
                    continue;
                }
                break;
            }
        };
        let pid = child.id();
        let readers: Vec<JoinHandle<()>> = [
            child
                .stdout
                .take()
                .map(|out| spawn_reader(Arc::clone(&inner), index, generation, out)),
            child
                .stderr
                .take()
                .map(|err| spawn_reader(Arc::clone(&inner), index, generation, err)),
        ]
        .into_iter()
        .flatten()
        .collect();

        let end = watch_process(slot, &mut child, &mut events, generation).await;
        if !matches!(end, End::Exited) {
            let _ = child.start_kill();
        }
        // (Returns the status at once when the process has already been waited for.)
        let status = child.wait().await;
        // Gone: its pending `/next` must not take an invocation any more.
        slot.lock().alive = false;
        slot.epoch.send_modify(|epoch| *epoch = epoch.wrapping_add(1));
        drain(readers).await;

        let status = match status {
            Ok(status) => status.to_string(),
            Err(error) => format!("unknown status ({error})"),
        };
        let process = format!(
            "process {index}{}",
            pid.map_or_else(String::new, |pid| format!(" (pid {pid})"))
        );
        let Some(delay) = settle(&inner, slot, end, &process, &status, &mut failures) else {
            break;
        };
        if !wait_backoff(&mut events, delay).await {
            break;
        }
    }
    slot.lock().alive = false;
}

/// After a process ended: answers the invocation it held (or, for a failed init, one that is
/// waiting), says what happened, and tells how long to wait before the next process (`None`: stop).
fn settle(
    inner: &Inner,
    slot: &Slot,
    end: End,
    process: &str,
    status: &str,
    failures: &mut u32,
) -> Option<Duration> {
    let (unanswered, asked_for_work, served, init_logs, init_error) = {
        let mut state = slot.lock();
        let unanswered = if state
            .current
            .as_ref()
            .is_some_and(|current| current.outcome.is_none())
        {
            state.current.take()
        } else {
            None
        };
        (
            unanswered,
            state.asked_for_work,
            state.served,
            std::mem::take(&mut state.init_logs),
            state.init_error.take(),
        )
    };
    let delay = match end {
        End::Stop => {
            if let Some(inflight) = unanswered {
                inflight.send(Err(InvokeError::Stopped));
            }
            slot.idle.notify_one();
            return None;
        }
        End::Timeout => {
            if let Some(inflight) = unanswered {
                inner.say(&format!(
                    "{process} timed out after {} ms on request {}; killed it, restarting",
                    inner.config.timeout.as_millis(),
                    inflight.request_id
                ));
                inflight.send(Err(InvokeError::Timeout));
            }
            Duration::ZERO
        }
        End::Exited if asked_for_work => {
            *failures = if served > 0 { 1 } else { failures.saturating_add(1) };
            let delay = backoff(*failures);
            match unanswered {
                Some(inflight) => {
                    inner.say(&format!(
                        "{process} exited ({status}) during request {}; restarting in {} ms",
                        inflight.request_id,
                        delay.as_millis()
                    ));
                    inflight.send(Err(InvokeError::Crashed));
                }
                None => inner.say(&format!(
                    "{process} exited ({status}); restarting in {} ms",
                    delay.as_millis()
                )),
            }
            delay
        }
        End::Exited | End::InitError | End::InitTimeout => {
            *failures = failures.saturating_add(1);
            let delay = backoff(*failures);
            let message = match (end, init_error) {
                (End::InitTimeout, _) => {
                    format!(
                        "the process did not ask for work within {} s",
                        INIT_TIMEOUT.as_secs()
                    )
                }
                (_, Some(reported)) => reported,
                (_, None) => format!("the process exited ({status}) before asking for work"),
            };
            inner.say(&format!(
                "{process} failed its init: {message}; restarting in {} ms",
                delay.as_millis()
            ));
            inner.fail_one_queued(&message, init_logs);
            delay
        }
    };
    slot.idle.notify_one();
    Some(delay)
}

/// Waits until the process exits, overruns a deadline, reports an init error, or the host stops.
async fn watch_process(
    slot: &Slot,
    child: &mut Child,
    events: &mut mpsc::UnboundedReceiver<SlotEvent>,
    generation: u64,
) -> End {
    let spawned = Instant::now();
    loop {
        let deadline = {
            let state = slot.lock();
            if state.asked_for_work {
                state
                    .current
                    .as_ref()
                    .filter(|current| current.outcome.is_none())
                    .map(|current| current.deadline)
            } else {
                Some(spawned + INIT_TIMEOUT)
            }
        };
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
        ));
        tokio::select! {
            _ = child.wait() => return End::Exited,
            event = events.recv() => match event {
                None | Some(SlotEvent::Stop) => return End::Stop,
                Some(SlotEvent::InitError(reported)) if reported == generation => return End::InitError,
                Some(SlotEvent::Started | SlotEvent::InitError(_)) => {}
            },
            () = sleep, if deadline.is_some() => {
                let state = slot.lock();
                if !state.asked_for_work {
                    return End::InitTimeout;
                }
                let now = Instant::now();
                if state.current.as_ref().is_some_and(|current| current.outcome.is_none() && now >= current.deadline) {
                    return End::Timeout;
                }
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(6);
    (BACKOFF_START * 2u32.pow(doublings)).min(BACKOFF_MAX)
}

/// Sleeps for `delay`; false when the host is stopping.
async fn wait_backoff(events: &mut mpsc::UnboundedReceiver<SlotEvent>, delay: Duration) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            event = events.recv() => if matches!(event, None | Some(SlotEvent::Stop)) {
                return false;
            },
        }
    }
}

/// Waits (briefly) for a dead process's output to be read to the end.
async fn drain(readers: Vec<JoinHandle<()>>) {
    let until = tokio::time::Instant::now() + DRAIN_MAX;
    for mut reader in readers {
        if tokio::time::timeout_at(until, &mut reader).await.is_err() {
            // Someone else (a grandchild?) still holds the pipe open.
            reader.abort();
        }
    }
}

/// Forwards a process's output line by line to our stderr, keeping the lines of its invocations.
fn spawn_reader<R>(inner: Arc<Inner>, index: usize, generation: u64, stream: R) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buffer)
                .trim_end_matches(['\n', '\r'])
                .to_owned();
            eprintln!("[{}] {line}", inner.config.name);
            let mut guard = inner.slots[index].lock();
            let state = &mut *guard;
            if state.generation != generation {
                continue;
            }
            state.last_line = Instant::now();
            let asked_for_work = state.asked_for_work;
            let kept = match state.current.as_mut() {
                Some(current) => &mut current.logs,
                None if !asked_for_work => &mut state.init_logs,
                None => continue,
            };
            if kept.len() < MAX_KEPT_LINES {
                kept.push(line);
            }
        }
    })
}
