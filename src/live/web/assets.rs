//! The pages and their files, compiled into the binary (nothing to install or build):
//! `web/` in the repository. No third-party scripts; the map is drawn by `web/map.js`.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;

/// (name, content type, content)
const FILES: &[(&str, &str, &[u8])] = &[
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../../web/style.css")),
    ("common.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/common.js")),
    ("i18n.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/i18n.js")),
    ("map.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/map.js")),
    ("dashboard.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/dashboard.js")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/app.js")),
    ("login.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/login.js")),
    ("password.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/password.js")),
    ("icon.svg", "image/svg+xml", include_bytes!("../../../web/icon.svg")),
    ("manifest.webmanifest", "application/manifest+json", include_bytes!("../../../web/manifest.webmanifest")),
    // The icon as pictures, for home screens that take no SVG (an iPhone's, 180 px) and
    // for installing on Android (512 px); drawn from icon.svg, without its rounded
    // corners (the phone rounds them). Draw them again when icon.svg changes: the SVG
    // without `rx="14"`, at N × N px in a page of its own, then
    // `chromium --headless --hide-scrollbars --window-size=N,N --screenshot=icon-N.png PAGE`.
    ("icon-180.png", "image/png", include_bytes!("../../../web/icon-180.png")),
    ("icon-512.png", "image/png", include_bytes!("../../../web/icon-512.png")),
];

const DASHBOARD: &str = include_str!("../../../web/dashboard.html");
const APP: &str = include_str!("../../../web/app.html");
const LOGIN: &str = include_str!("../../../web/login.html");
const PASSWORD: &str = include_str!("../../../web/password.html");
const SERVICE_WORKER: &str = include_str!("../../../web/sw.js");

/// Pages: no inline scripts, nothing from elsewhere (images: the configured tiles).
const CSP: &str = "default-src 'self'; img-src 'self' data: https: http:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn page(html: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, CSP), (header::CACHE_CONTROL, "no-cache")], html).into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(|| async { page(DASHBOARD) }))
        .route("/app", get(|| async { page(APP) }))
        .route("/login", get(|| async { page(LOGIN) }))
        .route("/password", get(|| async { page(PASSWORD) }))
        // The staff app's service worker, registered with scope /app.
        .route(
            "/app-sw.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], SERVICE_WORKER) }),
        )
        .route("/assets/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, body)) => ([(header::CONTENT_TYPE, *ctype), (header::CACHE_CONTROL, "no-cache")], *body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}
