//! TLS and bearer tokens on the gRPC server, and a Redis that wants a password or TLS with client
//! certificates: real servers, real certificates (made here with the `openssl` command), real
//! clients.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../crates/server/tests/serving/redis_server.rs"]
#[allow(dead_code)]
pub mod redis_server;

use crate::server::Server;
use crate::util::{TestRepo, stdout_of};
use redis_server::RedisServer;

/// A private CA with a server certificate (127.0.0.1, localhost) and a client certificate.
struct Certs {
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    fn make() -> Certs {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &dir,
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=asof test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            openssl(
                &dir,
                &[
                    &["req"][..],
                    &ec,
                    &[
                        "-keyout",
                        &format!("{name}.key"),
                        "-out",
                        &format!("{name}.csr"),
                        "-subj",
                        &format!("/CN=asof test {name}"),
                    ],
                ]
                .concat(),
            );
            std::fs::write(
                dir.join(format!("{name}.ext")),
                format!(
                    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n"
                ),
            )
            .unwrap();
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{name}.ext"),
                ],
            );
        }
        Certs { _dir: tmp, dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn query(r: &TestRepo, url: &str, extra: &[&str]) -> std::process::Output {
    r.run(
        &[
            &[
                "query",
                "--server",
                url,
                "--features",
                "driver_hourly_stats:conv_rate",
                "--entity",
                "driver_id=1001",
                "--output",
                "json",
            ][..],
            extra,
        ]
        .concat(),
    )
    .env_remove("ASOF_TOKEN")
    .output()
    .unwrap()
}

#[test]
fn tls_and_bearer_tokens_admit_only_clients_with_a_token() {
    let certs = Certs::make();
    let r = TestRepo::applied();
    stdout_of(&mut r.run(&["materialize-incremental", "now"]));
    let config = r.read("feature_store.yaml");
    r.write(
        "feature_store.yaml",
        &format!("{config}serving: {{auth: {{tokens_env: ASOF_TEST_TOKENS}}}}\n"),
    );

    // A server told to require tokens refuses to start without them.
    let out = r
        .run(&["serve", "--grpc", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .env_remove("ASOF_TEST_TOKENS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ASOF_TEST_TOKENS") && err.contains("not set"),
        "{err}"
    );

    let server = Server::start(
        &r,
        &[
            "--tls-cert",
            &certs.path("server.pem"),
            "--tls-key",
            &certs.path("server.key"),
        ],
        &[("ASOF_TEST_TOKENS", "first-token, second-token")],
    );
    assert!(
        server.banner.contains("grpcs://") && server.banner.contains("tokens required"),
        "{}",
        server.banner
    );
    let url = format!("https://127.0.0.1:{}", server.port);
    let ca = certs.path("ca.pem");

    let ok = query(&r, &url, &["--ca", &ca, "--token", "second-token"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(rows[0]["conv_rate"]["status"], "PRESENT", "{rows}");

    // The token may also come from the environment.
    let from_env = r
        .run(&[
            "query",
            "--server",
            &url,
            "--ca",
            &ca,
            "--features",
            "driver_hourly_stats:conv_rate",
            "--entity",
            "driver_id=1001",
        ])
        .env("ASOF_TOKEN", "first-token")
        .output()
        .unwrap();
    assert!(
        from_env.status.success(),
        "{}",
        String::from_utf8_lossy(&from_env.stderr)
    );

    for (args, want) in [
        (vec!["--ca", &ca], "requires a token"),
        (vec!["--ca", &ca, "--token", "wrong"], "not accepted"),
    ] {
        let out = query(&r, &url, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Unauthenticated") && err.contains(want),
            "{args:?}: {err}"
        );
    }
    // Without the CA the server's certificate is not trusted; plaintext does not speak TLS.
    let out = query(&r, &url, &["--token", "first-token"]);
    assert!(!out.status.success());
    let out = query(&r, &server.url(), &["--token", "first-token"]);
    assert!(!out.status.success());
    // The server kept serving through all of it.
    let ok = query(&r, &url, &["--ca", &ca, "--token", "first-token"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(server.terminate().success());
}

fn on_redis(r: &TestRepo, online_store: &str) {
    let config = r.read("feature_store.yaml");
    let start = config
        .find("online_store:")
        .expect("the quickstart names its online store");
    let end = start + config[start..].find('\n').unwrap();
    r.write(
        "feature_store.yaml",
        &format!("{}{online_store}{}", &config[..start], &config[end..]),
    );
}

#[test]
fn redis_with_a_password_from_the_environment() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
    let r = TestRepo::applied();
    on_redis(
        &r,
        &format!(
            "online_store: {{type: redis, connection_string: \"redis://127.0.0.1:{}/0\", password_env: ASOF_TEST_REDIS_PASSWORD}}",
            redis.port
        ),
    );
    let out = r
        .run(&["materialize-incremental", "now"])
        .env_remove("ASOF_TEST_REDIS_PASSWORD")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("password_env")
            && err.contains("ASOF_TEST_REDIS_PASSWORD"),
        "{err}"
    );
    let out = r
        .run(&["materialize-incremental", "now"])
        .env("ASOF_TEST_REDIS_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong password must fail");

    let mat = stdout_of(
        r.run(&["materialize-incremental", "now"])
            .env("ASOF_TEST_REDIS_PASSWORD", "s3cret-pw"),
    );
    assert!(mat.contains("50 keys, 50 written"), "{mat}");
    let server = Server::start(&r, &[], &[("ASOF_TEST_REDIS_PASSWORD", "s3cret-pw")]);
    let out = query(&r, &server.url(), &[]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["conv_rate"]["status"], "PRESENT", "{rows}");
}

#[test]
fn redis_over_tls_with_a_private_ca_and_a_client_certificate() {
    let certs = Certs::make();
    let redis = RedisServer::start_tls(
        Path::new(&certs.path("server.pem")),
        Path::new(&certs.path("server.key")),
        Path::new(&certs.path("ca.pem")),
    );
    let r = TestRepo::applied();
    on_redis(
        &r,
        &format!(
            "online_store: {{type: redis, connection_string: \"rediss://127.0.0.1:{}/0\", tls: {{ca_cert: \"{}\", client_cert: \"{}\", client_key: \"{}\"}}}}",
            redis.port,
            certs.path("ca.pem"),
            certs.path("client.pem"),
            certs.path("client.key")
        ),
    );
    let mat = stdout_of(&mut r.run(&["materialize-incremental", "now"]));
    assert!(mat.contains("50 keys, 50 written"), "{mat}");
    let server = Server::start(&r, &[], &[]);
    let out = query(&r, &server.url(), &[]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["conv_rate"]["status"], "PRESENT", "{rows}");

    // Without the client certificate the server refuses the connection.
    let config = r.read("feature_store.yaml");
    r.write(
        "feature_store.yaml",
        &config.replace(
            &format!(
                ", client_cert: \"{}\", client_key: \"{}\"",
                certs.path("client.pem"),
                certs.path("client.key")
            ),
            "",
        ),
    );
    let out = r.run(&["materialize-incremental", "now"]).output().unwrap();
    assert!(
        !out.status.success(),
        "a client without a certificate must be refused"
    );
}
