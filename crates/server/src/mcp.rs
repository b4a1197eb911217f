//! MCP for agents (`asof mcp` over stdio, `asof serve --mcp` at `/mcp`): tools over the same
//! [`Serving`] methods as gRPC and HTTP, and the registry's objects as resources.
//!
//! A bad argument is a tool error (`isError: true`) whose text says what to change, never a
//! protocol error: MCP clients show protocol errors to the model as an opaque failure, and an
//! agent can only fix what it can read. Writes (`push`) exist only with `--allow-push`.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::error::ServerError;
use crate::http::online_json;
use crate::json::{OnlineFeaturesJson, as_of_from_json, push_from_json};
use crate::proto::v1::{
    DocumentHit, PushTarget, RetrieveAndRankRequest, SearchDocumentsRequest, SearchMode,
    retrieve_and_rank_request, search_documents_request,
};
use crate::service::Serving;

/// A tool's answer: pretty JSON for the model to read, or the error it can act on.
type ToolResult = Result<String, String>;

fn answer(value: &Json) -> ToolResult {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

fn failed(e: ServerError) -> String {
    e.to_string()
}

/// `as_of` as the tools take it: RFC 3339, a date, or `now`.
fn as_of(text: Option<&str>) -> Result<Option<prost_types::Timestamp>, String> {
    as_of_from_json(text).map_err(failed)
}

fn search_mode(mode: Option<&str>) -> Result<i32, String> {
    Ok(match mode {
        None => SearchMode::Unspecified,
        Some("dense") => SearchMode::Dense,
        Some("sparse") => SearchMode::Sparse,
        Some("hybrid") => SearchMode::Hybrid,
        Some(other) => {
            return Err(format!(
                "`mode` is `{other}`; use `dense`, `sparse` or `hybrid` (or leave it out for the index's own)"
            ));
        }
    } as i32)
}

fn hit_json(h: &DocumentHit) -> Json {
    json!({
        "doc_id": h.doc_id,
        "chunk_id": h.chunk_id,
        "score": h.score,
        "text": h.text,
        "metadata": h.metadata,
        "doc_version": h.doc_version,
        "indexed_at": h.indexed_at.as_ref().map(crate::json::timestamp_json),
    })
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DescribeArgs {
    /// The name of a feature view, source, entity, feature service or document index.
    pub name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// The document index.
    pub index: String,
    /// The question or text to search for.
    pub query: String,
    /// Chunks to return (default 10).
    #[serde(default)]
    pub k: Option<u32>,
    /// `dense`, `sparse` or `hybrid`; default the index's own mode.
    #[serde(default)]
    pub mode: Option<String>,
    /// Metadata field -> required value.
    #[serde(default)]
    pub filters: HashMap<String, String>,
    /// Only documents as they were at this instant (RFC 3339); default now.
    #[serde(default)]
    pub as_of: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RankArgs {
    /// The document index.
    pub index: String,
    /// The question or text to search for.
    pub query: String,
    /// Hits to return (default 10).
    #[serde(default)]
    pub k: Option<u32>,
    /// Feature references to join onto each hit; default the index's reranker features.
    #[serde(default)]
    pub features: Vec<String>,
    /// Metadata field -> required value.
    #[serde(default)]
    pub filters: HashMap<String, String>,
    /// Read features as of this instant (RFC 3339); default now.
    #[serde(default)]
    pub as_of: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PushArgs {
    /// The feature view.
    pub view: String,
    /// Column -> one value per row, in the source's column names: join keys, the timestamp
    /// column (RFC 3339) and features.
    pub columns: serde_json::Map<String, Json>,
    /// `online`, `offline` or `online_and_offline` (default).
    #[serde(default)]
    pub to: Option<String>,
}

/// asof's MCP server: one per session, all sharing one [`Serving`].
#[derive(Debug, Clone)]
pub struct AsofMcp {
    serving: Serving,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl AsofMcp {
    /// The server; `allow_push` adds the `push` tool (read-only otherwise).
    pub fn new(serving: Serving, allow_push: bool) -> Self {
        let mut tool_router = Self::tool_router();
        if !allow_push {
            tool_router.remove_route("push");
        }
        AsofMcp {
            serving,
            tool_router,
        }
    }

    #[tool(
        description = "List the feature views: names, join keys, features with types, TTL, and how far each is materialized."
    )]
    async fn list_feature_views(&self) -> ToolResult {
        let views: Vec<Json> = self
            .serving
            .list_feature_views()
            .feature_views
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "join_keys": v.join_keys,
                    "features": v.features.iter().map(|f| json!({"name": f.name, "dtype": f.dtype})).collect::<Vec<_>>(),
                    "ttl_seconds": v.ttl_seconds,
                    "online": v.online,
                    "materialized_until": v.materialized_until.as_ref().map(crate::json::timestamp_json),
                })
            })
            .collect();
        answer(&json!({ "feature_views": views }))
    }

    #[tool(
        description = "Describe one registry object by name (feature view, source, entity, feature service or document index): its full definition."
    )]
    async fn describe(&self, Parameters(args): Parameters<DescribeArgs>) -> ToolResult {
        let snap = self.serving.snapshot();
        match registry_object(&snap.catalog, &args.name) {
            Some((kind, definition)) => {
                answer(&json!({"kind": kind, "name": args.name, "definition": definition}))
            }
            None => {
                let names = all_names(&snap.catalog);
                let hint = asof_core::error::did_you_mean(
                    &args.name,
                    names.iter().map(|(_, n)| n.as_str()),
                )
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
                Err(format!(
                    "nothing is named `{}`{hint}; call list_feature_views, or read the registry resources",
                    args.name
                ))
            }
        }
    }

    #[tool(
        description = "Read online feature values for entity rows, point-in-time correct as of now (or `as_of`). Answers columnar: feature_names, and per column values, statuses (PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE) and event_timestamps."
    )]
    async fn get_online_features(
        &self,
        Parameters(args): Parameters<OnlineFeaturesJson>,
    ) -> ToolResult {
        let request = args.into_request().map_err(failed)?;
        let response = self
            .serving
            .get_online_features(request)
            .await
            .map_err(failed)?;
        answer(&online_json(&response))
    }

    #[tool(
        description = "Search a document index for chunks relevant to a text query (dense, sparse BM25 or hybrid). Each hit has its document id, text, score, metadata and version; `abstained` means the index's contract found too few trustworthy hits."
    )]
    async fn search_documents(&self, Parameters(args): Parameters<SearchArgs>) -> ToolResult {
        let response = self
            .serving
            .search_documents(SearchDocumentsRequest {
                index: args.index,
                query: Some(search_documents_request::Query::Text(args.query)),
                k: args.k.unwrap_or(0),
                filters: args.filters,
                mode: search_mode(args.mode.as_deref())?,
                as_of: as_of(args.as_of.as_deref())?,
                ..Default::default()
            })
            .await
            .map_err(failed)?;
        answer(&json!({
            "index": response.index,
            "version": response.version,
            "model": response.model,
            "abstained": response.abstained,
            "excluded": response.excluded,
            "hits": response.hits.iter().map(hit_json).collect::<Vec<_>>(),
        }))
    }

    #[tool(
        description = "Search a document index and join each hit's document features (the index's reranker features, or `features`), read as of now or `as_of`: what a reranker sees."
    )]
    async fn retrieve_and_rank(&self, Parameters(args): Parameters<RankArgs>) -> ToolResult {
        let response = self
            .serving
            .retrieve_and_rank(RetrieveAndRankRequest {
                index: args.index,
                query: Some(retrieve_and_rank_request::Query::Text(args.query)),
                k: args.k.unwrap_or(0),
                filters: args.filters,
                features: args.features,
                as_of: as_of(args.as_of.as_deref())?,
                ..Default::default()
            })
            .await
            .map_err(failed)?;
        answer(&json!({
            "request_id": response.request_id,
            "index": response.index,
            "version": response.version,
            "abstained": response.abstained,
            "excluded": response.excluded,
            "hits": response.hits.iter().map(hit_json).collect::<Vec<_>>(),
            "features": response.features.as_ref().map(online_json),
        }))
    }

    #[tool(
        description = "How fresh each feature view is online: rows, deletes, newest event, materialization watermark, lag, and whether it breaks its freshness bound."
    )]
    async fn status(&self) -> ToolResult {
        let snap = self.serving.snapshot();
        let views = crate::status::views(
            &snap.registry,
            self.serving.online_store().as_ref(),
            chrono::Utc::now(),
        )
        .await
        .map_err(failed)?;
        answer(&json!({ "views": views }))
    }

    #[tool(
        description = "Push rows to a feature view (online and offline by default): columns in the source's names, one list per column, timestamps as RFC 3339."
    )]
    async fn push(&self, Parameters(args): Parameters<PushArgs>) -> ToolResult {
        let to = match args.to.as_deref() {
            None | Some("online_and_offline") => PushTarget::OnlineAndOffline,
            Some("online") => PushTarget::Online,
            Some("offline") => PushTarget::Offline,
            Some(other) => {
                return Err(format!(
                    "`to` is `{other}`; use `online`, `offline` or `online_and_offline`"
                ));
            }
        };
        let request = push_from_json(
            &self.serving.snapshot(),
            &args.view,
            &args.columns,
            to,
            false,
        )
        .map_err(failed)?;
        let written = self.serving.push_features(request).await.map_err(failed)?;
        answer(
            &json!({"written": written.written, "skipped": written.skipped, "logged": written.logged}),
        )
    }
}

/// Every registry object's kind and name, in resource order.
fn all_names(catalog: &asof_core::Catalog) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    out.extend(
        catalog
            .feature_views
            .keys()
            .map(|n| ("feature_view", n.clone())),
    );
    out.extend(catalog.sources.keys().map(|n| ("source", n.clone())));
    out.extend(catalog.entities.keys().map(|n| ("entity", n.clone())));
    out.extend(
        catalog
            .feature_services
            .keys()
            .map(|n| ("feature_service", n.clone())),
    );
    out.extend(
        catalog
            .document_indexes
            .keys()
            .map(|n| ("document_index", n.clone())),
    );
    out
}

/// A registry object's kind and definition by name (views first, as names may repeat across
/// kinds).
fn registry_object(catalog: &asof_core::Catalog, name: &str) -> Option<(&'static str, Json)> {
    let def = |v: Result<Json, serde_json::Error>| v.unwrap_or(Json::Null);
    if let Some(v) = catalog.feature_views.get(name) {
        return Some(("feature_view", def(serde_json::to_value(v))));
    }
    if let Some(v) = catalog.sources.get(name) {
        return Some(("source", def(serde_json::to_value(v))));
    }
    if let Some(v) = catalog.entities.get(name) {
        return Some(("entity", def(serde_json::to_value(v))));
    }
    if let Some(v) = catalog.feature_services.get(name) {
        return Some(("feature_service", def(serde_json::to_value(v))));
    }
    if let Some(v) = catalog.document_indexes.get(name) {
        return Some(("document_index", def(serde_json::to_value(v))));
    }
    None
}

/// `asof://feature_view/driver_stats` and so on.
fn resource_uri(kind: &str, name: &str) -> String {
    format!("asof://{kind}/{name}")
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AsofMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_instructions(
            "asof is a feature store: feature views hold timestamped feature values per entity, read point-in-time correct; document indexes answer searches. Start with list_feature_views, then get_online_features; search_documents and retrieve_and_rank for documents. Registry objects are resources (asof://<kind>/<name>).",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let snap = self.serving.snapshot();
        let resources = all_names(&snap.catalog)
            .into_iter()
            .map(|(kind, name)| {
                Resource::new(resource_uri(kind, &name), name.clone())
                    .with_description(format!("the {} `{name}`", kind.replace('_', " ")))
                    .with_mime_type("application/json")
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let snap = self.serving.snapshot();
        let found = request
            .uri
            .strip_prefix("asof://")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(kind, name)| {
                registry_object(&snap.catalog, name).filter(|(k, _)| *k == kind)
            });
        match found {
            Some((_, definition)) => Ok(ReadResourceResult::new(vec![ResourceContents::text(
                serde_json::to_string_pretty(&definition).unwrap_or_default(),
                request.uri,
            )])
            .into()),
            None => Err(ErrorData::resource_not_found(
                format!(
                    "no registry object at `{}`; resources are asof://<kind>/<name> (list them with resources/list)",
                    request.uri
                ),
                None,
            )),
        }
    }
}

/// The streamable HTTP transport, to mount at `/mcp`.
pub fn http_service(
    serving: Serving,
    allow_push: bool,
) -> StreamableHttpService<AsofMcp, LocalSessionManager> {
    let server = AsofMcp::new(serving, allow_push);
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    )
}

/// Serves MCP over this process's stdin and stdout until the client closes them.
pub async fn serve_stdio(serving: Serving, allow_push: bool) -> Result<(), ServerError> {
    use rmcp::ServiceExt;
    let running = AsofMcp::new(serving, allow_push)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| ServerError::Transport(format!("MCP over stdio: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| ServerError::Transport(format!("MCP over stdio: {e}")))?;
    Ok(())
}
