//! The shop over real HTTP: a server on a loopback port, a client sending JSON, on the
//! embedded SQLite store (and one run on PostgreSQL).

use std::net::SocketAddr;

use factum_shop::api::Written;
use factum_shop::view::{CartView, CouponView};
use factum_shop::{Shop, StoreChoice};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server and a client for it.
struct Running {
    base: String,
    http: reqwest::Client,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

async fn start(choice: StoreChoice) -> Running {
    let mut shop = Shop::start(&choice).await.unwrap_or_else(|e| {
        panic!(
            "the shop does not start on {choice:?}: {} (PostgreSQL: set DATABASE_URL to a running server)",
            factum::ErrorChain(&e)
        )
    });
    // The read that waits for a position never written gives up soon.
    shop.read_wait = std::time::Duration::from_millis(300);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr: SocketAddr = listener.local_addr().expect("its address");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(factum_shop::serve(listener, shop, async move {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        stop,
        server,
    }
}

impl Running {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn apply(&self, cart: &str, coupon: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}/carts/{cart}/coupon", self.base))
            .json(&json!({ "coupon": coupon }));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    async fn stop(self) {
        self.stop.send(()).expect("the server runs");
        self.server
            .await
            .expect("the server's task")
            .expect("the server shuts down cleanly");
    }
}

fn written(body: Value) -> Written {
    serde_json::from_value(body).expect("a write's answer")
}

/// Issue, open, apply, read back: statuses, positions, read-your-writes, a repeated
/// `Idempotency-Key`, and every kind of refusal.
async fn the_shop_round_trip(running: &Running) {
    let (status, body) = running
        .post("/coupons", json!({ "code": "SPRING", "uses": 2 }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let issued = written(body);
    let issued_at = issued.position.expect("a position");
    let (status, body) = running
        .get(&format!("/coupons/SPRING?after={issued_at}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let coupon: CouponView = serde_json::from_value(body).unwrap();
    assert_eq!((coupon.uses, coupon.used, coupon.remaining), (2, 0, 2));

    for cart in ["c1", "c2", "c3"] {
        let (status, body) = running.post("/carts", json!({ "cart": cart })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // Applied once, however often the client sends it again with its key.
    let key = "0195f3a0-7c1e-7000-8000-000000000001";
    let (status, body) = running.apply("c1", "SPRING", Some(key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = written(body);
    assert!(!first.replayed);
    let (status, body) = running.apply("c1", "SPRING", Some(key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let again = written(body);
    assert!(again.replayed, "{again:?}");
    assert_eq!(
        again.positions, first.positions,
        "the first answer, nothing new"
    );
    let after = first.position.unwrap();
    let (_, body) = running.get(&format!("/carts/c1?after={after}")).await;
    let cart: CartView = serde_json::from_value(body).unwrap();
    assert_eq!(cart.coupon.as_deref(), Some("SPRING"));
    let (_, body) = running.get(&format!("/coupons/SPRING?after={after}")).await;
    let coupon: CouponView = serde_json::from_value(body).unwrap();
    assert_eq!(coupon.used, 1, "one use, not two");

    // The same key on other content is not a repeat.
    let (status, body) = running.apply("c2", "SPRING", Some(key)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["kind"], "idempotency_key_reused", "{body}");

    // Refusals: what the state forbids, what does not exist, what never can be.
    let (status, body) = running.apply("c2", "SPRING", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = running.apply("c3", "SPRING", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "coupon SPRING is used up (2 uses)", "{body}");
    let (status, body) = running.apply("c3", "NOPE", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = running
        .post("/coupons", json!({ "code": "ZERO", "uses": 0 }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = running.get("/coupons/NEVER").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Bad input is a 400 saying what is wrong, and decides nothing.
    let (status, body) = running.post("/coupons", json!({ "code": "X" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("uses"),
        "{body}"
    );
    let (status, body) = running.apply("c3", "SPRING", Some("not-a-uuid")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = running
        .send(
            running
                .http
                .post(format!("{}/carts", running.base))
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A read waiting for a position past the end of the log is told so, after the wait.
    let (status, body) = running.get("/coupons/SPRING?after=1000000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("past the end"),
        "{body}"
    );

    let (status, body) = running.get("/health").await;
    assert_eq!(status, StatusCode::OK, "the projection runs: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let running = start(StoreChoice::Sqlite(dir.path().join("shop.db"))).await;
    the_shop_round_trip(&running).await;
    running.stop().await;
}

/// 40 customers race for a coupon of 10 uses, each from a request of its own: exactly 10
/// get it, the others a 409, and the read model agrees once it has caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_overbook_a_coupon() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let running = start(StoreChoice::Sqlite(dir.path().join("shop.db"))).await;
    let (status, _) = running
        .post("/coupons", json!({ "code": "RUSH", "uses": 10 }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let carts: Vec<String> = (0..40).map(|n| format!("cart-{n}")).collect();
    for cart in &carts {
        let (status, _) = running.post("/carts", json!({ "cart": cart })).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let answers =
        futures::future::join_all(carts.iter().map(|cart| running.apply(cart, "RUSH", None))).await;
    let ok: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    let refused = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok.len(), refused), (10, 30), "{answers:?}");
    let last = ok
        .iter()
        .filter_map(|body| body["position"].as_u64())
        .max()
        .expect("positions");
    let (_, body) = running.get(&format!("/coupons/RUSH?after={last}")).await;
    let coupon: CouponView = serde_json::from_value(body).unwrap();
    assert_eq!((coupon.used, coupon.remaining), (10, 0));
    running.stop().await;
}

/// A shutdown lets the requests in flight finish — one still waiting for the read model
/// when it begins is answered — and the read model holds every write that was answered
/// before the shop stopped: its checkpoint is past them, and a restart reads them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_answers_what_is_in_flight() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("shop.db");
    let running = start(StoreChoice::Sqlite(path.clone())).await;
    let url = format!("{}/carts", running.base);
    let writes: Vec<_> = (0..20)
        .map(|n| {
            let (http, url) = (running.http.clone(), url.clone());
            tokio::spawn(async move {
                let response = http
                    .post(url)
                    .json(&json!({ "cart": format!("late-{n}") }))
                    .send()
                    .await?;
                let status = response.status();
                Ok::<_, reqwest::Error>((status, response.json::<Value>().await?))
            })
        })
        .collect();
    // Waits the whole read wait: certainly still running when the shutdown begins.
    let slow = {
        let http = running.http.clone();
        let url = format!("{}/coupons/NONE?after=1000000", running.base);
        tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    running.stop().await;
    assert_eq!(
        slow.await.expect("a task").expect("answered, not cut off"),
        StatusCode::BAD_REQUEST,
        "the request in flight got its answer"
    );
    let mut created = Vec::new();
    for (n, write) in writes.into_iter().enumerate() {
        // Sent before the shutdown: answered 201. Sent after: refused at the door.
        if let Ok(Ok((StatusCode::CREATED, body))) = write.await {
            created.push((
                format!("late-{n}"),
                written(body).position.expect("a position"),
            ));
        }
    }
    assert!(
        !created.is_empty(),
        "writes before the shutdown were answered"
    );
    let last = created.iter().map(|(_, at)| *at).max().unwrap_or_default();
    let store = factum_sqlite::open(&path).await.expect("the store again");
    let checkpoint =
        factum::listen::ListenerStore::load_checkpoint(&store, factum_shop::view::NAME)
            .await
            .expect("the checkpoint")
            .expect("one was committed");
    assert!(
        checkpoint.0 >= last,
        "caught up before stopping: {checkpoint} < {last}"
    );
    drop(store);
    let again = start(StoreChoice::Sqlite(path)).await;
    for (cart, _) in &created {
        let (status, body) = again.get(&format!("/carts/{cart}")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{cart} was answered created: {body}"
        );
    }
    again.stop().await;
}

/// A client sending one request ten times at once, with one `Idempotency-Key` (a retry
/// storm after a timeout): the coupon is applied once, and every answer is that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_of_one_key_apply_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let running = start(StoreChoice::Sqlite(dir.path().join("shop.db"))).await;
    running
        .post("/coupons", json!({ "code": "ONCE", "uses": 5 }))
        .await;
    running.post("/carts", json!({ "cart": "c1" })).await;
    let key = "0195f3a0-7c1e-7000-8000-0000000000ff";
    let answers =
        futures::future::join_all((0..10).map(|_| running.apply("c1", "ONCE", Some(key)))).await;
    let written: Vec<Written> = answers
        .into_iter()
        .map(|(status, body)| {
            assert_eq!(status, StatusCode::OK, "{body}");
            written(body)
        })
        .collect();
    let first: Vec<&Written> = written.iter().filter(|w| !w.replayed).collect();
    assert_eq!(first.len(), 1, "decided once: {written:?}");
    assert!(
        written.iter().all(|w| w.positions == first[0].positions),
        "{written:?}"
    );
    let after = first[0].position.expect("a position");
    let (_, body) = running.get(&format!("/coupons/ONCE?after={after}")).await;
    let coupon: CouponView = serde_json::from_value(body).unwrap();
    assert_eq!(coupon.used, 1);
    running.stop().await;
}

/// The same round trip on PostgreSQL (`DATABASE_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test`), in a schema of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_on_postgres() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("factum_shop_{}", uuid::Uuid::now_v7().simple());
    let choice = StoreChoice::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    };
    let running = start(choice).await;
    the_shop_round_trip(&running).await;
    running.stop().await;
    let store = factum_postgres::PostgresStore::connect(&url, &schema)
        .await
        .expect("connect again");
    store.drop_schema().await.expect("drop the test schema");
}
