//! `asof index sync`: bring an index's versions up to date with the corpus, paying the embedder
//! only for text it has never seen.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use asof_core::spec::{DocumentIndex, Metric};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cache::EmbeddingCache;
use crate::chunker::chunk;
use crate::document::{Document, read_documents};
use crate::embed::{Counting, Embedder, embedder_for, normalize};
use crate::error::{RetrievalError, RetrievalResult};
use crate::graph::Graph;
use crate::layout::{IndexDir, MANIFEST_FORMAT_VERSION, Manifest, PointRecord, VersionMeta};
use crate::layout::{read_points, read_vectors, write_points};
use crate::store::IndexStore;

/// Rebuild the graph once tombstones pass this share of its points: filtered-out neighbours
/// cost search effort and recall.
pub const REBUILD_TOMBSTONE_RATIO: f64 = 0.2;

/// What one sync did to one version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSync {
    pub version: String,
    pub model_id: String,
    pub live: bool,
    /// Whether this sync created the version.
    pub created: bool,
    pub documents: usize,
    pub chunks: usize,
    pub cache_hits: usize,
    /// Distinct texts sent to the embedder, and in how many calls.
    pub embedded: usize,
    pub embedder_calls: usize,
    pub added: usize,
    pub changed: usize,
    pub deleted: usize,
    /// Chunks whose text is the same but whose document version or metadata moved.
    pub refreshed: usize,
    pub unchanged: usize,
    pub tombstones: usize,
    pub rebuilt: bool,
    pub generation: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub index: String,
    pub live: Option<String>,
    pub versions: Vec<VersionSync>,
}

/// A content hash of the text embedded: equal hashes, same vector.
fn content_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
}

/// What a sync reads.
#[derive(Debug, Clone, Copy)]
pub enum Corpus<'a> {
    /// Every document: chunks of documents not listed are deleted.
    Full(&'a [Document]),
    /// Only some documents changed (a stream's batch): the rest stay as indexed.
    Changes(&'a DocumentChanges),
}

/// Changes to some documents of an index, in the order they happened (a later change of a
/// document replaces an earlier one before this is built).
#[derive(Debug, Clone, Default)]
pub struct DocumentChanges {
    /// Documents with new text (or new documents): re-chunked; only changed chunks are embedded.
    pub upserts: Vec<Document>,
    /// Documents whose text did not change (e.g. an unchanged TOASTed column) but whose version
    /// or metadata did: their chunks are refreshed, nothing is embedded. `text` is ignored.
    pub refreshed: Vec<Document>,
    /// Doc ids deleted: their chunks become tombstones.
    pub deletes: Vec<String>,
}

impl DocumentChanges {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.refreshed.is_empty() && self.deletes.is_empty()
    }

    fn touches(&self, doc_id: &str) -> bool {
        self.upserts.iter().any(|d| d.doc_id == doc_id) || self.deletes.iter().any(|d| d == doc_id)
    }
}

impl IndexStore {
    /// Syncs `spec`'s index from its source files: see [`IndexStore::sync_corpus`].
    pub fn sync(&self, repo_dir: &Path, spec: &DocumentIndex) -> RetrievalResult<SyncReport> {
        let docs = read_documents(repo_dir, &spec.source)?;
        self.sync_corpus(spec, Corpus::Full(&docs))
    }

    /// Applies changes to some documents to the index's live version and the version of the
    /// current definition, where they exist (a stream starts from a full sync, which makes them).
    pub fn apply_changes(
        &self,
        spec: &DocumentIndex,
        changes: &DocumentChanges,
    ) -> RetrievalResult<SyncReport> {
        self.sync_corpus(spec, Corpus::Changes(changes))
    }

    /// Syncs `spec`'s index with `corpus`: the version built from the current definition (created
    /// beside the live one when the model or chunker changed, from a full corpus only), and the
    /// live version with its own recorded definition, so it keeps serving fresh results until a
    /// promote.
    pub fn sync_corpus(
        &self,
        spec: &DocumentIndex,
        corpus: Corpus<'_>,
    ) -> RetrievalResult<SyncReport> {
        let dir = self.index_dir(&spec.name);
        std::fs::create_dir_all(&dir.dir).map_err(|e| RetrievalError::io(&dir.dir, e))?;
        let _lock = dir.try_sync_lock("run the sync again")?;
        let now = Utc::now();
        let mut manifest = dir.load_manifest()?.unwrap_or_else(|| Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            index: spec.name.clone(),
            live: None,
            previous: None,
            versions: BTreeMap::new(),
            updated_at: now,
        });
        let cache = EmbeddingCache::open(&self.cache_path())?;

        // The space the definition names now (for a local model, its weights as installed).
        let model_id = embedder_for(&spec.embedding)?.model_id().to_string();
        let target = match manifest
            .versions
            .values()
            .find(|v| v.built_from(&model_id, &spec.chunking, spec.metric))
        {
            Some(v) => v.id.clone(),
            // Changes alone cannot build a version: the unchanged documents are not in them.
            None if matches!(corpus, Corpus::Changes(_)) => {
                return Err(RetrievalError::NotSynced(spec.name.clone()));
            }
            None => {
                let id = next_version_id(&manifest);
                manifest.versions.insert(
                    id.clone(),
                    VersionMeta {
                        id: id.clone(),
                        embedding: spec.embedding.clone(),
                        model_id: model_id.clone(),
                        chunking: spec.chunking.clone(),
                        metric: spec.metric,
                        created_at: now,
                        built_at: now,
                        synced_at: now,
                        generation: 0,
                        documents: 0,
                        points: 0,
                        graph_points: 0,
                        next_id: 0,
                    },
                );
                id
            }
        };
        let mut todo = vec![target.clone()];
        if let Some(live) = &manifest.live
            && *live != target
        {
            todo.push(live.clone());
        }
        let mut report = SyncReport {
            index: spec.name.clone(),
            live: None,
            versions: Vec::new(),
        };
        for id in todo {
            let meta = manifest.versions[&id].clone();
            let embedder = embedder_for(&meta.embedding)?;
            let (meta, mut stats) =
                sync_version(&dir, meta, corpus, embedder.as_ref(), &cache, now)?;
            stats.live = manifest.live.as_deref() == Some(id.as_str());
            manifest.versions.insert(id.clone(), meta);
            report.versions.push(stats);
        }
        // Record the synced versions in the manifest as it is now: a promote or rollback made
        // while this sync ran stays made (a drop waits for the sync lock, so none happened).
        let synced: Vec<VersionMeta> = report
            .versions
            .iter()
            .map(|v| manifest.versions[&v.version].clone())
            .collect();
        let manifest = dir.update_manifest(|current| {
            let m = current.get_or_insert_with(|| manifest.clone());
            for meta in synced {
                m.versions.insert(meta.id.clone(), meta);
            }
            if m.live.is_none() {
                // The first version serves at once; later ones wait for a promote.
                m.live = Some(target.clone());
            }
            m.updated_at = Utc::now();
            Ok((true, m.clone()))
        })?;
        for v in &mut report.versions {
            v.live = manifest.live.as_deref() == Some(v.version.as_str());
        }
        report.live = manifest.live.clone();
        prune_generations(&dir, &manifest);
        Ok(report)
    }
}

fn next_version_id(m: &Manifest) -> String {
    let n = m
        .versions
        .keys()
        .filter_map(|k| k.strip_prefix('v')?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    format!("v{}", n + 1)
}

/// A version's current data, as the last generation left it.
struct Current {
    points: Vec<PointRecord>,
    vectors: Vec<f32>,
}

fn load_current(dir: &IndexDir, meta: &VersionMeta) -> RetrievalResult<Current> {
    if meta.generation == 0 {
        return Ok(Current {
            points: Vec::new(),
            vectors: Vec::new(),
        });
    }
    let gdir = dir.generation_dir(&meta.id, meta.generation);
    let points = read_points(&gdir)?;
    let vectors = read_vectors(&gdir, meta.embedding.dims, points.len())?;
    Ok(Current { points, vectors })
}

struct Planned<'d> {
    chunk_id: String,
    text: String,
    /// [`content_hash`] of `text`.
    hash: String,
    doc: &'d Document,
    /// The point it replaces or refreshes, if any.
    previous: Option<usize>,
}

fn sync_version(
    dir: &IndexDir,
    mut meta: VersionMeta,
    corpus: Corpus<'_>,
    embedder: &dyn Embedder,
    cache: &EmbeddingCache,
    now: DateTime<Utc>,
) -> RetrievalResult<(VersionMeta, VersionSync)> {
    let started = Instant::now();
    let created = meta.generation == 0;
    let current = load_current(dir, &meta)?;
    let dims = meta.embedding.dims;
    let prev: HashMap<&str, usize> = current
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| (p.chunk_id.as_str(), i))
        .collect();

    let docs: &[Document] = match corpus {
        Corpus::Full(docs) => docs,
        Corpus::Changes(c) => &c.upserts,
    };
    // Whether a previous point's document is one this sync looks at: others stay as they are.
    let in_scope = |doc_id: &str| match corpus {
        Corpus::Full(_) => true,
        Corpus::Changes(c) => c.touches(doc_id),
    };
    let refreshed: HashMap<&str, &Document> = match corpus {
        Corpus::Full(_) => HashMap::new(),
        Corpus::Changes(c) => c.refreshed.iter().map(|d| (d.doc_id.as_str(), d)).collect(),
    };

    // Classify every chunk of the corpus against the previous generation.
    let mut stats = VersionSync {
        version: meta.id.clone(),
        model_id: meta.model_id.clone(),
        live: false,
        created,
        documents: docs.len(),
        chunks: 0,
        cache_hits: 0,
        embedded: 0,
        embedder_calls: 0,
        added: 0,
        changed: 0,
        deleted: 0,
        refreshed: 0,
        unchanged: 0,
        tombstones: 0,
        rebuilt: false,
        generation: meta.generation,
        seconds: 0.0,
    };
    let mut keep: Vec<Planned<'_>> = Vec::new();
    let mut fresh: Vec<Planned<'_>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for doc in docs {
        for c in chunk(doc, &meta.chunking) {
            stats.chunks += 1;
            seen.insert(c.chunk_id.clone());
            let hash = content_hash(&c.text);
            let planned = |previous| Planned {
                chunk_id: c.chunk_id.clone(),
                text: c.text.clone(),
                hash: hash.clone(),
                doc,
                previous,
            };
            match prev.get(c.chunk_id.as_str()) {
                Some(&i) if current.points[i].content_hash == hash => {
                    let p = &current.points[i];
                    if p.doc_version == doc.version && p.metadata == doc.metadata {
                        stats.unchanged += 1;
                    } else {
                        stats.refreshed += 1;
                    }
                    keep.push(planned(Some(i)));
                }
                Some(&i) => {
                    stats.changed += 1;
                    fresh.push(planned(Some(i)));
                }
                None => {
                    stats.added += 1;
                    fresh.push(planned(None));
                }
            }
        }
    }
    // Points of documents out of scope: kept as they are, or refreshed from a new version.
    let mut untouched: Vec<(usize, Option<&Document>)> = Vec::new();
    for (i, p) in current.points.iter().enumerate() {
        if in_scope(&p.doc_id) {
            if !seen.contains(&p.chunk_id) {
                stats.deleted += 1;
            }
            continue;
        }
        let doc = refreshed.get(p.doc_id.as_str()).copied();
        match doc {
            Some(d) if d.version != p.doc_version || d.metadata != p.metadata => {
                stats.refreshed += 1;
            }
            _ => stats.unchanged += 1,
        }
        untouched.push((i, doc));
    }
    if stats.added + stats.changed + stats.deleted + stats.refreshed == 0 && !created {
        if matches!(corpus, Corpus::Changes(_)) {
            stats.documents = meta.documents;
        }
        // A generation written before asof had BM25 gets its index now, beside its files.
        let gdir = dir.generation_dir(&meta.id, meta.generation);
        if !gdir.join(crate::sparse::DIR).exists() {
            let tmp = gdir.join(".bm25.tmp");
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp).map_err(|e| RetrievalError::io(&tmp, e))?;
            }
            std::fs::create_dir_all(&tmp).map_err(|e| RetrievalError::io(&tmp, e))?;
            crate::sparse::build(&tmp, &current.points)?;
            let built = tmp.join(crate::sparse::DIR);
            let target = gdir.join(crate::sparse::DIR);
            std::fs::rename(&built, &target).map_err(|e| RetrievalError::io(&target, e))?;
            let _ = std::fs::remove_dir_all(&tmp);
        }
        meta.synced_at = now;
        stats.tombstones = meta.tombstones();
        stats.seconds = started.elapsed().as_secs_f64();
        return Ok((meta, stats));
    }

    // Embed what is new; the cache answers for text seen before under this model.
    let counting = Counting::new(embedder);
    let texts: Vec<&str> = fresh.iter().map(|p| p.text.as_str()).collect();
    let (mut new_vectors, embed_stats) = cache.embed(&texts, &counting)?;
    stats.cache_hits = embed_stats.cache_hits;
    stats.embedded = embed_stats.embedded;
    stats.embedder_calls = embed_stats.embedder_calls;
    for v in &mut new_vectors {
        if v.len() != dims {
            return Err(RetrievalError::Embedder {
                model: meta.model_id.clone(),
                message: format!("returned {} dims, the index declares {dims}", v.len()),
            });
        }
        if meta.metric == Metric::Cosine {
            normalize(v);
        }
    }

    // The new generation's points: kept ones keep their ids, new and changed ones get new ids.
    let mut points = Vec::with_capacity(untouched.len() + keep.len() + fresh.len());
    let mut vectors: Vec<&[f32]> = Vec::with_capacity(points.capacity());
    for &(i, doc) in &untouched {
        let mut p = current.points[i].clone();
        if let Some(d) = doc {
            p.doc_version.clone_from(&d.version);
            p.metadata.clone_from(&d.metadata);
        }
        points.push(p);
        vectors.push(&current.vectors[i * dims..(i + 1) * dims]);
    }
    for k in &keep {
        let i = k.previous.expect("kept points have a previous point");
        let mut p = current.points[i].clone();
        p.doc_version.clone_from(&k.doc.version);
        p.metadata.clone_from(&k.doc.metadata);
        points.push(p);
        vectors.push(&current.vectors[i * dims..(i + 1) * dims]);
    }
    let first_new = points.len();
    for (f, v) in fresh.iter().zip(&new_vectors) {
        points.push(PointRecord {
            id: meta.next_id,
            chunk_id: f.chunk_id.clone(),
            doc_id: f.doc.doc_id.clone(),
            doc_version: f.doc.version.clone(),
            content_hash: f.hash.clone(),
            indexed_at: now,
            text: f.text.clone(),
            metadata: f.doc.metadata.clone(),
        });
        vectors.push(v);
        meta.next_id += 1;
    }

    // Tombstones are implicit: a graph point whose id is not live. Rebuild when they pile up.
    let graph_points = meta.graph_points + fresh.len();
    let tombstones = graph_points - points.len();
    let rebuild = created
        || meta.graph_points == 0
        || tombstones as f64 > REBUILD_TOMBSTONE_RATIO * graph_points as f64;
    let graph = if rebuild {
        let g = Graph::new(meta.metric, points.len());
        let all: Vec<(&[f32], usize)> = vectors
            .iter()
            .zip(&points)
            .map(|(v, p)| (*v, p.id))
            .collect();
        g.insert(&all);
        meta.graph_points = points.len();
        meta.built_at = now;
        stats.rebuilt = true;
        g
    } else {
        let gdir = dir.generation_dir(&meta.id, meta.generation);
        let g = Graph::load(&gdir, meta.metric)?;
        let new: Vec<(&[f32], usize)> = vectors[first_new..]
            .iter()
            .zip(&points[first_new..])
            .map(|(v, p)| (*v, p.id))
            .collect();
        g.insert(&new);
        meta.graph_points = graph_points;
        g
    };

    let generation = meta.generation + 1;
    let target = dir.generation_dir(&meta.id, generation);
    let tmp = target.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| RetrievalError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| RetrievalError::io(&tmp, e))?;
    write_points(&tmp, &points, &vectors)?;
    crate::sparse::build(&tmp, &points)?;
    // An empty corpus has no graph to dump (hnsw_rs cannot dump one); `graph_points == 0` says so.
    if !graph.is_empty() {
        graph.dump(&tmp)?;
    }
    if target.exists() {
        // Left by a sync that died between the rename and the manifest write: never live.
        std::fs::remove_dir_all(&target).map_err(|e| RetrievalError::io(&target, e))?;
    }
    std::fs::rename(&tmp, &target).map_err(|e| RetrievalError::io(&target, e))?;

    meta.generation = generation;
    meta.points = points.len();
    meta.documents = match corpus {
        Corpus::Full(docs) => docs.len(),
        Corpus::Changes(_) => points
            .iter()
            .map(|p| p.doc_id.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len(),
    };
    stats.documents = meta.documents;
    meta.synced_at = now;
    stats.generation = generation;
    stats.tombstones = meta.tombstones();
    stats.seconds = started.elapsed().as_secs_f64();
    Ok((meta, stats))
}

/// Removes generations older than the previous one of each version. The previous one stays so a
/// server that read the old manifest a moment ago can still open it.
fn prune_generations(dir: &IndexDir, m: &Manifest) {
    for v in m.versions.values() {
        let vdir = dir.dir.join(&v.id);
        let Ok(entries) = std::fs::read_dir(&vdir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(n) = name.strip_prefix('g').and_then(|n| n.parse::<u64>().ok())
                && n + 1 < v.generation
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
