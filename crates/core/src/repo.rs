//! Loading a feature repository from disk: `feature_store.yaml` plus every other `*.yaml`/`*.yml`
//! under the folder (recursively, skipping `data/` and hidden folders), each definition remembered
//! with the file and line it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::config::{CONFIG_FILE, RepoConfig};
use crate::error::{CoreError, CoreResult, Diagnostic};
use crate::locate::{self, Span};
use crate::spec::{DefinitionsFile, DocumentIndex, Entity, FeatureService, FeatureView, Source};

/// A definition and where it was declared.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub def: T,
    /// File relative to the repo folder.
    pub file: PathBuf,
    pub span: Span,
}

/// Everything a repo folder declares, before validation.
#[derive(Debug, Clone)]
pub struct Repo {
    pub dir: PathBuf,
    pub config: RepoConfig,
    pub entities: Vec<Located<Entity>>,
    pub sources: Vec<Located<Source>>,
    pub feature_views: Vec<Located<FeatureView>>,
    pub feature_services: Vec<Located<FeatureService>>,
    pub document_indexes: Vec<Located<DocumentIndex>>,
    /// File texts, for locating references inside a definition's block.
    pub texts: BTreeMap<PathBuf, String>,
}

fn yaml_diagnostic(file: &Path, text: &str, err: &serde_yaml_ng::Error) -> Diagnostic {
    let (mut line, mut column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    // serde_yaml appends " at line X column Y"; the location is already in the prefix.
    let mut message = err.to_string();
    if let Some(p) = message.find(" at line ") {
        message.truncate(p);
    }
    // Errors from our own value parsers (durations, dtypes) are reported at the enclosing item;
    // point at the offending value instead.
    for prefix in ["bad duration `", "unknown dtype `"] {
        if let Some(token) = message
            .split(prefix)
            .nth(1)
            .and_then(|r| r.split('`').next())
            && let Some((l, c)) =
                crate::locate::find_token(text, line.max(1), line.max(1) + 500, None, token)
        {
            (line, column) = (l, c);
        }
    }
    let hint = unknown_field_hint(&message);
    Diagnostic::new(file, line, column, message).with_hint(hint)
}

/// serde says "unknown field `ttll`, expected one of `name`, `ttl`, ..."; turn that into a hint.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let field = rest.split('`').next()?;
    let expected = rest.split("expected ").nth(1)?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    crate::error::did_you_mean(field, candidates)
}

fn parse_yaml<T: DeserializeOwned>(rel: &Path, text: &str) -> Result<T, Diagnostic> {
    serde_yaml_ng::from_str(text).map_err(|e| yaml_diagnostic(rel, text, &e))
}

impl Repo {
    /// Reads the config and every definitions file. Parse errors of all files are collected and
    /// reported together; semantic checks are [`crate::validate`]'s job.
    pub fn load(dir: &Path) -> CoreResult<Repo> {
        let config = Self::load_config(dir)?;
        let mut files = Vec::new();
        collect_yaml_files(dir, dir, &mut files)?;
        files.sort();

        let mut repo = Repo {
            dir: dir.to_path_buf(),
            config,
            entities: Vec::new(),
            sources: Vec::new(),
            feature_views: Vec::new(),
            feature_services: Vec::new(),
            document_indexes: Vec::new(),
            texts: BTreeMap::new(),
        };
        let mut diags = Vec::new();
        for rel in files {
            let text = std::fs::read_to_string(dir.join(&rel))
                .map_err(|e| CoreError::io(dir.join(&rel), e))?;
            if text
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            {
                continue;
            }
            match parse_yaml::<DefinitionsFile>(&rel, &text) {
                Ok(defs) => {
                    attach(
                        &mut repo.entities,
                        defs.entities,
                        &rel,
                        &text,
                        "entities",
                        |e| &e.name,
                    );
                    let mut sources = defs.sources;
                    sources.iter_mut().for_each(Source::normalize);
                    attach(&mut repo.sources, sources, &rel, &text, "sources", |s| {
                        &s.name
                    });
                    attach(
                        &mut repo.feature_views,
                        defs.feature_views,
                        &rel,
                        &text,
                        "feature_views",
                        |v| &v.name,
                    );
                    attach(
                        &mut repo.feature_services,
                        defs.feature_services,
                        &rel,
                        &text,
                        "feature_services",
                        |s| &s.name,
                    );
                    attach(
                        &mut repo.document_indexes,
                        defs.document_indexes,
                        &rel,
                        &text,
                        "document_indexes",
                        |d| &d.name,
                    );
                }
                Err(d) => diags.push(d),
            }
            repo.texts.insert(rel, text);
        }
        if diags.is_empty() {
            Ok(repo)
        } else {
            Err(CoreError::Invalid(diags))
        }
    }

    /// Reads `feature_store.yaml` alone (commands that need the stores, not the definitions).
    pub fn load_config(dir: &Path) -> CoreResult<RepoConfig> {
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CoreError::Invalid(vec![Diagnostic::new(
                    &config_path,
                    0,
                    0,
                    format!("no {CONFIG_FILE} here: pass --repo DIR, or create a repo with `asof init DIR`"),
                )])
            } else {
                CoreError::io(&config_path, e)
            }
        })?;
        parse_yaml(Path::new(CONFIG_FILE), &text).map_err(|d| CoreError::Invalid(vec![d]))
    }

    /// The text of a definitions file, for locating references.
    pub fn text(&self, file: &Path) -> &str {
        self.texts.get(file).map(String::as_str).unwrap_or("")
    }
}

fn attach<T>(
    out: &mut Vec<Located<T>>,
    defs: Vec<T>,
    rel: &Path,
    text: &str,
    section: &str,
    name: impl Fn(&T) -> &String,
) {
    let spans = locate::items(text, section);
    let mut used = vec![false; spans.len()];
    for def in defs {
        // Match by name (first unused), so duplicates in one file get their own lines.
        let span = spans
            .iter()
            .enumerate()
            .find(|(i, (n, _))| !used[*i] && n == name(&def))
            .map(|(i, (_, s))| {
                used[i] = true;
                *s
            })
            .unwrap_or_default();
        out.push(Located {
            def,
            file: rel.to_path_buf(),
            span,
        });
    }
}

fn collect_yaml_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> CoreResult<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| CoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CoreError::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        if name.starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| CoreError::io(&path, e))?;
        if file_type.is_dir() {
            if rel == Path::new("data") || name == "target" {
                continue;
            }
            collect_yaml_files(root, &path, out)?;
        } else if (name.ends_with(".yaml") || name.ends_with(".yml"))
            && rel != Path::new(CONFIG_FILE)
        {
            out.push(rel);
        }
    }
    Ok(())
}
