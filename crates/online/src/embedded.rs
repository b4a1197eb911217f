//! The embedded store: a redb file inside the repo, for local use with no server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use asof_core::value::HEADER_LEN;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{OnlineError, OnlineResult, OnlineStore};

const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");

#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in folder `dir`.
    pub fn open(dir: &Path) -> OnlineResult<Self> {
        let err = |e: String| OnlineError::Embedded {
            path: dir.to_path_buf(),
            message: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let file = dir.join("online.redb");
        let db = Database::create(&file)
            .map_err(|e| err(format!("{e} (is another asof process using it?)")))?;
        let txn = db.begin_write().map_err(|e| err(e.to_string()))?;
        txn.open_table(ROWS).map_err(|e| err(e.to_string()))?;
        txn.commit().map_err(|e| err(e.to_string()))?;
        Ok(EmbeddedStore {
            db: Arc::new(db),
            path: dir.to_path_buf(),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> OnlineError {
        OnlineError::Embedded {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, String> + Send + 'static,
    ) -> OnlineResult<T> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(e))
    }
}

#[async_trait::async_trait]
impl OnlineStore for EmbeddedStore {
    async fn write(&self, rows: Vec<(Vec<u8>, Vec<u8>)>) -> OnlineResult<usize> {
        self.blocking(move |db| {
            let s = |e: &dyn std::fmt::Display| e.to_string();
            let txn = db.begin_write().map_err(|e| s(&e))?;
            let mut written = 0;
            {
                let mut table = txn.open_table(ROWS).map_err(|e| s(&e))?;
                for (k, v) in &rows {
                    let newer = match table.get(k.as_slice()).map_err(|e| s(&e))? {
                        Some(cur) => header(v.as_slice()) > header(cur.value()),
                        None => true,
                    };
                    if newer {
                        table
                            .insert(k.as_slice(), v.as_slice())
                            .map_err(|e| s(&e))?;
                        written += 1;
                    }
                }
            }
            txn.commit().map_err(|e| s(&e))?;
            Ok(written)
        })
        .await
    }

    async fn read(&self, keys: Vec<Vec<u8>>) -> OnlineResult<Vec<Option<Vec<u8>>>> {
        self.blocking(move |db| {
            let s = |e: &dyn std::fmt::Display| e.to_string();
            let txn = db.begin_read().map_err(|e| s(&e))?;
            let table = txn.open_table(ROWS).map_err(|e| s(&e))?;
            keys.iter()
                .map(|k| {
                    table
                        .get(k.as_slice())
                        .map(|v| v.map(|v| v.value().to_vec()))
                        .map_err(|e| s(&e))
                })
                .collect()
        })
        .await
    }

    async fn delete_prefix(&self, prefix: Vec<u8>) -> OnlineResult<usize> {
        self.blocking(move |db| {
            let s = |e: &dyn std::fmt::Display| e.to_string();
            let txn = db.begin_write().map_err(|e| s(&e))?;
            let n;
            {
                let mut table = txn.open_table(ROWS).map_err(|e| s(&e))?;
                let keys: Vec<Vec<u8>> = table
                    .range(prefix.as_slice()..)
                    .map_err(|e| s(&e))?
                    .map_while(|r| {
                        r.ok()
                            .map(|(k, _)| k.value().to_vec())
                            .filter(|k| k.starts_with(&prefix))
                    })
                    .collect();
                n = keys.len();
                for k in keys {
                    table.remove(k.as_slice()).map_err(|e| s(&e))?;
                }
            }
            txn.commit().map_err(|e| s(&e))?;
            Ok(n)
        })
        .await
    }

    fn describe(&self) -> String {
        format!("embedded {}", self.path.display())
    }
}

fn header(row: &[u8]) -> &[u8] {
    &row[..HEADER_LEN.min(row.len())]
}
