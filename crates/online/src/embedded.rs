//! The embedded store: a SQLite file inside the repo, for local use with no server.
//!
//! SQLite in WAL mode lets several processes share the file: `asof serve` keeps reading while
//! `materialize`, `apply` or a stream worker write, and each read transaction sees every write
//! committed before it began, so the server answers with new rows on its next request. Writers
//! queue on SQLite's own lock (`busy_timeout`), never on a lock file of ours.
//!
//! Rows keep the byte-ordered header of `asof_core::value`, and the never-regress rule is one SQL
//! upsert: a row replaces the stored one only if its header compares greater (SQLite compares
//! BLOBs with `memcmp`), decided inside the write transaction.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asof_core::value::{HEADER_LEN, StoredEvent};
use rusqlite::{Connection, OpenFlags, params};

use crate::{OnlineError, OnlineResult, OnlineStore};

const FILE: &str = "online.sqlite";

/// How long a writer waits for another process's write transaction before giving up. Writers hold
/// the lock for one batch (milliseconds), so this is only reached when something is wrong; it is
/// no longer than the server's request deadline, so a push blocked on it still answers in time.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const UPSERT_IF_NEWER: &str = "INSERT INTO rows (k, v) VALUES (?1, ?2)
     ON CONFLICT (k) DO UPDATE SET v = excluded.v
     WHERE substr(excluded.v, 1, ?3) > substr(rows.v, 1, ?3)";

#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    /// Idle connections: a connection serves one blocking task at a time.
    pool: Arc<Mutex<Vec<Connection>>>,
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
        if dir.join("online.redb").exists() {
            tracing::warn!(
                "{} holds an online store of an older asof (online.redb); it is no longer read: run `asof materialize` to refill the new one",
                dir.display()
            );
        }
        let store = EmbeddedStore {
            pool: Arc::default(),
            path: dir.to_path_buf(),
        };
        let conn = store.connect()?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS rows (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS events (k BLOB NOT NULL, m BLOB NOT NULL, PRIMARY KEY (k, m)) WITHOUT ROWID;",
        )
        .map_err(|e| store.err(e))?;
        store.give_back(conn);
        Ok(store)
    }

    fn connect(&self) -> OnlineResult<Connection> {
        let file = self.path.join(FILE);
        let conn = Connection::open_with_flags(
            &file,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.err(e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        // WAL: readers never block the writer or each other, across processes. NORMAL sync is
        // durable against a killed process (the WAL is in the OS's hands at commit), not against
        // power loss; the online store can be refilled from the offline store.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.err(e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e))?;
        Ok(conn)
    }

    fn take(&self) -> OnlineResult<Connection> {
        let idle = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Connection) {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }

    fn err(&self, e: impl std::fmt::Display) -> OnlineError {
        OnlineError::Embedded {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Runs `f` on a pooled connection on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> OnlineResult<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.take()?;
            let out = f(&mut conn).map_err(|e| store.err(e));
            store.give_back(conn);
            out
        })
        .await
        .map_err(|e| self.err(e))?
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[async_trait::async_trait]
impl OnlineStore for EmbeddedStore {
    async fn write(&self, rows: Vec<(Vec<u8>, Vec<u8>)>) -> OnlineResult<usize> {
        if rows.is_empty() {
            return Ok(0);
        }
        self.blocking(move |conn| {
            let txn = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut written = 0;
            {
                let mut upsert = txn.prepare_cached(UPSERT_IF_NEWER)?;
                for (k, v) in &rows {
                    written += upsert.execute(params![k, v, HEADER_LEN as i64])?;
                }
            }
            txn.commit()?;
            Ok(written)
        })
        .await
    }

    async fn read(&self, keys: Vec<Vec<u8>>) -> OnlineResult<Vec<Option<Vec<u8>>>> {
        self.blocking(move |conn| {
            // One transaction: every key is read from the same snapshot.
            let txn = conn.transaction()?;
            let out = {
                let mut get = txn.prepare_cached("SELECT v FROM rows WHERE k = ?1")?;
                keys.iter()
                    .map(|k| {
                        let mut rows = get.query(params![k])?;
                        rows.next()?.map(|r| r.get::<_, Vec<u8>>(0)).transpose()
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            txn.finish()?;
            Ok(out)
        })
        .await
    }

    async fn delete_prefix(&self, prefix: Vec<u8>) -> OnlineResult<usize> {
        self.blocking(move |conn| {
            let end = prefix_end(&prefix);
            let rows = conn.execute(
                "DELETE FROM rows WHERE k >= ?1 AND (?2 IS NULL OR k < ?2)",
                params![prefix, end],
            )?;
            let logs = conn.execute(
                "DELETE FROM events WHERE k >= ?1 AND (?2 IS NULL OR k < ?2)",
                params![prefix, end],
            )?;
            Ok(rows + logs)
        })
        .await
    }

    async fn append_events(
        &self,
        logs: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
        horizon: i64,
    ) -> OnlineResult<usize> {
        if logs.is_empty() {
            return Ok(0);
        }
        self.blocking(move |conn| {
            let txn = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut added = 0;
            {
                let mut newest = txn.prepare_cached("SELECT max(m) FROM events WHERE k = ?1")?;
                let mut insert =
                    txn.prepare_cached("INSERT OR IGNORE INTO events (k, m) VALUES (?1, ?2)")?;
                let mut trim = txn.prepare_cached("DELETE FROM events WHERE k = ?1 AND m < ?2")?;
                for (k, members) in &logs {
                    let stored: Option<Vec<u8>> = newest.query_row(params![k], |r| r.get(0))?;
                    let Some((kept, keep_from)) =
                        StoredEvent::admit(members, stored.as_deref(), horizon)
                    else {
                        continue;
                    };
                    for m in kept {
                        added += insert.execute(params![k, m])?;
                    }
                    trim.execute(params![k, keep_from])?;
                }
            }
            txn.commit()?;
            Ok(added)
        })
        .await
    }

    async fn read_events(
        &self,
        ranges: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    ) -> OnlineResult<Vec<Vec<Vec<u8>>>> {
        self.blocking(move |conn| {
            let txn = conn.transaction()?;
            let out = {
                let mut range = txn.prepare_cached(
                    "SELECT m FROM events WHERE k = ?1 AND m >= ?2 AND m < ?3 ORDER BY m",
                )?;
                ranges
                    .iter()
                    .map(|(k, from, to)| {
                        range
                            .query_map(params![k, from, to], |r| r.get::<_, Vec<u8>>(0))?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            txn.finish()?;
            Ok(out)
        })
        .await
    }

    async fn event_heads(&self, prefix: Vec<u8>, len: usize) -> OnlineResult<(Vec<Vec<u8>>, u64)> {
        self.blocking(move |conn| {
            let end = prefix_end(&prefix);
            let mut stmt = conn.prepare(
                "SELECT substr(max(m), 1, ?3), sum(length(k) + length(m)) FROM events
                 WHERE k >= ?1 AND (?2 IS NULL OR k < ?2) GROUP BY k",
            )?;
            let mut bytes = 0u64;
            let heads = stmt
                .query_map(params![prefix, end, len as i64], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
                })?
                .map(|r| {
                    r.map(|(h, b)| {
                        bytes += b as u64;
                        h
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((heads, bytes))
        })
        .await
    }

    async fn heads(&self, prefix: Vec<u8>, len: usize) -> OnlineResult<Vec<Vec<u8>>> {
        self.blocking(move |conn| {
            let end = prefix_end(&prefix);
            let mut stmt = conn.prepare(
                "SELECT substr(v, 1, ?3) FROM rows WHERE k >= ?1 AND (?2 IS NULL OR k < ?2)",
            )?;
            let rows = stmt.query_map(params![prefix, end, len as i64], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    fn describe(&self) -> String {
        format!("embedded {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deleting_a_view_removes_exactly_its_keys_and_writes_never_regress() {
        use asof_core::keys::{KeyValue, encode_entity_key, store_key, view_keys_prefix};
        use asof_core::value::StoredRow;
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let row = |ts: i64| {
            StoredRow {
                event_ts: ts,
                created_ts: None,
                features: vec![],
            }
            .encode()
        };
        let entity = encode_entity_key(&["id"], &[&KeyValue::Int(1)]);
        let mine = store_key("p", "v", &entity);
        let lookalike = b"asof:p:v:not-an-entity-key".to_vec();
        let other_view = store_key("p", "v2", &entity);
        let written = store
            .write(vec![
                (mine.clone(), row(10)),
                (lookalike.clone(), row(10)),
                (other_view.clone(), row(10)),
            ])
            .await
            .unwrap();
        assert_eq!(written, 3);
        assert_eq!(store.write(vec![(mine.clone(), row(9))]).await.unwrap(), 0);
        assert_eq!(store.write(vec![(mine.clone(), row(11))]).await.unwrap(), 1);
        assert_eq!(
            store
                .delete_prefix(view_keys_prefix("p", "v"))
                .await
                .unwrap(),
            1
        );
        let left = store.read(vec![mine, lookalike, other_view]).await.unwrap();
        assert_eq!(
            left.iter().map(Option::is_some).collect::<Vec<_>>(),
            [false, true, true]
        );
    }

    #[test]
    fn prefix_end_is_the_next_byte_string() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
