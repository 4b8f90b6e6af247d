//! HTTP plumbing shared by every route: the JSON extractor, problem normalization, client
//! address, request ids and the router's middleware stack.

mod client_ip;
mod deserialize;
mod json;
mod params;
mod problem;

pub use client_ip::ClientIp;
pub use json::{ApiJson, NUL_MESSAGE};
pub use params::{ApiPath, ApiQuery};
pub use problem::{problem_responses, route_not_found};

use axum::http::HeaderName;

/// Header carrying the request id in both directions.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request id assigned by the middleware, for audit rows and logs.
#[derive(Debug, Clone, Default)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(&REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}
