"""A real `asof serve` on the quickstart repo, shared by the Python tests.

The repo is made by `asof init` (generated data, times relative to now), applied, materialized
and its document index synced; the server serves gRPC with Flight, Feast's HTTP endpoints and
MCP, each on a free loopback port it reports on stdout.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parents[2]


def asof_bin() -> str:
    if "ASOF_BIN" in os.environ:
        return os.environ["ASOF_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / "debug" / "asof"
    if not path.exists():
        pytest.fail(f"no asof binary at {path}: run `cargo build --bin asof` (or set ASOF_BIN)")
    return str(path)


def run(repo: Path, *args: str) -> str:
    out = subprocess.run(
        [asof_bin(), "--repo", str(repo), "-q", *args],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise AssertionError(f"asof {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


@dataclass
class Server:
    repo: Path
    grpc: str
    http: str
    flight: str
    process: subprocess.Popen
    lines: List[str]

    @property
    def url(self) -> str:
        return f"grpc://{self.grpc}"


def start_server(repo: Path, *extra: str, token_file: Path | None = None) -> Server:
    """Starts `asof serve` and waits for every address it announces."""
    args = [
        asof_bin(), "--repo", str(repo), "serve",
        "--grpc", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
        "--http", "127.0.0.1:0", "--flight", "127.0.0.1:0", "--mcp", *extra,
    ]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found: Dict[str, str] = {}
    lines: List[str] = []
    deadline = time.time() + 60
    while time.time() < deadline and len(found) < 3:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        for name, pattern in (
            ("flight", r"Arrow Flight training sets on grpcs?://(\S+)"),
            ("http", r"Feast HTTP endpoints on http://(\S+)"),
            ("grpc", r"asof serving .* on grpcs?://(\S+)"),
        ):
            m = re.search(pattern, line)
            if m:
                found[name] = m.group(1)
    if len(found) < 3:
        process.kill()
        raise AssertionError("asof serve did not start:\n" + "".join(lines) + (process.stdout.read() or ""))
    return Server(repo, found["grpc"], found["http"], found["flight"], process, lines)


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("asof") / "rideshare"
    subprocess.run([asof_bin(), "-q", "init", str(path)], check=True, capture_output=True)
    run(path, "apply")
    run(path, "materialize-incremental", "now")
    run(path, "index", "sync", "help_articles")
    return path


@pytest.fixture(scope="session")
def server(repo):
    s = start_server(repo)
    yield s
    stop(s)
