//! The OpenAPI document (`openapi.json`, served at `/openapi.json`) against the router: every
//! route of `router()` in `src/http.rs` is documented, nothing documented is missing from the
//! router, and the document is internally consistent. The routes are read from the source text,
//! so the test needs no running server and no store.

use std::collections::BTreeSet;

use serde_json::Value;

const HTTP_RS: &str = include_str!("../src/http.rs");
const OPENAPI: &str = include_str!("../openapi.json");

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The text of `router()`'s body: from its signature to the first line that closes it.
fn router_source(src: &str) -> &str {
    let start = src.find("pub fn router(").expect("src/http.rs has no `pub fn router(`");
    let rest = &src[start..];
    let end = rest.find("\n}").expect("router() is not closed by a `}` at the start of a line");
    &rest[..end]
}

/// Byte index just past the `)` that closes the call whose arguments start at `from`, skipping
/// string and char literals (a handler may be a closure with `json!({"status": "ok"})` in it).
fn close_paren(text: &str, from: usize) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 1usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced parentheses in router() after byte {from}");
}

/// The method routers of one `.route(PATH, ...)`'s second argument: `get(h)`, and any chained
/// `.put(h)`, `.delete(h)` ..., i.e. the identifiers called at nesting depth 0.
fn methods_of(args: &str) -> Vec<String> {
    let bytes = args.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let ident = &args[start..i];
            if ident == "omi" && bytes.get(i) == Some(&b'(') {
                // `omi(get(h))` marks one of Omi's paths (http::omi): the methods are inside.
                let end = close_paren(args, i + 1);
                out.extend(methods_of(&args[i + 1..end - 1]));
                i = end;
            } else if bytes.get(i) == Some(&b'(') {
                assert!(
                    METHODS.contains(&ident),
                    "route argument calls `{ident}(..)`, which this test cannot map to an HTTP method: {args}"
                );
                out.push(ident.to_owned());
                i = close_paren(args, i + 1);
            }
        } else if c == b'"' {
            panic!("unexpected string literal in a route's method argument: {args}");
        } else {
            i += 1;
        }
    }
    out
}

/// Every (path, method) of `router()`, parsed from the source.
fn router_routes() -> BTreeSet<(String, String)> {
    let src = router_source(HTTP_RS);
    for unsupported in [".nest(", ".merge(", ".route_service(", ".nest_service("] {
        assert!(
            !src.contains(unsupported),
            "router() uses `{unsupported}`: its routes are not visible to this test; extend it so they are checked too"
        );
    }
    let mut routes = BTreeSet::new();
    let marker = ".route(\"";
    let mut pos = 0;
    while let Some(found) = src[pos..].find(marker) {
        let path_start = pos + found + marker.len();
        let path_len = src[path_start..].find('"').expect("unterminated route path");
        let path = &src[path_start..path_start + path_len];
        let after_path = path_start + path_len + 1;
        let end = close_paren(src, after_path);
        let args = src[after_path..end - 1].trim_start().strip_prefix(',').expect("route path is not followed by `,`");
        let methods = methods_of(args);
        assert!(!methods.is_empty(), "route {path} has no method router: {args}");
        for m in methods {
            assert!(routes.insert((path.to_owned(), m.clone())), "route {m} {path} is registered twice");
        }
        pos = end;
    }
    routes
}

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is not valid JSON")
}

/// Every (path, method) of the document's `paths`, with the operation.
fn document_operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("the document has no `paths` object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().unwrap_or_else(|| panic!("path item {path} is not an object"));
        for (key, operation) in item {
            if METHODS.contains(&key.as_str()) {
                out.push((path.clone(), key.clone(), operation.clone()));
            }
        }
    }
    out
}

fn document_routes(doc: &Value) -> BTreeSet<(String, String)> {
    document_operations(doc).into_iter().map(|(p, m, _)| (p, m)).collect()
}

fn format_routes(routes: &BTreeSet<(String, String)>) -> String {
    routes.iter().map(|(p, m)| format!("{} {p}", m.to_uppercase())).collect::<Vec<_>>().join(", ")
}

/// Follows a local `$ref` (`#/components/...`) if `value` is one.
fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("$ref {r} does not resolve")),
        None => value,
    }
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

#[test]
fn the_route_parser_finds_the_routes_of_the_router() {
    let routes = router_routes();
    // A sanity floor, so a parser that silently finds nothing cannot make the other tests pass.
    assert!(routes.len() >= 20, "only {} routes parsed: {}", routes.len(), format_routes(&routes));
    for expected in [
        ("/v1/usage", "post"),
        ("/healthz", "get"),
        ("/v1/admin/fair-use/exempt/{uid}", "get"),
        ("/v1/admin/fair-use/exempt/{uid}", "put"),
        ("/v1/admin/fair-use/exempt/{uid}", "delete"),
    ] {
        assert!(
            routes.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{} {} not parsed; parsed: {}",
            expected.1,
            expected.0,
            format_routes(&routes)
        );
    }
}

#[test]
fn every_route_in_the_router_is_in_the_openapi_document() {
    let documented = document_routes(&document());
    let missing: BTreeSet<_> = router_routes().difference(&documented).cloned().collect();
    assert!(missing.is_empty(), "routes missing from openapi.json: {}", format_routes(&missing));
}

#[test]
fn every_operation_in_the_openapi_document_is_a_route_of_the_router() {
    let routes = router_routes();
    let stale: BTreeSet<_> = document_routes(&document()).difference(&routes).cloned().collect();
    assert!(stale.is_empty(), "openapi.json documents operations the router does not serve: {}", format_routes(&stale));
}

#[test]
fn every_operation_has_responses_and_a_unique_operation_id() {
    let doc = document();
    let mut ids = BTreeSet::new();
    for (path, method, operation) in document_operations(&doc) {
        let responses = operation["responses"].as_object();
        assert!(
            responses.is_some_and(|r| !r.is_empty()),
            "{} {path} has no (or an empty) `responses` object",
            method.to_uppercase()
        );
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{} {path} has no operationId", method.to_uppercase());
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
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
    for (path, method, operation) in document_operations(&doc) {
        let declared: BTreeSet<String> = doc["paths"][&path]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(operation["parameters"].as_array().into_iter().flatten())
            .map(|p| deref(&doc, p))
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(
                    p["required"],
                    true,
                    "{} {path}: path parameter {} is not required",
                    method.to_uppercase(),
                    p["name"]
                );
                p["name"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        let templated: BTreeSet<String> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        assert_eq!(
            declared,
            templated,
            "{} {path}: declared path parameters differ from the template",
            method.to_uppercase()
        );
    }
}

#[test]
fn every_security_requirement_names_a_declared_scheme() {
    let doc = document();
    let schemes = doc["components"]["securitySchemes"].as_object().expect("no components.securitySchemes");
    for name in ["serviceKey", "adminKey", "userToken"] {
        assert!(schemes.contains_key(name), "security scheme {name} is not declared");
    }
    for (path, method, operation) in document_operations(&doc) {
        let security = operation["security"].as_array().unwrap_or_else(|| {
            panic!("{} {path} does not state its security (use [] for none)", method.to_uppercase())
        });
        for requirement in security {
            for name in requirement.as_object().into_iter().flat_map(|o| o.keys()) {
                assert!(schemes.contains_key(name), "{} {path}: unknown security scheme {name}", method.to_uppercase());
            }
        }
    }
}
