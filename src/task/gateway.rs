//! The gateway use-case: a task request becomes a stored task, is sent to a live endpoint of a
//! matching agent through the `Invoker`, and every step is appended to its log.
//!
//! Failover: a failure before the agent accepted the task moves to the next endpoint, at most
//! `max_attempts` endpoints in all, each attempt logged (`dispatched`, then `retrying` with the
//! reason). Once an agent accepted the task it is never sent again: a later failure fails the
//! task. The whole task is bounded by its `timeoutSeconds`; a cancel ends it at once.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{Either, select};
use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, oneshot, watch};

use crate::auth::Caller;
use crate::clock::Clock;
use crate::error::{RegistryError, Result, catalogue};
use crate::liveness::Millis;
use crate::query::DiscoveryQuery;
use crate::registry::AgentRegistry;
use crate::task::choose::{Candidate, Loads};
use crate::task::invoke::{Call, InvokeError, Invoker, Outcome, Step, Target};
use crate::task::journal::TaskJournal;
use crate::task::store::{NewTask, TaskCreated, TaskQuery, TaskStore, TaskWrite, TaskWritten};
use crate::task::{LoggedTaskEvent, Task, TaskEvent, TaskId, TaskInput, TaskRequest, TaskState, TaskTarget, limits};

/// Settings of the gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Endpoints tried at most for one task (failover before acceptance).
    pub max_attempts: u32,
    /// An endpoint that failed to take a task within this window is tried last.
    pub breaker_window: Duration,
    /// How long a finished task and its log are kept.
    pub retention_secs: i64,
    /// Whether other processes run tasks in the same store (then only overdue tasks in flight
    /// are abandoned ones; a store of this process alone has none running at start).
    pub shared_store: bool,
    /// How often a follower of a task run elsewhere reads its log again.
    pub follow_poll: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            breaker_window: Duration::from_secs(30),
            retention_secs: 168 * 3600,
            shared_store: false,
            follow_poll: Duration::from_millis(500),
        }
    }
}

/// A task accepted by `submit`: new (with the run's end to wait for) or a replay of the task an
/// earlier request with the same idempotency key created.
pub enum Submitted {
    Created { task: Box<Task>, finished: oneshot::Receiver<Task> },
    Replayed(Box<Task>),
}

/// A run in progress in this process: how to cancel it.
struct Running {
    cancel: Arc<Notify>,
}

/// Sends tasks to agents and keeps their logs.
pub struct Gateway {
    registry: Arc<AgentRegistry>,
    store: Arc<dyn TaskStore>,
    invoker: Arc<dyn Invoker>,
    clock: Arc<dyn Clock>,
    config: GatewayConfig,
    loads: Loads,
    running: Mutex<HashMap<TaskId, Running>>,
    /// Where every task write goes, committed in batches.
    journal: TaskJournal,
}

/// Grace past a task's deadline before another process counts it abandoned.
const ABANDONED_AFTER_MILLIS: Millis = 60_000;

/// Events read per call when following a log.
pub const EVENT_PAGE: usize = 200;

impl Gateway {
    /// The gateway over these ports. Tasks a previous run of this process left in flight are
    /// failed first (`registry_restarted`): nothing runs them any more.
    pub async fn open(
        registry: Arc<AgentRegistry>,
        store: Arc<dyn TaskStore>,
        invoker: Arc<dyn Invoker>,
        clock: Arc<dyn Clock>,
        config: GatewayConfig,
    ) -> Result<Arc<Self>> {
        let journal = TaskJournal::start(store.clone());
        let gateway = Arc::new(Self {
            registry,
            store,
            invoker,
            clock,
            config,
            loads: Loads::default(),
            running: Mutex::default(),
            journal,
        });
        let now = gateway.clock.now_millis();
        let overdue_at = if gateway.config.shared_store { now - ABANDONED_AFTER_MILLIS } else { Millis::MAX };
        let failed = gateway.store.fail_abandoned_tasks(overdue_at, now).await?;
        if failed > 0 {
            tracing::warn!(failed, "tasks left in flight by a stopped registry were failed");
        }
        Ok(gateway)
    }

    /// Upkeep: fails tasks abandoned by stopped processes, forgets old finished tasks and old
    /// endpoint failures. Returns the tasks pruned.
    pub async fn upkeep(&self) -> Result<u64> {
        let now = self.clock.now_millis();
        if self.config.shared_store {
            self.store.fail_abandoned_tasks(now - ABANDONED_AFTER_MILLIS, now).await?;
        }
        self.loads.forget_before(Instant::now(), self.config.breaker_window);
        self.store.prune_tasks(now - self.config.retention_secs * 1000).await
    }

    /// Validates the request, finds the live endpoints that could take it, stores the task and
    /// starts it. A retry with the same idempotency key and body gets the first task back.
    pub async fn submit(
        self: &Arc<Self>,
        caller: &Caller,
        input: &TaskInput,
        idempotency_key: Option<String>,
    ) -> Result<Submitted> {
        let request = input.validate()?;
        let candidates = self.candidates(caller, &request).await?;
        let now = self.clock.now_millis();
        let task = Task {
            id: TaskId::generate(),
            owner_id: caller.owner.clone(),
            actor: caller.actor.clone(),
            agent_id: match request.target {
                TaskTarget::AgentId(id) => Some(id),
                _ => None,
            },
            request,
            state: TaskState::Submitted,
            endpoint_id: None,
            protocol: None,
            output: None,
            failure: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            last_seq: 1,
        };
        let request_hash = hash(&task.request);
        let new = NewTask { task: task.clone(), idempotency: idempotency_key.map(|key| (key, request_hash.clone())) };
        let created = match self
            .journal
            .write(&task.owner_id, TaskWrite::Create { new: Box::new(new), created: TaskEvent::Created })
            .await?
        {
            TaskWritten::Created(created) => created,
            TaskWritten::Appended(_) => {
                return Err(RegistryError::internal("a creation was answered as an append"));
            }
        };
        match created {
            TaskCreated::Existing { request_hash: earlier, .. } if earlier != request_hash => {
                Err(RegistryError::IdempotencyKeyReused)
            }
            TaskCreated::Existing { task, .. } => Ok(Submitted::Replayed(task)),
            TaskCreated::Created => {
                let finished = self.start(task.clone(), candidates);
                Ok(Submitted::Created { task: Box::new(task), finished })
            }
        }
    }

    /// The live endpoints the task could go to, in no order yet; refused when there are none or
    /// none this gateway can speak to. Agents whose `callers` label leaves this caller out are
    /// not candidates (the same answer as no live agent), and a pinned one is `403 forbidden`.
    async fn candidates(&self, caller: &Caller, request: &TaskRequest) -> Result<Vec<Candidate>> {
        let now = self.clock.now_millis();
        let hits = match &request.target {
            TaskTarget::AgentId(id) => vec![self.registry.find(*id).await?],
            TaskTarget::Capability(name) | TaskTarget::Tool(name) => {
                let pairs = [("capability", name.as_str()), ("pageSize", "100"), ("liveOnly", "true")];
                self.registry.search(&DiscoveryQuery::from_pairs(pairs, true, false)?)?.hits
            }
        };
        let mut live = Vec::new();
        for hit in hits {
            let agent = hit.agent()?;
            if !crate::task::may_call(caller, &agent) {
                if let TaskTarget::AgentId(id) = &request.target {
                    return Err(RegistryError::Forbidden(format!(
                        "agent {id} takes tasks only from the callers its `{}` label names",
                        crate::task::CALLERS_LABEL
                    )));
                }
                continue;
            }
            for (index, endpoint) in agent.endpoints.iter().enumerate() {
                if hit.live_state(index, now).is_some_and(|s| s.is_live) {
                    let mut endpoint = endpoint.clone();
                    if endpoint.protocol == crate::model::Protocol::ACP {
                        // An ACP run names its agent; registered by manifest, the endpoint knows the
                        // name its server uses, otherwise it is the agent's own.
                        endpoint
                            .protocol_metadata
                            .entry("agent_name")
                            .or_insert_with(|| serde_json::Value::String(agent.name.clone()));
                    }
                    live.push(Candidate { agent_id: agent.id, endpoint, document: agent.origin.clone() });
                }
            }
        }
        let wanted = match &request.target {
            TaskTarget::AgentId(id) => format!("agent {id}"),
            TaskTarget::Capability(name) => format!("capability `{name}`"),
            TaskTarget::Tool(name) => format!("tool `{name}`"),
        };
        if live.is_empty() {
            return Err(RegistryError::NoLiveAgent(format!("no live endpoint of any agent offers {wanted}")));
        }
        let unspoken: Vec<String> = live
            .iter()
            .filter(|c| !self.invoker.speaks(c.endpoint.protocol, c.endpoint.transport))
            .map(|c| format!("{} over {}", c.endpoint.protocol, c.endpoint.transport))
            .collect();
        live.retain(|c| self.invoker.speaks(c.endpoint.protocol, c.endpoint.transport));
        if live.is_empty() {
            let mut kinds = unspoken;
            kinds.sort();
            kinds.dedup();
            return Err(RegistryError::TransportNotSupported(format!(
                "the live endpoints for {wanted} speak {}, which this registry cannot send tasks to yet",
                kinds.join(", ")
            )));
        }
        Ok(live)
    }

    /// Runs the task in a task of its own (so a client that goes away does not stop it).
    fn start(self: &Arc<Self>, task: Task, candidates: Vec<Candidate>) -> oneshot::Receiver<Task> {
        let (done, finished) = oneshot::channel();
        let cancel = Arc::new(Notify::new());
        self.running.lock().insert(task.id, Running { cancel: cancel.clone() });
        let gateway = self.clone();
        let span = tracing::info_span!("task", task.id = %task.id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let id = task.id;
                let last = gateway.run(task, candidates, cancel).await;
                gateway.running.lock().remove(&id);
                let _ = done.send(last);
            },
            span,
        ));
        finished
    }

    async fn run(&self, task: Task, candidates: Vec<Candidate>, cancel: Arc<Notify>) -> Task {
        // The task as its log so far makes it, kept here rather than read back from the store.
        let shadow = Mutex::new(task.clone());
        let timeout = Duration::from_secs(u64::from(task.request.timeout_seconds));
        let deadline = Instant::now() + timeout;
        let accepted: Mutex<Option<(Target, Option<String>)>> = Mutex::new(None);
        let timed_out = || {
            let detail = format!("the task did not finish within its timeout of {} s", task.request.timeout_seconds);
            TaskEvent::failed(catalogue::TASK_TIMEOUT, detail)
        };
        // The attempts, the timeout and a cancel race; the losers are dropped with this block.
        let last = {
            let attempts = pin!(self.attempts(&shadow, candidates, deadline, &accepted));
            let (timer, canceled) = (pin!(tokio::time::sleep(timeout)), pin!(cancel.notified()));
            match select(attempts, select(timer, canceled)).await {
                Either::Left((event, _)) => event,
                Either::Right((Either::Left(_), _)) => timed_out(),
                Either::Right((Either::Right(_), _)) => TaskEvent::Canceled,
            }
        };
        // A call cut off by the deadline fails with its own reason, racing the timer: past the
        // deadline, the reason is the timeout whichever came first.
        let last = match last {
            TaskEvent::Failed { .. } if Instant::now() >= deadline => timed_out(),
            other => other,
        };
        let taken = accepted.lock().take();
        if let (TaskEvent::Canceled, Some((target, remote))) = (&last, taken) {
            // Best effort: the task is canceled here whatever the agent answers.
            let asked = tokio::time::timeout(Duration::from_secs(5), self.invoker.cancel(&target, remote.as_deref()));
            if let Ok(Err(e)) = asked.await {
                tracing::info!(error = %e, "the agent did not confirm the cancel");
            }
        }
        let finished = if self.record(&shadow, last.clone()).await {
            shadow.into_inner()
        } else {
            // The store refused the event (the task ended elsewhere, say a cancel through another
            // replica) or could not take it: the store knows best.
            match self.store.task(task.id).await {
                Ok(Some(stored)) => stored,
                _ => {
                    let mut ended = shadow.into_inner();
                    ended.apply(self.clock.now_millis(), &last);
                    ended
                }
            }
        };
        let protocol = finished.protocol.map_or("none", |p| p.as_str());
        metrics::counter!(crate::metrics::TASKS, "protocol" => protocol, "state" => finished.state.as_str())
            .increment(1);
        finished
    }

    /// Tries the candidates in order until one takes the task; returns the task's last event.
    async fn attempts(
        &self,
        shadow: &Mutex<Task>,
        candidates: Vec<Candidate>,
        deadline: Instant,
        accepted: &Mutex<Option<(Target, Option<String>)>>,
    ) -> TaskEvent {
        let task = shadow.lock().clone();
        let window = self.config.breaker_window;
        let ordered = self.loads.order(candidates, task.request.protocol, task.id, Instant::now(), window);
        let tries = ordered.len().min(usize::try_from(self.config.max_attempts.max(1)).unwrap_or(1));
        let call = Call {
            task_id: task.id,
            input: task.request.input.clone(),
            tool: task.request.tool().or(task.request.capability()).map(str::to_owned),
            metadata: task.request.metadata.clone(),
            deadline,
        };
        let mut last_error = None;
        for (attempt, candidate) in ordered.into_iter().take(tries).enumerate() {
            if let Some(e) = &last_error {
                self.note(shadow, TaskEvent::Retrying { reason: describe(e) });
            }
            let target = candidate.target();
            self.note(
                shadow,
                TaskEvent::Dispatched {
                    agent_id: candidate.agent_id,
                    endpoint_id: candidate.endpoint.id,
                    protocol: candidate.endpoint.protocol,
                    address: crate::redact::url_credentials(&candidate.endpoint.address),
                    attempt: u32::try_from(attempt + 1).unwrap_or(u32::MAX),
                },
            );
            let _in_flight = self.loads.start(candidate.endpoint.id);
            match self.invoke_once(shadow, &target, &call, accepted).await {
                Ok(outcome) => return outcome_event(outcome),
                Err(e) if e.may_fail_over() && accepted.lock().is_none() => {
                    tracing::info!(endpoint.id = %candidate.endpoint.id, error = %e, "endpoint did not take the task");
                    self.loads.failed(candidate.endpoint.id, Instant::now());
                    last_error = Some(e);
                }
                Err(e) => return TaskEvent::failed(e.code(), e.detail()),
            }
        }
        match last_error {
            Some(e) => TaskEvent::failed(e.code(), format!("no endpoint took the task; the last said: {}", e.detail())),
            None => TaskEvent::failed(catalogue::AGENT_UNREACHABLE, "no endpoint was left to try"),
        }
    }

    /// One invocation, its steps appended to the log as they come.
    async fn invoke_once(
        &self,
        shadow: &Mutex<Task>,
        target: &Target,
        call: &Call,
        accepted: &Mutex<Option<(Target, Option<String>)>>,
    ) -> std::result::Result<Outcome, InvokeError> {
        let (tx, mut steps) = tokio::sync::mpsc::unbounded_channel::<Step>();
        let emit = move |step: Step| {
            let _ = tx.send(step);
        };
        let span = crate::metrics::call_span("agent", target.protocol.as_str());
        let mut invocation = pin!(tracing::Instrument::instrument(self.invoker.invoke(target, call, &emit), span));
        // `select` polls its first future first: steps are logged before the result.
        let result = loop {
            match select(pin!(steps.recv()), &mut invocation).await {
                Either::Left((Some(step), _)) => self.step(shadow, target, step, accepted),
                Either::Left((None, _)) => break invocation.await,
                Either::Right((result, _)) => break result,
            }
        };
        while let Ok(step) = steps.try_recv() {
            self.step(shadow, target, step, accepted);
        }
        result
    }

    fn step(
        &self,
        shadow: &Mutex<Task>,
        target: &Target,
        step: Step,
        accepted: &Mutex<Option<(Target, Option<String>)>>,
    ) {
        let event = match step {
            Step::Accepted { remote_id } => {
                *accepted.lock() = Some((target.clone(), remote_id.clone()));
                TaskEvent::Accepted { remote_id }
            }
            Step::Status { state, message } => TaskEvent::Status { state, message },
            Step::Progress(progress) => TaskEvent::Progress { progress },
            Step::Artifact(artifact) => TaskEvent::Artifact { artifact },
            Step::Message(message) => TaskEvent::Message { message },
        };
        self.note(shadow, event);
    }

    /// Logs an event on the way without waiting for its commit: the last event, awaited by
    /// [`Gateway::record`], commits after it.
    fn note(&self, shadow: &Mutex<Task>, event: TaskEvent) {
        let at = self.clock.now_millis();
        let mut task = shadow.lock();
        task.apply(at, &event);
        self.journal.send(&task.owner_id, task.id, at, event);
    }

    /// Logs the task's last event and waits for its commit; a store that cannot take it now is
    /// retried briefly, since the log is what every reader sees. Whether the store took it as
    /// the shadow expected (the shadow is then the stored task).
    async fn record(&self, shadow: &Mutex<Task>, event: TaskEvent) -> bool {
        let (owner_id, id) = {
            let task = shadow.lock();
            (task.owner_id.clone(), task.id)
        };
        for attempt in 0..3u32 {
            let at = self.clock.now_millis();
            match self.journal.append(&owner_id, id, at, event.clone()).await {
                Ok(Some(seq)) => {
                    let mut task = shadow.lock();
                    return task.apply(at, &event) == Some(seq);
                }
                Ok(None) => return false,
                Err(e) => {
                    tracing::warn!(error = %e, code = e.code(), kind = event.kind(), attempt, "a task event was not stored");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        false
    }

    /// The task, if this caller may read it (its owner, or an Admin); others get not-found.
    pub async fn task(&self, caller: &Caller, id: TaskId) -> Result<Task> {
        match self.store.task(id).await? {
            Some(task) if caller.may_manage(&task.owner_id) => Ok(task),
            _ => Err(RegistryError::TaskNotFound(id.to_string())),
        }
    }

    /// Events after `after`, for a caller who may read the task.
    pub async fn events(&self, caller: &Caller, id: TaskId, after: u64) -> Result<(Task, Vec<LoggedTaskEvent>)> {
        let task = self.task(caller, id).await?;
        let events = self.store.task_events(id, after, EVENT_PAGE).await?;
        Ok((task, events))
    }

    /// Waits until this process appends an event, or the poll interval passes (the task may run
    /// in another replica).
    pub async fn changed(&self, mut since: watch::Receiver<u64>) {
        let _ = tokio::time::timeout(self.config.follow_poll, since.changed()).await;
    }

    /// A receiver to pass to [`Gateway::changed`], taken before reading the log.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.journal.subscribe()
    }

    /// Every task event this process commits from now on (its own runs, cancels through it).
    pub fn feed(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::task::journal::CommittedTaskEvent>> {
        self.journal.feed()
    }

    /// Tasks this caller may read, newest first; `before` from the previous page.
    pub async fn list(&self, caller: &Caller, mut query: TaskQuery) -> Result<(Vec<Task>, Option<(Millis, TaskId)>)> {
        if !caller.is_admin() {
            query.owner_id = Some(caller.owner.clone());
        }
        let limit = query.limit;
        query.limit = limit + 1;
        let mut tasks = self.store.tasks(&query).await?;
        let next = (tasks.len() > limit).then(|| {
            tasks.truncate(limit);
            tasks.last().map(|t| (t.created_at, t.id))
        });
        Ok((tasks, next.flatten()))
    }

    /// Cancels a task that has not finished: logged as `canceled` (by whichever replica is
    /// asked), its run here stopped and the agent asked to cancel it too.
    pub async fn cancel(&self, caller: &Caller, id: TaskId) -> Result<Task> {
        let task = self.task(caller, id).await?;
        if task.state.is_final() {
            return Err(RegistryError::TaskFinished { task: id.to_string(), state: task.state });
        }
        let running = self.running.lock().get(&id).map(|r| r.cancel.clone());
        match running {
            // The run logs the cancel itself, after asking the agent.
            Some(cancel) => {
                let mut since = self.subscribe();
                cancel.notify_one();
                let waited = Instant::now();
                while waited.elapsed() < Duration::from_secs(6) {
                    let current = self.task(caller, id).await?;
                    if current.state.is_final() {
                        return Ok(current);
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(200), since.changed()).await;
                }
            }
            None => {
                self.journal.append(&task.owner_id, id, self.clock.now_millis(), TaskEvent::Canceled).await?;
            }
        }
        self.task(caller, id).await
    }

    /// For `GET /status` (Admin): tasks in flight, and tasks completed and failed in the last
    /// hour, each by protocol (`none`: not sent anywhere yet); and the tasks this process runs.
    pub async fn status(&self, caller: &Caller) -> Result<serde_json::Value> {
        caller.require_admin()?;
        let counts = self.store.task_counts(self.clock.now_millis() - 3_600_000).await?;
        let by = |states: &[TaskState]| {
            let mut out = serde_json::Map::new();
            for count in counts.iter().filter(|c| states.contains(&c.state)) {
                let protocol = count.protocol.map_or_else(|| "none".to_owned(), |p| p.to_string());
                let total = out.get(&protocol).and_then(serde_json::Value::as_u64).unwrap_or(0) + count.count;
                out.insert(protocol, total.into());
            }
            serde_json::Value::Object(out)
        };
        Ok(serde_json::json!({
            "inFlight": by(&TaskState::IN_FLIGHT),
            "lastHour": {"completed": by(&[TaskState::Completed]), "failed": by(&[TaskState::Failed])},
            "runningHere": self.running(),
        }))
    }

    /// Tasks running in this process now.
    pub fn running(&self) -> usize {
        self.running.lock().len()
    }
}

/// The event an agent's answer ends the task with.
fn outcome_event(outcome: Outcome) -> TaskEvent {
    match outcome {
        Outcome::Completed { output } => {
            let size = serde_json::to_vec(&output).map_or(usize::MAX, |b| b.len());
            if size > limits::OUTPUT_BYTES {
                TaskEvent::failed(
                    catalogue::OUTPUT_TOO_LARGE,
                    format!("the agent's answer has {size} bytes; at most {} are kept", limits::OUTPUT_BYTES),
                )
            } else {
                TaskEvent::Completed { output }
            }
        }
        Outcome::Failed { code, detail } => TaskEvent::Failed { code, detail },
        Outcome::InputRequired { message } => TaskEvent::InputRequired { message },
        Outcome::Canceled => TaskEvent::Canceled,
        Outcome::Rejected { detail } => TaskEvent::Rejected { detail },
    }
}

fn describe(e: &InvokeError) -> String {
    format!("{}: {}", e.code(), e.detail())
}

/// A stable hash of a task request, to recognise retries.
fn hash(request: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(request).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}
