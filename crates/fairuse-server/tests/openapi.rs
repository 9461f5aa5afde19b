//! The OpenAPI document (`openapi.json`, served at `/openapi.json`) against the real router, run
//! in process on the memory store: every documented operation is answered by the route with that
//! exact path template and method, with one of its documented status codes (its success code
//! when called as documented); documented credentials are enforced and documented 403s are the
//! viewer refusals; no undocumented method is served on a documented path; and the document is
//! internally consistent.
//!
//! The document is written by hand on purpose, not generated from the handlers (no `utoipa`):
//! its prose is written for Omi's clients and our own, and the handlers stay plain axum. This
//! test is what keeps the hand-written paths, methods and status codes honest.
//!
//! A route is seen the way axum itself sees it: a test layer copies each request's
//! [`MatchedPath`] into a response header, so an answer from a route is told apart from the
//! fallback's 404, and every answer names the template that served it. What the test cannot
//! see: axum does not list a router's routes, so a route at a path the document never implies
//! goes unnoticed. The test probes what the document implies (every other method on each
//! documented path, each path's parents, each path with a trailing slash) and checks on every
//! answer, probes and operations alike, that a matched template is a documented one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use fairuse_domain::classifier::HeuristicClassifier;
use fairuse_domain::policy::Policy;
use fairuse_domain::store::MemoryStore;
use fairuse_domain::time::{ManualClock, Timestamp};
use fairuse_server::gateway::{Gateway, GatewaySettings, MeterFactory, StreamMeter};
use fairuse_server::http::{AppState, HttpSettings, router};
use fairuse_server::service::{Notifications, Service, Stores};
use serde_json::{Value, json};
use tower::ServiceExt;

const OPENAPI: &str = include_str!("../openapi.json");

const SERVICE_KEY: &str = "openapi-test-service-key-0123";
const OPERATOR_KEY: &str = "openapi-test-operator-key-0123";
const VIEWER_KEY: &str = "openapi-test-viewer-key-0123";
const JWT_SECRET: &str = "openapi-test-jwt-secret-long-enough-0123";
const T0: i64 = 1_774_000_000_000; // 2026-03-20T09:46:40Z
/// The user every request is about: the `uid` of paths and bodies, and the token's subject.
const USER: &str = "u1";

/// The test layer's response header: the path template of the route that answered.
const MATCHED: &str = "x-test-matched-route";

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

// ---- the document ---------------------------------------------------------------------------

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is not valid JSON")
}

/// One documented operation: a method on a path template.
struct Operation {
    path: String,
    method: String,
    body: Value,
}

impl Operation {
    fn id(&self) -> &str {
        self.body["operationId"].as_str().unwrap_or_default()
    }

    fn name(&self) -> String {
        format!("{} {} ({})", self.method.to_uppercase(), self.path, self.id())
    }

    /// The documented status codes, as numbers.
    fn statuses(&self) -> BTreeSet<u16> {
        self.body["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(code, _)| code.parse().unwrap_or_else(|_| panic!("{}: response code {code:?}", self.name())))
            .collect()
    }

    /// The security schemes of the operation's first requirement (none when `security` is `[]`).
    fn credentials(&self) -> Vec<String> {
        let first = self.body["security"].as_array().and_then(|s| s.first());
        first.and_then(Value::as_object).map(|o| o.keys().cloned().collect()).unwrap_or_default()
    }
}

/// Every (path, method) of the document's `paths`, in document order.
fn operations(doc: &Value) -> Vec<Operation> {
    let paths = doc["paths"].as_object().expect("the document has no `paths` object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().unwrap_or_else(|| panic!("path item {path} is not an object"));
        for (key, operation) in item {
            if METHODS.contains(&key.as_str()) {
                out.push(Operation { path: path.clone(), method: key.clone(), body: operation.clone() });
            }
        }
    }
    out
}

fn documented_paths(doc: &Value) -> BTreeSet<String> {
    operations(doc).into_iter().map(|op| op.path).collect()
}

/// Follows a local `$ref` (`#/components/...`) if `value` is one.
fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("$ref {r} does not resolve")),
        None => value,
    }
}

/// The parameters of an operation, its path item's first, each dereferenced.
fn parameters<'a>(doc: &'a Value, op: &'a Operation) -> Vec<&'a Value> {
    doc["paths"][&op.path]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(op.body["parameters"].as_array().into_iter().flatten())
        .map(|p| deref(doc, p))
        .collect()
}

fn collect_refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push((at.to_owned(), v.as_str().unwrap_or_default().to_owned()));
                } else {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    collect_refs(v, &format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

// ---- the app --------------------------------------------------------------------------------

/// The gateway is configured, so `/v1/listen` gets as far as its handler can in process; no
/// request here upgrades to a WebSocket, so no meter is ever made.
struct NoStreams;

impl MeterFactory for NoStreams {
    fn new_meter(&self, _: u32, _: u16) -> Box<dyn StreamMeter> {
        unreachable!("no request in this test opens a stream")
    }
}

/// Copies the template of the route that matched (none for the fallback) into [`MATCHED`].
async fn name_the_matched_route(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let mut resp = next.run(req).await;
    if let Some(path) = matched {
        resp.headers_mut().insert(MATCHED, HeaderValue::from_str(&path).expect("a path template is a valid header"));
    }
    resp
}

#[derive(Clone, Copy)]
enum As {
    /// What the operation's `security` names.
    Documented,
    Viewer,
    Nobody,
}

struct App {
    router: Router,
    documented_paths: BTreeSet<String>,
    /// A case of [`USER`] (an admin-set warning): its reference and its event's id.
    case_ref: String,
    event_id: String,
}

struct Answer {
    status: StatusCode,
    matched: Option<String>,
    body: Value,
}

async fn app() -> App {
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let service = Arc::new(Service::new(
        Stores::single(Arc::new(MemoryStore::new())),
        Policy::default(),
        clock,
        Arc::new(HeuristicClassifier),
        Notifications::default(),
    ));
    let env = HashMap::from([
        ("FAIRUSE_SERVICE_KEYS".to_string(), SERVICE_KEY.to_string()),
        ("FAIRUSE_ADMIN_KEYS".into(), format!("olga:operator:{OPERATOR_KEY},vic:viewer:{VIEWER_KEY}")),
        ("FAIRUSE_JWT_HS256_SECRET".into(), JWT_SECRET.into()),
    ]);
    let auth = fairuse_auth::Authenticator::from_env_map(&env).expect("test keys are valid");
    // A recorder's handle without installing it globally: `/metrics` renders, nothing else changes.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
    let router = router(AppState {
        service,
        auth: Arc::new(auth),
        settings: HttpSettings::default(),
        metrics: Some(metrics),
        ready: Arc::new(|| Box::pin(async { Ok(()) })),
    })
    .layer(axum::Extension(Arc::new(Gateway::new(GatewaySettings::default(), Arc::new(NoStreams)))))
    .layer(middleware::from_fn(name_the_matched_route));
    let mut app = App {
        router,
        documented_paths: documented_paths(&document()),
        case_ref: String::new(),
        event_id: String::new(),
    };
    let a = app
        .send(
            "POST",
            &format!("/v1/admin/fair-use/user/{USER}/set-stage"),
            &[("x-admin-key", OPERATOR_KEY.into())],
            r#"{"stage":"warning","reason":"a case to look up"}"#,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "setting up a case: {}", a.body);
    app.case_ref = a.body["audit"]["case_ref"].as_str().expect("the audit event has a case_ref").to_owned();
    app.event_id = a.body["audit"]["event_id"].as_str().expect("the audit event has an event_id").to_owned();
    app
}

fn token(sub: &str) -> String {
    let claims = json!({"sub": sub, "exp": T0 / 1000 + 3600, "iat": T0 / 1000});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("token")
}

/// A valid body for each operation that takes one, by operationId.
fn sample_body(operation_id: &str) -> Option<String> {
    let body = match operation_id {
        "postUsage" => json!({"uid": USER, "lane": "realtime", "speech_ms": 60_000}),
        "putPlan" => json!({"plan": "paid"}),
        "postConversations" => json!({
            "conversation_id": "c1", "title": "Weekly planning", "category": "work", "source": "omi",
            "started_at": "2026-03-20T09:00:00Z", "finished_at": "2026-03-20T09:30:00Z",
        }),
        "postAppeal" => json!({"text": "These are my own lectures."}),
        "resolveEvent" => json!({"outcome": "overturned", "notes": "checked"}),
        "resetUser" => json!({"reason": "checked"}),
        "setStage" => json!({"stage": "throttle", "reason": "checked"}),
        _ => return None,
    };
    Some(body.to_string())
}

/// A value for a required query parameter, from its schema: the first of an `enum`, else the
/// `minimum`.
fn sample_query_value(doc: &Value, op: &Operation, param: &Value) -> String {
    let schema = deref(doc, &param["schema"]);
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.as_str().map_or_else(|| first.to_string(), str::to_owned);
    }
    if let Some(min) = schema["minimum"].as_i64() {
        return min.to_string();
    }
    panic!(
        "{}: no sample value for required query parameter {}; give its schema an enum or a minimum",
        op.name(),
        param["name"]
    )
}

impl App {
    /// The path with every `{parameter}` filled in.
    fn fill(&self, path: &str) -> String {
        path.split('/')
            .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                None => seg.to_owned(),
                Some("uid") => USER.to_owned(),
                Some("case_ref") => self.case_ref.clone(),
                Some("event_id") => self.event_id.clone(),
                Some("file") => "app.js".to_owned(),
                Some(other) => panic!("{path}: the test has no value for path parameter {other}; add one to App::fill"),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The request an operation documents: its path filled in, its required query parameters,
    /// its sample body, and the credentials `who` stands for.
    async fn call(&self, doc: &Value, op: &Operation, who: As) -> Answer {
        let mut uri = self.fill(&op.path);
        let query: Vec<String> = parameters(doc, op)
            .into_iter()
            .filter(|p| p["in"] == "query" && p["required"] == true)
            .map(|p| format!("{}={}", p["name"].as_str().unwrap_or_default(), sample_query_value(doc, op, p)))
            .collect();
        if !query.is_empty() {
            uri = format!("{uri}?{}", query.join("&"));
        }
        let body = sample_body(op.id());
        assert!(
            body.is_some() || op.body["requestBody"]["required"] != true,
            "{}: the document requires a body; add a sample to sample_body",
            op.name()
        );
        let headers: Vec<(&str, String)> = match who {
            As::Documented => op
                .credentials()
                .iter()
                .map(|scheme| match scheme.as_str() {
                    "serviceKey" => ("authorization", format!("Bearer {SERVICE_KEY}")),
                    "adminKey" => ("x-admin-key", OPERATOR_KEY.to_owned()),
                    "userToken" => ("authorization", format!("Bearer {}", token(USER))),
                    other => panic!("{}: the test cannot present security scheme {other}", op.name()),
                })
                .collect(),
            As::Viewer => vec![("x-admin-key", VIEWER_KEY.to_owned())],
            As::Nobody => Vec::new(),
        };
        self.send(&op.method.to_uppercase(), &uri, &headers, body.as_deref().unwrap_or_default()).await
    }

    /// Sends one request; any answer from a route must come from a documented path template.
    async fn send(&self, method: &str, uri: &str, headers: &[(&str, String)], body: &str) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let resp = self.router.clone().oneshot(req.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
        let status = resp.status();
        let matched = resp.headers().get(MATCHED).map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        let body =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        if let Some(path) = &matched {
            assert!(
                self.documented_paths.contains(path),
                "{method} {uri} was answered ({status}) by the route {path}, which openapi.json does not document"
            );
        }
        Answer { status, matched, body }
    }
}

// ---- the document against the router --------------------------------------------------------

#[tokio::test]
async fn every_documented_operation_is_served_by_its_route_and_succeeds_when_called_as_documented() {
    let doc = document();
    for op in operations(&doc) {
        // A fresh app each time: one operation's writes (a reset, a resolution) do not change
        // what the next one finds.
        let app = app().await;
        let a = app.call(&doc, &op, As::Documented).await;
        assert_eq!(
            a.matched.as_deref(),
            Some(op.path.as_str()),
            "{}: answered {} by {}, not by its route: {}",
            op.name(),
            a.status,
            a.matched.as_deref().unwrap_or("the fallback"),
            a.body
        );
        assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{}: the route does not serve this method", op.name());
        assert!(
            op.statuses().contains(&a.status.as_u16()),
            "{}: answered {}, which is not among its documented codes {:?}: {}",
            op.name(),
            a.status,
            op.statuses(),
            a.body
        );
        if op.path == "/v1/listen" {
            // A 101 needs a connection to upgrade, which a router called in process does not
            // have: having accepted the token and the query, the handler refuses the upgrade.
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}: {}", op.name(), a.body);
            assert!(a.body.to_string().contains("is a WebSocket endpoint"), "{}: {}", op.name(), a.body);
        } else {
            assert!(a.status.as_u16() < 400, "{}: called as documented, answered {}: {}", op.name(), a.status, a.body);
        }
    }
}

#[tokio::test]
async fn every_operation_that_documents_credentials_refuses_a_request_without_them_with_a_documented_401() {
    let doc = document();
    let app = app().await;
    let secured: Vec<Operation> = operations(&doc).into_iter().filter(|op| !op.credentials().is_empty()).collect();
    assert!(secured.len() >= 15, "only {} operations document credentials", secured.len());
    for op in &secured {
        let a = app.call(&doc, op, As::Nobody).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}: {}", op.name(), a.body);
        assert!(op.statuses().contains(&401), "{}: answers 401 but does not document it", op.name());
    }
}

#[tokio::test]
async fn a_viewer_key_is_refused_exactly_where_the_document_lists_403() {
    let doc = document();
    let admin: Vec<Operation> =
        operations(&doc).into_iter().filter(|op| op.credentials().iter().any(|s| s == "adminKey")).collect();
    assert!(admin.len() >= 10, "only {} admin operations", admin.len());
    let mut refused = 0;
    for op in &admin {
        let app = app().await;
        let a = app.call(&doc, op, As::Viewer).await;
        if op.statuses().contains(&403) {
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{}: documents 403 for a viewer: {}", op.name(), a.body);
            refused += 1;
        } else {
            assert!(a.status.is_success(), "{}: a viewer may read it: {} {}", op.name(), a.status, a.body);
        }
    }
    assert!(refused >= 5, "only {refused} admin operations refuse a viewer");
}

#[tokio::test]
async fn no_undocumented_method_is_served_on_a_documented_path() {
    let doc = document();
    let app = app().await;
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for op in operations(&doc) {
        documented.entry(op.path).or_default().insert(op.method);
    }
    for (path, methods) in &documented {
        let uri = app.fill(path);
        for method in METHODS.iter().filter(|m| !methods.contains(**m)) {
            // axum answers HEAD with the GET handler (less the body), as HTTP says a server may.
            if *method == "head" && methods.contains("get") {
                continue;
            }
            let a = app.send(&method.to_uppercase(), &uri, &[], "").await;
            assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{} {uri}: {}", method.to_uppercase(), a.body);
            assert_eq!(a.matched.as_deref(), Some(path.as_str()), "{} {uri}", method.to_uppercase());
        }
    }
}

#[tokio::test]
async fn the_parents_and_trailing_slash_forms_of_documented_paths_reach_the_fallback() {
    let doc = document();
    let app = app().await;
    let documented: BTreeSet<String> = operations(&doc).iter().map(|op| app.fill(&op.path)).collect();
    let mut probes = BTreeSet::new();
    for path in &documented {
        probes.insert(format!("{path}/"));
        let mut parent = path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            probes.insert(if up.is_empty() { "/".to_owned() } else { up.to_owned() });
            parent = up;
        }
    }
    let probes: Vec<&String> = probes.iter().filter(|p| !documented.contains(*p)).collect();
    assert!(probes.len() >= 20, "only {} probes", probes.len());
    for uri in probes {
        for method in ["GET", "POST"] {
            let a = app.send(method, uri, &[], "").await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{method} {uri}: {}", a.body);
            assert_eq!(a.matched, None, "{method} {uri} was served by a route");
        }
    }
}

// ---- the document on its own ----------------------------------------------------------------

#[test]
fn the_document_lists_the_operations_clients_rely_on() {
    let doc = document();
    let ops = operations(&doc);
    // A floor, so that a document emptied by mistake cannot make the tests above pass vacuously.
    assert!(ops.len() >= 20, "only {} operations documented", ops.len());
    for (path, method) in [
        ("/v1/usage", "post"),
        ("/v1/users/{uid}/decision", "get"),
        ("/v1/listen", "get"),
        ("/healthz", "get"),
        ("/v1/admin/fair-use/exempt/{uid}", "get"),
        ("/v1/admin/fair-use/exempt/{uid}", "put"),
        ("/v1/admin/fair-use/exempt/{uid}", "delete"),
    ] {
        assert!(ops.iter().any(|op| op.path == path && op.method == method), "{method} {path} is not documented");
    }
}

#[test]
fn every_operation_has_responses_and_a_unique_operation_id() {
    let doc = document();
    let mut ids = BTreeSet::new();
    for op in operations(&doc) {
        let responses = op.body["responses"].as_object();
        assert!(responses.is_some_and(|r| !r.is_empty()), "{} has no (or an empty) `responses` object", op.name());
        assert!(!op.id().is_empty(), "{} has no operationId", op.name());
        assert!(ids.insert(op.id().to_owned()), "operationId {} is used twice", op.id());
    }
}

#[test]
fn every_ref_resolves_to_an_existing_component() {
    let doc = document();
    let mut refs = Vec::new();
    collect_refs(&doc, "#", &mut refs);
    assert!(!refs.is_empty(), "the document has no $ref at all");
    for (at, r) in refs {
        assert!(r.starts_with("#/components/"), "{at}: $ref {r:?} does not point into #/components/");
        assert!(doc.pointer(r.trim_start_matches('#')).is_some(), "{at}: $ref {r} does not resolve");
    }
}

#[test]
fn every_path_template_parameter_is_declared_as_a_path_parameter() {
    let doc = document();
    for op in operations(&doc) {
        let declared: BTreeSet<String> = parameters(&doc, &op)
            .into_iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{}: path parameter {} is not required", op.name(), p["name"]);
                p["name"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        let templated: BTreeSet<String> = op
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        assert_eq!(declared, templated, "{}: declared path parameters differ from the template", op.name());
    }
}

#[test]
fn every_security_requirement_names_a_declared_scheme() {
    let doc = document();
    let schemes = doc["components"]["securitySchemes"].as_object().expect("no components.securitySchemes");
    for name in ["serviceKey", "adminKey", "userToken"] {
        assert!(schemes.contains_key(name), "security scheme {name} is not declared");
    }
    for op in operations(&doc) {
        let security = op.body["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{} does not state its security (use [] for none)", op.name()));
        for requirement in security {
            for name in requirement.as_object().into_iter().flat_map(|o| o.keys()) {
                assert!(schemes.contains_key(name), "{}: unknown security scheme {name}", op.name());
            }
        }
    }
}
