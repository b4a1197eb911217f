//! Reading a corpus: JSON-lines records or Markdown files, each a document with an id, a version
//! (when it last changed) and free-form metadata used by query-time filters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asof_core::spec::{DocumentFormat, DocumentSource};
use serde_json::Value as Json;

use crate::error::{RetrievalError, RetrievalResult};

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub doc_id: String,
    pub text: String,
    /// `updated_at` as given (JSON lines) or the file's mtime (Markdown), in RFC 3339.
    pub version: String,
    pub metadata: BTreeMap<String, Json>,
}

/// Reads every document of a source, sorted by doc id. Duplicate ids are an error: which of two
/// records is current would otherwise depend on file order.
pub fn read_documents(repo_dir: &Path, source: &DocumentSource) -> RetrievalResult<Vec<Document>> {
    let root = repo_dir.join(&source.path);
    let Some(format) = source.format.filter(|_| source.kind.is_file()) else {
        return Err(RetrievalError::Document {
            path: root,
            line: None,
            message: "this index follows a PostgreSQL table: `asof stream` (or `asof serve --stream`) keeps it in sync".into(),
        });
    };
    let ext = match format {
        DocumentFormat::Jsonl => "jsonl",
        DocumentFormat::Markdown => "md",
    };
    let files = if root.is_dir() {
        let mut files = Vec::new();
        collect(&root, ext, &mut files)?;
        files.sort();
        files
    } else if root.exists() {
        vec![root.clone()]
    } else {
        return Err(RetrievalError::Document {
            path: root,
            line: None,
            message: "no such file or directory (the index's `source.path`)".into(),
        });
    };
    let mut docs = Vec::new();
    for f in &files {
        match format {
            DocumentFormat::Jsonl => read_jsonl(f, &mut docs)?,
            DocumentFormat::Markdown => docs.push(read_markdown(&root, f)?),
        }
    }
    docs.sort_by(|a, b| a.doc_id.cmp(&b.doc_id));
    if let Some(w) = docs.windows(2).find(|w| w[0].doc_id == w[1].doc_id) {
        return Err(RetrievalError::Document {
            path: root,
            line: None,
            message: format!("doc_id `{}` appears more than once", w[0].doc_id),
        });
    }
    Ok(docs)
}

fn collect(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> RetrievalResult<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| RetrievalError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| RetrievalError::io(dir, e))?.path();
        if path.is_dir() {
            collect(&path, ext, out)?;
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    Ok(())
}

fn read_jsonl(path: &Path, out: &mut Vec<Document>) -> RetrievalResult<()> {
    let text = std::fs::read_to_string(path).map_err(|e| RetrievalError::io(path, e))?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| RetrievalError::Document {
            path: path.to_path_buf(),
            line: Some(i + 1),
            message,
        };
        let mut obj = match serde_json::from_str::<Json>(line) {
            Ok(Json::Object(o)) => o,
            Ok(_) => return Err(err("expected a JSON object".into())),
            Err(e) => return Err(err(format!("invalid JSON: {e}"))),
        };
        let doc_id = match obj.remove("doc_id") {
            Some(Json::String(s)) if !s.is_empty() => s,
            Some(Json::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(err(format!(
                    "`doc_id` must be a non-empty string or a number, not {other}"
                )));
            }
            None => return Err(err("missing `doc_id`".into())),
        };
        let text = match obj.remove("text") {
            Some(Json::String(s)) => s,
            Some(_) => return Err(err(format!("document `{doc_id}`: `text` must be a string"))),
            None => return Err(err(format!("document `{doc_id}`: missing `text`"))),
        };
        let version = match obj.remove("updated_at") {
            Some(Json::String(s)) => asof_core::time::parse_instant(&s)
                .map(|t| t.to_rfc3339())
                .map_err(|e| err(format!("document `{doc_id}`: `updated_at`: {e}")))?,
            Some(_) => {
                return Err(err(format!(
                    "document `{doc_id}`: `updated_at` must be an RFC 3339 string"
                )));
            }
            None => {
                return Err(err(format!(
                    "document `{doc_id}`: missing `updated_at` (when the document last changed)"
                )));
            }
        };
        out.push(Document {
            doc_id,
            text,
            version,
            metadata: obj.into_iter().collect(),
        });
    }
    Ok(())
}

fn read_markdown(root: &Path, path: &Path) -> RetrievalResult<Document> {
    let text = std::fs::read_to_string(path).map_err(|e| RetrievalError::io(path, e))?;
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| RetrievalError::io(path, e))?;
    let rel = path.strip_prefix(root).unwrap_or(path).with_extension("");
    let doc_id = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let mut metadata = BTreeMap::new();
    if let Some(title) = text.lines().find_map(|l| l.strip_prefix("# ")) {
        metadata.insert("title".into(), Json::String(title.trim().to_string()));
    }
    Ok(Document {
        doc_id,
        text,
        version: chrono::DateTime::<chrono::Utc>::from(modified).to_rfc3339(),
        metadata,
    })
}
