//! Fake AI providers: a fake Gemini API and a fake OpenAI-compatible server, real HTTP on
//! `127.0.0.1:0`, speaking the providers' wire shapes, scriptable per test and recording what
//! they were sent.
//!
//! ```ignore
//! let fake = FakeOpenAi::start().await;          // or FakeGemini::start()
//! let endpoint = RemoteEndpoint { base_url: fake.base_url(), api_key: None, model: "m".into() };
//! fake.set_reply("Hello there.");                  // what every normal answer says
//! fake.script(Reply::Status { status: 500, retry_after: None, message: "boom".into() });
//! // … call the client …
//! assert_eq!(fake.chat_calls(), 2);               // the 500, then the retry
//! let sent = fake.last_request().unwrap();        // path, headers, JSON body
//! ```
//!
//! Endpoints:
//! * [`FakeOpenAi`]: `POST /v1/chat/completions` (JSON or SSE when `stream: true`; a usage
//!   chunk when `stream_options.include_usage`), `POST /v1/embeddings` (honours
//!   `dimensions`, else [`OPENAI_DEFAULT_DIMENSIONS`]). Base URL `http://127.0.0.1:PORT/v1`.
//! * [`FakeGemini`]: `POST /v1beta/models/{model}:generateContent`,
//!   `:streamGenerateContent?alt=sse` (no `[DONE]`, `usageMetadata` on the last frame) and
//!   `:batchEmbedContents` (honours `outputDimensionality`, else
//!   [`GEMINI_DEFAULT_DIMENSIONS`]). Base URL `http://127.0.0.1:PORT/v1beta`.
//!
//! What a request gets, in order: a failure mode ([`FakeServer::fail_with`] until
//! [`FakeServer::recover`], [`FakeServer::fail_for`] for a while), else the next scripted
//! [`Reply`] ([`FakeServer::script`]), else the normal answer ([`FakeServer::set_reply`]);
//! a [`FakeServer::set_responder`] answers chat requests from their body before the script.
//! Shape switches: [`FakeServer::set_done_marker`], [`FakeServer::set_usage_null`],
//! [`FakeServer::set_finish_reason`], [`FakeServer::set_thoughts`],
//! [`FakeServer::set_sse_chunk_size`] and [`FakeServer::set_crlf`] (to split frames anywhere),
//! [`FakeServer::set_reverse_embeddings`].
//!
//! Embeddings are deterministic ([`fake_embedding`]): a hashed bag of lower-cased words, not
//! unit length, so texts sharing words are similar and clients must normalize.
//!
//! Counters: [`FakeServer::calls`], [`FakeServer::chat_calls`],
//! [`FakeServer::embedding_calls`], [`FakeServer::embedded_texts`],
//! [`FakeServer::max_in_flight`] (requests being answered at once, streams until they end)
//! and [`FakeServer::disconnects`] (streams the client dropped before their end).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Dimensions of the fake OpenAI embeddings when the request names none.
pub const OPENAI_DEFAULT_DIMENSIONS: usize = 384;
/// Dimensions of the fake Gemini embeddings when the request names none.
pub const GEMINI_DEFAULT_DIMENSIONS: usize = 3072;
/// The answer until a test sets another.
pub const DEFAULT_REPLY: &str = "Hello from the fake model.";
/// The `thoughtSignature` the fake Gemini puts on its function calls.
pub const FAKE_THOUGHT_SIGNATURE: &str = "ZmFrZS10aG91Z2h0LXNpZ25hdHVyZQ==";
/// The text of the `thought: true` part the fake Gemini sends when thoughts are on.
pub const FAKE_THOUGHT: &str = "Let me think about this secretly.";

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The model answers this text (as JSON or as a stream, as the request asked).
    Text(String),
    /// The model calls one tool with these arguments.
    ToolCall { name: String, arguments: Value },
    /// An HTTP error with the provider's error body.
    Status {
        status: u16,
        retry_after: Option<String>,
        message: String,
    },
    /// 200 with a body (or, streaming, an SSE event) that is not JSON.
    Malformed,
    /// Waits before sending the headers, then replies.
    Delayed(Duration, Box<Reply>),
    /// Streaming: the headers at once, then a pause before the first event of the normal answer.
    StalledStream(Duration),
    /// Streaming: the first `after_events` events of the normal answer, then the connection
    /// is aborted.
    CutStream { after_events: usize },
    /// Streaming: a text delta every `interval`, never ending.
    Endless { interval: Duration },
    /// Streaming: exactly these `data:` payloads.
    Sse(Vec<String>),
    /// Exactly this JSON body, status 200.
    Json(Value),
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Path and query: `/v1beta/models/m:streamGenerateContent?alt=sse`.
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    /// `Value::Null` when the body was not JSON.
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A deterministic, non-normalized vector for `text`: each lower-cased alphanumeric word adds
/// 2.0 at a hashed index, plus a small constant in the last component so no text is all zeros.
pub fn fake_embedding(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0.0f32; dimensions.max(1)];
    let len = vector.len();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        // FNV-1a: stable across runs and platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in word.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        vector[(hash % len as u64) as usize] += 2.0;
    }
    vector[len - 1] += 0.05;
    vector
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    OpenAi,
    Gemini,
}

#[derive(Debug)]
struct Settings {
    reply: String,
    done_marker: bool,
    usage_null: bool,
    finish_reason: bool,
    thoughts: bool,
    chunk_size: Option<usize>,
    crlf: bool,
    reverse_embeddings: bool,
}

/// Answers a chat request from its JSON body, or leaves it to the script (`None`).
pub type Responder = Arc<dyn Fn(&Value) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
struct Control {
    requests: Vec<RecordedRequest>,
    /// Consulted for chat requests before the script.
    responder: Option<Responder>,
    script: VecDeque<Reply>,
    failing: Option<(u16, Option<String>)>,
    failing_until: Option<Instant>,
}

struct Shared {
    flavor: Flavor,
    control: Mutex<Control>,
    settings: Mutex<Settings>,
    calls: AtomicUsize,
    chat_calls: AtomicUsize,
    embedding_calls: AtomicUsize,
    embedded_texts: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    disconnects: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The control surface both fakes share (reached through `Deref` on [`FakeOpenAi`] and
/// [`FakeGemini`]).
pub struct FakeServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    base_path: &'static str,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A fake OpenAI-compatible server.
pub struct FakeOpenAi(FakeServer);

/// A fake Gemini API.
pub struct FakeGemini(FakeServer);

impl FakeOpenAi {
    pub async fn start() -> Self {
        Self(FakeServer::start(Flavor::OpenAi, "/v1").await)
    }
}

impl FakeGemini {
    pub async fn start() -> Self {
        Self(FakeServer::start(Flavor::Gemini, "/v1beta").await)
    }
}

impl Deref for FakeOpenAi {
    type Target = FakeServer;
    fn deref(&self) -> &FakeServer {
        &self.0
    }
}

impl Deref for FakeGemini {
    type Target = FakeServer;
    fn deref(&self) -> &FakeServer {
        &self.0
    }
}

impl FakeServer {
    async fn start(flavor: Flavor, base_path: &'static str) -> Self {
        let shared = Arc::new(Shared {
            flavor,
            control: Mutex::new(Control::default()),
            settings: Mutex::new(Settings {
                reply: DEFAULT_REPLY.to_owned(),
                done_marker: true,
                usage_null: false,
                finish_reason: true,
                thoughts: false,
                chunk_size: None,
                crlf: false,
                reverse_embeddings: false,
            }),
            calls: AtomicUsize::new(0),
            chat_calls: AtomicUsize::new(0),
            embedding_calls: AtomicUsize::new(0),
            embedded_texts: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            disconnects: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake provider");
        let addr = listener.local_addr().expect("the fake provider's address");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await;
        });
        Self {
            shared,
            addr,
            base_path,
            shutdown: Some(shutdown),
        }
    }

    /// The base URL a client is configured with (`…/v1` or `…/v1beta`).
    pub fn base_url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}{}", self.addr, self.base_path))
            .expect("a valid loopback URL")
    }

    /// Every request from now on fails with `status` (and `Retry-After`, if given) until
    /// [`FakeServer::recover`].
    pub fn fail_with(&self, status: u16, retry_after: Option<&str>) {
        lock(&self.shared.control).failing = Some((status, retry_after.map(str::to_owned)));
    }

    /// Every request fails with 503 for `duration` from now, then the fake answers again.
    pub fn fail_for(&self, duration: Duration) {
        lock(&self.shared.control).failing_until = Some(Instant::now() + duration);
    }

    /// Ends [`FakeServer::fail_with`] and [`FakeServer::fail_for`].
    pub fn recover(&self) {
        let mut control = lock(&self.shared.control);
        control.failing = None;
        control.failing_until = None;
    }

    /// Queues a reply for the next request not caught by a failure mode.
    pub fn script(&self, reply: Reply) {
        lock(&self.shared.control).script.push_back(reply);
    }

    /// Answers chat requests with `responder` (from the request's JSON body) before the
    /// script; a `None` from it falls through to the script and the normal answer.
    pub fn set_responder(
        &self,
        responder: impl Fn(&Value) -> Option<Reply> + Send + Sync + 'static,
    ) {
        lock(&self.shared.control).responder = Some(Arc::new(responder));
    }

    /// The text of every normal answer.
    pub fn set_reply(&self, text: &str) {
        lock(&self.shared.settings).reply = text.to_owned();
    }

    /// OpenAI streams: end with `data: [DONE]` (the default) or just close.
    pub fn set_done_marker(&self, on: bool) {
        lock(&self.shared.settings).done_marker = on;
    }

    /// OpenAI: `"usage": null` everywhere and no usage chunk, as some servers do.
    pub fn set_usage_null(&self, on: bool) {
        lock(&self.shared.settings).usage_null = on;
    }

    /// OpenAI: send `finish_reason` (the default) or leave it `null` throughout.
    pub fn set_finish_reason(&self, on: bool) {
        lock(&self.shared.settings).finish_reason = on;
    }

    /// Gemini: start each answer with a `thought: true` part ([`FAKE_THOUGHT`]).
    pub fn set_thoughts(&self, on: bool) {
        lock(&self.shared.settings).thoughts = on;
    }

    /// Streams: send the SSE bytes in pieces of `size` bytes (splitting lines and characters).
    pub fn set_sse_chunk_size(&self, size: Option<usize>) {
        lock(&self.shared.settings).chunk_size = size.filter(|s| *s > 0);
    }

    /// Streams: end lines with `\r\n`.
    pub fn set_crlf(&self, on: bool) {
        lock(&self.shared.settings).crlf = on;
    }

    /// OpenAI embeddings: list the vectors last first (each still with its `index`).
    pub fn set_reverse_embeddings(&self, on: bool) {
        lock(&self.shared.settings).reverse_embeddings = on;
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.control).requests.clone()
    }

    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.control).requests.last().cloned()
    }

    /// Requests of any kind.
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Chat requests (complete and stream).
    pub fn chat_calls(&self) -> usize {
        self.shared.chat_calls.load(Ordering::SeqCst)
    }

    /// Embedding requests.
    pub fn embedding_calls(&self) -> usize {
        self.shared.embedding_calls.load(Ordering::SeqCst)
    }

    /// Texts in embedding requests that were answered with vectors.
    pub fn embedded_texts(&self) -> usize {
        self.shared.embedded_texts.load(Ordering::SeqCst)
    }

    /// The most requests in flight at once so far.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Streams dropped by the client before they ended.
    pub fn disconnects(&self) -> usize {
        self.shared.disconnects.load(Ordering::SeqCst)
    }
}

/// Counts a request in flight until dropped; a stream that is dropped unfinished was
/// disconnected by the client.
struct FlightGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl FlightGuard {
    fn new(shared: Arc<Shared>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self {
            shared,
            finished: true,
        }
    }
}

impl FlightGuard {
    /// The response went out whole (or was cut on purpose): not a disconnect.
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.shared.disconnects.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Generate,
    StreamGenerate,
    Embed,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let guard = FlightGuard::new(shared.clone());
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let recorded = RecordedRequest {
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: json_body.clone(),
    };
    shared.calls.fetch_add(1, Ordering::SeqCst);

    let Some(endpoint) = route(shared.flavor, &uri, &json_body) else {
        lock(&shared.control).requests.push(recorded);
        return error_response(shared.flavor, 404, None, "no such endpoint");
    };
    match endpoint {
        Endpoint::Embed => shared.embedding_calls.fetch_add(1, Ordering::SeqCst),
        _ => shared.chat_calls.fetch_add(1, Ordering::SeqCst),
    };

    let reply = {
        let mut control = lock(&shared.control);
        control.requests.push(recorded);
        if let Some((status, retry_after)) = control.failing.clone() {
            Reply::Status {
                status,
                retry_after,
                message: "the fake is failing on purpose".into(),
            }
        } else if control
            .failing_until
            .is_some_and(|until| Instant::now() < until)
        {
            Reply::Status {
                status: 503,
                retry_after: None,
                message: "the fake is down for a while".into(),
            }
        } else if let Some(reply) = control
            .responder
            .clone()
            .filter(|_| !matches!(endpoint, Endpoint::Embed))
            .and_then(|answer| answer(&json_body))
        {
            reply
        } else if let Some(reply) = control.script.pop_front() {
            reply
        } else {
            let reply = lock(&shared.settings).reply.clone();
            Reply::Text(reply)
        }
    };
    if json_body.is_null() {
        return error_response(shared.flavor, 400, None, "the body is not JSON");
    }
    // OpenAI names the model in the body, Gemini in the path.
    let model = match shared.flavor {
        Flavor::OpenAi => json_body["model"].as_str().unwrap_or_default().to_owned(),
        Flavor::Gemini => uri
            .path()
            .strip_prefix("/v1beta/models/")
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(model, _)| model.to_owned())
            .unwrap_or_default(),
    };
    answer(&shared, endpoint, &model, &json_body, reply, guard).await
}

fn route(flavor: Flavor, uri: &Uri, body: &Value) -> Option<Endpoint> {
    match flavor {
        Flavor::OpenAi => match uri.path() {
            "/v1/chat/completions" => Some(if body["stream"] == json!(true) {
                Endpoint::StreamGenerate
            } else {
                Endpoint::Generate
            }),
            "/v1/embeddings" => Some(Endpoint::Embed),
            _ => None,
        },
        Flavor::Gemini => {
            let rest = uri.path().strip_prefix("/v1beta/models/")?;
            let (_model, action) = rest.rsplit_once(':')?;
            match action {
                "generateContent" => Some(Endpoint::Generate),
                "streamGenerateContent" if uri.query() == Some("alt=sse") => {
                    Some(Endpoint::StreamGenerate)
                }
                "batchEmbedContents" => Some(Endpoint::Embed),
                _ => None,
            }
        }
    }
}

fn error_response(
    flavor: Flavor,
    status: u16,
    retry_after: Option<&str>,
    message: &str,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match flavor {
        Flavor::Gemini => json!({
            "error": {
                "code": status.as_u16(),
                "message": message,
                "status": match status.as_u16() {
                    400 => "INVALID_ARGUMENT",
                    401 => "UNAUTHENTICATED",
                    403 => "PERMISSION_DENIED",
                    404 => "NOT_FOUND",
                    429 => "RESOURCE_EXHAUSTED",
                    503 => "UNAVAILABLE",
                    _ => "INTERNAL",
                },
            }
        }),
        Flavor::OpenAi => json!({
            "error": {
                "message": message,
                "type": if status.is_client_error() { "invalid_request_error" } else { "server_error" },
                "code": null,
            }
        }),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(value) = retry_after.and_then(|v| v.parse().ok()) {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

async fn answer(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    model: &str,
    body: &Value,
    reply: Reply,
    mut guard: FlightGuard,
) -> Response {
    let mut reply = reply;
    while let Reply::Delayed(delay, then) = reply {
        tokio::time::sleep(delay).await;
        reply = *then;
    }
    let flavor = shared.flavor;
    if let Reply::Status {
        status,
        retry_after,
        message,
    } = &reply
    {
        return error_response(flavor, *status, retry_after.as_deref(), message);
    }
    if endpoint == Endpoint::Embed {
        return match reply {
            Reply::Malformed => malformed_json(),
            Reply::Json(value) => axum::Json(value).into_response(),
            _ => embeddings(shared, body),
        };
    }

    let settings = snapshot(shared);
    let prompt_tokens = count_prompt_words(flavor, body);
    let model = model.to_owned();
    if endpoint == Endpoint::Generate {
        return match reply {
            Reply::Malformed => malformed_json(),
            Reply::Json(value) => axum::Json(value).into_response(),
            Reply::ToolCall { name, arguments } => axum::Json(match flavor {
                Flavor::OpenAi => openai_completion(
                    &model,
                    None,
                    Some((&name, &arguments)),
                    prompt_tokens,
                    &settings,
                ),
                Flavor::Gemini => gemini_response(
                    &model,
                    None,
                    Some((&name, &arguments)),
                    prompt_tokens,
                    &settings,
                ),
            })
            .into_response(),
            Reply::Text(text) => axum::Json(match flavor {
                Flavor::OpenAi => {
                    openai_completion(&model, Some(&text), None, prompt_tokens, &settings)
                }
                Flavor::Gemini => {
                    gemini_response(&model, Some(&text), None, prompt_tokens, &settings)
                }
            })
            .into_response(),
            // Streaming-only replies answer a plain request with the normal text.
            _ => axum::Json(match flavor {
                Flavor::OpenAi => openai_completion(
                    &model,
                    Some(&settings.reply),
                    None,
                    prompt_tokens,
                    &settings,
                ),
                Flavor::Gemini => gemini_response(
                    &model,
                    Some(&settings.reply),
                    None,
                    prompt_tokens,
                    &settings,
                ),
            })
            .into_response(),
        };
    }

    // Streaming.
    let include_usage = body["stream_options"]["include_usage"] == json!(true);
    let events_for = |text: Option<&str>, call: Option<(&str, &Value)>| match flavor {
        Flavor::OpenAi => {
            openai_stream(&model, text, call, prompt_tokens, include_usage, &settings)
        }
        Flavor::Gemini => gemini_stream(&model, text, call, prompt_tokens, &settings),
    };
    let mut pieces = VecDeque::new();
    let mut endless = None;
    match reply {
        Reply::Text(text) => events_for(Some(&text), None)
            .into_iter()
            .for_each(|e| pieces.push_back(Piece::Event(e))),
        Reply::ToolCall { name, arguments } => events_for(None, Some((&name, &arguments)))
            .into_iter()
            .for_each(|e| pieces.push_back(Piece::Event(e))),
        Reply::Malformed => pieces.push_back(Piece::Event("{\"choices\": [oops".into())),
        Reply::StalledStream(delay) => {
            pieces.push_back(Piece::Pause(delay));
            events_for(Some(&settings.reply), None)
                .into_iter()
                .for_each(|e| pieces.push_back(Piece::Event(e)));
        }
        Reply::CutStream { after_events } => {
            events_for(Some(&settings.reply), None)
                .into_iter()
                .take(after_events)
                .for_each(|e| pieces.push_back(Piece::Event(e)));
            // Pending for a moment makes hyper flush what was sent; an abort right after the
            // last chunk could discard it, and the cut would come before the first event.
            pieces.push_back(Piece::Pause(Duration::from_millis(50)));
            pieces.push_back(Piece::Abort);
        }
        Reply::Endless { interval } => {
            let delta = match flavor {
                Flavor::OpenAi => {
                    json!({"choices": [{"index": 0, "delta": {"content": "more "}, "finish_reason": null}]})
                }
                Flavor::Gemini => {
                    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "more "}]}, "index": 0}]})
                }
            };
            endless = Some((interval, delta.to_string()));
        }
        Reply::Sse(events) => events
            .into_iter()
            .for_each(|e| pieces.push_back(Piece::Event(e))),
        Reply::Json(value) => pieces.push_back(Piece::Event(value.to_string())),
        Reply::Status { .. } | Reply::Delayed(..) => unreachable!("handled above"),
    }
    if flavor == Flavor::OpenAi && settings.done_marker && endless.is_none() {
        let aborted = pieces.iter().any(|p| matches!(p, Piece::Abort));
        if !aborted {
            pieces.push_back(Piece::Event("[DONE]".into()));
        }
    }
    guard.finished = false;
    sse_response(pieces, endless, &settings, guard)
}

#[derive(Debug)]
enum Piece {
    Event(String),
    Pause(Duration),
    Abort,
}

#[derive(Debug, Clone)]
struct Snapshot {
    reply: String,
    done_marker: bool,
    usage_null: bool,
    finish_reason: bool,
    thoughts: bool,
    chunk_size: Option<usize>,
    crlf: bool,
    reverse_embeddings: bool,
}

fn snapshot(shared: &Shared) -> Snapshot {
    let settings = lock(&shared.settings);
    Snapshot {
        reply: settings.reply.clone(),
        done_marker: settings.done_marker,
        usage_null: settings.usage_null,
        finish_reason: settings.finish_reason,
        thoughts: settings.thoughts,
        chunk_size: settings.chunk_size,
        crlf: settings.crlf,
        reverse_embeddings: settings.reverse_embeddings,
    }
}

enum Frame {
    Bytes(Bytes),
    Pause(Duration),
    Abort,
}

fn sse_response(
    pieces: VecDeque<Piece>,
    endless: Option<(Duration, String)>,
    settings: &Snapshot,
    guard: FlightGuard,
) -> Response {
    let newline = if settings.crlf { "\r\n" } else { "\n" };
    let encode = |data: &str| {
        let mut out = String::new();
        for line in data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push_str(newline);
        }
        out.push_str(newline);
        out.into_bytes()
    };
    let mut frames = VecDeque::new();
    for piece in pieces {
        match piece {
            Piece::Event(data) => {
                let bytes = encode(&data);
                match settings.chunk_size {
                    Some(size) => bytes
                        .chunks(size)
                        .for_each(|c| frames.push_back(Frame::Bytes(Bytes::copy_from_slice(c)))),
                    None => frames.push_back(Frame::Bytes(Bytes::from(bytes))),
                }
            }
            Piece::Pause(delay) => frames.push_back(Frame::Pause(delay)),
            Piece::Abort => frames.push_back(Frame::Abort),
        }
    }
    let endless = endless.map(|(interval, data)| (interval, Bytes::from(encode(&data))));
    let stream = futures::stream::unfold(
        (frames, endless, guard),
        |(mut frames, endless, mut guard)| async move {
            loop {
                match frames.pop_front() {
                    Some(Frame::Bytes(bytes)) => {
                        return Some((Ok::<_, std::io::Error>(bytes), (frames, endless, guard)))
                    }
                    Some(Frame::Pause(delay)) => tokio::time::sleep(delay).await,
                    Some(Frame::Abort) => {
                        guard.finish();
                        return Some((
                            Err(std::io::Error::other("the fake cuts the stream")),
                            (frames, endless, guard),
                        ));
                    }
                    None => match &endless {
                        Some((interval, bytes)) => {
                            tokio::time::sleep(*interval).await;
                            let bytes = bytes.clone();
                            return Some((Ok(bytes), (frames, endless, guard)));
                        }
                        None => {
                            guard.finish();
                            return None;
                        }
                    },
                }
            }
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .expect("a valid SSE response")
}

fn malformed_json() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from("{\"candidates\": [ this is not json"))
        .expect("a valid response")
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn count_prompt_words(flavor: Flavor, body: &Value) -> u64 {
    let mut total = 0;
    match flavor {
        Flavor::OpenAi => {
            for message in body["messages"].as_array().into_iter().flatten() {
                total += words(message["content"].as_str().unwrap_or_default());
            }
        }
        Flavor::Gemini => {
            let system = body["systemInstruction"]["parts"]
                .as_array()
                .into_iter()
                .flatten();
            let contents = body["contents"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["parts"].as_array().into_iter().flatten());
            for part in system.chain(contents) {
                total += words(part["text"].as_str().unwrap_or_default());
            }
        }
    }
    total.max(1)
}

/// The answer's text as stream pieces: words with their following space.
fn split_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if c == ' ' {
            pieces.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

const FAKE_CALL_ID: &str = "call_fake_1";

fn openai_usage(prompt: u64, completion: u64) -> Value {
    json!({ "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion })
}

fn openai_completion(
    model: &str,
    text: Option<&str>,
    call: Option<(&str, &Value)>,
    prompt_tokens: u64,
    settings: &Snapshot,
) -> Value {
    let (message, finish, completion_tokens) = match call {
        Some((name, arguments)) => (
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": FAKE_CALL_ID,
                    "type": "function",
                    "function": { "name": name, "arguments": arguments.to_string() },
                }],
            }),
            "tool_calls",
            5,
        ),
        None => {
            let text = text.unwrap_or_default();
            (
                json!({ "role": "assistant", "content": text }),
                "stop",
                words(text),
            )
        }
    };
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": if settings.finish_reason { json!(finish) } else { Value::Null },
        }],
        "usage": if settings.usage_null { Value::Null } else { openai_usage(prompt_tokens, completion_tokens) },
    })
}

fn openai_stream(
    model: &str,
    text: Option<&str>,
    call: Option<(&str, &Value)>,
    prompt_tokens: u64,
    include_usage: bool,
    settings: &Snapshot,
) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        let mut chunk = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        });
        if settings.usage_null {
            chunk["usage"] = Value::Null;
        }
        chunk.to_string()
    };
    let mut events = vec![chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    let (finish, completion_tokens) = match call {
        Some((name, arguments)) => {
            events.push(chunk(
                json!({ "tool_calls": [{ "index": 0, "id": FAKE_CALL_ID, "type": "function",
                         "function": { "name": name, "arguments": "" } }] }),
                Value::Null,
            ));
            let arguments = arguments.to_string();
            let chars: Vec<char> = arguments.chars().collect();
            for piece in chars.chunks(4) {
                let piece: String = piece.iter().collect();
                events.push(chunk(
                    json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] }),
                    Value::Null,
                ));
            }
            ("tool_calls", 5)
        }
        None => {
            let text = text.unwrap_or_default();
            for piece in split_words(text) {
                events.push(chunk(json!({ "content": piece }), Value::Null));
            }
            ("stop", words(text))
        }
    };
    let finish = if settings.finish_reason {
        json!(finish)
    } else {
        Value::Null
    };
    events.push(chunk(json!({}), finish));
    if include_usage && !settings.usage_null {
        events.push(
            json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": [],
                "usage": openai_usage(prompt_tokens, completion_tokens),
            })
            .to_string(),
        );
    }
    events
}

fn gemini_usage(prompt: u64, candidates: u64, thoughts: bool) -> Value {
    let mut usage = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates,
    });
    if thoughts {
        usage["thoughtsTokenCount"] = json!(3);
        usage["totalTokenCount"] = json!(prompt + candidates + 3);
    }
    usage
}

fn gemini_call_part(name: &str, arguments: &Value) -> Value {
    json!({
        "functionCall": { "name": name, "args": arguments },
        "thoughtSignature": FAKE_THOUGHT_SIGNATURE,
    })
}

fn gemini_response(
    model: &str,
    text: Option<&str>,
    call: Option<(&str, &Value)>,
    prompt_tokens: u64,
    settings: &Snapshot,
) -> Value {
    let mut parts = Vec::new();
    if settings.thoughts {
        parts.push(json!({ "text": FAKE_THOUGHT, "thought": true }));
    }
    let candidate_tokens = match call {
        Some((name, arguments)) => {
            parts.push(gemini_call_part(name, arguments));
            5
        }
        None => {
            let text = text.unwrap_or_default();
            parts.push(json!({ "text": text }));
            words(text)
        }
    };
    json!({
        "candidates": [{
            "content": { "role": "model", "parts": parts },
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": gemini_usage(prompt_tokens, candidate_tokens, settings.thoughts),
        "modelVersion": model_version(model),
    })
}

fn model_version(model: &str) -> String {
    if model.is_empty() {
        "fake-gemini".into()
    } else {
        model.to_owned()
    }
}

fn gemini_stream(
    model: &str,
    text: Option<&str>,
    call: Option<(&str, &Value)>,
    prompt_tokens: u64,
    settings: &Snapshot,
) -> Vec<String> {
    let frame = |parts: Vec<Value>, last: Option<u64>| {
        let mut frame = json!({
            "candidates": [{ "content": { "role": "model", "parts": parts }, "index": 0 }],
            "modelVersion": model_version(model),
        });
        if let Some(candidate_tokens) = last {
            frame["candidates"][0]["finishReason"] = json!("STOP");
            frame["usageMetadata"] =
                gemini_usage(prompt_tokens, candidate_tokens, settings.thoughts);
        }
        frame.to_string()
    };
    let mut events = Vec::new();
    if settings.thoughts {
        events.push(frame(
            vec![json!({ "text": FAKE_THOUGHT, "thought": true })],
            None,
        ));
    }
    match call {
        Some((name, arguments)) => {
            events.push(frame(vec![gemini_call_part(name, arguments)], Some(5)));
        }
        None => {
            let text = text.unwrap_or_default();
            let pieces = split_words(text);
            let count = pieces.len();
            if count == 0 {
                events.push(frame(vec![json!({ "text": "" })], Some(0)));
            }
            for (i, piece) in pieces.into_iter().enumerate() {
                let last = (i + 1 == count).then_some(words(text));
                events.push(frame(vec![json!({ "text": piece })], last));
            }
        }
    }
    events
}

fn embeddings(shared: &Shared, body: &Value) -> Response {
    let settings = snapshot(shared);
    match shared.flavor {
        Flavor::OpenAi => {
            let inputs: Vec<String> = match &body["input"] {
                Value::String(text) => vec![text.clone()],
                Value::Array(items) => items
                    .iter()
                    .map(|item| item.as_str().unwrap_or_default().to_owned())
                    .collect(),
                _ => return error_response(Flavor::OpenAi, 400, None, "'input' is required"),
            };
            let dimensions = body["dimensions"]
                .as_u64()
                .map_or(OPENAI_DEFAULT_DIMENSIONS, |d| d as usize);
            let mut data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .map(|(index, text)| {
                    json!({ "object": "embedding", "index": index, "embedding": fake_embedding(text, dimensions) })
                })
                .collect();
            if settings.reverse_embeddings {
                data.reverse();
            }
            shared
                .embedded_texts
                .fetch_add(inputs.len(), Ordering::SeqCst);
            let tokens: u64 = inputs.iter().map(|t| words(t)).sum();
            axum::Json(json!({
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
            }))
            .into_response()
        }
        Flavor::Gemini => {
            let Some(requests) = body["requests"].as_array() else {
                return error_response(Flavor::Gemini, 400, None, "'requests' is required");
            };
            let embeddings: Vec<Value> = requests
                .iter()
                .map(|request| {
                    let text: String = request["content"]["parts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|part| part["text"].as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                    let dimensions = request["outputDimensionality"]
                        .as_u64()
                        .map_or(GEMINI_DEFAULT_DIMENSIONS, |d| d as usize);
                    json!({ "values": fake_embedding(&text, dimensions) })
                })
                .collect();
            shared
                .embedded_texts
                .fetch_add(requests.len(), Ordering::SeqCst);
            axum::Json(json!({ "embeddings": embeddings })).into_response()
        }
    }
}
