//! Where each stream is, for `asof status`: its checkpoint, and (when the database answers within
//! a few seconds) how far the server's WAL is past it.

use std::path::Path;
use std::time::Duration;

use asof_core::{Registry, RepoConfig};
use chrono::{DateTime, Utc};
use pgwire_replication::Lsn;
use serde::Serialize;

use crate::checkpoint;
use crate::connect::{Server, quote_literal};
use crate::error::StreamResult;

#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    /// The source or index.
    pub name: String,
    pub table: String,
    pub slot: String,
    /// The last applied commit's end LSN (none before the first run).
    pub applied_lsn: Option<String>,
    pub snapshot_done: bool,
    pub last_commit_at: Option<DateTime<Utc>>,
    pub checkpoint_at: Option<DateTime<Utc>>,
    /// The server's current WAL position.
    pub server_lsn: Option<String>,
    /// WAL written past the applied LSN (other tables' changes included).
    pub lag_bytes: Option<u64>,
    /// 0 when nothing is past the applied LSN, else the checkpoint's age.
    pub lag_seconds: Option<f64>,
    /// Whether a stream holds the slot now.
    pub slot_active: Option<bool>,
    /// Why the database could not be asked.
    pub error: Option<String>,
}

/// The status of every PostgreSQL source and index of `registry`.
pub async fn streams(
    repo_dir: &Path,
    config: &RepoConfig,
    registry: &Registry,
    now: DateTime<Utc>,
) -> StreamResult<Vec<StreamStatus>> {
    let catalog = registry.catalog();
    let registry_path = config.registry_path(repo_dir);
    let mut out = Vec::new();
    for name in crate::streamable(registry) {
        let table = match catalog.sources.get(&name) {
            Some(s) => s.postgres(),
            None => catalog.document_indexes[&name].source.postgres(),
        }
        .expect("validated: postgres sources name a table");
        let slot = crate::slot_name(&registry.project, &name);
        let ck = checkpoint::load(&checkpoint::path(&registry_path, &slot))?;
        let mut status = StreamStatus {
            name: name.clone(),
            table: table.table.to_string(),
            slot: slot.clone(),
            applied_lsn: ck.as_ref().map(|c| c.lsn.clone()),
            snapshot_done: ck.as_ref().is_some_and(|c| c.snapshot_done),
            last_commit_at: ck.as_ref().and_then(|c| c.last_commit_at),
            checkpoint_at: ck.as_ref().map(|c| c.updated_at),
            server_lsn: None,
            lag_bytes: None,
            lag_seconds: None,
            slot_active: None,
            error: None,
        };
        let asked = tokio::time::timeout(Duration::from_secs(5), ask(&table, &name, &slot)).await;
        match asked {
            Ok(Ok((server_lsn, active))) => {
                if let (Some(c), Some(s)) = (&ck, server_lsn) {
                    let lag = s.as_u64().saturating_sub(c.lsn().as_u64());
                    status.lag_bytes = Some(lag);
                    status.lag_seconds = Some(if lag == 0 {
                        0.0
                    } else {
                        (now - c.updated_at).as_seconds_f64().max(0.0)
                    });
                }
                status.server_lsn = server_lsn.map(|l| l.to_string());
                status.slot_active = Some(active);
            }
            Ok(Err(e)) => status.error = Some(e.to_string()),
            Err(_) => status.error = Some("PostgreSQL did not answer within 5 s".into()),
        }
        out.push(status);
    }
    Ok(out)
}

/// The server's WAL position and whether the slot is held.
async fn ask(
    table: &asof_core::spec::PostgresTable<'_>,
    name: &str,
    slot: &str,
) -> StreamResult<(Option<Lsn>, bool)> {
    let what = format!("`{name}`");
    let server = Server::from_table(table, &what)?;
    let mut client = server.session(&what, slot, slot, None).await?;
    let rows = client
        .simple_query(&format!(
            "SELECT pg_current_wal_lsn()::text, (SELECT active::text FROM pg_replication_slots WHERE slot_name = {})",
            quote_literal(slot)
        ))
        .await
        .map_err(|e| server.error(&what, e))?;
    let cell = |i: usize| {
        rows.first()
            .and_then(|r| r.get(i).cloned().flatten())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let lsn = cell(0).and_then(|s| Lsn::parse(&s).ok());
    Ok((lsn, cell(1).as_deref() == Some("true")))
}
