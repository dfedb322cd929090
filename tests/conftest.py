"""Shared fixtures for ccr's integration tests.

Tests drive the built binary (zig-out/bin/ccr, or $CCR_BIN) as a user would.
Each test that needs a server starts it itself, from tests/fakes, through
tests/fakes/testenv.py (ports, start-up, readiness, cleanup): the `servers`
fixture stops what a test started when it ends.
"""
import http.client
import http.server
import json
import os
import pathlib
import socket
import subprocess

import pytest

from fakes import testenv

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAKE_ANTHROPIC = ROOT / "tests" / "fakes" / "fake_anthropic.py"

# scripts/test-asan runs this suite against the sanitizer build
# (build/asan/ccr, dynamically linked, ASan + UBSan): it sets
# CCR_SANITIZED=1, and CCR_SANITIZER_LOG_DIR to the directory that
# ASAN_OPTIONS/UBSAN_OPTIONS log_path send every report to.
SANITIZED = os.environ.get("CCR_SANITIZED") == "1"
SANITIZER_LOG_DIR = os.environ.get("CCR_SANITIZER_LOG_DIR")
release_binary_only = pytest.mark.skipif(
    SANITIZED, reason="about the static release binary (zig-out/bin/ccr); "
    "CCR_SANITIZED=1 runs the dynamically linked sanitizer build")


@pytest.fixture(scope="session")
def ccr_bin():
    path = pathlib.Path(os.environ.get("CCR_BIN", ROOT / "zig-out" / "bin" / "ccr"))
    if not path.is_file():
        pytest.fail(f"{path} does not exist: run scripts/build first")
    return path


@pytest.fixture(scope="session")
def repo_root():
    return ROOT


_reported = set()


def _sanitizer_reports():
    if not SANITIZER_LOG_DIR:
        return set()
    return {p for p in pathlib.Path(SANITIZER_LOG_DIR).iterdir() if p.is_file()} - _reported


def _describe(reports):
    text = []
    for p in sorted(reports):
        _reported.add(p)
        text.append(f"== {p}\n{p.read_text(errors='replace')[:8000]}")
    return "\n".join(text)


@pytest.fixture(autouse=True)
def sanitizer_reports():
    """Under the sanitizer build, fail the test during which any ccr process
    (the one the test ran, or a child: serve's `ccr job`, the CLI's proxy)
    wrote an ASan, LSan or UBSan report.  Reports go to files, so they are
    seen even when the process's exit code is not checked or it was killed
    after reporting; this fixture is set up first and torn down last."""
    before = _sanitizer_reports()
    yield
    new = _sanitizer_reports() - before
    if new:
        pytest.fail("sanitizer report(s) from ccr during this test:\n" + _describe(new), pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """Reports written after the last test ended (a daemon exiting late)
    fail the run too."""
    late = _sanitizer_reports()
    if late:
        print("\nsanitizer report(s) written after the tests ended:\n" + _describe(late))
        session.exitstatus = 1


def run(argv, **kw):
    """subprocess.run with text output captured and a default timeout."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 300)
    return subprocess.run([str(a) for a in argv], **kw)


def is_root():
    return os.geteuid() == 0


class Hook(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: every POST is kept in Hook.seen as (headers, body)."""
    seen = []

    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.seen.append((dict(self.headers), data))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def servers():
    """A testenv.Servers: .start(argv, ready, ...) and .http(handler, ...) start servers
    (tests/fakes/testenv.py); every one still running is stopped when the test ends."""
    pool = testenv.Servers()
    yield pool
    pool.close()


def start_fake_anthropic(servers, *args):
    """tests/fakes/fake_anthropic.py as a process (--port 0, then args): its base URL."""
    return servers.start(["/usr/bin/python3", FAKE_ANTHROPIC, "--port", "0", *args]).url()


@pytest.fixture
def hook_url(servers):
    """The URL of a fresh webhook receiver on loopback (see Hook)."""
    Hook.seen = []
    yield servers.http(Hook).url("/hook")


def http_request(srv, method, path, payload=None, headers=None, timeout=30):
    """One request to a server on loopback (anything with .port), payload sent
    as JSON: (status, Content-Type, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=None if payload is None else json.dumps(payload), headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), data


def post_run_then_drop(srv, payload, until):
    """POST /run on a raw connection, read until the bytes `until` arrive, then drop the
    connection (a client that goes away mid-stream)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    data = json.dumps(payload)
    s.sendall(("POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n%s" % (len(data), data)).encode())
    got = b""
    while until not in got:
        part = s.recv(4096)
        assert part, "the stream ended before %r" % until
        got += part
    s.close()
    return got


def get_until_close(srv, path, headers=""):
    """GET path on a raw connection (Connection: close) and read to the end: the bytes."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n".encode())
    got = b""
    while True:
        part = s.recv(65536)
        if not part:
            break
        got += part
    s.close()
    return got


@pytest.fixture
def local_serve(ccr_bin, tmp_path):
    """start(**env): `ccr serve` in local mode with its data and workspaces in tmp_path and the
    scripted claude; each server started is killed at the end of the test."""
    from test_http_server import Serve
    started = []

    def start(**env):
        (tmp_path / "rec").mkdir(exist_ok=True)
        e = {"CCR_DATA_DIR": str(tmp_path / "data"), "CCR_WORKSPACE_ROOT": str(tmp_path / "ws"),
             "CCR_SANDBOX_RW_PATHS": str(tmp_path / "rec"),
             "CLAUDE_BIN": str(ROOT / "tests" / "fakes" / "fake_claude.py"), "CCR_KILL_GRACE_MS": "500"}
        e.update({k: str(v) for k, v in env.items()})
        s = Serve(ccr_bin, e)
        s.data, s.ws = tmp_path / "data", tmp_path / "ws"
        started.append(s)
        return s
    yield start
    for s in started:
        s.kill()
