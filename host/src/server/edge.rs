//! Where errors become HTTP responses: status and OpenAI-shaped body from the one table in
//! [`crate::errors`], `Retry-After` when known.

use std::any::Any;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::errors::{ErrorKind, GatewayError};

pub fn error_response(e: &GatewayError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Body::from(e.to_body()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(after) = e.retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::try_from(secs.max(1).to_string()) {
            h.insert(header::RETRY_AFTER, v);
        }
        if let Ok(v) = HeaderValue::try_from(after.as_millis().max(1).to_string()) {
            h.insert(http::HeaderName::from_static("retry-after-ms"), v);
        }
    }
    resp
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

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
