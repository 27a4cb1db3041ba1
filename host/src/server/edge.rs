//! Where errors become HTTP responses: status and OpenAI-shaped body from the one table in
//! [`crate::errors`] (whose `IntoResponse` lives with it), `Retry-After` when known; unknown
//! routes and methods; panics.

use std::any::Any;

use axum::response::{IntoResponse, Response};

use crate::errors::{ErrorKind, GatewayError};

pub use freeway_core::errors::error_response;

pub async fn not_found(uri: http::Uri) -> Response {
    GatewayError::new(
        ErrorKind::RouteNotFound,
        format!("Unknown request URL: {}. See the OpenAI API reference for the endpoints.", uri.path()),
    )
    .into_response()
}

pub async fn method_not_allowed(method: http::Method, uri: http::Uri) -> Response {
    GatewayError::new(ErrorKind::MethodNotAllowed, format!("Method {method} is not allowed for {}.", uri.path()))
        .into_response()
}

pub fn panic_response(_err: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked; the gateway keeps serving");
    GatewayError::internal("The gateway hit an internal error while handling this request.").into_response()
}
