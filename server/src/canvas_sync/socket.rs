//! `GET /ws/canvas/{canvas_id}?token=…`: the y-websocket endpoint (ARCHITECTURE §3).
//!
//! A browser page's `Origin` must be one the CORS setting allows, or this server itself (403
//! `origin_not_allowed`), so that a foreign site cannot open a socket with a token it holds;
//! clients that send no `Origin` (native apps, Node) are not browsers and pass. The token and the caller's access are
//! checked before the upgrade (401 / 404 problems, no socket). After it, one task per socket runs
//! [`serve_socket`]: frames from the client go through the [`Connection`] state machine (limits,
//! validation, roles) into the room; frames from the room go out in order; pings keep the socket
//! alive; every ending sends a close frame with a code and a reason. The socket lives no longer
//! than its token: when the token expires, or its session signs out ([`crate::auth::sessions`]),
//! the client gets an auth message and close 4001, and reconnects with a fresh token.

use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use potentia_sync::close::{GOING_AWAY, MESSAGE_TOO_BIG, POLICY_VIOLATION};
use potentia_sync::{Action, Close, Connection, MemberEvent, Role, SyncError};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::document_role;
use crate::access::canvas_access;
use crate::auth::extract::bearer_token_from_headers;
use crate::auth::sessions::SessionWatch;
use crate::auth::{refresh, AuthUser};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiPath, ApiQuery, RequestId};
use crate::state::AppState;

/// Close code for a connection refused because a connection limit is reached (RFC 6455 §7.4.1
/// "try again later").
const TRY_AGAIN_LATER: u16 = 1013;

/// The auth message's reason when the socket's token expires.
pub const TOKEN_EXPIRED_REASON: &str = "the access token expired; reconnect with a fresh one";
/// The auth message's reason when the socket's session signs out.
pub const SIGNED_OUT_REASON: &str = "the session signed out; sign in again";

/// Read and write buffer of one socket; frames larger than this still go through, in pieces.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SocketParams {
    /// The access token (browsers cannot set headers on a WebSocket); `Authorization: Bearer`
    /// works too.
    pub token: Option<String>,
}

/// Opens the canvas's document over the y-websocket protocol: `new WebsocketProvider(
/// "wss://host/ws/canvas", canvasId, doc, { params: { token } })`. Readers who may not write
/// receive everything; their writes are refused with an auth message.
#[utoipa::path(get, path = "/ws/canvas/{canvas_id}", tag = "sync",
    params(("canvas_id" = Uuid, Path), SocketParams),
    responses(
        (status = 101, description = "Switched to the y-websocket protocol"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The page's `Origin` is not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 426, body = Problem, content_type = "application/problem+json")))]
pub async fn canvas_socket(
    State(state): State<AppState>,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<SocketParams>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    check_origin(&state, &headers)?;
    let token = match params.token.as_deref() {
        Some(token) if !token.is_empty() => token,
        _ => bearer_token_from_headers(&headers)?,
    };
    let verified = state.jwt.verify(token)?;
    let life = TokenLife {
        expires_at: verified.expires_at,
        session: verified.session_id,
    };
    if let Some(session) = life.session {
        if refresh::family_revoked(&state.db, session).await? {
            return Err(ApiError::unauthorized(
                "session_signed_out",
                "the token's session signed out; sign in again",
            ));
        }
    }
    let caller = AuthUser::from_verified(&state, verified, request_id.as_deref()).await?;
    let role = canvas_access(&state.db, caller.id, canvas_id)
        .await?
        .and_then(|found| document_role(found.access))
        .ok_or(ApiError::NotFound { what: "canvas" })?;
    let upgrade = upgrade.map_err(|rejection| ApiError::BadRequest {
        code: "websocket_upgrade_required",
        detail: rejection.body_text(),
    })?;
    let limits = state.rooms.config().connection;
    // The library's own cap sits above ours so that our check answers with a close code.
    let library_cap = limits.protocol.max_frame_bytes.saturating_add(64 * 1024);
    Ok(upgrade
        .max_message_size(library_cap)
        .max_frame_size(library_cap)
        // The library zero-fills its whole read buffer before every read (128 KiB by default):
        // per connection that was most of the memory and, under fan-out, 30 % of the CPU.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| serve_socket(socket, state, canvas_id, caller.id, role, life))
        .into_response())
}

/// Refuses a browser page whose origin the CORS setting does not allow; a page served by this
/// server itself (the `Origin` names the `Host` the request went to) is same-origin and passes.
fn check_origin(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let allowed = origin.to_str().is_ok_and(|origin| {
        state.settings.http.cors.allows(origin) || is_same_origin(origin, host)
    });
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            code: "origin_not_allowed",
            detail:
                "pages on this origin may not open canvas sockets; list it in POTENTIA_CORS_ORIGINS"
                    .to_owned(),
        })
    }
}

/// Whether `origin` (`scheme://authority`) names `host`, the authority the request went to.
fn is_same_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((authority, host), (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host))
}

fn close_message(close: &Close) -> Message {
    Message::Close(Some(CloseFrame {
        code: close.code,
        reason: Utf8Bytes::from(close.reason.clone()),
    }))
}

fn close_for_refusal(error: &SyncError) -> Close {
    match error {
        SyncError::CanvasFull { .. } | SyncError::UserConnectionLimit { .. } => {
            Close::new(TRY_AGAIN_LATER, error.to_string())
        }
        SyncError::LoadFailed(_) => Close::internal("the document could not be loaded"),
        _ => Close::internal("the document is unavailable; reconnect"),
    }
}

/// The longest a socket waits for its token to expire before closing anyway.
const MAX_TOKEN_WAIT_SECS: u64 = 366 * 24 * 3600;

/// How long the socket's token lasts.
struct TokenLife {
    /// Seconds since the epoch.
    expires_at: i64,
    session: Option<Uuid>,
}

impl TokenLife {
    /// When the token expires, on the runtime's clock.
    fn deadline(&self) -> tokio::time::Instant {
        let left = self
            .expires_at
            .saturating_sub(chrono::Utc::now().timestamp());
        // A socket whose token lasts longer than a year closes after one, as at expiry (a far
        // `exp` must not overflow the clock).
        let left = u64::try_from(left).unwrap_or(0).min(MAX_TOKEN_WAIT_SECS);
        tokio::time::Instant::now() + Duration::from_secs(left)
    }
}

/// Resolves when the watched session signs out; never without a session.
async fn signed_out(watch: Option<&SessionWatch>) {
    match watch {
        Some(watch) => watch.ended().await,
        None => std::future::pending().await,
    }
}

/// One socket from upgrade to close.
async fn serve_socket(
    socket: WebSocket,
    state: AppState,
    canvas_id: Uuid,
    user_id: Uuid,
    role: Role,
    life: TokenLife,
) {
    let (mut sink, mut stream) = socket.split();
    let rooms = state.rooms.clone();
    let metrics = rooms.metrics().clone();
    let mut member = match rooms.connect(canvas_id, user_id, role).await {
        Ok(member) => member,
        Err(error) => {
            tracing::info!(%canvas_id, %user_id, %error, "sync connection refused");
            let refusal = close_message(&close_for_refusal(&error));
            let _ = send(&mut sink, refusal, state.settings.sync.ping_interval).await;
            return;
        }
    };
    let mut connection = Connection::new(role, rooms.config().connection);
    let ping_every = state.settings.sync.ping_interval;
    let write_timeout = ping_every;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    let expires = tokio::time::sleep_until(life.deadline());
    tokio::pin!(expires);
    let session = life
        .session
        .map(|session| state.sessions.watch(user_id, session));

    let close: Option<Close> = 'socket: loop {
        tokio::select! {
            () = &mut expires => {
                let (frame, close) = connection.unauthenticate(TOKEN_EXPIRED_REASON);
                let _ = send(&mut sink, Message::Binary(frame.into()), write_timeout).await;
                break Some(close);
            }
            () = signed_out(session.as_ref()) => {
                let (frame, close) = connection.unauthenticate(SIGNED_OUT_REASON);
                let _ = send(&mut sink, Message::Binary(frame.into()), write_timeout).await;
                break Some(close);
            }
            event = member.next_event() => match event {
                MemberEvent::Frame(frame) => {
                    metrics.bytes_out.inc_by(frame.len() as u64);
                    if let Err(ending) = send(&mut sink, Message::Binary(frame), write_timeout).await {
                        break ending.close(&metrics);
                    }
                }
                MemberEvent::SetRole(role) => connection.set_role(role),
                MemberEvent::Close(kick) => {
                    if let Some(frame) = kick.last_frame {
                        let _ = send(&mut sink, Message::Binary(frame), write_timeout).await;
                    }
                    connection.close(kick.close.clone());
                    break Some(kick.close);
                }
            },
            incoming = stream.next() => {
                let frame = match incoming {
                    None | Some(Ok(Message::Close(_))) => break None,
                    // tungstenite refuses frames above its cap before we see them.
                    Some(Err(_)) => break Some(Close::new(MESSAGE_TOO_BIG, "frame too large or malformed")),
                    Some(Ok(Message::Text(_))) => break Some(Close::text_frame()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        last_heard = Instant::now();
                        continue;
                    }
                    Some(Ok(Message::Binary(frame))) => frame,
                };
                last_heard = Instant::now();
                let actions = match connection.receive(&frame, last_heard) {
                    Ok(actions) => actions,
                    Err(close) => break Some(close),
                };
                for action in actions {
                    let sent = match action {
                        Action::Send(frame) => {
                            metrics.bytes_out.inc_by(frame.len() as u64);
                            if let Err(ending) = send(&mut sink, Message::Binary(frame.into()), write_timeout).await {
                                break 'socket ending.close(&metrics);
                            }
                            Ok(())
                        }
                        Action::SendStep2 { state_vector } => member.request_step2(state_vector).await,
                        Action::ApplyUpdate(update) => member.apply_update(update).await,
                        Action::ApplyAwareness(update) => member.apply_awareness(update).await,
                        Action::SendAwarenessStates => member.query_awareness().await,
                    };
                    if sent.is_err() {
                        break 'socket Some(Close::going_away());
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 2 {
                    break Some(Close::new(POLICY_VIOLATION, "no answer to pings"));
                }
                if let Err(ending) = send(&mut sink, Message::Ping(Default::default()), write_timeout).await {
                    break ending.close(&metrics);
                }
            }
        }
    };
    drop(member);
    if let Some(close) = close {
        if close.code != GOING_AWAY {
            tracing::debug!(%canvas_id, %user_id, code = close.code, reason = %close.reason, "closing sync connection");
        }
        let _ = send(&mut sink, close_message(&close), write_timeout).await;
    }
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
}

/// Why a send did not happen.
enum SendFailed {
    /// The socket is gone.
    Broken,
    /// The client did not take the frame in time: it stopped reading.
    TooSlow,
}

impl SendFailed {
    /// The close to attempt: none on a broken socket, 4008 for a client that fell behind.
    fn close(self, metrics: &potentia_sync::SyncMetrics) -> Option<Close> {
        match self {
            Self::Broken => None,
            Self::TooSlow => {
                metrics.slow_disconnects.inc();
                Some(Close::slow_client())
            }
        }
    }
}

/// Sends one message, giving up after `timeout`: a client that stopped reading must not hold
/// its task (and its frames) forever.
async fn send(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    message: Message,
    timeout: std::time::Duration,
) -> Result<(), SendFailed> {
    match tokio::time::timeout(timeout, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendFailed::Broken),
        Err(_) => Err(SendFailed::TooSlow),
    }
}
