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
//!
//! The pieces: this module holds the host and the queue of invocations its processes share; [`api`] serves
//! each process's Runtime API, [`decode`] reads what a process answers, and [`supervise`] runs, watches
//! and restarts the processes.

mod api;
mod decode;
mod supervise;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use api::serve;
pub use supervise::lambda_environment;
use supervise::supervise;

/// The account in the ARNs handed to functions (the one `sam local` uses too).
const ACCOUNT_ID: &str = "123456789012";

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
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The function's binary does not exist (not built yet?).
    #[error("no function binary at {}", .0.display())]
    BinaryNotFound(PathBuf),
    /// No port for the Runtime API.
    #[error("could not open a port for the Lambda Runtime API: {0}")]
    Bind(#[source] io::Error),
}

/// How an invocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The function reported an error (`/invocation/{id}/error`).
    #[error("{error_type}: {error_message}")]
    Function {
        error_type: String,
        error_message: String,
    },
    /// The invocation overran the function's timeout; the process that held it was killed (and restarted).
    #[error("the invocation timed out")]
    Timeout,
    /// The process died while it held the invocation (it is restarted).
    #[error("the function's process died during the invocation")]
    Crashed,
    /// The process failed its init (`/init/error`, or it exited or hung before asking for work).
    #[error("the function failed to initialise: {0}")]
    InitFailed(String),
    /// The host was stopped before the invocation was answered.
    #[error("the function host was stopped")]
    Stopped,
}

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

    fn say(&self, message: &str) {
        eprintln!("[{}] herald: {message}", self.config.name);
    }
}
