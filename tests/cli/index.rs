//! `asof index`: sync, re-sync, edit, delete, search, eval, model switch, promote and rollback on
//! the quickstart's help articles.

use crate::util::{TestRepo, stderr_of, stdout_of};

fn sync(r: &TestRepo) -> serde_json::Value {
    let out = stdout_of(&mut r.run(&["index", "sync", "help_articles", "--output", "json"]));
    serde_json::from_str(&out).unwrap()
}

fn search_ids(r: &TestRepo, query: &str, k: &str) -> Vec<String> {
    let out = stdout_of(&mut r.run(&[
        "index",
        "search",
        "help_articles",
        query,
        "-k",
        k,
        "--output",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn index_lifecycle_from_the_cli() {
    let r = TestRepo::applied();
    let text = stdout_of(&mut r.run(&["index", "sync", "help_articles"]));
    assert!(
        text.contains("help_articles v1 (live)") && text.contains("chunks/s"),
        "{text}"
    );

    let again = sync(&r);
    let v = &again["versions"][0];
    assert_eq!(v["embedder_calls"], 0, "{again}");
    assert_eq!(v["unchanged"], v["chunks"]);

    // Edit the end of one article: only its last chunk is re-embedded.
    let docs = r.read("data/docs/help_articles.jsonl");
    let lines: Vec<&str> = docs.lines().collect();
    let mut edited: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
    let edited_id = edited["doc_id"].as_str().unwrap().to_string();
    let t = edited["text"].as_str().unwrap().to_string() + " zebra quasar";
    edited["text"] = t.into();
    let deleted: serde_json::Value = serde_json::from_str(lines[7]).unwrap();
    let deleted_id = deleted["doc_id"].as_str().unwrap().to_string();
    let mut new_lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    new_lines[3] = edited.to_string();
    new_lines.remove(7);
    r.write(
        "data/docs/help_articles.jsonl",
        &(new_lines.join("\n") + "\n"),
    );
    let s = sync(&r);
    let v = &s["versions"][0];
    assert_eq!(
        (v["changed"].as_u64(), v["embedded"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert!(v["deleted"].as_u64().unwrap() >= 1, "{s}");
    assert!(search_ids(&r, "zebra quasar", "1").contains(&edited_id));
    let title = deleted["title"].as_str().unwrap();
    assert!(!search_ids(&r, title, "100").contains(&deleted_id));

    let eval = stdout_of(&mut r.run(&[
        "index",
        "eval",
        "help_articles",
        "--queries",
        "data/queries.jsonl",
        "--output",
        "json",
    ]));
    let eval: serde_json::Value = serde_json::from_str(&eval).unwrap();
    assert!(eval[0]["recall_at_k"].as_f64().unwrap() > 0.5, "{eval}");

    // Switch the model: v2 is built beside v1, which stays live until promoted.
    r.edit("documents.yaml", "model: hashing-v1", "model: hashing-v2");
    stdout_of(&mut r.run(&["apply"]));
    let s = sync(&r);
    assert_eq!(s["live"], "v1", "{s}");
    assert_eq!(s["versions"][0]["version"], "v2");
    let status = stdout_of(&mut r.run(&["index", "status", "help_articles"]));
    assert!(status.contains("live v1"), "{status}");
    let out = stdout_of(&mut r.run(&["index", "promote", "help_articles", "v2"]));
    assert!(out.contains("`v2` is live"), "{out}");
    let out =
        stdout_of(&mut r.run(&["index", "search", "help_articles", "card refund", "-k", "1"]));
    assert!(out.contains("v2 [hashing/hashing-v2/256]"), "{out}");
    stdout_of(&mut r.run(&["index", "rollback", "help_articles"]));
    let out =
        stdout_of(&mut r.run(&["index", "search", "help_articles", "card refund", "-k", "1"]));
    assert!(out.contains("v1 [hashing/hashing-v1/256]"), "{out}");

    let err = stderr_of(&mut r.run(&["index", "promote", "help_articles", "v9"]));
    assert!(err.contains("has no version `v9`; it has v1, v2"), "{err}");
    let err = stderr_of(&mut r.run(&["index", "sync", "help_artcles"]));
    assert!(err.contains("did you mean `help_articles`?"), "{err}");
}

#[test]
fn promote_refuses_a_version_worse_than_live_unless_forced() {
    let r = TestRepo::init();
    r.edit(
        "documents.yaml",
        "    metric: cosine",
        "    metric: cosine\n    retrieval: {mode: dense}\n    eval: {queries: data/queries.jsonl, metric: ndcg@10, max_regression: 0.01}",
    );
    r.run(&["apply"]).assert().success();
    r.run(&["index", "sync", "help_articles"])
        .assert()
        .success();
    // A much smaller hashing space: a worse model, built as v2 beside the live v1.
    r.edit("documents.yaml", "dims: 256}", "dims: 8}");
    r.run(&["apply"]).assert().success();
    r.run(&["index", "sync", "help_articles"])
        .assert()
        .success();

    let out = r
        .run(&[
            "index",
            "eval",
            "help_articles",
            "--queries",
            "data/queries.jsonl",
            "--output",
            "json",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let evals: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let score = |version: &str, mode: &str| {
        evals
            .iter()
            .find(|e| e["version"] == version && e["mode"] == mode)
            .and_then(|e| e["ndcg_at_10"].as_f64())
            .unwrap()
    };
    for mode in ["dense", "sparse", "hybrid"] {
        assert!(score("v1", mode) > 0.0, "{mode}");
    }
    assert!(
        score("v2", "dense") + 0.01 < score("v1", "dense"),
        "{evals:?}"
    );

    let err = r
        .run(&["index", "promote", "help_articles", "v2"])
        .assert()
        .failure()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(stderr.contains("refusing to promote `v2`"), "{stderr}");
    assert!(
        stderr.contains("live `v1` ndcg@10"),
        "both scores are printed: {stderr}"
    );
    let manifest = r.read("data/indexes/help_articles/manifest.json");
    assert!(
        manifest.contains("\"live\": \"v1\""),
        "nothing changed: {manifest}"
    );

    r.run(&["index", "promote", "help_articles", "v2", "--force"])
        .assert()
        .success();
    // Back to the better one: the gate lets an improvement through.
    r.run(&["index", "promote", "help_articles", "v1"])
        .assert()
        .success();
}
