//! The HTTP benchmark's baseline: a trivial axum server answering the same routes as fairuse
//! with a constant JSON body and no work, so `bench/http.sh` can report fairuse's cost as a
//! ratio measured in the same run on the same machine.

use axum::Router;
use axum::routing::{get, post};

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".into());
    let app = Router::new()
        .route(
            "/v1/users/{uid}/decision",
            get(|| async { axum::Json(serde_json::json!({"stage": "none", "stt_allowed": true})) }),
        )
        .route("/v1/usage", post(|_body: axum::body::Bytes| async { axum::Json(serde_json::json!({"accepted": 1})) }));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("baseline listening on http://{addr}");
    axum::serve(listener, app).await.expect("serve");
}
