//! The embedding cache: content-addressed on hash(model id + exact text embedded), so an unchanged
//! chunk is never embedded twice, under any index, version or document id. Shared by every index
//! of a repo and kept across runs (a SQLite file in WAL mode, so syncs of several indexes, in
//! several processes, share it; a vector is immutable once written, so writers never conflict).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::embed::Counting;
use crate::error::{RetrievalError, RetrievalResult};

/// The cache key of `text` embedded by `model_id`.
pub fn cache_key(model_id: &str, text: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(model_id.as_bytes());
    h.update(&[0]);
    h.update(text.as_bytes());
    *h.finalize().as_bytes()
}

#[derive(Debug)]
pub struct EmbeddingCache {
    /// A sync embeds on several threads but reads and writes the cache from one at a time.
    db: Mutex<Connection>,
    path: PathBuf,
}

/// What embedding a batch of texts cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbedStats {
    pub cache_hits: usize,
    /// Distinct texts sent to the embedder.
    pub embedded: usize,
    pub embedder_calls: usize,
}

impl EmbeddingCache {
    pub fn open(path: &Path) -> RetrievalResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RetrievalError::io(dir, e))?;
        }
        let err = |e: rusqlite::Error| RetrievalError::Cache {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let db = Connection::open(path).map_err(err)?;
        db.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS vectors (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID",
        )
        .map_err(err)?;
        Ok(EmbeddingCache {
            db: Mutex::new(db),
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> RetrievalError {
        RetrievalError::Cache {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Vectors for `texts` (in order): cached ones read, the rest embedded in batches of the
    /// embedder's size, with up to its concurrency in flight, then cached. Repeated texts are
    /// embedded once.
    pub fn embed(
        &self,
        texts: &[&str],
        embedder: &Counting<'_>,
    ) -> RetrievalResult<(Vec<Vec<f32>>, EmbedStats)> {
        let model = embedder.inner().model_id().to_string();
        let dims = embedder.inner().dims();
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| cache_key(&model, t)).collect();
        let mut found: HashMap<[u8; 32], Vec<f32>> = HashMap::new();
        {
            let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            let txn = db.transaction().map_err(|e| self.err(e))?;
            {
                let mut get = txn
                    .prepare("SELECT v FROM vectors WHERE k = ?1")
                    .map_err(|e| self.err(e))?;
                for k in &keys {
                    if found.contains_key(k) {
                        continue;
                    }
                    let mut rows = get.query(params![k.as_slice()]).map_err(|e| self.err(e))?;
                    if let Some(row) = rows.next().map_err(|e| self.err(e))? {
                        let bytes: Vec<u8> = row.get(0).map_err(|e| self.err(e))?;
                        let vec = decode(&bytes);
                        if vec.len() == dims {
                            found.insert(*k, vec);
                        }
                    }
                }
            }
            txn.finish().map_err(|e| self.err(e))?;
        }
        let mut stats = EmbedStats::default();
        let mut missing: Vec<(usize, [u8; 32])> = Vec::new();
        let mut queued = std::collections::HashSet::new();
        for (i, k) in keys.iter().enumerate() {
            if found.contains_key(k) {
                stats.cache_hits += 1;
            } else if queued.insert(*k) {
                missing.push((i, *k));
            }
        }
        stats.embedded = missing.len();
        let calls_before = embedder.calls();
        if !missing.is_empty() {
            let batches: Vec<&[(usize, [u8; 32])]> = missing
                .chunks(embedder.inner().batch_size().max(1))
                .collect();
            let results = run_batches(&batches, embedder, texts);
            // Cache what succeeded even when a batch failed: a retry pays only for the rest.
            let mut first_error = None;
            let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            let txn = db
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            {
                // Another process may have cached the same text meanwhile: same key, same vector.
                let mut put = txn
                    .prepare("INSERT OR IGNORE INTO vectors (k, v) VALUES (?1, ?2)")
                    .map_err(|e| self.err(e))?;
                for (batch, result) in batches.iter().zip(results) {
                    match result {
                        Some(Ok(vectors)) => {
                            for ((_, k), v) in batch.iter().zip(vectors) {
                                put.execute(params![k.as_slice(), encode(&v)])
                                    .map_err(|e| self.err(e))?;
                                found.insert(*k, v);
                            }
                        }
                        Some(Err(e)) => {
                            first_error.get_or_insert(e);
                        }
                        None => {}
                    }
                }
            }
            txn.commit().map_err(|e| self.err(e))?;
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        stats.embedder_calls = embedder.calls() - calls_before;
        let out = keys
            .iter()
            .map(|k| found.get(k).cloned().expect("every key embedded or cached"))
            .collect();
        Ok((out, stats))
    }
}

/// Runs batches on up to the embedder's concurrency of threads. After a failure no new batch
/// starts (its slot stays `None`); batches in flight finish.
fn run_batches(
    batches: &[&[(usize, [u8; 32])]],
    embedder: &Counting<'_>,
    texts: &[&str],
) -> Vec<Option<RetrievalResult<Vec<Vec<f32>>>>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let workers = embedder
        .inner()
        .concurrency()
        .clamp(1, batches.len().max(1));
    let next = AtomicUsize::new(0);
    type Slot = Mutex<Option<RetrievalResult<Vec<Vec<f32>>>>>;
    let slots: Vec<Slot> = batches.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(batch) = batches.get(i) else { break };
                    let input: Vec<&str> = batch.iter().map(|(j, _)| texts[*j]).collect();
                    let result = embedder.embed(&input);
                    let failed = result.is_err();
                    *slots[i].lock().expect("no panics while holding") = Some(result);
                    if failed {
                        next.store(batches.len(), Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().expect("no panics while holding"))
        .collect()
}

fn encode(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}
