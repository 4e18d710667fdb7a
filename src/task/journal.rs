//! The task journal: the writes of tasks and their events, committed in batches.
//!
//! Every running task appends its events here. One writer takes whatever queued while the
//! previous batch was committing and commits it through [`TaskStore::write_tasks`] (one
//! transaction on the SQL stores), so the store's cost per task falls as load rises instead of
//! every task waiting its turn for the database's single writer.
//!
//! Writes keep the order they were sent in: a write is committed in the same batch as, or a
//! later one than, every write sent before it. So a caller that needs only its last event
//! durable sends the earlier ones without waiting ([`TaskJournal::send`]) and awaits the last
//! ([`TaskJournal::write`]): once it is committed, so is everything before it.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::error::{RegistryError, Result};
use crate::liveness::Millis;
use crate::task::store::{TaskStore, TaskWrite, TaskWritten};
use crate::task::{LoggedTaskEvent, TaskEvent, TaskId};

/// Writes committed together at most.
const BATCH: usize = 512;

/// Committed events kept for subscribers that fall behind, before they are told they missed
/// some.
const FEED_CAPACITY: usize = 4_096;

/// An event as committed, for subscribers of the feed: whose task it is, and its place in the
/// task's log.
#[derive(Clone, Debug)]
pub struct CommittedTaskEvent {
    pub task_id: TaskId,
    /// The owner of the task (who may read it, besides an Admin).
    pub owner_id: String,
    pub logged: LoggedTaskEvent,
}

/// A write waiting for its batch, with who to tell.
struct Pending {
    write: TaskWrite,
    /// The task's owner, for the feed of committed events.
    owner_id: String,
    answer: Option<oneshot::Sender<Result<TaskWritten>>>,
}

/// Batches task writes for one store; see the module's documentation.
pub struct TaskJournal {
    queue: mpsc::UnboundedSender<Pending>,
    /// Bumped after every batch, to wake followers of a log.
    committed: Arc<watch::Sender<u64>>,
    feed: broadcast::Sender<Arc<CommittedTaskEvent>>,
}

impl TaskJournal {
    /// Starts the writer over `store` (bounded by the caller); it stops when the journal is
    /// dropped, after committing what was queued.
    pub fn start(store: Arc<dyn TaskStore>) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        let committed = Arc::new(watch::Sender::new(0));
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        tokio::spawn(write_batches(store, pending, committed.clone(), feed.clone()));
        Self { queue, committed, feed }
    }

    /// Queues a write and waits until it is committed.
    pub async fn write(&self, owner_id: &str, write: TaskWrite) -> Result<TaskWritten> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Pending { write, owner_id: owner_id.to_owned(), answer: Some(answer) })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Appends an event and waits until it is committed; its sequence number, or `None` when
    /// the task had already finished.
    pub async fn append(&self, owner_id: &str, id: TaskId, at: Millis, event: TaskEvent) -> Result<Option<u64>> {
        match self.write(owner_id, TaskWrite::Append { id, at, event }).await? {
            TaskWritten::Appended(seq) => Ok(seq),
            TaskWritten::Created(_) => Err(RegistryError::internal("an append was answered as a creation")),
        }
    }

    /// Queues an event without waiting: a failure to store it is logged. A later
    /// [`TaskJournal::write`] that succeeds means this one was committed too, or failed.
    pub fn send(&self, owner_id: &str, id: TaskId, at: Millis, event: TaskEvent) {
        let pending =
            Pending { write: TaskWrite::Append { id, at, event }, owner_id: owner_id.to_owned(), answer: None };
        if self.queue.send(pending).is_err() {
            tracing::warn!(task.id = %id, "a task event was dropped: the journal has stopped");
        }
    }

    /// A receiver that changes after every committed batch.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Every event committed from now on, of every task this journal writes.
    pub fn feed(&self) -> broadcast::Receiver<Arc<CommittedTaskEvent>> {
        self.feed.subscribe()
    }

    /// Wakes followers, for a change made to the store outside the journal.
    pub fn wake(&self) {
        self.committed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn stopped() -> RegistryError {
    RegistryError::storage_unavailable("the task journal has stopped")
}

/// The writer: one batch at a time, each answered once committed.
async fn write_batches(
    store: Arc<dyn TaskStore>,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    committed: Arc<watch::Sender<u64>>,
    feed: broadcast::Sender<Arc<CommittedTaskEvent>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        let mut writes = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for Pending { write, owner_id, answer } in batch.drain(..) {
            writes.push(write);
            waiting.push((owner_id, answer));
        }
        let answers = store.write_tasks(&writes).await;
        committed.send_modify(|n| *n = n.wrapping_add(1));
        for ((write, (owner_id, answer)), result) in writes.into_iter().zip(waiting).zip(answers) {
            if feed.receiver_count() > 0
                && let Some(event) = committed_event(write, owner_id, &result)
            {
                let _ = feed.send(Arc::new(event));
            }
            match answer {
                Some(answer) => {
                    let _ = answer.send(result);
                }
                None => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, code = e.code(), "a task event was not stored");
                    }
                }
            }
        }
    }
}

/// The event a successful write logged, for the feed.
fn committed_event(write: TaskWrite, owner_id: String, result: &Result<TaskWritten>) -> Option<CommittedTaskEvent> {
    let (task_id, seq, at, event) = match (write, result) {
        (TaskWrite::Create { new, created }, Ok(TaskWritten::Created(crate::task::TaskCreated::Created))) => {
            (new.task.id, 1, new.task.created_at, created)
        }
        (TaskWrite::Append { id, at, event }, Ok(TaskWritten::Appended(Some(seq)))) => (id, *seq, at, event),
        _ => return None,
    };
    let logged = LoggedTaskEvent { seq, at: crate::clock::to_datetime(at), event };
    Some(CommittedTaskEvent { task_id, owner_id, logged })
}
