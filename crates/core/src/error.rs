//! Errors of the core crate. Validation problems are [`Diagnostic`]s: each names the file, line and
//! column it comes from and, where one exists, the near match the user probably meant.

use std::fmt;
use std::path::PathBuf;

/// Result alias for this crate.
pub type CoreResult<T> = Result<T, CoreError>;

/// One problem found in a feature repository, located in the file that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, relative to the repo folder when possible.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no single line (e.g. a missing file).
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    pub message: String,
    /// A suggested fix ("did you mean `driver`?").
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(
        file: impl Into<PathBuf>,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line,
            column,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The repository has one or more definition errors; all of them are listed.
    #[error("{}", render_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry {path} is unreadable: {message}; run `asof apply` to rewrite it")]
    CorruptRegistry { path: PathBuf, message: String },
    #[error("no registry at {0}; run `asof apply` first")]
    NoRegistry(PathBuf),
    #[error("{0}")]
    Request(String),
}

fn render_diagnostics(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diags.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&d.to_string());
    }
    if diags.len() > 1 {
        out.push_str(&format!(
            "\n{} errors in the feature repository",
            diags.len()
        ));
    }
    out
}

impl CoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The closest candidate to `word` (Levenshtein-like similarity), for "did you mean" hints.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}
