//! The router (every route, with its OpenAPI entry) and the server's run loop with graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{header, HeaderName, Method, Request};
use axum::routing::get;
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::{CorsOrigins, Settings};
use crate::email::{EmailError, OutboxSender};
use crate::http::{problem_responses, route_not_found, REQUEST_ID_HEADER};
use crate::openapi::ApiDoc;
use crate::state::AppState;
use crate::{
    ai, auth, blocks, calendars, canvas_sync, canvases, conversations, db, invitations, memories,
    metrics, ops, search, tasks, users, workspaces,
};

/// How long background tasks get to finish their current step once the server has stopped.
const BACKGROUND_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the rooms get to close their sockets at shutdown.
const ROOMS_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Every route of the API and its OpenAPI document (as JSON), built from the same
/// registrations.
pub fn routes() -> (Router<AppState>, serde_json::Value) {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(auth::routes::sign_up))
        .routes(routes!(auth::routes::sign_in))
        .routes(routes!(auth::routes::refresh_session))
        .routes(routes!(auth::routes::sign_out))
        .routes(routes!(auth::routes::verify_email))
        .routes(routes!(auth::routes::resend_verification))
        .routes(routes!(users::routes::get_me, users::routes::patch_me))
        .routes(routes!(
            workspaces::routes::create_workspace,
            workspaces::routes::list_workspaces
        ))
        .routes(routes!(
            workspaces::routes::get_workspace,
            workspaces::routes::patch_workspace,
            workspaces::routes::delete_workspace
        ))
        .routes(routes!(workspaces::routes::leave_workspace))
        .routes(routes!(workspaces::routes::transfer_ownership))
        .routes(routes!(workspaces::routes::list_members))
        .routes(routes!(
            workspaces::routes::change_member_role,
            workspaces::routes::remove_member
        ))
        .routes(routes!(
            invitations::routes::invite_to_workspace,
            invitations::routes::list_workspace_invitations
        ))
        .routes(routes!(
            invitations::routes::create_invite_link,
            invitations::routes::list_invite_links
        ))
        .routes(routes!(invitations::routes::revoke_invite_link))
        .routes(routes!(invitations::routes::join_by_link))
        .routes(routes!(invitations::routes::list_my_invitations))
        .routes(routes!(invitations::routes::accept_invitation))
        .routes(routes!(invitations::routes::decline_invitation))
        .routes(routes!(invitations::routes::accept_invitation_by_token))
        .routes(routes!(invitations::routes::decline_invitation_by_token))
        .routes(routes!(invitations::routes::revoke_invitation))
        .routes(routes!(
            canvases::routes::create_canvas,
            canvases::routes::list_canvases
        ))
        .routes(routes!(
            canvases::routes::get_canvas,
            canvases::routes::patch_canvas,
            canvases::routes::delete_canvas
        ))
        .routes(routes!(canvases::routes::archive_canvas))
        .routes(routes!(canvases::routes::restore_canvas))
        .routes(routes!(canvases::routes::duplicate_canvas))
        .routes(routes!(canvases::routes::get_permissions))
        .routes(routes!(canvases::routes::list_canvas_members))
        .routes(routes!(
            canvases::routes::change_canvas_member_role,
            canvases::routes::remove_canvas_member
        ))
        .routes(routes!(
            invitations::routes::invite_to_canvas,
            invitations::routes::list_canvas_invitations
        ))
        .routes(routes!(canvas_sync::socket::canvas_socket))
        .routes(routes!(canvas_sync::routes::get_state))
        .routes(routes!(canvas_sync::routes::push_update))
        .routes(routes!(
            canvas_sync::routes::get_presence,
            canvas_sync::routes::set_presence
        ))
        .routes(routes!(canvas_sync::routes::leave))
        .routes(routes!(
            blocks::routes::list_blocks,
            blocks::routes::create_block
        ))
        .routes(routes!(
            blocks::routes::get_block,
            blocks::routes::patch_block,
            blocks::routes::delete_block
        ))
        .routes(routes!(blocks::routes::move_block))
        .routes(routes!(blocks::routes::reorder_blocks))
        .routes(routes!(blocks::routes::get_snapshot))
        .routes(routes!(
            blocks::routes::export_markdown,
            blocks::routes::import_markdown
        ))
        .routes(routes!(search::routes::search))
        .routes(routes!(tasks::routes::list_tasks))
        .routes(routes!(ai::routes::get_usage))
        .routes(routes!(
            conversations::routes::create_conversation,
            conversations::routes::list_conversations
        ))
        .routes(routes!(
            conversations::routes::get_conversation,
            conversations::routes::rename_conversation,
            conversations::routes::delete_conversation
        ))
        .routes(routes!(
            conversations::routes::list_messages,
            conversations::routes::post_message
        ))
        .routes(routes!(conversations::routes::list_contexts))
        .routes(routes!(
            memories::routes::list_memories,
            memories::routes::create_memory
        ))
        .routes(routes!(
            memories::routes::get_memory,
            memories::routes::patch_memory,
            memories::routes::delete_memory
        ))
        .routes(routes!(ai::roles::list_roles, ai::roles::create_role))
        .routes(routes!(ai::roles::replace_role, ai::roles::delete_role))
        .routes(routes!(
            calendars::routes::create_calendar,
            calendars::routes::list_calendars
        ))
        .routes(routes!(
            calendars::routes::get_calendar,
            calendars::routes::patch_calendar,
            calendars::routes::delete_calendar
        ))
        .routes(routes!(
            calendars::routes::create_subscription,
            calendars::routes::list_subscriptions
        ))
        .routes(routes!(
            calendars::routes::change_subscription,
            calendars::routes::remove_subscription
        ))
        .routes(routes!(
            calendars::routes::rotate_feed_token,
            calendars::routes::revoke_feed_token
        ))
        .routes(routes!(calendars::ical::calendar_feed))
        .routes(routes!(calendars::ical::import_calendar))
        .routes(routes!(
            calendars::schedules::create_schedule,
            calendars::schedules::list_schedules
        ))
        .routes(routes!(
            calendars::schedules::get_schedule,
            calendars::schedules::patch_schedule,
            calendars::schedules::delete_schedule
        ))
        .routes(routes!(
            calendars::schedules::put_exception,
            calendars::schedules::list_exceptions
        ))
        .routes(routes!(calendars::schedules::delete_exception))
        .routes(routes!(calendars::schedules::split_schedule))
        .routes(routes!(
            calendars::schedules::invite_guest,
            calendars::schedules::list_guests
        ))
        .routes(routes!(calendars::schedules::remove_guest))
        .routes(routes!(calendars::schedules::rsvp))
        .routes(routes!(
            calendars::schedules::set_reminders,
            calendars::schedules::clear_reminders
        ))
        .routes(routes!(calendars::query::view_instances))
        .routes(routes!(calendars::query::free_busy))
        .split_for_parts();
    (router, crate::openapi::complete(openapi))
}

/// The complete application: routes, the OpenAPI document, fallback and middleware.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = routes();
    let openapi = axum::body::Bytes::from(openapi.to_string());
    let settings = &state.settings;
    api.route(
        "/api/v1/openapi.json",
        get(move || {
            let openapi = openapi.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], openapi) }
        }),
    )
    .fallback(route_not_found)
    // Layers run bottom-up on the way in: the request id exists before anything logs.
    .layer(DefaultBodyLimit::max(settings.http.body_limit_bytes))
    .layer(middleware::from_fn_with_state(
        state.clone(),
        metrics::track_http_metrics,
    ))
    .layer(middleware::from_fn(problem_responses))
    .layer(cors_layer(&settings.http.cors))
    .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(|req: &Request<_>| {
                let request_id = req
                    .headers()
                    .get(&REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                // The route template, never the raw path: a path can carry a secret (an ICS feed URL).
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                tracing::info_span!("request", method = %req.method(), route, request_id)
            })
            .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
    )
    .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
    .with_state(state)
}

fn cors_layer(origins: &CorsOrigins) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::None => AllowOrigin::list([]),
        CorsOrigins::Loopback => {
            let origins = origins.clone();
            AllowOrigin::predicate(move |origin, _| {
                origin.to_str().is_ok_and(|origin| origins.allows(origin))
            })
        }
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().filter_map(|o| o.parse().ok())),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            REQUEST_ID_HEADER,
        ])
        .expose_headers([
            REQUEST_ID_HEADER,
            header::ETAG,
            HeaderName::from_static("retry-after"),
        ])
        .max_age(Duration::from_secs(600))
}

/// Connects, migrates unless told not to, binds and serves until SIGTERM/SIGINT.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    if settings.auth.jwt_secret.generated {
        tracing::warn!(
            "dev mode: POTENTIA_JWT_SECRET is not set, so a random secret was generated for this process; \
             tokens stop working when it exits. Set POTENTIA_JWT_SECRET to keep them."
        );
    }
    let pool = if settings.run_migrations {
        let pool = db::connect(&settings.database_url, settings.db_max_connections).await?;
        db::migrate(&pool).await?;
        tracing::info!("migrations are up to date");
        pool
    } else {
        db::connect_lazy(&settings.database_url, settings.db_max_connections)?
    };
    let listener = TcpListener::bind(settings.http.bind).await?;
    tracing::info!(addr = %listener.local_addr()?, mode = ?settings.mode, "listening");
    let state = AppState::new(settings, pool)?;
    run(listener, state, shutdown_signal()).await
}

/// Serves `state` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// for the configured grace period. Background tasks (the email sender among them) are told to
/// stop as soon as `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = state.settings.http.shutdown_grace;
    let stop_background = CancellationToken::new();
    // Background tasks also stop when this future is dropped (e.g. its task is aborted).
    let _stop_background_on_drop = stop_background.clone().drop_guard();
    let background = spawn_background_tasks(&state, &stop_background)?;
    let rooms = state.rooms.clone();
    let server = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let stop_background = stop_background.clone();
        async move {
            shutdown.await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "shutting down: draining requests"
            );
            stop_background.cancel();
            // Sockets are not requests: close them (1001, going away) so that the drain ends.
            rooms.shutdown(ROOMS_STOP_TIMEOUT).await;
        }
    });
    let deadline = {
        let stopping = stop_background.clone();
        async move {
            stopping.cancelled().await;
            tokio::time::sleep(grace).await;
        }
    };
    let outcome = tokio::select! {
        served = server => served.map_err(anyhow::Error::from),
        () = deadline => {
            tracing::warn!("grace period over; closing the remaining connections");
            Ok(())
        }
    };
    stop_background.cancel();
    stop_background_tasks(background).await;
    outcome
}

fn spawn_background_tasks(
    state: &AppState,
    stop: &CancellationToken,
) -> Result<Vec<JoinHandle<()>>, EmailError> {
    let limits = Arc::clone(&state.auth_limits);
    let ai = state.ai.clone();
    let stop_pruning = stop.clone();
    let mut tasks = vec![tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                () = stop_pruning.cancelled() => break,
                _ = tick.tick() => {
                    limits.prune();
                    ai.prune();
                }
            }
        }
    })];
    tasks.push(tokio::spawn(crate::auth::sessions::run_session_checks(
        Arc::clone(&state.sessions),
        state.db.clone(),
        state.settings.auth.session_check_interval,
        stop.clone(),
    )));
    tasks.push(tokio::spawn(calendars::materialize::run_horizon_job(
        state.db.clone(),
        stop.clone(),
    )));
    if let Some(worker) = state.ai.worker(stop.clone()) {
        tasks.push(tokio::spawn(worker));
    }
    if let Some(worker) = state.ai.chat_worker(stop.clone()) {
        tasks.push(tokio::spawn(worker));
    }
    match &state.settings.smtp {
        Some(smtp) => {
            let sender = OutboxSender::new(
                state.db.clone(),
                smtp,
                state.outbox.clone(),
                Arc::clone(&state.metrics),
            )?;
            tasks.push(tokio::spawn(sender.run(stop.clone())));
        }
        None => tracing::info!("SMTP is not configured: queued email stays pending"),
    }
    Ok(tasks)
}

/// Waits for background tasks that were told to stop, aborting those that take too long.
async fn stop_background_tasks(tasks: Vec<JoinHandle<()>>) {
    let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
    let stopped = tokio::time::timeout(BACKGROUND_STOP_TIMEOUT, futures::future::join_all(tasks));
    if stopped.await.is_err() {
        tracing::warn!("background tasks did not stop in time; aborting them");
        for abort in aborts {
            abort.abort();
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
