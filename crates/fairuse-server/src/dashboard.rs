//! The admin dashboard (`/admin/`): a few static files embedded in the binary at build time, so
//! there is nothing to build, install or run besides `fairuse serve`. The page is plain
//! JavaScript modules, HTML and CSS (`assets/admin/`); it signs in with an admin key kept in the
//! tab's session storage and calls the admin API with `fetch` and the `X-Admin-Key` header. The
//! files themselves are public: they hold no data, and every call they make is authenticated.
//!
//! Every file is served with a Content-Security-Policy that allows scripts, styles and requests
//! from this origin only (no inline script, no third-party origin, no `innerHTML` with strings
//! thanks to Trusted Types) and that forbids framing and form submission.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::http::extract::ApiPath;
use crate::http::state::AppState;

/// The policy every dashboard response carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file: its name under `/admin/`, its content type and its bytes.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ty:expr) => {
        Asset { name: $name, content_type: $ty, body: include_bytes!(concat!("../assets/admin/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("chart.js", JS),
    asset!("flagged.js", JS),
    asset!("user.js", JS),
    asset!("actions.js", JS),
];

/// The embedded file called `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The dashboard's routes, for [`crate::http::router`] to merge.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/admin", get(redirect_to_index))
        .route("/admin/", get(index))
        .route("/admin/{file}", get(file))
}

/// `GET /admin`: the page lives at `/admin/` so that its relative links resolve.
pub async fn redirect_to_index() -> Response {
    // Relative, so that it also works behind a proxy that mounts the service under a prefix.
    with_headers(Redirect::permanent("admin/").into_response())
}

/// `GET /admin/`: the page.
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /admin/{file}`: a script, the style sheet or the icon.
pub async fn file(ApiPath(name): ApiPath<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    match asset(name) {
        Some(a) => with_headers(([(header::CONTENT_TYPE, a.content_type)], a.body).into_response()),
        None => with_headers(ApiError::NotFound(format!("no dashboard file {name:?}")).into_response()),
    }
}

fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Revalidate every time: a new binary serves new files under the same names.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        let index = std::str::from_utf8(asset("index.html").unwrap().body).unwrap();
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
        }
        // Each module named in an import or in the page is one of the assets.
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.rsplit("from").next().unwrap().trim().trim_end_matches(';').trim_matches(['\'', '"']);
                let name = spec.trim_start_matches("./");
                assert!(asset(name).is_some(), "{} imports {spec}, which is not embedded", a.name);
            }
        }
        for needed in ["app.js", "style.css", "favicon.svg"] {
            assert!(index.contains(needed), "index.html does not load {needed}");
        }
    }

    #[test]
    fn the_page_has_no_inline_script_and_never_uses_inner_html() {
        let index = std::str::from_utf8(asset("index.html").unwrap().body).unwrap();
        assert!(!index.contains("<script>") && !index.contains("onclick") && !index.contains("style="));
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "localStorage"] {
                assert!(!text.contains(banned), "{} uses {banned}", a.name);
            }
        }
    }
}
