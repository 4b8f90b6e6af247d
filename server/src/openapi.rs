//! The OpenAPI 3.1 document, generated from the handlers' annotations and served at
//! `/api/v1/openapi.json`.

use serde_json::{json, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::PROBLEM_CONTENT_TYPE;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Potentia API",
        description = "Backend of a proactive assistant: canvases, AI partner, calendars. Errors are RFC 9457 problem+json with a stable `code`.",
    ),
    // Enums only query parameters name: parameters refer to them, so they must be components.
    components(schemas(
        crate::error::Problem,
        crate::error::FieldError,
        crate::canvases::db::CanvasOrder,
        crate::canvases::routes::ListScope,
        crate::tasks::routes::TaskStatus,
        crate::calendars::query::ViewInclude,
    )),
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

/// What an error status means on any route, for responses a route does not describe itself.
const ERROR_MEANINGS: [(&str, &str); 12] = [
    ("400", "The request cannot be read: malformed JSON (`malformed_json`), an unreadable body (`unreadable_body`), or a path id that is not a UUID (`invalid_path_parameter`)."),
    ("401", "No valid bearer token: missing (`missing_token`), expired (`token_expired`), or malformed, revoked or for another audience (`invalid_token`)."),
    ("403", "The caller can see the resource but their role does not allow this (`insufficient_role`)."),
    ("404", "No such resource, or the caller may not see it (`not_found`)."),
    ("409", "The request conflicts with the resource's current state; `code` says how."),
    ("413", "The body is over the size limit (`payload_too_large`)."),
    ("415", "The body is not of the media type the route takes (`unsupported_media_type`)."),
    ("422", "A field or parameter is invalid (`validation_failed`); `errors[]` names every one."),
    ("426", "Not a WebSocket upgrade request."),
    ("429", "Too many requests (`rate_limited`); `Retry-After` says when to try again."),
    ("500", "An unexpected failure; `request_id` identifies it in the server's logs."),
    ("503", "A dependency is unavailable right now; retry later (`Retry-After` when known)."),
];

/// What each path parameter names, wherever it appears.
const PATH_PARAMETERS: [(&str, &str); 14] = [
    ("workspace_id", "The workspace's id."),
    ("canvas_id", "The canvas's id."),
    ("block_id", "The block's id (its key in the document's `blocks` map)."),
    ("user_id", "The user id of the member or subscriber the route acts on."),
    ("invitation_id", "The invitation's id."),
    ("link_id", "The invite link's id."),
    ("calendar_id", "The calendar's id."),
    ("schedule_id", "The schedule's id."),
    ("guest_id", "The guest's id."),
    ("original_start", "The occurrence's original start: local (`2026-03-02T09:00:00`, in the series' zone), as an instant in UTC (`2026-03-02T08:00:00Z`, as views report it), or a date (`2026-03-02`) for all-day schedules."),
    ("token", "The feed secret from `POST /api/v1/calendars/{calendar_id}/feed-token`, optionally followed by `.ics`."),
    ("conversation_id", "The conversation's id."),
    ("memory_id", "The memory's id."),
    ("role_id", "The AI role's id."),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Completes the document with what every route shares by construction: the extractors'
/// answers (401 from the bearer check, 400 from a path id, 422 from query parameters,
/// 400/413/415/422 from a JSON body), the meaning of each error status a route leaves
/// undescribed, path parameters' descriptions, and property descriptions utoipa nests inside
/// an optional field's `oneOf`.
pub fn complete(openapi: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(&openapi).expect("an OpenAPI document serializes");
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for (method, operation) in item.as_object_mut().into_iter().flatten() {
                if METHODS.contains(&method.as_str()) {
                    complete_operation(operation);
                }
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for schema in schemas.values_mut() {
            hoist_optional_descriptions(schema);
        }
    }
    doc
}

fn complete_operation(operation: &mut Value) {
    let mut answers: Vec<&str> = Vec::new();
    let bearer = operation["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
    if bearer {
        answers.push("401");
    }
    let parameters = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut);
    for parameter in parameters.into_iter().flatten() {
        match parameter["in"].as_str() {
            Some("path") => {
                if parameter["schema"]["format"] == "uuid" {
                    answers.push("400");
                }
                let name = parameter["name"].as_str().unwrap_or_default();
                let known = PATH_PARAMETERS.iter().find(|(n, _)| *n == name);
                if let (Some((_, meaning)), None) = (known, parameter.get("description")) {
                    parameter["description"] = json!(meaning);
                }
            }
            Some("query") => answers.push("422"),
            _ => {}
        }
    }
    if operation
        .pointer("/requestBody/content/application~1json")
        .is_some()
    {
        answers.extend(["400", "413", "415", "422"]);
    }
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for status in answers {
        responses.entry(status).or_insert_with(|| json!({}));
    }
    for (status, response) in responses.iter_mut() {
        let Some((_, meaning)) = ERROR_MEANINGS.iter().find(|(s, _)| s == status) else {
            continue;
        };
        if response["description"].as_str().is_none_or(str::is_empty) {
            response["description"] = json!(meaning);
        }
        if response.get("content").is_none() {
            response["content"] = json!({
                PROBLEM_CONTENT_TYPE: { "schema": { "$ref": "#/components/schemas/Problem" } }
            });
        }
    }
}

/// utoipa writes an optional field's description inside `oneOf: [null, {$ref, description}]`;
/// generators read it from the property, so it moves there, at any depth (generic pages
/// inline their items' schemas).
fn hoist_optional_descriptions(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
        for property in properties.values_mut() {
            if property.get("description").is_none() {
                let nested = property
                    .get_mut("oneOf")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                    .find_map(|member| member.as_object_mut()?.remove("description"));
                if let Some(description) = nested {
                    property["description"] = description;
                }
            }
            hoist_optional_descriptions(property);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = object.get_mut(key) {
            hoist_optional_descriptions(inner);
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for member in object
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            hoist_optional_descriptions(member);
        }
    }
}
