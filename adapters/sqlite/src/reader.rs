//! The reader pool (threads with their own read connections) and paged reads.
//!
//! In WAL mode readers run beside the writer and see the last commit as of the start of
//! each statement. A read is a series of pages: each page is one job on a reader thread
//! that runs one statement, merging the index ranges of the query from where the page
//! before stopped and joining the events found (see [`crate::sql`]).
//! Positions are assigned in commit order by the single writer, so a page that starts
//! after the last position of the page before never skips an event; a forward read stops
//! at the head it saw on its first page, so it ends even while writers go on.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use factum::{ReadOptions, StoreError, StoredEvent};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::SqliteOptions;
use crate::error::SqliteError;
use crate::row::{self, EVENT_COLUMNS};
use crate::schema;
use crate::sql::{self, CompiledQuery, Direction, Page as SqlPage};
use crate::writer;

type Job = Box<dyn FnOnce(&Connection) + Send>;

/// Reader threads sharing one queue of jobs. Dropping the pool closes the queue and waits
/// for the threads to finish their jobs, so their connections are closed afterwards.
#[derive(Debug)]
pub(crate) struct ReaderPool {
    jobs: Sender<Job>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for ReaderPool {
    fn drop(&mut self) {
        drop(std::mem::replace(&mut self.jobs, mpsc::channel().0));
        for thread in self.threads.drain(..) {
            writer::join("reader", thread);
        }
    }
}

impl ReaderPool {
    /// Starts `options.readers` threads, each opening its connection; waits until every
    /// one is ready.
    pub(crate) async fn start(
        path: &Path,
        options: &SqliteOptions,
    ) -> Result<ReaderPool, SqliteError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut ready = Vec::with_capacity(options.readers);
        let mut threads = Vec::with_capacity(options.readers);
        for n in 0..options.readers {
            let (ready_tx, ready_rx) = oneshot::channel();
            let queue = queue.clone();
            let path: PathBuf = path.to_owned();
            let options = options.clone();
            let name = format!("factum-sqlite-reader-{n}");
            let thread = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let conn = schema::connect(&path, &options)
                        .and_then(|conn| schema::prepare_reader(&conn, &path).map(|()| conn));
                    match conn {
                        Ok(conn) => {
                            let _ = ready_tx.send(Ok(()));
                            serve(&conn, &queue);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })
                .map_err(|source| SqliteError::Spawn {
                    thread: name,
                    source,
                })?;
            ready.push(ready_rx);
            threads.push(thread);
        }
        // From here on, dropping the pool (on an error below too) stops the threads.
        let pool = ReaderPool { jobs, threads };
        for ready in ready {
            ready
                .await
                .map_err(|_| SqliteError::WorkerGone("reader"))??;
        }
        Ok(pool)
    }

    /// Runs `work` on a reader thread and returns its result.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(work(conn));
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::backend(SqliteError::WorkerGone("reader")))?;
        // A job that panicked dropped its reply: the caller gets an error, not a hang.
        result
            .await
            .map_err(|_| StoreError::backend(SqliteError::WorkerGone("reader")))?
    }
}

/// A reader thread's loop: take the next job, run it; stop when the pool is dropped.
fn serve(conn: &Connection, queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => {
                tracing::error!(error = %SqliteError::Poisoned("reader"), "a reader thread stops");
                return;
            }
        };
        let Ok(job) = job else {
            return; // the store was dropped
        };
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(conn))).is_err() {
            tracing::error!("a read job panicked; its caller gets an error");
        }
    }
}

/// The highest position written, as this connection sees it.
pub(crate) fn head(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT max(position) FROM events", [], |row| row.get(0))
}

/// Where the next page of a read starts.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    /// The lowest position of the next forward page, or the highest of a backward one.
    next: i64,
    /// The highest position a forward read returns: the head seen by its first page.
    /// `None` until the first page ran.
    end: Option<i64>,
    /// Events still to return (the read's limit).
    remaining: usize,
    /// Whether the read is over.
    done: bool,
}

/// One page: events and, when a row is corrupt, the error that ends the read after them.
struct Page {
    events: Vec<StoredEvent>,
    error: Option<StoreError>,
    cursor: Cursor,
}

fn read_page(
    conn: &Connection,
    query: &CompiledQuery,
    direction: Direction,
    mut cursor: Cursor,
    page_size: usize,
) -> Result<Page, StoreError> {
    let want = cursor.remaining.min(page_size);
    let (low, high) = match direction {
        Direction::Forward => {
            let end = match cursor.end {
                Some(end) => end,
                None => head(conn).map_err(StoreError::backend)?.unwrap_or(0),
            };
            cursor.end = Some(end);
            (cursor.next, end)
        }
        Direction::Backward => (1, cursor.next),
    };
    let mut events = Vec::with_capacity(want.min(1024));
    let mut error = None;
    // How many matching positions the page covered, and the last of them.
    let mut fetched = 0;
    let mut last = None;
    if low <= high && want > 0 {
        let limit = i64::try_from(want).unwrap_or(i64::MAX);
        let mut take = |position: i64, event: Result<StoredEvent, StoreError>| {
            fetched += 1;
            last = Some(position);
            match event {
                Ok(event) => {
                    events.push(event);
                    true
                }
                Err(e) => {
                    error = Some(e);
                    false
                }
            }
        };
        match query.page(direction, low, high, limit) {
            SqlPage::Rows(sql, params) => {
                let mut stmt = conn.prepare_cached(&sql).map_err(StoreError::backend)?;
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(params))
                    .map_err(StoreError::backend)?;
                while let Some(row) = rows.next().map_err(StoreError::backend)? {
                    let position: i64 = row.get(0).map_err(StoreError::backend)?;
                    if !take(position, row::decode(row)) {
                        break;
                    }
                }
            }
            SqlPage::Positions(statements) => {
                let positions = sql::run_positions(conn, &statements, direction, want)
                    .map_err(StoreError::backend)?;
                // A left join, so an index entry without its event is an error, not a skip.
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT m.position, {EVENT_COLUMNS} FROM (SELECT ?1 AS position) AS m \
                         LEFT JOIN events AS e ON e.position = m.position"
                    ))
                    .map_err(StoreError::backend)?;
                for position in positions {
                    let event = stmt
                        .query_row([position], |row| Ok(row::decode(row)))
                        .map_err(StoreError::backend)?;
                    if !take(position, event) {
                        break;
                    }
                }
            }
        }
    }
    cursor.remaining -= events.len();
    match last {
        Some(last) if fetched == want && error.is_none() && cursor.remaining > 0 => {
            cursor.next = match direction {
                Direction::Forward => last.saturating_add(1),
                Direction::Backward => last - 1,
            };
        }
        _ => cursor.done = true,
    }
    Ok(Page {
        events,
        error,
        cursor,
    })
}

/// A paged read of `query` with `options`, each page a job on the pool.
pub(crate) fn read(
    pool: Arc<crate::store::Shared>,
    query: CompiledQuery,
    options: ReadOptions,
) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'static {
    let direction = if options.backwards {
        Direction::Backward
    } else {
        Direction::Forward
    };
    let remaining = options.limit.unwrap_or(usize::MAX);
    let next = match (direction, options.from) {
        (Direction::Forward, None) => Some(1),
        (Direction::Forward, Some(from)) => i64::try_from(from.0).ok().map(|f| f.max(1)),
        (Direction::Backward, None) => Some(i64::MAX),
        (Direction::Backward, Some(from)) => Some(i64::try_from(from.0).unwrap_or(i64::MAX)),
    };
    let cursor = Cursor {
        next: next.unwrap_or(i64::MAX),
        end: None,
        remaining,
        // Nothing can match: skip the threads altogether.
        done: query.is_none() || remaining == 0 || next.is_none(),
    };
    let query = Arc::new(query);
    let page_size = pool.options.read_page_size;
    let state = (cursor, None::<StoreError>);
    stream::try_unfold(state, move |(cursor, pending)| {
        let pool = pool.clone();
        let query = query.clone();
        async move {
            if let Some(error) = pending {
                return Err(error);
            }
            if cursor.done {
                return Ok(None);
            }
            let page = pool
                .readers
                .run(move |conn| read_page(conn, &query, direction, cursor, page_size))
                .await?;
            let Page {
                events,
                error,
                cursor,
            } = page;
            Ok(Some((events, (cursor, error))))
        }
    })
    .map_ok(|events| stream::iter(events).map(Ok))
    .try_flatten()
}
