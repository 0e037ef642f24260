//! `GET /runbook`: the runbook (docs/RUNBOOK.md, built in; see [`crate::runbook`]) as one HTML
//! page, the target of every alert's `runbook_url`. Documentation, so unauthenticated like
//! `/metrics`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The handler.
pub async fn runbook() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        crate::runbook::runbook_html(),
    )
        .into_response()
}
