//! A real `redis-server` on a free loopback port, stopped when dropped. No Docker needed: Debian's
//! `redis-server` package (scripts/test.sh installs it).

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> RedisServer {
        Self::spawn(port, &["--protected-mode", "yes"], None)
    }

    /// A redis-server with `extra` arguments (e.g. `--requirepass`) on a free port.
    #[allow(dead_code)] // not every test binary that includes this file uses every helper
    pub fn start_with(extra: &[&str]) -> RedisServer {
        Self::spawn(free_port(), extra, None)
    }

    /// A redis-server that speaks only TLS on `port` (its plaintext port is off), with the given
    /// PEM files; clients must present a certificate signed by `ca`.
    #[allow(dead_code)]
    pub fn start_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
    ) -> RedisServer {
        let port = free_port();
        let args = [
            "--tls-port".to_string(),
            port.to_string(),
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-key-file".into(),
            key.display().to_string(),
            "--tls-ca-cert-file".into(),
            ca.display().to_string(),
            "--tls-auth-clients".into(),
            "yes".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::spawn_on_ports(0, port, &args, None)
    }

    /// A redis-server on `port` with `extra` arguments, run in `dir` (where it writes its files)
    /// if given; returns once it accepts connections.
    fn spawn(port: u16, extra: &[&str], dir: Option<&std::path::Path>) -> RedisServer {
        Self::spawn_on_ports(port, port, extra, dir)
    }

    /// Like [`Self::spawn`], with the plaintext port `port` (0: none) and the port to wait on.
    fn spawn_on_ports(
        port: u16,
        wait_on: u16,
        extra: &[&str],
        dir: Option<&std::path::Path>,
    ) -> RedisServer {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().expect(
            "redis-server must be installed (scripts/test.sh installs it from Debian's packages)",
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", wait_on)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {wait_on}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            child,
            port: wait_on,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A three-primary Redis Cluster on free loopback ports (no replicas), formed with
/// `redis-cli --cluster create`; its nodes stop when it is dropped.
pub struct RedisCluster {
    _dir: tempfile::TempDir,
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nodes: Vec<RedisServer> = ports
            .iter()
            .map(|&port| {
                let config = format!("nodes-{port}.conf");
                let args = ["--cluster-enabled", "yes", "--cluster-config-file", &config];
                RedisServer::spawn(port, &args, Some(dir.path()))
            })
            .collect();
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (Debian's redis-tools)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = RedisCluster { _dir: dir, nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.ports().iter().all(|&p| cluster_ok(p)) {
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The `connection_string` naming every node.
    pub fn connection_string(&self) -> String {
        self.ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Keys held by each node (`DBSIZE`).
    pub fn key_counts(&self) -> Vec<u64> {
        self.ports()
            .iter()
            .map(|p| {
                let out = Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "DBSIZE"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
            })
            .collect()
    }
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cluster_ok(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "CLUSTER", "INFO"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
}
