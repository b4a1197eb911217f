//! `asof materialize`, `materialize-incremental`, `serve` and `query`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use asof_core::time::{format_nanos, parse_instant, to_nanos};
use asof_offline::OfflineStore;
use asof_retrieval::{IndexStore, LiveIndexes};
use asof_server::auth::Tokens;
use asof_server::convert::{nanos, timestamp, to_proto};
use asof_server::flight::TrainingSetFlight;
use asof_server::materialize::{incremental_start, materialize as run_materialize, select_views};
use asof_server::proto::v1::feature_serving_client::FeatureServingClient;
use asof_server::proto::v1::get_online_features_request::Kind;
use asof_server::proto::v1::{
    FeatureList, FieldStatus, GetOnlineFeaturesRequest, PushFeaturesRequest, PushTarget,
    RepeatedValue, Value, value,
};
use asof_server::retrieval_log::RetrievalLog;
use asof_server::service::{Security, Serving, serve_secured};
use asof_server::snapshot::FollowedRegistry;

use super::{Ctx, display_path};
use crate::cli::{ConnectionArgs, OutputFormat, PushTo, QueryArgs};
use crate::progress::{rate, spinner, thousands};

pub async fn materialize(
    ctx: &Ctx,
    start: Option<&str>,
    end: &str,
    views: &[String],
    format: OutputFormat,
) -> Result<()> {
    let started = Instant::now();
    let config = ctx.config()?;
    let registry_path = config.registry_path(&ctx.repo);
    let registry = ctx.registry_of(&config)?;
    let views = select_views(&registry, views)?;
    let end = to_nanos(parse_instant(end).map_err(anyhow::Error::msg)?);
    let start = start
        .map(|s| parse_instant(s).map(to_nanos))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let store = asof_online::open(&config.online_store, &ctx.repo).await?;
    let pb = spinner("materializing", ctx.quiet || format == OutputFormat::Json);
    let progress = |view: &str, rows: usize| {
        pb.set_message(format!(
            "materializing {view}: {} rows",
            thousands(rows as u64)
        ))
    };
    let window = |reg: &asof_core::Registry, view: &str| {
        (
            start.unwrap_or_else(|| incremental_start(reg, view, end)),
            end,
        )
    };
    let reports = run_materialize(
        &ctx.repo,
        &registry_path,
        store.as_ref(),
        &views,
        window,
        &progress,
    )
    .await?;
    pb.finish_and_clear();
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(());
    }
    let mut rows = 0;
    let mut values = 0;
    for r in &reports {
        let (read, skipped) = if r.aggregated {
            ("events", "already online or older than the window")
        } else {
            ("keys", "not newer than stored")
        };
        println!(
            "{}: [{} .. {}] {} {read}, {} written ({} {skipped})",
            r.view,
            r.start,
            r.end,
            thousands(r.keys as u64),
            thousands(r.written as u64),
            thousands((r.keys - r.written) as u64)
        );
        rows += r.keys;
        values += r.feature_values;
    }
    println!(
        "Materialized into {}: {}; {}",
        store.describe(),
        rate(rows, "rows", started),
        rate(values, "feature values", started)
    );
    Ok(())
}

pub struct ServeArgs {
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    pub log_retrievals: Option<PathBuf>,
    /// Certificate and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Run the repo's streams in this process.
    pub stream: bool,
    /// Feast's HTTP endpoints.
    pub http: Option<SocketAddr>,
    /// Arrow Flight on a port of its own.
    pub flight: Option<SocketAddr>,
    /// MCP at /mcp on the HTTP address; `Some(allow_push)`.
    pub mcp: Option<bool>,
}

/// The serving state of the repo: its followed registry, online store, indexes, limits and push
/// log; what `serve` and `mcp` both answer from.
async fn repo_serving(
    ctx: &Ctx,
    config: &asof_core::config::RepoConfig,
) -> Result<(Serving, String)> {
    // Followed while serving: an `apply` or `materialize` takes effect on the next request.
    let registry = FollowedRegistry::follow(&config.registry_path(&ctx.repo))?;
    let store = asof_online::open(&config.online_store, &ctx.repo)
        .await
        .context("opening the online store")?;
    let described = store.describe();
    let live = LiveIndexes::new(IndexStore::new(config.index_path(&ctx.repo)));
    let serving = Serving::following(registry, store)
        .with_indexes(live)
        .with_limits(config.serving.limits.clone())
        .with_push_log(config.offline_store.push_log_root(&ctx.repo));
    Ok((serving, described))
}

/// `asof mcp`: MCP over stdio. Nothing but the protocol may reach stdout.
pub async fn mcp(ctx: &Ctx, allow_push: bool) -> Result<()> {
    let config = ctx.config()?;
    let (serving, _) = repo_serving(ctx, &config).await?;
    asof_server::mcp::serve_stdio(serving, allow_push).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn serve(ctx: &Ctx, args: ServeArgs) -> Result<()> {
    let ServeArgs {
        grpc,
        metrics,
        log_retrievals,
        tls,
        stream,
        http,
        flight,
        mcp,
    } = args;
    // The HTTP endpoints are plaintext: beside a TLS server they stay on loopback.
    if let Some(addr) = http
        && tls.is_some()
        && !addr.ip().is_loopback()
    {
        bail!(
            "--http {addr} would serve plaintext HTTP beside a TLS server: bind it to loopback (127.0.0.1) and put a TLS proxy in front, or drop --http"
        );
    }
    let config = ctx.config()?;
    let read =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading TLS file {}", p.display()));
    let security = Security {
        tls: tls
            .as_ref()
            .map(|(c, k)| anyhow::Ok((read(c)?, read(k)?)))
            .transpose()?,
        tokens: config
            .serving
            .auth
            .as_ref()
            .map(|a| Tokens::load(a, &ctx.repo))
            .transpose()?,
    };
    let (mut serving, described) = repo_serving(ctx, &config).await?;
    let (views, indexes) = {
        let snap = serving.snapshot();
        (
            snap.registry.feature_views.len(),
            snap.registry.document_indexes.len(),
        )
    };
    let stream_metrics = asof_stream::StreamMetrics::default();
    let streamed_registry = stream.then(|| serving.snapshot().registry.clone());
    let stream_store = Arc::clone(serving.online_store());
    if stream {
        serving = serving.with_extra_metrics(|r| stream_metrics.register(r));
    }
    let streams = match streamed_registry {
        Some(registry) => {
            let server_metrics = serving.metrics();
            let metrics = stream_metrics.with_on_written(Arc::new(move |view: &str, ts: i64| {
                server_metrics.saw_event(view, ts)
            }));
            super::stream::start_beside_server(ctx, &config, &registry, stream_store, metrics)?
        }
        None => None,
    };
    let log = log_retrievals
        .map(|dir| RetrievalLog::new(&dir))
        .transpose()?;
    if let Some(log) = &log {
        serving = serving.with_retrieval_log(log.clone());
        eprintln!("logging retrievals to {}", log.dir().display());
    }
    let flusher = log.clone().map(|log| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                tick.tick().await;
                let log = log.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || log.flush()).await {
                    tracing::error!(error = %e, "writing the retrieval log");
                }
            }
        })
    });
    // One signal stops every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let shutdown = stopped();
    let metrics_listener = asof_server::metrics::Metrics::bind(metrics).await?;
    eprintln!(
        "metrics on http://{}/metrics",
        metrics_listener.local_addr()?
    );
    let metrics_task = tokio::spawn(serving.metrics().serve(metrics_listener));
    let scheme = if security.tls.is_some() {
        "grpcs"
    } else {
        "grpc"
    };
    let auth = if security.tokens.is_some() {
        " (bearer tokens required)"
    } else {
        ""
    };
    // Training sets over Flight read the offline store as `asof training-set` does.
    let limit = asof_offline::memory::MemoryLimit::default_for_machine();
    let offline = match limit {
        Some(l) => OfflineStore::with_memory_limit(&ctx.repo, l),
        None => OfflineStore::new(&ctx.repo),
    }
    .with_push_log(config.offline_store.push_log_root(&ctx.repo));
    let flight_service = TrainingSetFlight::new(serving.clone(), Arc::new(offline));
    let mut side_tasks = Vec::new();
    if let Some(addr) = flight {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        side_tasks.push(tokio::spawn(asof_server::service::serve_flight(
            flight_service.clone(),
            addr,
            security.clone(),
            stopped(),
            move |a| {
                let _ = ready_tx.send(a);
            },
        )));
        if let Ok(a) = ready_rx.await {
            println!("Arrow Flight training sets on {scheme}://{a}{auth}");
        }
    }
    if let Some(addr) = http {
        let mcp_routes = mcp.map(|allow_push| {
            axum::Router::new().nest_service(
                "/mcp",
                asof_server::mcp::http_service(serving.clone(), allow_push),
            )
        });
        let router =
            asof_server::http::router(serving.clone(), security.tokens.clone(), mcp_routes);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        side_tasks.push(tokio::spawn(asof_server::http::serve(
            router,
            addr,
            stopped(),
            move |a| {
                let _ = ready_tx.send(a);
            },
        )));
        match ready_rx.await {
            Ok(a) => {
                println!("Feast HTTP endpoints on http://{a}{auth}");
                if let Some(allow_push) = mcp {
                    let mode = if allow_push {
                        "read-write"
                    } else {
                        "read-only"
                    };
                    println!("MCP ({mode}) on http://{a}/mcp");
                }
            }
            Err(_) => {
                // The task ended before it was ready: its error says why.
                if let Some(task) = side_tasks.pop() {
                    task.await??;
                }
            }
        }
    }
    let served = serve_secured(serving, grpc, security, Some(flight_service), shutdown, move |addr| {
        // Tests and scripts wait for this line.
        println!(
            "asof serving {views} feature views and {indexes} document indexes from {described} on {scheme}://{addr}{auth}"
        );
    })
    .await;
    if let Some((stop, task)) = streams {
        let _ = stop.send(true);
        let _ = task.await;
    }
    for task in side_tasks {
        if let Ok(Err(e)) = task.await {
            eprintln!("error: {e}");
        }
    }
    metrics_task.abort();
    if let Some(f) = flusher {
        f.abort();
    }
    if let Some(log) = log {
        for file in log.flush()? {
            eprintln!("wrote retrieval log {}", file.display());
        }
    }
    Ok(served?)
}

/// `driver_id=1001,1002` -> ("driver_id", [1001, 1002]); integers when they parse, else strings.
fn parse_entity(arg: &str) -> Result<(String, RepeatedValue)> {
    let Some((name, values)) = arg.split_once('=') else {
        bail!("bad --entity `{arg}`: write `key=value[,value...]`, e.g. `driver_id=1001,1002`");
    };
    let values = values
        .split(',')
        .map(|v| Value {
            kind: Some(
                v.trim()
                    .parse::<i64>()
                    .map(value::Kind::Int64Val)
                    .unwrap_or_else(|_| value::Kind::StringVal(v.trim().to_string())),
            ),
        })
        .collect();
    Ok((name.trim().to_string(), RepeatedValue { values }))
}

fn show(v: &Value) -> String {
    match &v.kind {
        None => "null".into(),
        Some(value::Kind::BoolVal(b)) => b.to_string(),
        Some(value::Kind::Int32Val(i)) => i.to_string(),
        Some(value::Kind::Int64Val(i)) => i.to_string(),
        Some(value::Kind::FloatVal(f)) => f.to_string(),
        Some(value::Kind::DoubleVal(f)) => f.to_string(),
        Some(value::Kind::StringVal(s)) => s.clone(),
        Some(value::Kind::BytesVal(b)) => format!("{b:?}"),
        Some(value::Kind::TimestampVal(t)) => format_nanos(nanos(t)),
        Some(value::Kind::ListVal(l)) => format!(
            "[{}]",
            l.values.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
    }
}

pub async fn query(args: &QueryArgs) -> Result<()> {
    let mut client = connect(&args.server, &args.connection).await?;
    let entities: HashMap<String, RepeatedValue> = args
        .entities
        .iter()
        .map(|e| parse_entity(e))
        .collect::<Result<_>>()?;
    let kind = match &args.selection.service {
        Some(s) => Kind::FeatureService(s.clone()),
        None => Kind::Features(FeatureList {
            features: args.selection.features.clone(),
        }),
    };
    let as_of = args
        .as_of
        .as_deref()
        .map(|t| parse_instant(t).map(|d| timestamp(to_nanos(d))))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let resp = client
        .get_online_features(GetOnlineFeaturesRequest {
            kind: Some(kind),
            entities,
            full_feature_names: args.full_feature_names,
            as_of,
        })
        .await
        .map_err(|s| anyhow::anyhow!("the server answered {:?}: {}", s.code(), s.message()))?
        .into_inner();
    let names = resp.metadata.map(|m| m.feature_names).unwrap_or_default();
    let rows = resp.results.first().map_or(0, |r| r.values.len());
    if args.format.output == OutputFormat::Json {
        let mut out = Vec::new();
        for row in 0..rows {
            let mut obj = serde_json::Map::new();
            for (name, r) in names.iter().zip(&resp.results) {
                let status = FieldStatus::try_from(r.statuses[row])
                    .map(|s| s.as_str_name())
                    .unwrap_or("INVALID");
                obj.insert(name.clone(), serde_json::json!({"value": show(&r.values[row]), "status": status, "event_timestamp": r.event_timestamps[row].seconds.ne(&0).then(|| format_nanos(nanos(&r.event_timestamps[row])))}));
            }
            out.push(serde_json::Value::Object(obj));
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "as of {}",
        resp.as_of
            .as_ref()
            .map(|t| format_nanos(nanos(t)))
            .unwrap_or_default()
    );
    for row in 0..rows {
        for (name, r) in names.iter().zip(&resp.results) {
            let status = FieldStatus::try_from(r.statuses[row])
                .map(|s| s.as_str_name())
                .unwrap_or("INVALID");
            println!("  {name:<28} {:<24} {status}", show(&r.values[row]));
        }
        if row + 1 < rows {
            println!();
        }
    }
    Ok(())
}

/// A client of `server` (`http://` or `https://`), sending `--token` with every request and
/// trusting `--ca` for TLS.
async fn connect(
    server: &str,
    conn: &ConnectionArgs,
) -> Result<
    FeatureServingClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
    >,
> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(server.to_string())
        .with_context(|| format!("bad --server URL `{server}`"))?;
    if server.starts_with("https://") {
        let mut tls = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &conn.ca {
            let pem =
                std::fs::read(ca).with_context(|| format!("reading --ca {}", ca.display()))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        endpoint = endpoint
            .tls_config(tls)
            .context("configuring TLS for --server")?;
    } else if conn.ca.is_some() {
        bail!("--ca is for TLS servers: use an https:// --server URL");
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    let bearer = match &conn.token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .context("--token holds characters a header cannot carry")?,
        ),
        None => None,
    };
    Ok(FeatureServingClient::with_interceptor(
        channel,
        Bearer(bearer),
    ))
}

/// Adds `authorization: Bearer <token>` to every request, when a token was given.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// `asof push`: the file's rows through the same push path as `PushFeatures` (validation, key
/// types, the push log, the never-regress online write), in this process.
pub async fn push(
    ctx: &Ctx,
    view: &str,
    input: &std::path::Path,
    to: PushTo,
    format: OutputFormat,
) -> Result<()> {
    let started = Instant::now();
    let config = ctx.config()?;
    let registry = ctx.registry_of(&config)?;
    let table = asof_offline::EntityTable::read(input).await?;
    let store = asof_online::open(&config.online_store, &ctx.repo).await?;
    let described = store.describe();
    let serving = Serving::new(registry.clone(), store)
        .with_push_log(config.offline_store.push_log_root(&ctx.repo));
    let batch = &table.batch;
    let spec = registry.feature_views.get(view).map(|r| r.spec.clone());
    let mut columns = HashMap::new();
    let mut deleted = Vec::new();
    for (f, array) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.name() == asof_core::pit::DELETED_COLUMN {
            // A delete-event flag per row: a null flag is not a delete.
            for row in 0..array.len() {
                deleted.push(match asof_server::convert::value_at(array, row) {
                    asof_core::value::Value::Bool(b) => b,
                    asof_core::value::Value::Null => false,
                    other => bail!(
                        "column `{}` of {} row {row}: {other:?}; it marks delete events and must be boolean (true/false)",
                        f.name(),
                        display_path(input)
                    ),
                });
            }
            continue;
        }
        // Features take their declared type (a CSV float is float64 whatever the view says).
        let array = match spec.as_ref().and_then(|s| s.feature(f.name())) {
            Some(feature) => asof_offline::types::cast_to_dtype(array, &feature.dtype)
                .with_context(|| format!("column `{}` of {}", f.name(), display_path(input)))?,
            None => std::sync::Arc::clone(array),
        };
        let values = (0..array.len())
            .map(|row| to_proto(&asof_server::convert::value_at(&array, row)))
            .collect();
        columns.insert(f.name().clone(), RepeatedValue { values });
    }
    let to = match to {
        PushTo::Online => PushTarget::Online,
        PushTo::Offline => PushTarget::Offline,
        PushTo::OnlineAndOffline => PushTarget::OnlineAndOffline,
    };
    let resp = serving
        .push_features(PushFeaturesRequest {
            feature_view: view.to_string(),
            columns,
            to: to as i32,
            deleted,
        })
        .await
        .with_context(|| format!("pushing {} to `{view}`", display_path(input)))?;
    if format == OutputFormat::Json {
        println!(
            "{}",
            serde_json::json!({"view": view, "rows": batch.num_rows(), "written_online": resp.written, "not_newer_online": resp.skipped, "logged_offline": resp.logged})
        );
    } else if !ctx.quiet {
        println!(
            "Pushed {} to `{view}`: {} written to {described} ({} not newer than stored), {} appended to the offline push log; {}",
            display_path(input),
            thousands(resp.written),
            thousands(resp.skipped),
            thousands(resp.logged),
            rate(batch.num_rows(), "rows", started)
        );
    }
    Ok(())
}
