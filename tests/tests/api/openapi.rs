//! The served OpenAPI document is good enough to generate a client from: every property and
//! parameter is described, closed sets are enums, request bodies carry examples, and every
//! operation documents the error answers it can give.

use std::collections::BTreeSet;

use potentia_tests::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

/// Routes that answer no 4xx: liveness, readiness and the metrics scrape take no input and no
/// credentials.
const WITHOUT_ERRORS: [&str; 3] = ["/health", "/ready", "/metrics"];

/// Property names whose values come from a fixed set wherever they appear.
const CLOSED_SET_NAMES: [&str; 11] = [
    "role",
    "status",
    "transparency",
    "access",
    "rsvp",
    "reason",
    "kind",
    "source",
    "origin",
    "event",
    "title_source",
];

/// Properties named like a closed set that are open on purpose.
const OPEN_ON_PURPOSE: [(&str, &str); 1] = [
    // A memory history entry's reason is the assistant's own sentence.
    ("HistoryOut", "reason"),
];

async fn served_document() -> Value {
    document_of(&TestApp::spawn().await).await
}

async fn document_of(app: &TestApp) -> Value {
    let (status, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, 200);
    doc
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every operation of the document as (method, path, operation).
pub(crate) fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    out
}

/// The schema a `$ref` names, or the schema itself.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Whether a schema admits only listed values (an `enum`, a `const`, or a union of them with
/// `null` for an optional field).
fn is_closed(doc: &Value, schema: &Value) -> bool {
    let schema = resolve(doc, schema);
    if schema.get("enum").is_some() || schema.get("const").is_some() {
        return true;
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(members) = schema[key].as_array() {
            let non_null: Vec<&Value> = members
                .iter()
                .filter(|m| m["type"].as_str() != Some("null"))
                .collect();
            return !non_null.is_empty() && non_null.iter().all(|m| is_closed(doc, m));
        }
    }
    false
}

/// Walks a schema and records every property without a description (`at.property`) and every
/// closed-set-named property that is a free string.
fn walk(
    doc: &Value,
    schema: &Value,
    at: &str,
    undescribed: &mut Vec<String>,
    open: &mut Vec<String>,
) {
    if let Some(properties) = schema["properties"].as_object() {
        let owner = at.split('.').next().unwrap_or(at);
        for (name, property) in properties {
            let here = format!("{at}.{name}");
            if property["description"]
                .as_str()
                .is_none_or(|d| d.trim().is_empty())
            {
                undescribed.push(here.clone());
            }
            let textual = !["integer", "number", "boolean"]
                .contains(&property["type"].as_str().unwrap_or(""));
            if CLOSED_SET_NAMES.contains(&name.as_str())
                && textual
                && !OPEN_ON_PURPOSE.contains(&(owner, name.as_str()))
                && !is_closed(doc, property)
            {
                open.push(here.clone());
            }
            walk(doc, property, &here, undescribed, open);
        }
    }
    for key in ["items", "additionalProperties"] {
        if schema[key].is_object() {
            walk(doc, &schema[key], &format!("{at}[]"), undescribed, open);
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for member in schema[key].as_array().into_iter().flatten() {
            walk(doc, member, at, undescribed, open);
        }
    }
}

#[tokio::test]
async fn every_schema_property_has_a_description_and_closed_sets_are_enums() {
    let doc = served_document().await;
    let mut undescribed = Vec::new();
    let mut open = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        walk(&doc, schema, name, &mut undescribed, &mut open);
    }
    for (method, path, operation) in operations(&doc) {
        let at = format!("{method} {path}");
        for content in operation["requestBody"]["content"]
            .as_object()
            .into_iter()
            .flatten()
        {
            walk(
                &doc,
                &content.1["schema"],
                &format!("{at} body"),
                &mut undescribed,
                &mut open,
            );
        }
        for (status, response) in operation["responses"].as_object().unwrap() {
            for content in response["content"].as_object().into_iter().flatten() {
                walk(
                    &doc,
                    &content.1["schema"],
                    &format!("{at} {status}"),
                    &mut undescribed,
                    &mut open,
                );
            }
        }
    }
    assert!(
        undescribed.is_empty(),
        "{} properties without a description: {undescribed:#?}",
        undescribed.len()
    );
    assert!(
        open.is_empty(),
        "closed sets given as free strings: {open:#?}"
    );
}

/// Every `$ref` target of `value`, as `#/components/schemas/…` names.
fn references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                out.insert(target.to_owned());
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_reference_names_a_schema_of_the_document() {
    let doc = served_document().await;
    let mut targets = BTreeSet::new();
    references(&doc, &mut targets);
    let dangling: Vec<&String> = targets
        .iter()
        .filter(|t| resolve(&doc, &serde_json::json!({ "$ref": t })).is_null())
        .collect();
    assert!(
        dangling.is_empty(),
        "references to schemas the document lacks: {dangling:?}"
    );
}

#[tokio::test]
async fn every_operation_and_parameter_is_described() {
    let doc = served_document().await;
    let mut missing = Vec::new();
    for (method, path, operation) in operations(&doc) {
        if operation["summary"].as_str().is_none_or(str::is_empty) {
            missing.push(format!("{method} {path}: no summary"));
        }
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["description"].as_str().is_none_or(str::is_empty) {
                missing.push(format!("{method} {path}: parameter {}", parameter["name"]));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[tokio::test]
async fn every_json_request_body_carries_an_example() {
    let doc = served_document().await;
    let mut missing = Vec::new();
    for (method, path, operation) in operations(&doc) {
        let Some(media) = operation["requestBody"]["content"].get("application/json") else {
            continue;
        };
        let schema = resolve(&doc, &media["schema"]);
        let has_example = media.get("example").is_some()
            || media.get("examples").is_some()
            || schema.get("example").is_some()
            || schema.get("examples").is_some();
        if !has_example {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(
        missing.is_empty(),
        "request bodies without an example: {missing:#?}"
    );
}

#[tokio::test]
async fn every_operation_documents_its_error_answers() {
    let doc = served_document().await;
    let mut missing = Vec::new();
    for (method, path, operation) in operations(&doc) {
        let documented: BTreeSet<&str> = operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let at = format!("{method} {path}");
        if WITHOUT_ERRORS.contains(&path.as_str()) {
            continue;
        }
        if !documented.iter().any(|s| s.starts_with('4')) {
            missing.push(format!("{at}: no 4xx at all"));
        }
        let authenticated = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        if authenticated && !documented.contains("401") {
            missing.push(format!("{at}: 401"));
        }
        let parameters = operation["parameters"].as_array().into_iter().flatten();
        let takes_checked_input = operation.get("requestBody").is_some()
            || parameters
                .clone()
                .any(|p| p["in"] == "query" || p["schema"]["format"] == "uuid");
        if takes_checked_input && !documented.contains("422") && !documented.contains("400") {
            missing.push(format!("{at}: 422 (or 400) for bad input"));
        }
        let names_a_resource = parameters.clone().any(|p| p["in"] == "path");
        if names_a_resource && !documented.contains("404") {
            missing.push(format!("{at}: 404"));
        }
        for (status, response) in operation["responses"].as_object().unwrap() {
            if response["description"].as_str().is_none_or(str::is_empty) {
                missing.push(format!("{at}: {status} undescribed"));
            }
            if status.starts_with('4') || status.starts_with('5') {
                let problem = response["content"]
                    .get("application/problem+json")
                    .is_some();
                if !problem {
                    missing.push(format!("{at}: {status} is not problem+json"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "{} gaps: {missing:#?}", missing.len());
}

/// The example of `schema` in the document, with `ids` replacing the fields of those names
/// (an example names resources that exist only on the server that printed it).
fn example(doc: &Value, schema: &str, ids: &[(&str, String)]) -> Value {
    let mut example = doc["components"]["schemas"][schema]["example"].clone();
    assert!(example.is_object(), "{schema} has no example");
    for (field, id) in ids {
        if example.get(*field).is_some() {
            example[*field] = json!(id);
        }
    }
    example
}

#[tokio::test]
async fn the_examples_of_the_main_requests_are_accepted_as_printed() {
    let app = TestApp::spawn().await;
    let doc = document_of(&app).await;
    let call = async |method: Method, path: &str, token: Option<&str>, body: Value| {
        let (status, answer) = app
            .call(method.clone(), path, token, Some(body.clone()))
            .await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} with the documented example {body} answered {status}: {answer}"
        );
        answer
    };

    call(
        Method::POST,
        "/api/v1/auth/signup",
        None,
        example(&doc, "SignUpRequest", &[]),
    )
    .await;
    let session = call(
        Method::POST,
        "/api/v1/auth/signin",
        None,
        example(&doc, "SignInRequest", &[]),
    )
    .await;
    let token = session["access_token"].as_str().unwrap().to_owned();
    let token = Some(token.as_str());
    call(
        Method::PATCH,
        "/api/v1/auth/me",
        token,
        example(&doc, "ProfilePatch", &[]),
    )
    .await;

    let workspace = call(
        Method::POST,
        "/api/v1/workspaces",
        token,
        example(&doc, "CreateWorkspace", &[]),
    )
    .await;
    let workspace_id = workspace["id"].as_str().unwrap().to_owned();
    let ids = [("workspace_id", workspace_id.clone())];
    call(
        Method::POST,
        &format!("/api/v1/workspaces/{workspace_id}/invitations"),
        token,
        example(&doc, "CreateInvitation", &[]),
    )
    .await;
    call(
        Method::POST,
        &format!("/api/v1/workspaces/{workspace_id}/invite-links"),
        token,
        example(&doc, "CreateInviteLink", &[]),
    )
    .await;

    let canvas = call(
        Method::POST,
        "/api/v1/canvases",
        token,
        example(&doc, "CreateCanvas", &ids),
    )
    .await;
    let canvas_id = canvas["id"].as_str().unwrap().to_owned();
    call(
        Method::POST,
        &format!("/api/v1/canvases/{canvas_id}/blocks"),
        token,
        example(&doc, "CreateBlock", &[]),
    )
    .await;

    let calendar = call(
        Method::POST,
        "/api/v1/calendars",
        token,
        example(&doc, "CreateCalendar", &ids),
    )
    .await;
    let calendar_id = calendar["id"].as_str().unwrap().to_owned();
    call(
        Method::POST,
        &format!("/api/v1/calendars/{calendar_id}/schedules"),
        token,
        example(&doc, "CreateSchedule", &[]),
    )
    .await;
    let mut busy = example(&doc, "FreeBusyQuery", &[]);
    busy["calendar_ids"] = json!([calendar_id]);
    busy["user_ids"] = json!([session["user"]["id"]]);
    call(Method::POST, "/api/v1/freebusy", token, busy).await;
}
