//! A local AWS Lambda Runtime API: runs a function's real binary (unmodified, no container) as a few
//! child processes and hands them invocations the way Lambda does
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>).
//!
//! Each child process is one "execution environment" and gets its own Runtime API endpoint
//! (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT`, a free port per process, as each Lambda sandbox has its
//! own), so the host always knows which process holds which invocation. The processes share one queue
//! of invocations: whichever is idle takes the next one, so a host with two processes runs two
//! invocations at once. A supervisor task per process restarts it when it exits (after a short
//! backoff), kills and restarts it when it overruns an invocation's deadline, and reports a failed
//! init to the invocation waiting for it.
//!
//! Endpoints: `GET /2018-06-01/runtime/invocation/next` (long poll; answers the payload with the
//! `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Invoked-Function-Arn`
//! and `Lambda-Runtime-Trace-Id` headers), `POST …/invocation/{id}/response` (buffered JSON, or
//! `Lambda-Runtime-Function-Response-Mode: streaming` with its metadata prelude),
//! `POST …/invocation/{id}/error` (`{errorType, errorMessage}`, `Lambda-Runtime-Function-Error-Type`
//! header as a fallback) and `POST /2018-06-01/runtime/init/error`.
//!
//! Every line a process prints goes to our stderr as `[NAME] line`; the lines printed while a process
//! holds an invocation are also kept and handed back by [`FunctionHost::invoke_with_logs`].

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The account in the ARNs handed to functions (the one `sam local` uses too).
const ACCOUNT_ID: &str = "123456789012";
/// Lambda's limit on init (the time before a process first asks for work).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// An invocation's answer waits until its process has printed nothing for this long (its last log
/// lines may still be in the pipe when the answer arrives)…
const LOG_QUIET: Duration = Duration::from_millis(5);
/// …but no longer than this.
const LOG_GRACE_MAX: Duration = Duration::from_millis(50);
/// How long to wait for a dead process's output to drain.
const DRAIN_MAX: Duration = Duration::from_millis(250);
/// Restart backoff: doubles with each failure in a row, up to the maximum.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// At most this many log lines are kept per invocation (all of them are still forwarded).
const MAX_KEPT_LINES: usize = 10_000;
/// Environment passed through from ours to the function's. Everything else is cleared: in Lambda
/// only the template's environment and the runtime's own variables are there, and a variable that
/// only the developer's shell has would hide one missing from the template.
const PASS_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "RUST_BACKTRACE",
    "RUST_LOG",
];

/// The pass-through variables that are credentials (all or none of them come from one place).
const CREDENTIALS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
];

const ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";
const ERROR_BODY_HEADER: &str = "lambda-runtime-function-error-body";
const RESPONSE_MODE_HEADER: &str = "lambda-runtime-function-response-mode";

/// How to run one function locally.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The function's name, e.g. `ingest` (`AWS_LAMBDA_FUNCTION_NAME`, the log prefix).
    pub name: String,
    /// The binary, e.g. `target/debug/ingest`.
    pub binary: PathBuf,
    /// The function's environment (from the template), added to the child's.
    pub environment: BTreeMap<String, String>,
    /// The invocation deadline.
    pub timeout: Duration,
    pub memory_mb: u64,
    /// How many processes (execution environments) to run; at least one.
    pub processes: usize,
}

/// Why a host could not start.
#[derive(Debug)]
pub enum RuntimeError {
    /// The function's binary does not exist (not built yet?).
    BinaryNotFound(PathBuf),
    /// No port for the Runtime API.
    Bind(io::Error),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BinaryNotFound(path) => write!(f, "no function binary at {}", path.display()),
            Self::Bind(error) => write!(f, "could not open a port for the Lambda Runtime API: {error}"),
        }
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BinaryNotFound(_) => None,
            Self::Bind(error) => Some(error),
        }
    }
}

/// How an invocation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// The function reported an error (`/invocation/{id}/error`).
    Function {
        error_type: String,
        error_message: String,
    },
    /// The invocation overran the function's timeout; the process that held it was killed (and restarted).
    Timeout,
    /// The process died while it held the invocation (it is restarted).
    Crashed,
    /// The process failed its init (`/init/error`, or it exited or hung before asking for work).
    InitFailed(String),
    /// The host was stopped before the invocation was answered.
    Stopped,
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Function {
                error_type,
                error_message,
            } => write!(f, "{error_type}: {error_message}"),
            Self::Timeout => f.write_str("the invocation timed out"),
            Self::Crashed => f.write_str("the function's process died during the invocation"),
            Self::InitFailed(message) => write!(f, "the function failed to initialise: {message}"),
            Self::Stopped => f.write_str("the function host was stopped"),
        }
    }
}

impl std::error::Error for InvokeError {}

/// An invocation's outcome and the log lines its process printed while holding it.
type Answer = (Result<Value, InvokeError>, Vec<String>);

/// A running function: its processes and their Runtime API. Cheap to clone.
#[derive(Clone)]
pub struct FunctionHost {
    inner: Arc<Inner>,
}

impl fmt::Debug for FunctionHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionHost")
            .field("name", &self.inner.config.name)
            .field(
                "ports",
                &self.inner.slots.iter().map(|slot| slot.port).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl FunctionHost {
    /// Starts a Runtime API on 127.0.0.1 for this function and `processes` child processes of its
    /// binary pointed at it.
    pub async fn start(mut config: FunctionConfig) -> Result<FunctionHost, RuntimeError> {
        if !config.binary.is_file() {
            return Err(RuntimeError::BinaryNotFound(config.binary));
        }
        config.processes = config.processes.max(1);
        let mut listeners = Vec::with_capacity(config.processes);
        let mut slots = Vec::with_capacity(config.processes);
        let mut receivers = Vec::with_capacity(config.processes);
        for index in 0..config.processes {
            let listener = TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(RuntimeError::Bind)?;
            let port = listener.local_addr().map_err(RuntimeError::Bind)?.port();
            let (events, receiver) = mpsc::unbounded_channel();
            slots.push(Slot {
                index,
                port,
                state: Mutex::new(SlotState::new()),
                idle: Notify::new(),
                epoch: watch::Sender::new(0),
                events,
            });
            listeners.push(listener);
            receivers.push(receiver);
        }
        // The function's own environment first (the local stack points it at the emulator's region),
        // then ours.
        let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|key| {
                config
                    .environment
                    .get(*key)
                    .cloned()
                    .filter(|region| !region.is_empty())
            })
            .or_else(|| {
                ["AWS_REGION", "AWS_DEFAULT_REGION"]
                    .iter()
                    .find_map(|key| std::env::var(key).ok().filter(|region| !region.is_empty()))
            });
        let arn = format!(
            "arn:aws:lambda:{}:{ACCOUNT_ID}:function:{}",
            region.as_deref().unwrap_or("us-east-1"),
            config.name
        );
        let inner = Arc::new(Inner {
            config,
            region,
            arn,
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            waiting: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            slots,
            servers: Mutex::new(Vec::new()),
            supervisors: Mutex::new(Vec::new()),
        });
        for (index, (listener, receiver)) in listeners.into_iter().zip(receivers).enumerate() {
            let server = tokio::spawn(serve(listener, Arc::clone(&inner), index));
            let supervisor = tokio::spawn(supervise(Arc::clone(&inner), index, receiver));
            lock(&inner.servers).push(server);
            lock(&inner.supervisors).push(supervisor);
        }
        Ok(FunctionHost { inner })
    }

    /// Queues one invocation and waits for its outcome.
    pub async fn invoke(&self, payload: Value) -> Result<Value, InvokeError> {
        self.invoke_with_logs(payload).await.0
    }

    /// Like [`invoke`](Self::invoke), also giving the log lines the process printed between taking the
    /// invocation and answering it (for a failed init: the lines printed during init).
    pub async fn invoke_with_logs(&self, payload: Value) -> (Result<Value, InvokeError>, Vec<String>) {
        let body = match serde_json::to_vec(&payload) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                let error = InvokeError::Function {
                    error_type: "InvalidRequestContent".to_owned(),
                    error_message: error.to_string(),
                };
                return (Err(error), Vec::new());
            }
        };
        let (reply, answer) = oneshot::channel();
        {
            let mut queue = lock(&self.inner.queue);
            if self.inner.stopping.load(Ordering::SeqCst) {
                return (Err(InvokeError::Stopped), Vec::new());
            }
            queue.push_back(Pending {
                request_id: uuid::Uuid::new_v4().to_string(),
                payload: body,
                reply,
            });
        }
        self.inner.queued.notify_one();
        answer
            .await
            .unwrap_or_else(|_| (Err(InvokeError::Stopped), Vec::new()))
    }

    /// Stops the processes (kill, then wait) and the Runtime API. Invocations still waiting get
    /// [`InvokeError::Stopped`], and so do later ones.
    pub async fn stop(&self) {
        let waiting: Vec<Pending> = {
            let mut queue = lock(&self.inner.queue);
            self.inner.stopping.store(true, Ordering::SeqCst);
            queue.drain(..).collect()
        };
        for pending in waiting {
            let _ = pending.reply.send((Err(InvokeError::Stopped), Vec::new()));
        }
        for slot in &self.inner.slots {
            let _ = slot.events.send(SlotEvent::Stop);
        }
        let supervisors = std::mem::take(&mut *lock(&self.inner.supervisors));
        for supervisor in supervisors {
            let _ = supervisor.await;
        }
        let servers = std::mem::take(&mut *lock(&self.inner.servers));
        for server in servers {
            server.abort();
            let _ = server.await;
        }
    }

    /// Waits until every process is asking for work (tests use it to make concurrency deterministic).
    #[cfg(test)]
    async fn wait_until_ready(&self) {
        while self.inner.waiting.load(Ordering::SeqCst) < self.inner.slots.len() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct Inner {
    config: FunctionConfig,
    region: Option<String>,
    arn: String,
    /// Invocations no process has taken yet.
    queue: Mutex<VecDeque<Pending>>,
    queued: Notify,
    /// How many processes are waiting in `/next` for an invocation.
    waiting: AtomicUsize,
    stopping: AtomicBool,
    slots: Vec<Slot>,
    servers: Mutex<Vec<JoinHandle<()>>>,
    supervisors: Mutex<Vec<JoinHandle<()>>>,
}

struct Pending {
    request_id: String,
    payload: Bytes,
    reply: oneshot::Sender<Answer>,
}

/// One execution environment: a process, its Runtime API port and its supervisor.
struct Slot {
    index: usize,
    port: u16,
    state: Mutex<SlotState>,
    /// Signalled when the slot's invocation is done with (so its process may take the next).
    idle: Notify,
    /// Bumped when the slot's process dies: cancels its pending `/next`.
    epoch: watch::Sender<u64>,
    events: mpsc::UnboundedSender<SlotEvent>,
}

struct SlotState {
    /// Incremented for every process started in this slot.
    generation: u64,
    alive: bool,
    asked_for_work: bool,
    /// Invocations this process answered.
    served: u64,
    init_logs: Vec<String>,
    init_error: Option<String>,
    current: Option<InFlight>,
    last_line: Instant,
}

impl SlotState {
    fn new() -> Self {
        Self {
            generation: 0,
            alive: false,
            asked_for_work: false,
            served: 0,
            init_logs: Vec::new(),
            init_error: None,
            current: None,
            last_line: Instant::now(),
        }
    }
}

/// The invocation a process holds.
struct InFlight {
    request_id: String,
    reply: oneshot::Sender<Answer>,
    deadline: Instant,
    logs: Vec<String>,
    /// Set when the process answered; sent once its last log lines are in.
    outcome: Option<Result<Value, InvokeError>>,
}

impl InFlight {
    fn send(self, outcome: Result<Value, InvokeError>) {
        let _ = self.reply.send((outcome, self.logs));
    }
}

enum SlotEvent {
    /// The process took an invocation (there is a deadline to watch).
    Started,
    /// The process of this generation reported `/init/error`.
    InitError(u64),
    Stop,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        lock(&self.state)
    }
}

impl Inner {
    /// The oldest invocation whose caller is still waiting.
    fn pop_live(&self) -> Option<Pending> {
        let mut queue = lock(&self.queue);
        while let Some(pending) = queue.pop_front() {
            if pending.reply.is_closed() {
                continue;
            }
            if !queue.is_empty() {
                // Pass the wake-up on: another process may be waiting for the rest.
                self.queued.notify_one();
            }
            return Some(pending);
        }
        None
    }

    /// Puts an invocation a dying process took back at the head of the queue.
    fn requeue(&self, pending: Pending) {
        lock(&self.queue).push_front(pending);
        self.queued.notify_one();
    }

    /// Waits for an invocation.
    async fn take_next(&self) -> Pending {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        loop {
            let queued = self.queued.notified();
            if let Some(pending) = self.pop_live() {
                return pending;
            }
            queued.await;
        }
    }

    /// A process failed its init: the oldest waiting invocation fails with it, unless some other
    /// process is ready to take it.
    fn fail_one_queued(&self, message: &str, logs: Vec<String>) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            return;
        }
        if let Some(pending) = self.pop_live() {
            let _ = pending
                .reply
                .send((Err(InvokeError::InitFailed(message.to_owned())), logs));
        }
    }

    fn spawn_process(&self, slot: &Slot) -> io::Result<Child> {
        let config = &self.config;
        let mut command = Command::new(&config.binary);
        command.env_clear();
        // Our credentials and endpoints only when the function's environment has none of its own.
        let own_credentials = config.environment.contains_key("AWS_ACCESS_KEY_ID");
        let own_endpoint = config.environment.contains_key("AWS_ENDPOINT_URL");
        for key in PASS_THROUGH {
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
        command
            .env("TZ", ":UTC")
            .envs(&config.environment)
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", slot.port))
            .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", config.memory_mb.to_string())
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", config.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/{}/{}", slot.index, uuid::Uuid::new_v4().simple()),
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand");
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

    fn say(&self, message: &str) {
        eprintln!("[{}] herald: {message}", self.config.name);
    }
}

/* ---------------------------------------- supervisor ---------------------------------------- */

/// Why a process's watch ended.
enum End {
    Exited,
    Timeout,
    InitTimeout,
    InitError,
    Stop,
}

/// Runs the processes of one slot, one after the other, until the host stops.
async fn supervise(inner: Arc<Inner>, index: usize, mut events: mpsc::UnboundedReceiver<SlotEvent>) {
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

/* ---------------------------------------- Runtime API ---------------------------------------- */

type ApiResponse = Response<Full<Bytes>>;

/// Serves one slot's Runtime API until aborted (which also closes its connections).
async fn serve(listener: TcpListener, inner: Arc<Inner>, index: usize) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                inner.say(&format!("Runtime API accept failed: {error}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let inner = Arc::clone(&inner);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let inner = Arc::clone(&inner);
                async move { Ok::<_, Infallible>(route(inner, index, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn route(inner: Arc<Inner>, index: usize, request: Request<Incoming>) -> ApiResponse {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return not_found(&path);
    };
    match (request.method(), rest) {
        (&Method::GET, "invocation/next") => next_invocation(&inner, index).await,
        (&Method::POST, "init/error") => init_error(&inner, index, request).await,
        (&Method::POST, rest) => {
            let Some(invocation) = rest.strip_prefix("invocation/") else {
                return not_found(&path);
            };
            if let Some(request_id) = invocation.strip_suffix("/response") {
                let outcome = match read_body(request).await {
                    Ok((headers, trailers, body)) => success_outcome(&headers, trailers.as_ref(), &body),
                    Err(response) => return response,
                };
                complete(&inner, index, request_id, outcome)
            } else if let Some(request_id) = invocation.strip_suffix("/error") {
                let outcome = match read_body(request).await {
                    Ok((headers, _, body)) => Err(function_error(headers.get(ERROR_TYPE_HEADER), &body)),
                    Err(response) => return response,
                };
                complete(&inner, index, request_id, outcome)
            } else {
                not_found(&path)
            }
        }
        _ => not_found(&path),
    }
}

/// `GET /runtime/invocation/next`: waits for an invocation and hands it to the slot's process.
async fn next_invocation(inner: &Inner, index: usize) -> ApiResponse {
    let slot = &inner.slots[index];
    let mut epoch = slot.epoch.subscribe();
    let generation = {
        let mut state = slot.lock();
        if !state.alive {
            return gone();
        }
        state.asked_for_work = true;
        state.generation
    };
    // The previous invocation is over once its answer (and its last log lines) are delivered.
    loop {
        let idle = slot.idle.notified();
        if slot.lock().current.is_none() {
            break;
        }
        tokio::select! {
            () = idle => {}
            _ = epoch.changed() => return gone(),
        }
    }
    let pending = tokio::select! {
        pending = inner.take_next() => pending,
        _ = epoch.changed() => return gone(),
    };

    let timeout = inner.config.timeout;
    let deadline_ms = epoch_ms().saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
    {
        let mut state = slot.lock();
        if !state.alive || state.generation != generation {
            drop(state);
            inner.requeue(pending);
            return gone();
        }
        state.current = Some(InFlight {
            request_id: pending.request_id.clone(),
            reply: pending.reply,
            deadline: Instant::now() + timeout,
            logs: Vec::new(),
            outcome: None,
        });
    }
    let _ = slot.events.send(SlotEvent::Started);

    let mut response = Response::new(Full::new(pending.payload));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let values = [
        ("lambda-runtime-aws-request-id", pending.request_id),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", inner.arn.clone()),
        ("lambda-runtime-trace-id", trace_id()),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// Records a process's answer; it is sent to the caller once the process's output has settled.
fn complete(
    inner: &Arc<Inner>,
    index: usize,
    request_id: &str,
    outcome: Result<Value, InvokeError>,
) -> ApiResponse {
    let slot = &inner.slots[index];
    {
        let mut state = slot.lock();
        match state.current.as_mut() {
            Some(current) if current.request_id == request_id && current.outcome.is_none() => {
                current.outcome = Some(outcome);
            }
            _ => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({
                        "errorType": "InvalidRequestID",
                        "errorMessage": format!("no invocation {request_id} is waiting for an answer"),
                    }),
                );
            }
        }
        state.served += 1;
    }
    tokio::spawn(deliver_when_quiet(
        Arc::clone(inner),
        index,
        request_id.to_owned(),
    ));
    json_response(StatusCode::ACCEPTED, &json!({ "status": "OK" }))
}

/// Sends an answered invocation's outcome once its process has printed nothing for a moment (the
/// log lines it printed before answering may still be in the pipe).
async fn deliver_when_quiet(inner: Arc<Inner>, index: usize, request_id: String) {
    let slot = &inner.slots[index];
    let begun = Instant::now();
    loop {
        let last_line = slot.lock().last_line;
        let now = Instant::now();
        let quiet_for = now.saturating_duration_since(last_line.max(begun));
        if quiet_for >= LOG_QUIET || now.duration_since(begun) >= LOG_GRACE_MAX {
            break;
        }
        tokio::time::sleep(LOG_QUIET.saturating_sub(quiet_for)).await;
    }
    let done = {
        let mut state = slot.lock();
        if state
            .current
            .as_ref()
            .is_some_and(|current| current.request_id == request_id)
        {
            state.current.take()
        } else {
            None
        }
    };
    if let Some(mut done) = done {
        let outcome = done.outcome.take().unwrap_or(Err(InvokeError::Crashed));
        done.send(outcome);
    }
    slot.idle.notify_one();
}

/// `POST /runtime/init/error`: the process could not initialise; its supervisor replaces it.
async fn init_error(inner: &Inner, index: usize, request: Request<Incoming>) -> ApiResponse {
    let (headers, _, body) = match read_body(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let message = match function_error(headers.get(ERROR_TYPE_HEADER), &body) {
        InvokeError::Function {
            error_type,
            error_message,
        } => format!("{error_type}: {error_message}"),
        other => other.to_string(),
    };
    let slot = &inner.slots[index];
    let generation = {
        let mut state = slot.lock();
        state.init_error = Some(message);
        state.generation
    };
    let _ = slot.events.send(SlotEvent::InitError(generation));
    json_response(StatusCode::ACCEPTED, &json!({ "status": "OK" }))
}

async fn read_body(request: Request<Incoming>) -> Result<(HeaderMap, Option<HeaderMap>, Bytes), ApiResponse> {
    let (parts, body) = request.into_parts();
    match body.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            Ok((parts.headers, trailers, collected.to_bytes()))
        }
        Err(error) => Err(json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "errorType": "InvalidRequest", "errorMessage": error.to_string() }),
        )),
    }
}

/// The outcome of a `/response`: buffered JSON, or a streamed response.
fn success_outcome(
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
fn function_error(header: Option<&HeaderValue>, body: &[u8]) -> InvokeError {
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

fn json_response(status: StatusCode, body: &Value) -> ApiResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn not_found(path: &str) -> ApiResponse {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({ "errorType": "NotFound", "errorMessage": format!("no Runtime API endpoint at {path}") }),
    )
}

/// The process asking is gone (or going): nothing for it.
fn gone() -> ApiResponse {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({ "errorType": "Runtime.ProcessGone", "errorMessage": "this execution environment is shutting down" }),
    )
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// An X-Ray trace header like Lambda's (`Root=1-{epoch hex}-{96 bits};Parent={64 bits};Sampled=0`).
fn trace_id() -> String {
    let root = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        epoch_ms() / 1000,
        &root[..24],
        &parent[..16]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::OnceLock;

    /// The test function (`examples/echo_lambda.rs`), built if `cargo test` has not built it.
    fn echo_binary() -> PathBuf {
        static BINARY: OnceLock<PathBuf> = OnceLock::new();
        BINARY
            .get_or_init(|| {
                let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                    || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
                    PathBuf::from,
                );
                let binary = target
                    .join("debug/examples")
                    .join(format!("echo_lambda{}", std::env::consts::EXE_SUFFIX));
                if !binary.is_file() {
                    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                    let status = std::process::Command::new(cargo)
                        .args(["build", "-p", "herald-cli", "--example", "echo_lambda"])
                        .current_dir(env!("CARGO_MANIFEST_DIR"))
                        .status()
                        .expect("run cargo build");
                    assert!(status.success(), "building echo_lambda failed");
                }
                binary
            })
            .clone()
    }

    fn config(processes: usize, timeout: Duration, environment: &[(&str, &str)]) -> FunctionConfig {
        FunctionConfig {
            name: "echo".to_owned(),
            binary: echo_binary(),
            environment: environment
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            timeout,
            memory_mb: 256,
            processes,
        }
    }

    async fn start(processes: usize, timeout: Duration, environment: &[(&str, &str)]) -> FunctionHost {
        FunctionHost::start(config(processes, timeout, environment))
            .await
            .expect("start the echo function")
    }

    /// An invocation, bounded so that a bug fails the test instead of hanging it.
    async fn call(host: &FunctionHost, payload: Value) -> (Result<Value, InvokeError>, Vec<String>) {
        tokio::time::timeout(Duration::from_secs(10), host.invoke_with_logs(payload))
            .await
            .expect("the invocation was answered within 10 s")
    }

    fn pid(answer: &Value) -> u64 {
        answer["pid"].as_u64().expect("the echo answer has the pid")
    }

    #[tokio::test]
    async fn echoes_with_lambdas_context_environment_and_logs() {
        let host = start(1, Duration::from_secs(5), &[("ECHO_CUSTOM", "from the template")]).await;
        let before = epoch_ms();
        let (outcome, logs) = call(&host, json!({ "hello": "world", "n": [1, 2] })).await;
        let answer = outcome.expect("echo answers");
        assert_eq!(answer["echo"], json!({ "hello": "world", "n": [1, 2] }));
        assert_eq!(answer["function_name"], "echo");
        assert_eq!(answer["memory"], "256");
        assert_eq!(answer["custom_env"], "from the template");
        let arn = answer["function_arn"].as_str().expect("an ARN");
        assert!(
            arn.starts_with("arn:aws:lambda:") && arn.ends_with(":123456789012:function:echo"),
            "{arn}"
        );
        let deadline = answer["deadline_ms"].as_u64().expect("a deadline");
        assert!(
            deadline >= before + 4_000 && deadline <= epoch_ms() + 5_000,
            "deadline {deadline}"
        );
        // Only the template's and the runtime's environment, not the test runner's.
        let env_keys: Vec<&str> = answer["env_keys"]
            .as_array()
            .expect("env keys")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(env_keys.contains(&"AWS_LAMBDA_RUNTIME_API"), "{env_keys:?}");
        assert!(!env_keys.contains(&"CARGO_MANIFEST_DIR"), "{env_keys:?}");

        let first_request = answer["request_id"].as_str().expect("a request id").to_owned();
        assert_eq!(logs, vec![format!("echo_lambda handling {first_request}")]);

        // The same (warm) process answers the next one, with only its own log lines.
        let (outcome, logs) = call(&host, json!({ "again": true })).await;
        let again = outcome.expect("echo answers again");
        assert_eq!(pid(&again), pid(&answer));
        let second_request = again["request_id"].as_str().expect("a request id");
        assert_ne!(second_request, first_request);
        assert_eq!(logs, vec![format!("echo_lambda handling {second_request}")]);

        // An answer for an invocation nobody is waiting for is refused.
        let port = host.inner.slots[0].port;
        let refused = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{port}/2018-06-01/runtime/invocation/{first_request}/response"
            ))
            .body("{}")
            .send()
            .await
            .expect("the Runtime API answers");
        assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
        host.stop().await;
    }

    #[tokio::test]
    async fn two_processes_run_two_invocations_at_once() {
        let host = start(2, Duration::from_secs(5), &[]).await;
        host.wait_until_ready().await;
        let begun = Instant::now();
        let ((first, _), (second, _)) = tokio::join!(
            call(&host, json!({ "sleep_ms": 400, "which": 1 })),
            call(&host, json!({ "sleep_ms": 400, "which": 2 })),
        );
        eprintln!(
            "two invocations of 400 ms took {} ms together",
            begun.elapsed().as_millis()
        );
        let (first, second) = (first.expect("first answered"), second.expect("second answered"));
        assert_eq!(first["echo"]["which"], 1);
        assert_eq!(second["echo"]["which"], 2);
        assert_ne!(pid(&first), pid(&second), "each process took one");
        // The two handlers were running at the same time.
        let span = |answer: &Value| {
            (
                answer["started_ms"].as_u64().unwrap_or(0),
                answer["finished_ms"].as_u64().unwrap_or(0),
            )
        };
        let ((start_1, end_1), (start_2, end_2)) = (span(&first), span(&second));
        assert!(
            start_1 < end_2 && start_2 < end_1,
            "{start_1}..{end_1} and {start_2}..{end_2} overlap"
        );
        host.stop().await;
    }

    #[tokio::test]
    async fn a_function_error_comes_back_with_its_message() {
        let host = start(1, Duration::from_secs(5), &[]).await;
        let (outcome, logs) = call(&host, json!({ "fail": "boom" })).await;
        match outcome {
            Err(InvokeError::Function {
                error_type,
                error_message,
            }) => {
                assert!(!error_type.is_empty());
                assert_eq!(error_message, "asked to fail: \"boom\"");
            }
            other => panic!("expected a function error, got {other:?}"),
        }
        assert!(logs.iter().any(|line| line == "echo_lambda failing"), "{logs:?}");
        // A handled error does not cost the process.
        let (first, _) = call(&host, json!({})).await;
        let (second, _) = call(&host, json!({})).await;
        assert_eq!(pid(&first.expect("answered")), pid(&second.expect("answered")));
        host.stop().await;
    }

    #[tokio::test]
    async fn an_overrun_times_out_and_the_process_is_replaced() {
        let host = start(1, Duration::from_millis(300), &[]).await;
        let (warm, _) = call(&host, json!({})).await;
        let old_pid = pid(&warm.expect("answered"));
        let begun = Instant::now();
        let (outcome, logs) = call(&host, json!({ "sleep_ms": 2_000 })).await;
        let took = begun.elapsed();
        eprintln!("the timeout came after {} ms", took.as_millis());
        assert_eq!(outcome, Err(InvokeError::Timeout));
        assert!(took < Duration::from_millis(1_500), "{took:?}");
        assert_eq!(logs.len(), 1, "{logs:?}");
        let (next, _) = call(&host, json!({ "after": "timeout" })).await;
        let next = next.expect("the host still answers");
        assert_eq!(next["echo"]["after"], "timeout");
        assert_ne!(pid(&next), old_pid, "the process that overran was replaced");
        host.stop().await;
    }

    #[tokio::test]
    async fn a_crash_is_reported_and_the_process_restarted() {
        let host = start(1, Duration::from_secs(5), &[]).await;
        let (warm, _) = call(&host, json!({})).await;
        let old_pid = pid(&warm.expect("answered"));
        let (outcome, logs) = call(&host, json!({ "exit": true })).await;
        assert_eq!(outcome, Err(InvokeError::Crashed));
        assert!(
            logs.iter()
                .any(|line| line == "echo_lambda exiting with status 3"),
            "{logs:?}"
        );
        let (next, _) = call(&host, json!({ "after": "crash" })).await;
        let next = next.expect("the restarted process answers");
        assert_eq!(next["echo"]["after"], "crash");
        assert_ne!(pid(&next), old_pid);
        host.stop().await;
    }

    #[tokio::test]
    async fn a_failed_init_fails_the_invocation() {
        let host = start(1, Duration::from_secs(5), &[("ECHO_FAIL_INIT", "1")]).await;
        let (outcome, logs) = call(&host, json!({})).await;
        match outcome {
            Err(InvokeError::InitFailed(message)) => {
                assert!(message.contains("before asking for work"), "{message}");
            }
            other => panic!("expected an init failure, got {other:?}"),
        }
        assert_eq!(logs, vec!["echo_lambda init failed on purpose".to_owned()]);
        host.stop().await;
    }

    #[tokio::test]
    async fn stop_kills_the_processes_and_refuses_work() {
        let host = start(2, Duration::from_secs(5), &[]).await;
        let (answer, _) = call(&host, json!({})).await;
        let pid = pid(&answer.expect("answered"));
        host.stop().await;
        assert_eq!(host.invoke(json!({})).await, Err(InvokeError::Stopped));
        if cfg!(target_os = "linux") {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "process {pid} is gone"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_binary_is_refused() {
        let mut config = config(1, Duration::from_secs(1), &[]);
        config.binary = PathBuf::from("/nonexistent/echo");
        assert!(matches!(
            FunctionHost::start(config).await,
            Err(RuntimeError::BinaryNotFound(_))
        ));
    }

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
