//! The `openai` provider against a real HTTP server on loopback speaking the embeddings protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use asof_core::spec::EmbeddingProvider;
use asof_retrieval::IndexStore;

use crate::{corpus, spec, write_docs};

/// What the server saw: one entry per request (its inputs and its Authorization header).
#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(Vec<String>, Option<String>)>>,
    count: AtomicUsize,
}

/// Serves `/v1/embeddings`; `respond(n, inputs)` picks the status and body of the n-th request.
fn serve(respond: fn(usize, &[String]) -> (u16, String)) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let s = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut len, mut auth, mut line) = (0usize, None, String::new());
                reader.read_line(&mut line).unwrap();
                assert!(line.starts_with("POST /v1/embeddings "), "{line}");
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    let (k, v) = line.split_once(':').unwrap();
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap(),
                        "authorization" => auth = Some(v.trim().to_string()),
                        _ => {}
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let inputs: Vec<String> = req["input"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                let n = s.count.fetch_add(1, Ordering::SeqCst);
                let (status, out) = respond(n, &inputs);
                if status == 200 {
                    s.requests.lock().unwrap().push((inputs, auth));
                }
                let reason = if status == 200 { "OK" } else { "Error" };
                let extra = if status == 429 {
                    "Retry-After: 0\r\n"
                } else {
                    ""
                };
                write!(
                    stream,
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{out}",
                    out.len()
                )
                .unwrap();
            });
        }
    });
    (url, seen)
}

/// A deterministic 4-d embedding, returned in reverse order to check `index` is honoured.
fn embeddings(inputs: &[String]) -> String {
    let data: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, t)| {
            let l = t.len() as f32;
            serde_json::json!({"object": "embedding", "index": i, "embedding": [1.0, l, l % 7.0, 0.5]})
        })
        .collect();
    serde_json::json!({"object": "list", "data": data, "model": "m"}).to_string()
}

fn openai_spec(url: &str) -> asof_core::spec::DocumentIndex {
    let mut s = spec("text-embedding-test");
    s.chunking.max_tokens = 1000;
    s.embedding.provider = EmbeddingProvider::Openai;
    s.embedding.dims = 4;
    s.embedding.url = Some(url.to_string());
    s.embedding.api_key_env = Some("ASOF_TEST_EMBEDDINGS_KEY".into());
    s.embedding.batch_size = Some(3);
    s.embedding.concurrency = Some(2);
    s
}

#[test]
fn batches_retries_429_and_sends_the_key() {
    let (url, seen) = serve(|n, inputs| {
        if n == 0 {
            (429, r#"{"error": {"message": "slow down"}}"#.into())
        } else {
            (200, embeddings(inputs))
        }
    });
    expect_test_key();
    let dir = tempfile::tempdir().unwrap();
    write_docs(dir.path(), &corpus(7), "2026-01-01T00:00:00Z");
    let store = IndexStore::new(dir.path().join("data/indexes"));
    let r = store.sync(dir.path(), &openai_spec(&url)).unwrap();
    let v = &r.versions[0];
    assert_eq!(v.chunks, 7);
    assert_eq!(v.embedder_calls, 3, "7 texts in batches of 3: {v:?}");
    assert_eq!(
        seen.count.load(Ordering::SeqCst),
        4,
        "3 batches and one retry after 429"
    );
    let requests = seen.requests.lock().unwrap();
    let mut sizes: Vec<usize> = requests.iter().map(|(i, _)| i.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [1, 3, 3]);
    assert!(
        requests
            .iter()
            .all(|(_, a)| a.as_deref() == Some("Bearer sk-test"))
    );
    drop(requests);

    let again = store.sync(dir.path(), &openai_spec(&url)).unwrap();
    assert_eq!(again.versions[0].embedder_calls, 0);
    assert_eq!(seen.count.load(Ordering::SeqCst), 4, "the cache answered");
}

#[test]
fn a_client_error_is_reported_with_the_servers_message_and_nothing_is_written() {
    let (url, seen) = serve(|_, _| {
        (
            400,
            r#"{"error": {"message": "model `x` not found"}}"#.into(),
        )
    });
    expect_test_key();
    let dir = tempfile::tempdir().unwrap();
    write_docs(dir.path(), &corpus(2), "2026-01-01T00:00:00Z");
    let store = IndexStore::new(dir.path().join("data/indexes"));
    let err = store
        .sync(dir.path(), &openai_spec(&url))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 400") && err.contains("not found"),
        "{err}"
    );
    assert_eq!(seen.count.load(Ordering::SeqCst), 1, "a 400 is not retried");
    assert!(store.manifest("help").is_err());
}

#[test]
fn a_missing_api_key_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_docs(dir.path(), &corpus(2), "2026-01-01T00:00:00Z");
    let mut s = openai_spec("http://127.0.0.1:9/v1");
    s.embedding.api_key_env = Some("ASOF_TEST_UNSET_VARIABLE".into());
    let err = IndexStore::new(dir.path().join("data/indexes"))
        .sync(dir.path(), &s)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ASOF_TEST_UNSET_VARIABLE"), "{err}");
}

/// The key comes from the environment cargo gives tests (`.cargo/config.toml`), not `set_var`.
fn expect_test_key() {
    assert_eq!(
        std::env::var("ASOF_TEST_EMBEDDINGS_KEY").as_deref(),
        Ok("sk-test"),
        "run through cargo in this workspace (.cargo/config.toml sets the variable)"
    );
}

#[test]
fn a_query_embedding_stops_retrying_at_its_deadline() {
    use asof_retrieval::embed::Embedder;
    // A server that always fails: without a deadline the embedder retries six times with
    // doubling pauses; with one, it gives up when the next pause would pass it.
    let (url, seen) = serve(|_, _| (503, r#"{"error": {"message": "overloaded"}}"#.into()));
    expect_test_key();
    let embedder = asof_retrieval::embed::OpenAiEmbedder::new(&openai_spec(&url).embedding)
        .unwrap()
        .with_backoff(std::time::Duration::from_millis(200));
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    let err = embedder.embed_within(&["a query"], deadline).unwrap_err();
    assert!(
        err.to_string().contains("within the request's deadline"),
        "{err}"
    );
    let calls = seen.count.load(Ordering::SeqCst);
    assert!(
        (1..6).contains(&calls),
        "{calls} calls: retries ran past the deadline"
    );
    // Nothing keeps calling after the answer.
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(seen.count.load(Ordering::SeqCst), calls);
}
