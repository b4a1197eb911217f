//! A quickstart repo in a temp folder and a way to run the binary against it.

use std::path::PathBuf;

use assert_cmd::Command;

pub struct TestRepo {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

pub fn asof() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_asof"));
    c.env_remove("ASOF_REPO").env("NO_COLOR", "1");
    c
}

impl TestRepo {
    /// `asof init` into a fresh folder.
    pub fn init() -> TestRepo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        asof().arg("init").arg(&dir).assert().success();
        TestRepo { _tmp: tmp, dir }
    }

    /// `init` then `apply`.
    pub fn applied() -> TestRepo {
        let r = TestRepo::init();
        r.run(&["apply"]).assert().success();
        r
    }

    pub fn run(&self, args: &[&str]) -> Command {
        let mut c = asof();
        c.arg("--repo")
            .arg(&self.dir)
            .args(args)
            .current_dir(&self.dir);
        c
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Replaces `from` with `to` in a file; panics if `from` is absent (the test would be vacuous).
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} has no `{from}`");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// The 1-based line of the first line containing `needle`.
    pub fn line_of(&self, rel: &str, needle: &str) -> usize {
        self.read(rel)
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{rel} has no `{needle}`"))
    }
}

pub fn stderr_of(cmd: &mut Command) -> String {
    let out = cmd.assert().failure().code(1).get_output().clone();
    String::from_utf8(out.stderr).unwrap()
}

pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().clone();
    String::from_utf8(out.stdout).unwrap()
}

/// Every batch of a Parquet file.
pub fn read_parquet(path: &std::path::Path) -> Vec<datafusion::arrow::array::RecordBatch> {
    let f = std::fs::File::open(path).unwrap();
    datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}
