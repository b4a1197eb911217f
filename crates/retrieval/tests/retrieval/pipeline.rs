use std::collections::BTreeMap;

use asof_retrieval::error::RetrievalError;
use asof_retrieval::{IndexStore, LiveIndexes, Query};

use crate::{corpus, spec, write_docs};

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-02-01T00:00:00Z";

fn store(dir: &std::path::Path) -> IndexStore {
    IndexStore::new(dir.join("data/indexes"))
}

fn search_docs(live: &LiveIndexes, text: &str, k: usize) -> Vec<String> {
    live.get("help", None)
        .unwrap()
        .search(Query::Text(text), k, &BTreeMap::new(), 64)
        .unwrap()
        .into_iter()
        .map(|h| h.doc_id)
        .collect()
}

#[test]
fn resync_of_an_unchanged_corpus_makes_no_embedder_calls() {
    let dir = tempfile::tempdir().unwrap();
    let docs = corpus(40);
    write_docs(dir.path(), &docs, T0);
    let s = store(dir.path());
    let first = s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    let v = &first.versions[0];
    assert!(v.created && v.live && v.rebuilt);
    assert_eq!(v.added, v.chunks);
    assert!(v.chunks > 40, "documents span several chunks: {}", v.chunks);
    assert!(
        v.embedded > 0 && v.embedded < v.chunks,
        "chunk texts shared between documents are embedded once: {v:?}"
    );
    assert_eq!(v.embedder_calls, v.embedded.div_ceil(16), "batches of 16");

    let again = s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    let v2 = &again.versions[0];
    assert_eq!(v2.embedder_calls, 0);
    assert_eq!(v2.unchanged, v.chunks);
    assert_eq!((v2.added, v2.changed, v2.deleted), (0, 0, 0));
    assert_eq!(
        v2.generation, v.generation,
        "nothing changed, nothing written"
    );

    // Same texts, new document versions: metadata refreshes, still no embedder call.
    write_docs(dir.path(), &docs, T1);
    let touched = s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    assert_eq!(touched.versions[0].refreshed, v.chunks);
    assert_eq!(touched.versions[0].embedder_calls, 0);
}

#[test]
fn an_edit_reembeds_only_its_changed_chunk_and_a_delete_is_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = corpus(30);
    write_docs(dir.path(), &docs, T0);
    let s = store(dir.path());
    s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    let live = LiveIndexes::new(s.clone());
    let victim = docs[5].clone();
    assert!(
        search_docs(&live, &victim.1, 3).contains(&victim.0),
        "a document's own text finds it"
    );

    // Edit the last words of doc 7: only its last chunk changes.
    docs[7].1.push_str(" plus an appended sentence");
    docs.remove(5);
    write_docs(dir.path(), &docs, T0);
    let r = s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    let v = &r.versions[0];
    assert_eq!(v.changed, 1, "{v:?}");
    assert_eq!(v.embedded, 1, "only the changed chunk is embedded: {v:?}");
    assert!(v.deleted >= 2, "the deleted document's chunks: {v:?}");
    assert!(v.tombstones >= v.deleted + v.changed || v.rebuilt);

    // The server-side reader sees the deletion on its next query, whatever the query.
    for k in [1, 5, 50] {
        let found = search_docs(&live, &victim.1, k);
        assert!(
            !found.contains(&victim.0),
            "deleted doc came back at k={k}: {found:?}"
        );
    }
    let filtered = live
        .get("help", None)
        .unwrap()
        .search(
            Query::Text(&victim.1),
            10,
            &BTreeMap::from([("doc_id".to_string(), victim.0.clone())]),
            64,
        )
        .unwrap();
    assert!(filtered.is_empty(), "not even when asked for by id");

    // Delete most of the corpus: tombstones pass the threshold and the graph is rebuilt clean.
    docs.truncate(5);
    write_docs(dir.path(), &docs, T0);
    let r = s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    assert!(r.versions[0].rebuilt);
    assert_eq!(r.versions[0].tombstones, 0);
    let all = search_docs(&live, "billing login driver shipping privacy", 100);
    assert!(
        all.iter().all(|d| docs.iter().any(|(id, _)| id == d)),
        "{all:?}"
    );
}

#[test]
fn a_new_model_builds_beside_the_live_version_until_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let docs = corpus(20);
    write_docs(dir.path(), &docs, T0);
    let s = store(dir.path());
    s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    let live = LiveIndexes::new(s.clone());
    assert_eq!(live.get("help", None).unwrap().meta.id, "v1");

    let r = s.sync(dir.path(), &spec("hashing-v2")).unwrap();
    assert_eq!(r.live.as_deref(), Some("v1"));
    let ids: Vec<(&str, bool)> = r
        .versions
        .iter()
        .map(|v| (v.version.as_str(), v.live))
        .collect();
    assert_eq!(
        ids,
        [("v2", false), ("v1", true)],
        "the live one keeps syncing too"
    );
    assert_eq!(
        live.get("help", None).unwrap().meta.id,
        "v1",
        "v1 serves until promote"
    );

    let held = live.get("help", None).unwrap();
    s.promote("help", "v2").unwrap();
    let now = live.get("help", None).unwrap();
    assert_eq!(now.meta.id, "v2");
    assert_eq!(now.meta.model_id, "hashing/hashing-v2/64");
    // A query in flight on v1 still completes.
    assert!(
        !held
            .search(Query::Text("billing"), 3, &BTreeMap::new(), 64)
            .unwrap()
            .is_empty()
    );

    // A vector from the other model is refused, even though dims match.
    let v1_vector = held.query_vector(Query::Text("billing refund")).unwrap();
    let err = now
        .search(
            Query::Vector {
                values: &v1_vector,
                model: &held.meta.model_id,
            },
            3,
            &BTreeMap::new(),
            64,
        )
        .unwrap_err();
    assert!(matches!(err, RetrievalError::ModelMismatch { .. }), "{err}");
    assert!(err.to_string().contains("hashing/hashing-v1/64"), "{err}");

    s.rollback("help").unwrap();
    assert_eq!(live.get("help", None).unwrap().meta.id, "v1");
    let err = s.drop_version("help", "v1").unwrap_err();
    assert!(err.to_string().contains("is live"), "{err}");
    s.drop_version("help", "v2").unwrap();
    assert!(live.get("help", Some("v2")).is_err());
}

#[test]
fn eval_scores_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let docs = corpus(21);
    write_docs(dir.path(), &docs, T0);
    let s = store(dir.path());
    s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    s.sync(dir.path(), &spec("hashing-v2")).unwrap();
    let queries: Vec<asof_retrieval::eval::LabeledQuery> = (0..7)
        .map(|i| asof_retrieval::eval::LabeledQuery {
            id: None,
            query: format!("article{i} step{i} detail{i}"),
            relevant: vec![docs[i].0.clone()],
        })
        .collect();
    let evals = asof_retrieval::eval::evaluate(
        &s,
        "help",
        &queries,
        5,
        &[asof_core::spec::SearchMode::Dense],
        &Default::default(),
    )
    .unwrap();
    assert_eq!(evals.len(), 2);
    for e in &evals {
        assert!(e.recall_at_k > 0.8, "{e:?}");
        assert!(e.mrr > 0.5 && e.mrr <= 1.0, "{e:?}");
    }
    assert!(evals[0].live && !evals[1].live);
}

#[test]
fn bad_documents_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    std::fs::write(
        dir.path().join("docs/a.jsonl"),
        "{\"doc_id\": \"a\", \"text\": \"x\", \"updated_at\": \"2026-01-01T00:00:00Z\"}\n{\"doc_id\": \"b\", \"text\": \"y\"}\n",
    )
    .unwrap();
    let err = store(dir.path())
        .sync(dir.path(), &spec("hashing-v1"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("a.jsonl:2") && msg.contains("updated_at"),
        "{msg}"
    );
    assert!(
        store(dir.path()).manifest("help").is_err(),
        "nothing written"
    );
}

#[test]
fn markdown_documents_are_ids_by_path_with_their_title_as_metadata() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("md/guides")).unwrap();
    std::fs::write(
        dir.path().join("md/guides/refunds.md"),
        "# Refunds\n\nHow to get a refund for a card payment.\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("md/login.md"),
        "# Login\n\nReset a forgotten password.\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("md/notes.txt"), "not a markdown file").unwrap();
    let mut s = spec("hashing-v1");
    s.source.path = "md".into();
    s.source.format = Some(asof_core::spec::DocumentFormat::Markdown);
    let store = store(dir.path());
    let r = store.sync(dir.path(), &s).unwrap();
    assert_eq!(r.versions[0].documents, 2);
    let hits = LiveIndexes::new(store)
        .get("help", None)
        .unwrap()
        .search(Query::Text("refund card payment"), 1, &BTreeMap::new(), 64)
        .unwrap();
    assert_eq!(hits[0].doc_id, "guides/refunds");
    assert_eq!(hits[0].metadata["title"], "Refunds");
}

#[test]
fn an_empty_corpus_syncs_and_searches_to_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_docs(dir.path(), &[], T0);
    let s = store(dir.path());
    s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    assert!(search_docs(&LiveIndexes::new(s.clone()), "anything", 5).is_empty());
    // Fill it, then empty it again: every document deleted.
    write_docs(dir.path(), &corpus(3), T0);
    s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    let live = LiveIndexes::new(s.clone());
    assert_eq!(search_docs(&live, "billing", 5).len(), 5);
    write_docs(dir.path(), &[], T0);
    let r = s.sync(dir.path(), &spec("hashing-v1")).unwrap();
    assert!(r.versions[0].deleted > 0);
    assert!(search_docs(&live, "billing", 5).is_empty());
}
