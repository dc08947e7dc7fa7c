//! A seeded, deterministic local fake of the Clari Copilot REST API, for tests, benchmarks and
//! the quick-start demo.
//!
//! It follows `clari-copilot-api.md` (auth before routing, `skip`/`limit` bounds, the
//! `pagination` envelope without `nextPageSkip` on the last page, strict time filters, private
//! calls, the 6 MB gateway cap answered with 502) and adds runtime-switchable [`Faults`]: the
//! transport's (errors, latency, rate limits, broken bodies) and the data's (churn, unstable
//! orders, pagination that disagrees with itself, `null` lists, failing details, late indexing),
//! all timed by a server clock that may be skewed and that every answer's `Date` header shows.
//! It deliberately shares no code with the connector: a fake that reused the connector's
//! types would agree with the connector's bugs. Being its own crate, which does not depend on
//! the connector, makes the compiler hold it to that.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use clari_copilot_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig { calls: 1_000, ..SandboxConfig::default() }).await?;
//! println!("{}", sandbox.base_url());
//! sandbox.faults().fail_next(2, 502);
//! sandbox.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod data;
#[cfg(test)]
mod fault_tests;
mod faults;
mod options;
mod query;
mod read;
mod reply;
mod store;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::response::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::serve::ListenerExt;
use jiff::Timestamp;
use jiff::fmt::rfc2822::DateTimePrinter;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use data::{Dataset, Media, Shape};
use reply::{ApiError, Listing};
use store::{CrmKind, Writes};

pub use faults::{Churn, ChurnScope, Faults, Mutation};
pub use options::SandboxOptions;
pub use store::{Counts, WriteStore};

/// What the sandbox serves and how.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Seed of every generated value: the same seed gives the same tenant.
    pub seed: u64,
    /// Number of calls generated at start-up.
    pub calls: usize,
    /// Number of users.
    pub users: usize,
    /// Number of `/v2/topics` topics.
    pub topics: usize,
    /// Number of scorecards (each scores one call and inherits its hidden time). Defaults to
    /// `calls / 4` only through [`SandboxConfig::default`] and [`SandboxConfig::with_calls`]:
    /// `..Default::default()` after changing `calls` keeps 125.
    pub scorecards: usize,
    /// Number of scorecard templates.
    pub scorecard_templates: usize,
    /// Expected `X-Api-Key`.
    pub api_key: String,
    /// Expected `X-Api-Password`.
    pub api_password: String,
    /// Calls' `time` and `last_modified_time` lie in `[history_start, history_end)`.
    pub history_start: Timestamp,
    /// See `history_start`.
    pub history_end: Timestamp,
    /// Fraction of calls that are private (left out of `/calls` unless `includePrivate`).
    pub private_ratio: f64,
    /// Response key of `/scorecard-template`: the live API's `scorecardTemplates` by default,
    /// the spec's `scoreCardTemplates` to test the other spelling.
    pub templates_key: String,
    /// Responses larger than this are replaced by a 502 `internal server error`, like the
    /// AWS gateway in front of the real API (about 6 MB).
    pub max_response_bytes: usize,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let calls = 500;
        SandboxConfig {
            seed: 42,
            calls,
            users: 12,
            topics: 8,
            scorecards: calls / 4,
            scorecard_templates: 3,
            api_key: "sandbox-key".to_owned(),
            api_password: "sandbox-password".to_owned(),
            history_start: Timestamp::constant(1_704_067_200, 0),
            history_end: Timestamp::constant(1_735_689_600, 0),
            private_ratio: 0.1,
            templates_key: "scorecardTemplates".to_owned(),
            max_response_bytes: 6_000_000,
            port: 0,
        }
    }
}

impl SandboxConfig {
    /// The default tenant with `calls` calls and `calls / 4` scorecards.
    pub fn with_calls(calls: usize) -> Self {
        SandboxConfig {
            calls,
            scorecards: calls / 4,
            ..SandboxConfig::default()
        }
    }
}

/// One request as the sandbox saw it, whatever it answered (401s included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The status answered.
    pub status: u16,
    /// When the request arrived.
    pub time: Timestamp,
    /// When its answer was ready (after any injected latency).
    pub answered: Timestamp,
}

/// State shared by the server and every handle.
pub(crate) struct Shared {
    config: SandboxConfig,
    data: RwLock<Dataset>,
    writes: Mutex<Writes>,
    faults: Faults,
    journal: Mutex<Vec<RecordedRequest>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn data(&self) -> RwLockReadGuard<'_, Dataset> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn writes(&self) -> MutexGuard<'_, Writes> {
        lock(&self.writes)
    }

    fn data_mut(&self) -> RwLockWriteGuard<'_, Dataset> {
        self.data.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Missing header → the documented "Credentials not provided!" body; wrong values → an
    /// `errorMessage` 401 too (the real answer is undocumented).
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
        match (header("x-api-key"), header("x-api-password")) {
            (Some(key), Some(password))
                if key == self.config.api_key.as_bytes()
                    && password == self.config.api_password.as_bytes() =>
            {
                Ok(())
            }
            (Some(_), Some(_)) => Err(ApiError::message(
                StatusCode::UNAUTHORIZED,
                "Invalid API key or password",
            )),
            _ => Err(ApiError::message(
                StatusCode::UNAUTHORIZED,
                "Credentials not provided!, see documentation: https://api-doc.copilot.clari.com",
            )),
        }
    }

    /// Counts an answered listing request and applies the churn due after it, if any.
    fn churn_after_listing(&self) {
        let Some((event, scope)) = self.faults.count_listing_answer() else {
            return;
        };
        let now = self.faults.server_now().as_millisecond();
        if self.data_mut().churn(scope.times(now), event, now) {
            self.faults.count_churned_call();
        }
    }

    /// Auth, then the request faults, then the route, then the size cap, churn and the body
    /// faults.
    async fn gateway(&self, request: Request, next: Next) -> Response {
        if let Err(err) = self.authenticate(request.headers()) {
            return err.into_response();
        }
        if let Err(err) = self.faults.before_request().await {
            return err.into_response();
        }
        let (parts, body) = next.run(request).await.into_parts();
        // Over the size cap, Clari's gateway answers 502 (so does a body that cannot be read).
        let Ok(mut bytes) = axum::body::to_bytes(body, self.config.max_response_bytes).await else {
            return ApiError::injected(502).into_response();
        };
        if parts.status == StatusCode::OK {
            if parts.extensions.get::<Listing>().is_some() {
                self.churn_after_listing();
            }
            if self.faults.reset_this_success() {
                return cut_connection(parts, bytes);
            }
            if self.faults.malformed_body() {
                bytes = Bytes::from_static(b"<html><body><h1>502 Bad Gat");
            } else if self.faults.unexpected_json() {
                bytes = Bytes::from_static(br#"{"status":"ok","result":[]}"#);
            } else if self.faults.truncate_body() {
                bytes.truncate(bytes.len() / 2);
            }
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// A response that promises `bytes.len()` bytes but ends after half of them. The body is a
/// stream (length unknown to hyper), so hyper trusts the header, fails when the stream ends
/// early, and closes the connection mid-body.
fn cut_connection(mut parts: Parts, bytes: Bytes) -> Response {
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let half = bytes.slice(..bytes.len() / 2);
    Response::from_parts(
        parts,
        Body::from_stream(Body::from(half).into_data_stream()),
    )
}

/// Outermost layer: records every request in the journal with the status it got.
async fn journal(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let time = Timestamp::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let response = shared.gateway(request, next).await;
    lock(&shared.journal).push(RecordedRequest {
        method,
        path,
        query,
        status: response.status().as_u16(),
        time,
        answered: Timestamp::now(),
    });
    response
}

/// Outermost layer: every answer (401s and 404s included) carries a `Date` header from the
/// server clock, as the real gateway's do. hyper adds its own `Date` only to a response that has
/// none, so this one is the one sent.
async fn server_date(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let now = shared.faults.server_now();
    // Only years outside 0..=9999 cannot be printed; hyper's machine-clock date then stands.
    if let Ok(date) = DateTimePrinter::new().timestamp_to_rfc9110_string(&now)
        && let Ok(value) = HeaderValue::try_from(date)
    {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

/// Layer of the write routes: write latency and `fail_write_next`.
async fn write_faults(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    match shared.faults.before_write().await {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// Runs a write operation under the store lock.
fn write(
    shared: &Shared,
    op: impl FnOnce(&mut Writes) -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    op(&mut shared.writes())
}

fn router(shared: Arc<Shared>) -> Router {
    let mut writes = Router::new().route(
        "/create-call",
        post(|State(s): State<Arc<Shared>>, body: Bytes| async move {
            write(&s, |w| w.create_call(&body))
        }),
    );
    for kind in CrmKind::ALL {
        let name = kind.name();
        writes = writes
            .route(
                &format!("/create-{name}"),
                post(
                    move |State(s): State<Arc<Shared>>, body: Bytes| async move {
                        write(&s, |w| w.create(kind, &body))
                    },
                ),
            )
            .route(
                &format!("/get-{name}"),
                get(move |State(s): State<Arc<Shared>>, uri: Uri| async move {
                    write(&s, |w| w.get(kind, &uri))
                }),
            )
            .route(
                &format!("/update-{name}"),
                put(
                    move |State(s): State<Arc<Shared>>, body: Bytes| async move {
                        let replace = s.faults.update_replaces();
                        write(&s, |w| w.update(kind, &body, replace))
                    },
                ),
            )
            .route(
                &format!("/delete-{name}"),
                delete(
                    move |State(s): State<Arc<Shared>>, body: Bytes| async move {
                        write(&s, |w| w.delete(kind, &body))
                    },
                ),
            );
    }
    let writes = writes.route_layer(middleware::from_fn_with_state(
        Arc::clone(&shared),
        write_faults,
    ));
    Router::new()
        .route("/calls", get(read::calls))
        .route("/call-details", get(read::call_details))
        .route("/users", get(read::users))
        .route("/v2/topics", get(read::topics))
        .route("/scorecard", get(read::scorecards))
        .route("/scorecard-template", get(read::scorecard_templates))
        .merge(writes)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), journal))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            server_date,
        ))
        .with_state(shared)
}

/// A cheap, clonable handle on a running sandbox's data, faults and journal. [`Sandbox`]
/// dereferences to it; [`Mutation::Custom`] closures receive it.
#[derive(Clone)]
pub struct SandboxHandle(Arc<Shared>);

impl SandboxHandle {
    /// The runtime fault switches.
    pub fn faults(&self) -> &Faults {
        &self.0.faults
    }

    /// The server's clock: the machine clock plus [`Faults::set_clock_skew`]. It stamps the
    /// `Date` header, and it is the "now" of churn and late indexing.
    pub fn server_now(&self) -> Timestamp {
        self.0.faults.server_now()
    }

    /// Every request so far, in order of completion (each carries its arrival time).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.0.journal).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.0.journal).len()
    }

    /// Every call (private ones included) as `/calls` renders it, in `time`, `id` order.
    pub fn calls_snapshot(&self) -> Vec<serde_json::Value> {
        let data = self.0.data();
        let everything = data::CallFilter {
            include_private: true,
            ..data::CallFilter::default()
        };
        data.find_calls(&everything, data::CallOrder::Asc)
            .into_iter()
            .filter_map(|i| serde_json::to_value(data.render_call(i, Media::default())).ok())
            .collect()
    }

    /// Ids of the calls `/calls` hides unless `includePrivate=true`; with
    /// [`SandboxHandle::calls_snapshot`] this gives the expected result of any query.
    pub fn private_call_ids(&self) -> Vec<String> {
        self.0.data().private_call_ids()
    }

    /// A status change, which moves `last_modified_time` (the only thing that does in the
    /// real API). Panics on an unknown id or status.
    pub fn touch_call(&self, id: &str, new_status: &str, new_last_modified: Timestamp) {
        self.0
            .data_mut()
            .touch_call(id, new_status, new_last_modified.as_millisecond());
    }

    /// A non-status edit: the title changes, `last_modified_time` does not.
    pub fn edit_call_title(&self, id: &str, title: &str) {
        self.0.data_mut().edit_call_title(id, title);
    }

    /// `n` new calls modified at `last_modified` (their `time` is at or before it); their ids.
    pub fn add_calls(&self, n: usize, last_modified: Timestamp) -> Vec<String> {
        self.0
            .data_mut()
            .add_calls(n, last_modified.as_millisecond())
    }

    /// A snapshot of what the write endpoints stored.
    pub fn store(&self) -> WriteStore {
        lock(&self.0.writes).store.clone()
    }

    fn apply(&self, mutation: Mutation) {
        match mutation {
            Mutation::TouchCalls {
                ids,
                status,
                last_modified,
            } => ids
                .iter()
                .for_each(|id| self.touch_call(id, &status, last_modified)),
            Mutation::AddCalls { n, last_modified } => {
                self.add_calls(n, last_modified);
            }
            Mutation::Custom(action) => action(self),
        }
    }
}

/// A running sandbox server on 127.0.0.1.
pub struct Sandbox {
    handle: SandboxHandle,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Deref for Sandbox {
    type Target = SandboxHandle;

    fn deref(&self) -> &SandboxHandle {
        &self.handle
    }
}

impl Sandbox {
    /// Generates the tenant and spawns the server on the current tokio runtime.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let dataset = Dataset::generate(Shape {
            seed: config.seed,
            calls: config.calls,
            users: config.users,
            topics: config.topics,
            scorecards: config.scorecards,
            scorecard_templates: config.scorecard_templates,
            history_start: config.history_start.as_millisecond(),
            history_end: config.history_end.as_millisecond(),
            private_ratio: config.private_ratio,
        });
        let writes = Writes::new(config.seed, dataset.recording_emails());
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        tracing::debug!(%addr, calls = dataset.call_count(), "sandbox listening");
        let shared = Arc::new(Shared {
            config,
            data: RwLock::new(dataset),
            writes: Mutex::new(writes),
            faults: Faults::default(),
            journal: Mutex::new(Vec::new()),
        });
        // Without TCP_NODELAY, Nagle plus delayed ACKs would add ~40 ms to small responses.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::warn!(%err, "sandbox: cannot set TCP_NODELAY");
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Sandbox {
            handle: SandboxHandle(shared),
            addr,
            stop,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A clonable handle that outlives borrows of the sandbox (e.g. for other tasks).
    pub fn handle(&self) -> SandboxHandle {
        self.handle.clone()
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(%err, "sandbox server failed"),
            Err(err) => tracing::warn!(%err, "sandbox server task failed"),
        }
    }

    /// Serves until ctrl-c, then shuts down (for the CLI, after it printed `base_url`).
    pub async fn run_until_ctrl_c(self) -> std::io::Result<()> {
        let result = tokio::signal::ctrl_c().await;
        self.shutdown().await;
        result
    }
}

/// Starts a sandbox and serves until ctrl-c. Prints nothing: with a fixed `port` the caller
/// knows the URL; otherwise use [`Sandbox::start`], print [`Sandbox::base_url`], then
/// [`Sandbox::run_until_ctrl_c`].
pub async fn serve_forever(config: SandboxConfig) -> std::io::Result<()> {
    Sandbox::start(config).await?.run_until_ctrl_c().await
}
