//! The OpenAPI 3.1 document, generated from the handlers' annotations and served at
//! `/api/v1/openapi.json`.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Potentia API",
        description = "Backend of a proactive assistant: canvases, AI partner, calendars. Errors are RFC 9457 problem+json with a stable `code`.",
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign-up, sign-in, tokens and the caller's profile"),
        (name = "ops", description = "Health, readiness and metrics"),
        (name = "workspaces", description = "Workspaces and their members"),
        (name = "invitations", description = "Invitations to workspaces and canvases, and invite links"),
        (name = "canvases", description = "Canvases, permissions and canvas members"),
        (name = "blocks", description = "A canvas's blocks as rows; writes go through the document"),
        (name = "search", description = "Text, semantic and hybrid search over the canvases the caller can read"),
        (name = "tasks", description = "Todo blocks across every canvas the caller can read"),
        (name = "ai", description = "The AI layer: usage of chat and embedding providers"),
        (name = "conversations", description = "Chat with the assistant: conversations, topics, messages (JSON or SSE) and workspace domain roles"),
        (name = "memories", description = "What the assistant knows about the caller"),
        (name = "sync", description = "Real-time canvas documents: the y-websocket endpoint and its HTTP fallbacks"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}
