//! A real PostgreSQL for tests and benchmarks: `initdb` into a temp folder (as `nobody` when run
//! as root, since PostgreSQL refuses root), `wal_level` as asked, on a free loopback port, with a
//! superuser `asof` whose password is [`PASSWORD`]. Stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASSWORD: &str = "asof-test-password";

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The user the server runs as (`nobody` under root).
    run_as: Option<&'static str>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The folder of `initdb`, `pg_ctl` and `psql`: the newest under /usr/lib/postgresql, else PATH.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().unwrap_or_else(|| {
        let out = Command::new("sh")
            .args(["-c", "dirname \"$(command -v initdb)\""])
            .output()
            .expect("sh");
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            !dir.is_empty() && dir != ".",
            "PostgreSQL is not installed: `apt-get install postgresql` (scripts/test.sh does it)"
        );
        PathBuf::from(dir)
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    /// A server with `wal_level = logical`.
    pub fn start() -> Postgres {
        Self::start_with("logical")
    }

    pub fn start_with(wal_level: &str) -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("asof-pg")
            .tempdir()
            .unwrap();
        let run_as = is_root().then_some("nobody");
        if let Some(user) = run_as {
            let ok = Command::new("chown")
                .args(["-R", user, dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        let pg = Postgres {
            port: free_port(),
            bin,
            dir,
            run_as,
        };
        let data = pg.data_dir();
        let out = pg.as_server_user(
            &pg.bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "asof",
                "--auth=scram-sha-256",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nwal_level = {wal_level}\n\
             max_replication_slots = 20\nmax_wal_senders = 20\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             wal_sender_timeout = 2s\n",
            pg.port,
            pg.dir.path().display()
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        pg.ctl("start");
        pg
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_server_user(&self, program: &Path, args: &[&str]) -> Output {
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args).stdin(Stdio::null()).output().unwrap()
    }

    fn ctl(&self, action: &str) {
        let log = self.dir.path().join("log");
        let data = self.data_dir();
        let mut args = vec![
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-t",
            "60",
        ];
        if action != "start" {
            args.extend(["-m", "fast"]);
        }
        args.push(action);
        let out = self.as_server_user(&self.bin.join("pg_ctl"), &args);
        assert!(
            out.status.success(),
            "pg_ctl {action} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops and starts the server (a fast shutdown: sessions are cut).
    pub fn restart(&self) {
        self.ctl("restart");
    }

    /// `postgresql://asof@127.0.0.1:PORT/db`
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://asof@127.0.0.1:{}/{db}", self.port)
    }

    /// psql on `db` running `sql` (a statement or a script), stopping at the first error.
    fn psql_command(&self, db: &str, sql: &str) -> Command {
        let mut c = Command::new(self.bin.join("psql"));
        c.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &self.port.to_string(),
            "-U",
            "asof",
            "-d",
            db,
            "-c",
            sql,
        ])
        .env("PGPASSWORD", PASSWORD)
        .stdin(Stdio::null());
        c
    }

    /// Runs `sql` with psql on `db`; its output (unaligned, tuples only) or psql's error.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = self.psql_command(db, sql).output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql failed: {e}\n  sql: {sql}"))
    }

    /// A psql process running `sql` (a script) on `db`, not waited for.
    pub fn spawn_psql(&self, db: &str, sql: &str) -> std::process::Child {
        self.psql_command(db, sql)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// The end of the WAL written so far (buffered records too: commits are asynchronous here).
    /// Records written after the last commit (PostgreSQL's own) are confirmed by an idle stream
    /// at its next keepalive: `wal_sender_timeout = 2s` makes those come every second.
    pub fn current_lsn(&self, db: &str) -> u64 {
        parse_lsn(self.psql(db, "SELECT pg_current_wal_insert_lsn()").trim())
    }
}

/// `X/Y` as a number.
pub fn parse_lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').expect("an LSN");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.as_server_user(
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}
