//! Optional outbound publication of registry changes. Each change of the store's change log is
//! published in revision order, from where publication left off, to NATS (a subject per kind and
//! the current agent documents in a JetStream KV bucket) and/or to an AMQP topic exchange.
//!
//! Publication runs beside the API and never blocks or fails an API call: it only reads the
//! change log. A broker that is down or refuses a message is retried with backoff, and
//! publication resumes from the first unpublished revision once it is back. Delivery is at least
//! once: a batch that failed half-way is published again, so consumers recognise a message they
//! have seen by its revision (also the AMQP `message_id` and the JetStream `Nats-Msg-Id`).
//!
//! Among several replicas, one publishes to each destination (see [`coordination`]).
#![forbid(unsafe_code)]

mod amqp;
pub mod coordination;
mod event;
mod nats;

use std::sync::Arc;
use std::time::Duration;

use agent_registry_core::AgentRegistry;
use agent_registry_core::redact::url_credentials;
use agent_registry_core::task::journal::CommittedTaskEvent;
use async_trait::async_trait;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use amqp::{AmqpSettings, parse_exchange, probe_broker};
pub use coordination::{Coordination, RedisCoordination, Solo};
use event::Event;
pub use nats::{NatsSettings, parse_kv_bucket, parse_subject_prefix};

/// Changes read from the log and published in one go.
const BATCH: usize = 256;
/// Longest one attempt (connecting included) may take; kept well under the lease's life, so a
/// leader renews its lease between attempts.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);
/// How often an idle publisher renews its lease and reads the log even without a wake-up, and
/// how often a replica that does not lead tries to take the lease.
const IDLE_CHECK: Duration = Duration::from_secs(3);
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(4);

/// Events a destination's broker took, by `destination`.
pub const PUBLISHED: &str = "agent_registry_publish_events_total";
/// Failed publication attempts (the batch is published again), by `destination`.
pub const FAILURES: &str = "agent_registry_publish_failures_total";
/// Revisions this replica has applied but not yet published, by `destination`; set by the
/// replica that publishes to it.
pub const LAG: &str = "agent_registry_publish_lag_revisions";
/// 1 on the replica that publishes to `destination`, 0 on the others.
pub const LEADING: &str = "agent_registry_publish_leading";
/// Task events a destination's broker took (`--publish-task-events`), by `destination`.
pub const TASK_EVENTS: &str = "agent_registry_publish_task_events_total";
/// Task events this process could not publish because it fell too far behind, by `destination`.
pub const TASK_EVENTS_LOST: &str = "agent_registry_publish_task_events_lost_total";

/// Registers the help text of publication's metrics with the installed recorder.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(PUBLISHED, Unit::Count, "Change events a destination's broker accepted.");
    describe_counter!(FAILURES, Unit::Count, "Failed publication attempts, each retried.");
    describe_gauge!(LAG, Unit::Count, "Revisions applied here but not yet published (on the publishing replica).");
    describe_gauge!(LEADING, Unit::Count, "1 when this replica publishes to the destination.");
    describe_counter!(TASK_EVENTS, Unit::Count, "Task events a destination's broker accepted.");
    describe_counter!(TASK_EVENTS_LOST, Unit::Count, "Task events not published: this process fell too far behind.");
}

/// Where to publish; a destination left `None` is off.
#[derive(Clone, Default)]
pub struct PublishSettings {
    /// NATS subjects and the JetStream KV bucket.
    pub nats: Option<NatsSettings>,
    /// An AMQP topic exchange.
    pub amqp: Option<AmqpSettings>,
    /// Redis URL and key prefix: replicas share a lease and the last published revision there.
    /// Without it this process publishes on its own, from the revision it started at.
    pub redis: Option<(String, String)>,
    /// With `--publish-task-events`: subscribes to the task events this process commits (each
    /// replica publishes its own, so no lease is needed).
    pub task_events: Option<TaskFeed>,
}

/// A new subscription to the task events this process commits.
pub type TaskFeed = Arc<dyn Fn() -> broadcast::Receiver<Arc<CommittedTaskEvent>> + Send + Sync>;

/// A destination: publishes a batch of events in order.
#[async_trait]
trait Sink: Send {
    /// Its name in logs and in the coordination keys.
    fn name(&self) -> &'static str;
    /// `Ok` once the broker has taken every event; after an error the whole batch is
    /// published again.
    async fn publish(&mut self, events: &[Event]) -> Result<(), String>;
    /// Closes the connection (at shutdown).
    async fn close(&mut self);
}

/// The running publication: one task per destination. Dropping it stops them at once;
/// [`Publisher::stop`] lets them finish the batch in flight and hand the lease over.
pub struct Publisher {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Publisher {
    /// Starts publishing to every configured destination, from the revision the registry has
    /// applied now (or, with Redis, from where the replicas' publication stopped); `None` when
    /// no destination is configured.
    pub fn spawn(registry: Arc<AgentRegistry>, settings: PublishSettings) -> Result<Option<Self>, String> {
        let sinks = || {
            let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
            if let Some(nats) = &settings.nats {
                sinks.push(Box::new(nats::NatsSink::new(nats.clone())));
            }
            if let Some(amqp) = &settings.amqp {
                sinks.push(Box::new(amqp::AmqpSink::new(amqp.clone())));
            }
            sinks
        };
        if settings.nats.is_none() && settings.amqp.is_none() {
            return Ok(None);
        }
        let start = registry.applied_revision();
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(feed) = &settings.task_events {
            // A connection of their own: task events never wait behind a batch of changes.
            for sink in sinks() {
                tasks.push(tokio::spawn(publish_task_events(sink, feed(), stopped.clone())));
            }
        }
        for sink in sinks() {
            let coordination: Arc<dyn Coordination> = match &settings.redis {
                Some((url, prefix)) => {
                    Arc::new(RedisCoordination::new(url, &format!("{prefix}:publish:{}", sink.name()))?)
                }
                None => Arc::new(Solo::default()),
            };
            let follower = Follower { registry: registry.clone(), sink, coordination, start, cursor: None };
            tasks.push(tokio::spawn(follower.run(stopped.clone())));
        }
        Ok(Some(Self { stop, tasks }))
    }

    /// Stops publishing: each destination finishes the batch in flight (for at most `grace`)
    /// and gives up its lease, so another replica takes over without waiting for it to lapse.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// Publishes the task events of `feed` to `sink` as they are committed, in batches of what
/// queued meanwhile; a failed batch is retried (with backoff) until it is taken or the
/// process stops. A destination that falls more than the feed holds behind loses the oldest,
/// counted and logged.
async fn publish_task_events(
    mut sink: Box<dyn Sink>,
    mut feed: broadcast::Receiver<Arc<CommittedTaskEvent>>,
    mut stop: watch::Receiver<bool>,
) {
    use broadcast::error::{RecvError, TryRecvError};
    let destination = sink.name();
    let lost = |missed: u64| {
        metrics::counter!(TASK_EVENTS_LOST, "destination" => destination).increment(missed);
        tracing::warn!(destination, missed, "task events were not published: publication fell too far behind");
    };
    let mut trouble = Trouble::new(destination);
    let mut batch: Vec<Event> = Vec::new();
    while !*stop.borrow() {
        if batch.is_empty() {
            tokio::select! {
                _ = stop.changed() => break,
                received = feed.recv() => match received {
                    Ok(committed) => batch.push(Event::task(&committed)),
                    Err(RecvError::Lagged(missed)) => lost(missed),
                    Err(RecvError::Closed) => break,
                },
            }
            while batch.len() < BATCH {
                match feed.try_recv() {
                    Ok(committed) => batch.push(Event::task(&committed)),
                    Err(TryRecvError::Lagged(missed)) => lost(missed),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
        }
        match attempt(sink.as_mut(), &batch).await {
            Ok(()) => {
                trouble.over();
                metrics::counter!(TASK_EVENTS, "destination" => destination).increment(batch.len() as u64);
                batch.clear();
            }
            Err(e) => {
                let pause = trouble.failed(&e);
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    sink.close().await;
}

/// One attempt to publish `events`, cut off after [`ATTEMPT_TIMEOUT`], in a span of its own.
async fn attempt(sink: &mut dyn Sink, events: &[Event]) -> Result<(), String> {
    let span = agent_registry_core::metrics::call_span(sink.name(), "publish");
    tokio::time::timeout(ATTEMPT_TIMEOUT, tracing::Instrument::instrument(sink.publish(events), span))
        .await
        .map_err(|_| format!("no answer within {ATTEMPT_TIMEOUT:?}"))?
}

/// What one step of a follower did.
enum Step {
    /// Published a batch: there may be more.
    Published,
    /// Nothing new to publish.
    Idle,
    /// Another replica holds the lease.
    NotLeading,
}

/// Follows the change log for one destination.
struct Follower {
    registry: Arc<AgentRegistry>,
    sink: Box<dyn Sink>,
    coordination: Arc<dyn Coordination>,
    /// The revision this process started at: where publication begins if none happened yet.
    start: u64,
    /// The last published revision, known while this process leads.
    cursor: Option<u64>,
}

impl Follower {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut revisions = self.registry.watch_revision();
        let mut trouble = Trouble::new(self.sink.name());
        while !*stop.borrow() {
            let pause = match self.step().await {
                Ok(Step::Published) => {
                    trouble.over();
                    continue;
                }
                Ok(step) => {
                    trouble.over();
                    (step, IDLE_CHECK)
                }
                Err(e) => (Step::Idle, trouble.failed(&e)),
            };
            let idle = matches!(pause.0, Step::Idle);
            tokio::select! {
                _ = stop.changed() => {}
                changed = revisions.changed(), if idle => {
                    if changed.is_err() {
                        break; // the registry is gone
                    }
                }
                () = tokio::time::sleep(pause.1) => {}
            }
        }
        self.sink.close().await;
        self.coordination.release().await;
    }

    /// Publishes the next batch if this process leads; every step renews the lease.
    async fn step(&mut self) -> Result<Step, String> {
        let destination = self.sink.name();
        if !self.coordination.lead().await? {
            self.cursor = None;
            metrics::gauge!(LEADING, "destination" => destination).set(0.0);
            return Ok(Step::NotLeading);
        }
        metrics::gauge!(LEADING, "destination" => destination).set(1.0);
        let after = match self.cursor {
            Some(cursor) => cursor,
            None => self.coordination.cursor(self.start).await?,
        };
        self.cursor = Some(after);
        let changes =
            self.registry.changes_after(after, BATCH).await.map_err(|e| format!("cannot read the change log: {e}"))?;
        let lag = |published: u64| {
            let behind = self.registry.applied_revision().saturating_sub(published);
            metrics::gauge!(LAG, "destination" => destination).set(behind as f64);
        };
        let Some(last) = changes.last().map(|c| c.revision) else {
            lag(after);
            return Ok(Step::Idle);
        };
        let events: Vec<Event> = changes.iter().map(|c| Event::of(c)).collect();
        attempt(self.sink.as_mut(), &events).await?;
        metrics::counter!(PUBLISHED, "destination" => destination).increment(events.len() as u64);
        if self.coordination.advance(last).await? {
            self.cursor = Some(last);
            lag(last);
            tracing::debug!(destination = self.sink.name(), published = events.len(), revision = last, "published");
            Ok(Step::Published)
        } else {
            // The lease lapsed during the attempt; whoever holds it now publishes from the
            // recorded revision, so these events may be published twice, never skipped.
            self.cursor = None;
            Ok(Step::NotLeading)
        }
    }
}

/// Backoff between failed attempts, and logs that say when a destination starts and stops
/// failing (not every attempt).
struct Trouble {
    destination: &'static str,
    failures: u32,
    last_error: String,
}

impl Trouble {
    fn new(destination: &'static str) -> Self {
        Self { destination, failures: 0, last_error: String::new() }
    }

    /// Records a failure; returns how long to wait before the next attempt.
    fn failed(&mut self, error: &str) -> Duration {
        self.failures += 1;
        metrics::counter!(FAILURES, "destination" => self.destination).increment(1);
        let delay = FIRST_RETRY.saturating_mul(1 << self.failures.min(8).saturating_sub(1)).min(LAST_RETRY);
        if self.failures == 1 || error != self.last_error {
            tracing::warn!(destination = self.destination, error, retry_in = ?delay, "publishing changes failed; retrying");
            error.clone_into(&mut self.last_error);
        } else {
            tracing::debug!(destination = self.destination, error, attempts = self.failures, "publishing still fails");
        }
        delay
    }

    fn over(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                destination = self.destination,
                failed_attempts = self.failures,
                "publishing changes works again"
            );
            self.failures = 0;
            self.last_error.clear();
        }
    }
}

impl std::fmt::Debug for PublishSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishSettings")
            .field("nats", &self.nats)
            .field("amqp", &self.amqp)
            .field("redis", &self.redis.as_ref().map(|(url, prefix)| (url_credentials(url), prefix)))
            .field("task_events", &self.task_events.is_some())
            .finish()
    }
}
