//! Feast's feature-server endpoints over HTTP (`asof serve --http`), so Feast's own clients
//! (`online_store: {type: remote}`) and anything that speaks Feast's JSON reach asof unchanged.
//!
//! A thin adapter: each endpoint turns Feast's JSON into the gRPC service's request and calls the
//! same [`Serving`] method, so the PIT rule, key checks and limits are the gRPC path's own. The
//! JSON shapes are Feast's (`feast/feature_server.py`): columnar `results` with the join keys
//! first, statuses by name, RFC 3339 event times; errors carry Feast's status codes and its error
//! body (a JSON string holding `{module, class, message}`), which Feast's client raises as the
//! named exception.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

use crate::auth::Tokens;
use crate::error::ServerError;
use crate::json::{OnlineFeaturesJson, push_from_json, timestamp_json, to_json};
use crate::metrics::Metrics;
use crate::proto::v1::{FieldStatus, GetOnlineFeaturesResponse, PushTarget};
use crate::service::Serving;

/// An error as Feast's feature server answers it.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    class: &'static str,
    message: String,
}

impl HttpError {
    fn unprocessable(message: impl Into<String>) -> Self {
        HttpError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            class: "FeastError",
            message: message.into(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        // Feast's body is a JSON string whose content is the JSON of the error (its
        // `FeastError.to_error_detail()`), and its client parses exactly that.
        let detail =
            json!({"module": "feast.errors", "class": self.class, "message": self.message});
        let body = Json::String(detail.to_string()).to_string();
        (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    }
}

impl From<ServerError> for HttpError {
    fn from(e: ServerError) -> Self {
        let message = e.to_string();
        let (status, class) = match &e {
            ServerError::InvalidArgument(m)
            | ServerError::Core(asof_core::CoreError::Request(m)) => {
                if m.starts_with("unknown feature view") {
                    (StatusCode::NOT_FOUND, "FeatureViewNotFoundException")
                } else if m.starts_with("unknown feature service") {
                    (StatusCode::NOT_FOUND, "FeatureServiceNotFoundException")
                } else {
                    (StatusCode::UNPROCESSABLE_ENTITY, "FeastError")
                }
            }
            ServerError::FailedPrecondition(_) => (StatusCode::CONFLICT, "FeastError"),
            ServerError::Online(asof_online::OnlineError::Unavailable { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "FeastError")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "FeastError"),
        };
        HttpError {
            status,
            class,
            message,
        }
    }
}

type HttpResult<T> = Result<T, HttpError>;

/// Parses a JSON body, naming the line and column of a syntax error and the field of a type
/// error.
fn parse<T: DeserializeOwned>(endpoint: &str, body: &[u8]) -> HttpResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        HttpError::unprocessable(format!("{endpoint}: the request body is not valid: {e}"))
    })
}

/// `POST /get-online-features`.
async fn get_online_features(State(serving): State<Serving>, body: Bytes) -> HttpResult<Response> {
    let body: OnlineFeaturesJson = parse("/get-online-features", &body)?;
    let response = serving.get_online_features(body.into_request()?).await?;
    Ok(json_response(&online_json(&response)))
}

/// A response in Feast's columnar shape.
pub fn online_json(response: &GetOnlineFeaturesResponse) -> Json {
    let names = response
        .metadata
        .as_ref()
        .map(|m| m.feature_names.clone())
        .unwrap_or_default();
    let results: Vec<Json> = response
        .results
        .iter()
        .map(|r| {
            json!({
                "values": r.values.iter().map(to_json).collect::<Vec<_>>(),
                "statuses": r.statuses.iter().map(|s| status_name(*s)).collect::<Vec<_>>(),
                "event_timestamps": r.event_timestamps.iter().map(timestamp_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"metadata": {"feature_names": names}, "results": results})
}

fn status_name(s: i32) -> &'static str {
    match FieldStatus::try_from(s) {
        Ok(FieldStatus::Present) => "PRESENT",
        Ok(FieldStatus::NullValue) => "NULL_VALUE",
        Ok(FieldStatus::NotFound) => "NOT_FOUND",
        Ok(FieldStatus::OutsideMaxAge) => "OUTSIDE_MAX_AGE",
        _ => "INVALID",
    }
}

fn json_response(body: &Json) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// The body of `POST /push`.
#[derive(Debug, Deserialize)]
struct PushBody {
    push_source_name: String,
    df: serde_json::Map<String, Json>,
    #[serde(default = "online")]
    to: String,
}

fn online() -> String {
    "online".into()
}

/// The body of `POST /write-to-online-store`.
#[derive(Debug, Deserialize)]
struct WriteBody {
    feature_view_name: String,
    df: serde_json::Map<String, Json>,
}

/// `POST /push`: Feast pushes to a push source, and every view reading it gets the rows. asof has
/// no separate push sources, so the name is a source (every view over it) or a view.
async fn push(State(serving): State<Serving>, body: Bytes) -> HttpResult<StatusCode> {
    let body: PushBody = parse("/push", &body)?;
    let to = match body.to.as_str() {
        "online" => PushTarget::Online,
        "offline" => PushTarget::Offline,
        "online_and_offline" => PushTarget::OnlineAndOffline,
        other => {
            return Err(HttpError::unprocessable(format!(
                "{other} is not a supported push format. Please specify one of these ['online', 'offline', 'online_and_offline']."
            )));
        }
    };
    let snap = serving.snapshot();
    let views: Vec<String> = snap
        .catalog
        .feature_views
        .values()
        .filter(|v| v.name == body.push_source_name || v.source == body.push_source_name)
        .map(|v| v.name.clone())
        .collect();
    if views.is_empty() {
        let names = snap
            .catalog
            .sources
            .keys()
            .chain(snap.catalog.feature_views.keys())
            .map(String::as_str);
        let hint = asof_core::error::did_you_mean(&body.push_source_name, names)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        return Err(HttpError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            class: "PushSourceNotFoundException",
            message: format!(
                "Unable to find push source '{}'{hint}: asof pushes to a source (every view reading it) or a feature view",
                body.push_source_name
            ),
        });
    }
    for view in views {
        let request = push_from_json(&serving.snapshot(), &view, &body.df, to, false)?;
        serving.push_features(request).await?;
    }
    Ok(StatusCode::OK)
}

/// `POST /write-to-online-store`: Feast's remote online store writes materialized rows here,
/// with the event time in `event_timestamp` and the creation time in `created` whatever the
/// source calls them.
async fn write_to_online_store(
    State(serving): State<Serving>,
    body: Bytes,
) -> HttpResult<StatusCode> {
    let body: WriteBody = parse("/write-to-online-store", &body)?;
    let request = push_from_json(
        &serving.snapshot(),
        &body.feature_view_name,
        &body.df,
        PushTarget::Online,
        true,
    )?;
    serving.push_features(request).await?;
    Ok(StatusCode::OK)
}

/// `GET /health`: 200 while the registry loads.
async fn health(State(serving): State<Serving>) -> StatusCode {
    let _ = serving.snapshot();
    StatusCode::OK
}

/// Requires a bearer token on every path but `/health`, when the server has tokens.
async fn authorize(State(tokens): State<Tokens>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match tokens.admit(header) {
        Ok(()) => next.run(request).await,
        Err(message) => HttpError {
            status: StatusCode::UNAUTHORIZED,
            class: "FeastPermissionError",
            message: message.into(),
        }
        .into_response(),
    }
}

/// Counts each Feast endpoint's requests and latency beside the gRPC ones (`/metrics`), with the
/// HTTP status read as the gRPC code it stands for.
async fn record(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let rpc = match request.uri().path() {
        "/get-online-features" => "HTTP /get-online-features",
        "/push" => "HTTP /push",
        "/write-to-online-store" => "HTTP /write-to-online-store",
        _ => return next.run(request).await,
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let code = match response.status() {
        s if s.is_success() => tonic::Code::Ok,
        StatusCode::NOT_FOUND => tonic::Code::NotFound,
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::CONFLICT => tonic::Code::FailedPrecondition,
        StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::OutOfRange,
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        s if s.is_client_error() => tonic::Code::InvalidArgument,
        _ => tonic::Code::Internal,
    };
    metrics.observe(rpc, started, code, code == tonic::Code::Unavailable);
    response
}

/// Feast's endpoints over `serving`, plus `extra` routes (MCP's `/mcp`), all behind `tokens`.
/// Bodies are capped at `serving.limits.max_request_bytes` (413 beyond it), as gRPC requests are.
pub fn router(serving: Serving, tokens: Option<Tokens>, extra: Option<Router>) -> Router {
    let metrics = serving.metrics();
    let max_body = serving.limits().max_request_bytes;
    let mut router = Router::new()
        .route("/get-online-features", post(get_online_features))
        .route("/push", post(push))
        .route("/write-to-online-store", post(write_to_online_store))
        .route("/health", get(health))
        .with_state(serving);
    if let Some(extra) = extra {
        router = router.merge(extra);
    }
    let router = router
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(metrics, record));
    match tokens {
        Some(t) => router.layer(axum::middleware::from_fn_with_state(t, authorize)),
        None => router,
    }
}

/// Serves `router` on `addr` until `shutdown` resolves.
pub async fn serve(
    router: Router,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Transport(format!("cannot listen on {addr} (HTTP): {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServerError::Transport(e.to_string()))?;
    on_ready(local);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServerError::Transport(e.to_string()))
}
