//! What the HTTP providers share: the `reqwest` client, sending one attempt under the
//! first-byte deadline, turning HTTP statuses into [`AttemptError`]s, reading JSON bodies, and
//! driving an SSE body into a [`ChatStream`].
//!
//! Error reasons are built here and nowhere else, so the rules hold for every provider: never
//! the key (it is scrubbed even from the provider's own message), never the request body, at
//! most [`MAX_REASON_CHARS`] characters of what the provider said.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::sse::SseDecoder;
use crate::chat::{ChatStream, StreamEvent};
use crate::embed::{Embedding, EMBEDDING_DIMENSIONS};
use crate::error::AiError;
use crate::resilience::{parse_retry_after, Attempt, AttemptError, Resilience};
use crate::settings::{ApiKey, ProviderKind, ResilienceSettings};

/// The most characters of a provider's message an error carries.
pub const MAX_REASON_CHARS: usize = 200;

/// The most bytes of an error body read to find the provider's message.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The client every provider uses: connect timeout from the settings; the other deadlines are
/// enforced per call by [`Resilience`], because a stream's total time is not a request timeout.
pub fn http_client(
    provider: ProviderKind,
    settings: &ResilienceSettings,
) -> Result<reqwest::Client, AiError> {
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("potentia/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|_| AiError::unavailable(provider, "cannot build the HTTP client"))
}

/// How a provider wants its key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyHeader {
    /// `x-goog-api-key: KEY`
    GoogApiKey,
    /// `Authorization: Bearer KEY`
    Bearer,
}

/// One provider's HTTP side: client, key and how to send it.
#[derive(Clone)]
pub(crate) struct HttpTarget {
    client: reqwest::Client,
    provider: ProviderKind,
    key: Option<ApiKey>,
    headers: HeaderMap,
}

impl HttpTarget {
    pub fn new(
        client: reqwest::Client,
        provider: ProviderKind,
        key: Option<ApiKey>,
        key_header: KeyHeader,
    ) -> Result<Self, AiError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &key {
            let (name, value) = match key_header {
                KeyHeader::GoogApiKey => ("x-goog-api-key", key.expose().to_owned()),
                KeyHeader::Bearer => (AUTHORIZATION.as_str(), format!("Bearer {}", key.expose())),
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                AiError::unavailable(
                    provider,
                    "the configured API key is not a valid header value",
                )
            })?;
            // Keeps the value out of reqwest's and hyper's debug output.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Self {
            client,
            provider,
            key,
            headers,
        })
    }

    /// Posts `body` (already serialized JSON) and waits for the headers until the attempt's
    /// first-byte deadline. A non-2xx status becomes an [`AttemptError`].
    pub async fn post(
        &self,
        url: &str,
        body: &Bytes,
        attempt: &Attempt,
    ) -> Result<reqwest::Response, AttemptError> {
        let request = self
            .client
            .post(url)
            .headers(self.headers.clone())
            .body(body.clone());
        let response = match tokio::time::timeout_at(attempt.first_byte_deadline, request.send())
            .await
        {
            Err(_) => {
                return Err(AttemptError::retryable(
                    self.unavailable("no response within the first-byte timeout", None),
                ))
            }
            Ok(Err(error)) => return Err(AttemptError::retryable(self.transport_error(&error))),
            Ok(Ok(response)) => response,
        };
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.status_error(response, attempt.deadline).await)
        }
    }

    /// Reads and parses a JSON body before `deadline`. Malformed JSON is retryable: a proxy or
    /// an overloaded server sends such bodies, and the next attempt may get a good one.
    pub async fn json<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
        deadline: Instant,
    ) -> Result<T, AttemptError> {
        let bytes = match tokio::time::timeout_at(deadline, response.bytes()).await {
            Err(_) => return Err(AttemptError::permanent(self.unavailable("timed out", None))),
            Ok(Err(error)) => return Err(AttemptError::retryable(self.transport_error(&error))),
            Ok(Ok(bytes)) => bytes,
        };
        serde_json::from_slice(&bytes).map_err(|_| {
            AttemptError::retryable(
                self.unavailable("the provider sent a malformed response", None),
            )
        })
    }

    pub fn unavailable(&self, reason: &str, retry_after: Option<Duration>) -> AiError {
        AiError::Unavailable {
            provider: self.provider,
            reason: reason.to_owned(),
            retry_after,
        }
    }

    /// A reason safe to show: the key scrubbed, control characters and runs of whitespace
    /// collapsed, at most [`MAX_REASON_CHARS`] characters.
    pub fn sanitize(&self, message: &str) -> String {
        sanitize_reason(message, self.key.as_ref())
    }

    fn transport_error(&self, error: &reqwest::Error) -> AiError {
        // reqwest's own message names the URL; a short classification is enough.
        let reason = if error.is_timeout() {
            "timed out"
        } else if error.is_connect() {
            "cannot connect to the provider"
        } else if error.is_body() || error.is_decode() {
            "the connection closed in the middle of the response"
        } else {
            "the request failed"
        };
        self.unavailable(reason, None)
    }

    async fn status_error(&self, response: reqwest::Response, deadline: Instant) -> AttemptError {
        let status = response.status();
        let header_hint = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let body = read_capped(response, deadline).await;
        let detail = ProviderError::parse(&body);
        let message = detail
            .as_ref()
            .map(|detail| self.sanitize(&detail.message))
            .filter(|message| !message.is_empty());
        let retry_after = header_hint.or_else(|| detail.as_ref().and_then(|d| d.retry_delay));
        let code = status.as_u16();
        let with_message = |prefix: String| match &message {
            Some(message) => format!("{prefix}: {message}"),
            None => prefix,
        };

        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // An operator problem, not the user's input; retrying cannot help.
            return AttemptError::permanent(self.unavailable(
                &format!("the provider refused the configured key (HTTP {code})"),
                None,
            ));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return AttemptError::retryable(
                self.unavailable(&with_message(format!("HTTP {code}")), retry_after),
            );
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // Not the input's fault, but still a 4xx: not retried here.
            return AttemptError::permanent(self.unavailable(&format!("HTTP {code}"), None));
        }
        if status.is_client_error() {
            let reason = message.unwrap_or_else(|| format!("HTTP {code}"));
            return AttemptError::permanent(AiError::rejected(self.provider, reason));
        }
        AttemptError::permanent(self.unavailable(&format!("unexpected HTTP status {code}"), None))
    }
}

/// See [`HttpTarget::sanitize`].
pub(crate) fn sanitize_reason(message: &str, key: Option<&ApiKey>) -> String {
    let mut text = message.to_owned();
    if let Some(key) = key {
        if !key.expose().is_empty() {
            text = text.replace(key.expose(), "***");
        }
    }
    let mut out = String::new();
    let mut chars = 0;
    let mut pending_space = false;
    let mut truncated = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        let needed = if pending_space { 2 } else { 1 };
        if chars + needed > MAX_REASON_CHARS {
            truncated = true;
            break;
        }
        if pending_space {
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        out.push(c);
        chars += 1;
    }
    if truncated {
        out.pop();
        out.push('…');
    }
    out
}

async fn read_capped(response: reqwest::Response, deadline: Instant) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while body.len() < MAX_ERROR_BODY {
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    body
}

/// The error body Gemini (`{"error": {"message", "status", "details"}}`), OpenAI and
/// llama.cpp (`{"error": {"message", "type"}}`), Ollama (`{"error": "text"}`) and vLLM
/// (`{"message", "type", "code"}`) send.
struct ProviderError {
    message: String,
    /// Gemini's `RetryInfo.retryDelay` (`"30s"`), used when there is no `Retry-After`.
    retry_delay: Option<Duration>,
}

impl ProviderError {
    fn parse(body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Envelope {
            error: ErrorField,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum ErrorField {
            Text(String),
            Object {
                #[serde(default)]
                message: String,
                #[serde(default)]
                details: Vec<serde_json::Value>,
            },
        }
        #[derive(Deserialize)]
        struct Bare {
            message: String,
        }
        let envelope: Envelope = match serde_json::from_slice(body) {
            Ok(envelope) => envelope,
            // vLLM: `{"object": "error", "message": …, "code": 400}`.
            Err(_) => {
                let bare: Bare = serde_json::from_slice(body).ok()?;
                return Some(Self {
                    message: bare.message,
                    retry_delay: None,
                });
            }
        };
        Some(match envelope.error {
            ErrorField::Text(message) => Self {
                message,
                retry_delay: None,
            },
            ErrorField::Object { message, details } => Self {
                message,
                retry_delay: details.iter().find_map(|detail| {
                    detail
                        .get("retryDelay")
                        .and_then(|delay| delay.as_str())
                        .and_then(parse_protobuf_duration)
                }),
            },
        })
    }
}

/// A protobuf JSON duration: `"30s"`, `"1.5s"`.
fn parse_protobuf_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// What a provider's stream decoder makes of one SSE event.
pub(crate) enum Flow {
    Continue,
    /// The provider's end marker (`[DONE]`): stop reading.
    End,
}

/// Turns a provider's SSE `data` payloads into [`StreamEvent`]s.
pub(crate) trait StreamDecoder: Send + 'static {
    /// One event's data. An error ends the stream.
    fn on_data(&mut self, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow, AiError>;

    /// The body ended (cleanly, or after [`Flow::End`]): push the final events, ending with
    /// [`StreamEvent::Done`], or fail if the provider never sent its final frame.
    fn on_end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), AiError>;
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An SSE response being read, with everything it holds until it is dropped.
pub(crate) struct OpenStream<D> {
    target: HttpTarget,
    bytes: ByteStream,
    sse: SseDecoder,
    events: VecDeque<String>,
    decoder: D,
    out: VecDeque<StreamEvent>,
    deadline: Instant,
    input_ended: bool,
    finished: bool,
    _permit: OwnedSemaphorePermit,
}

impl<D: StreamDecoder> OpenStream<D> {
    /// Sends the request and reads until the first event has been decoded, all under the
    /// attempt's first-byte deadline, so that everything up to then may still be retried.
    pub async fn open(
        target: &HttpTarget,
        url: &str,
        body: &Bytes,
        attempt: Attempt,
        decoder: D,
    ) -> Result<Self, AttemptError> {
        let response = target.post(url, body, &attempt).await?;
        let mut stream = Self {
            target: target.clone(),
            bytes: Box::pin(response.bytes_stream()),
            sse: SseDecoder::new(),
            events: VecDeque::new(),
            decoder,
            out: VecDeque::new(),
            deadline: attempt.deadline,
            input_ended: false,
            finished: false,
            _permit: attempt.permit,
        };
        let first_byte_deadline = attempt.first_byte_deadline;
        while stream.out.is_empty() && !stream.finished {
            let step = match stream.advance(first_byte_deadline).await {
                Ok(()) => continue,
                Err(error) => error,
            };
            return Err(match step {
                StepError::FirstByteTimeout => AttemptError::retryable(
                    target.unavailable("no response within the first-byte timeout", None),
                ),
                StepError::Failed(error) => AttemptError::from(error),
            });
        }
        Ok(stream)
    }

    /// Reads and decodes until at least one event is queued or the stream is finished.
    async fn advance(&mut self, until: Instant) -> Result<(), StepError> {
        if self.input_ended {
            self.finished = true;
            return self
                .decoder
                .on_end(&mut self.out)
                .map_err(StepError::Failed);
        }
        if let Some(data) = self.events.pop_front() {
            return match self.decoder.on_data(&data, &mut self.out) {
                Ok(Flow::Continue) => Ok(()),
                Ok(Flow::End) => {
                    self.events.clear();
                    self.input_ended = true;
                    Ok(())
                }
                Err(error) => {
                    self.finished = true;
                    Err(StepError::Failed(error))
                }
            };
        }
        match tokio::time::timeout_at(until, self.bytes.next()).await {
            Err(_) if until < self.deadline => Err(StepError::FirstByteTimeout),
            Err(_) => {
                self.finished = true;
                Err(StepError::Failed(
                    self.target
                        .unavailable("the stream exceeded the total timeout", None),
                ))
            }
            Ok(Some(Ok(chunk))) => {
                self.events.extend(self.sse.feed(&chunk));
                Ok(())
            }
            Ok(Some(Err(_))) => {
                self.finished = true;
                Err(StepError::Failed(self.target.unavailable(
                    "the connection closed in the middle of the stream",
                    None,
                )))
            }
            Ok(None) => {
                if self.sse.has_partial_event() {
                    self.finished = true;
                    return Err(StepError::Failed(
                        self.target
                            .unavailable("the stream ended in the middle of an event", None),
                    ));
                }
                self.input_ended = true;
                Ok(())
            }
        }
    }

    /// The stream handed to the caller. Counts the usage of its final event and reports a
    /// failure after hand-out to the breaker.
    pub fn into_chat_stream(self, resilience: Arc<Resilience>, model: String) -> ChatStream {
        let state = (self, resilience, model);
        Box::pin(futures::stream::unfold(
            state,
            |(mut stream, resilience, model)| async move {
                loop {
                    if let Some(event) = stream.out.pop_front() {
                        if let StreamEvent::Done {
                            usage: Some(usage), ..
                        } = &event
                        {
                            resilience.metrics().count_tokens(
                                resilience.provider(),
                                &model,
                                usage.input_tokens,
                                usage.output_tokens,
                            );
                        }
                        return Some((Ok(event), (stream, resilience, model)));
                    }
                    if stream.finished {
                        return None;
                    }
                    let deadline = stream.deadline;
                    if let Err(error) = stream.advance(deadline).await {
                        let error = match error {
                            StepError::FirstByteTimeout => stream
                                .target
                                .unavailable("the stream exceeded the total timeout", None),
                            StepError::Failed(error) => error,
                        };
                        stream.finished = true;
                        resilience.stream_failed(&model, &error);
                        return Some((Err(error), (stream, resilience, model)));
                    }
                }
            },
        ))
    }
}

enum StepError {
    FirstByteTimeout,
    Failed(AiError),
}

/// Parses one SSE payload as JSON; a malformed frame is a broken stream.
pub(crate) fn parse_frame<T: DeserializeOwned>(
    provider: ProviderKind,
    data: &str,
) -> Result<T, AiError> {
    serde_json::from_str(data)
        .map_err(|_| AiError::unavailable(provider, "the provider sent a malformed stream event"))
}

/// A provider's vector as a stored [`Embedding`]; an unusable one is an operator problem (a
/// model with too many dimensions), not worth retrying.
pub(crate) fn unit_vector_for(
    provider: ProviderKind,
    values: Vec<f32>,
) -> Result<Embedding, AttemptError> {
    let dimensions = values.len();
    Embedding::from_model_output(values).ok_or_else(|| {
        AttemptError::permanent(AiError::unavailable(
            provider,
            format!(
                "the model returned an unusable vector ({dimensions} dimensions; at most \
                 {EMBEDDING_DIMENSIONS}, finite and not all zero)"
            ),
        ))
    })
}

/// The joined URL `{base}/{path}`, whatever trailing slash the base has.
pub(crate) fn join(base: &url::Url, path: &str) -> String {
    format!("{}/{}", base.as_str().trim_end_matches('/'), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short_single_line_and_keyless() {
        let key = ApiKey::new("sk-secret-123");
        let long = format!("bad key sk-secret-123\n\n{}", "x".repeat(500));
        let reason = sanitize_reason(&long, Some(&key));
        assert!(!reason.contains("sk-secret-123"));
        assert!(reason.starts_with("bad key *** x"));
        assert!(!reason.contains('\n'));
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS);
        assert!(reason.ends_with('…'));
        assert_eq!(sanitize_reason("  fine  ", None), "fine");
    }

    #[test]
    fn provider_error_bodies_of_every_shape_are_read() {
        let gemini = br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"31s"}]}}"#;
        let parsed = ProviderError::parse(gemini).unwrap();
        assert_eq!(parsed.message, "Quota exceeded");
        assert_eq!(parsed.retry_delay, Some(Duration::from_secs(31)));
        let openai = br#"{"error":{"message":"Invalid schema","type":"invalid_request_error"}}"#;
        assert_eq!(
            ProviderError::parse(openai).unwrap().message,
            "Invalid schema"
        );
        let ollama = br#"{"error":"model 'x' not found"}"#;
        assert_eq!(
            ProviderError::parse(ollama).unwrap().message,
            "model 'x' not found"
        );
        let vllm = br#"{"object":"error","message":"max_tokens is too large","type":"BadRequestError","code":400}"#;
        assert_eq!(
            ProviderError::parse(vllm).unwrap().message,
            "max_tokens is too large"
        );
        assert!(ProviderError::parse(b"<html>").is_none());
    }

    #[test]
    fn urls_join_with_one_slash() {
        let base = url::Url::parse("http://h/v1/").unwrap();
        assert_eq!(join(&base, "embeddings"), "http://h/v1/embeddings");
        let base = url::Url::parse("http://h/v1").unwrap();
        assert_eq!(join(&base, "embeddings"), "http://h/v1/embeddings");
    }
}
