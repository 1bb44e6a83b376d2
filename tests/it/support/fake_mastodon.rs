//! A fake Mastodon instance: `POST /api/v1/statuses` with bearer tokens, `Idempotency-Key` (a repeated
//! key returns the first status and creates nothing), and rate-limit headers with ISO-8601 resets.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const TOKEN: &str = "mastodon-test-token";

#[derive(Debug, Clone)]
pub struct Status {
    pub id: String,
    pub text: String,
    pub visibility: String,
    pub idempotency_key: String,
}

#[derive(Clone)]
pub struct FakeMastodon {
    statuses: Arc<Mutex<Vec<Status>>>,
    pub url: String,
}

impl FakeMastodon {
    pub async fn start() -> FakeMastodon {
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/api/v1/statuses", post(create))
            .with_state(statuses.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeMastodon { statuses, url }
    }

    pub fn statuses(&self) -> Vec<Status> {
        self.statuses.lock().unwrap().clone()
    }
}

async fn create(
    State(statuses): State<Arc<Mutex<Vec<Status>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "The access token is invalid"})),
        )
            .into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = v
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if text.chars().count() > 600 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"error": "Validation failed: Text character limit of 500 exceeded"})),
        )
            .into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut g = statuses.lock().unwrap();
    let status = match g
        .iter()
        .find(|s| !key.is_empty() && s.idempotency_key == key)
    {
        Some(existing) => existing.clone(),
        None => {
            let s = Status {
                id: format!("1090{}", g.len()),
                text,
                visibility: v
                    .get("visibility")
                    .and_then(Value::as_str)
                    .unwrap_or("public")
                    .to_string(),
                idempotency_key: key,
            };
            g.push(s.clone());
            s
        }
    };
    let mut r = (
        StatusCode::OK,
        axum::Json(
            json!({"id": status.id, "content": status.text, "visibility": status.visibility}),
        ),
    )
        .into_response();
    r.headers_mut()
        .insert("x-ratelimit-limit", "300".parse().unwrap());
    r.headers_mut()
        .insert("x-ratelimit-remaining", "299".parse().unwrap());
    r.headers_mut().insert(
        "x-ratelimit-reset",
        "2030-01-01T00:00:00.000Z".parse().unwrap(),
    );
    r
}
