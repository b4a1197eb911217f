//! A real `asof serve` process on free loopback ports, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::util::TestRepo;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
    /// The line the server printed when it was ready.
    pub banner: String,
}

impl Server {
    /// `asof serve` on `repo` with `extra` arguments and environment; returns once it is ready.
    pub fn start(repo: &TestRepo, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let (port, metrics_port) = (free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_asof"))
            .args(["--repo", repo.dir.to_str().unwrap(), "serve", "--grpc"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--metrics")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("ASOF_REPO")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        assert!(
            banner.contains(&format!("127.0.0.1:{port}")),
            "the server did not start: {banner:?}"
        );
        Server {
            child,
            port,
            metrics_port,
            banner,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /metrics`.
    pub fn metrics(&self) -> String {
        let mut http = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).unwrap();
        std::io::Write::write_all(
            &mut http,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut http, &mut body).unwrap();
        body
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
