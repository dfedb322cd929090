"""The agent's sandbox (src/sandbox/): a hostile agent next to a victim task.

A stand-in CLI (tests/fakes/hostile_claude.py) does what a prompt injection
could make the real agent do, while another task (the victim) runs beside
it in the same `ccr serve`.  Every probe must be blocked, in the full
sandbox (namespaces and Landlock) and with Landlock alone; the allowed host
must still be reachable through the egress proxy.
"""
import http.client
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import http.server

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conftest import ROOT, http_request  # noqa: E402
from fakes.fake_claude import read_record  # noqa: E402
from test_job import pid_alive  # noqa: E402

HOSTILE = ROOT / "tests" / "fakes" / "hostile_claude.py"
MARK = "HOSTILE-" + os.urandom(6).hex()
API_KEY = MARK + "-apikey"


def landlock_abi():
    r = subprocess.run([sys.executable, "-c", "import ctypes;l=ctypes.CDLL(None,use_errno=True);"
                        "print(l.syscall(444,None,0,1))"], capture_output=True, text=True)
    return int(r.stdout.strip() or 0)


class FakeMetadata(http.server.BaseHTTPRequestHandler):
    """Stands in for the metadata server: any request it gets is a breach."""
    hits = []

    def do_GET(self):
        FakeMetadata.hits.append(self.path)
        body = json.dumps({"access_token": MARK + "-sa-token"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Allowed(http.server.BaseHTTPRequestHandler):
    """The one host the hostile task may reach (over TLS, through the proxy)."""
    def do_GET(self):
        body = b"allowed content " * 64
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def make_tls_server(servers, tmp_path):
    pub = tmp_path / "pub"
    pub.mkdir()
    key, crt = pub / "host.key", pub / "host.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    srv = servers.http(Allowed, tls=(crt, key))
    key.unlink()                       # loaded; nothing secret left beside the certificate
    return srv, crt


def ancestors(pid):
    out = []
    while pid > 1:
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
        out.append(pid)
    return out


def sse_lines(data):
    for block in data.split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                try:
                    yield json.loads(line[6:])
                except ValueError:
                    pass


@pytest.fixture
def world(local_serve, tmp_path, hook_url, servers):
    """A serve with operator secrets, an operator HOME with an ssh key, a
    victim task running, a fake metadata server and an allowed TLS host."""
    home = tmp_path / "operator-home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(MARK + "-operator-ssh-key\n")
    FakeMetadata.hits = []
    meta_port = servers.http(FakeMetadata).port
    tls, crt = make_tls_server(servers, tmp_path)
    tls_port = tls.port
    victims = []

    def start(mode):
        srv = local_serve(CCR_API_KEYS=API_KEY, CLOUDRUN_CALLBACK_SECRET=MARK + "-callback-secret", HOME=home,
                          CLAUDE_BIN=HOSTILE, CCR_SANDBOX=mode, CCR_SANDBOX_RO_PATHS=tmp_path / "pub",
                          CCR_EGRESS_ALLOW_PRIVATE=f"127.0.0.1:{tls_port}", CCR_ALLOW_PRIVATE_CALLBACKS="1")
        auth = {"Authorization": f"Bearer {API_KEY}"}
        rec = tmp_path / "rec" / "victim.json"
        victim = {"prompt": "work", "anthropicApiKey": MARK + "-victim-key", "taskId": "victim1",
                  "callbackUrl": hook_url, "idleAfterResultSeconds": 3600,    # takes messages: has a socket
                  "environmentSecrets": {"FAKE_CLAUDE_MODE": json.dumps({"lines": [{"type": "system"}],
                                                                           "hang_after": True}),
                                         "FAKE_CLAUDE_RECORD": str(rec), "VICTIM_SECRET": MARK + "-victim-env"}}
        status, _, data = http_request(srv, "POST", "/run-async", victim, headers=auth)
        assert status == 202, data
        victims.append((srv, auth))
        for _ in range(300):
            if rec.exists() and rec.stat().st_size:
                break
            time.sleep(0.05)
        cli = read_record(rec)["pid"]
        assert cli > 0 and pid_alive(cli)
        job = next(p for p in ancestors(cli) if b"job" in pathlib.Path(f"/proc/{p}/cmdline").read_bytes())
        (sock,) = (srv.data / ".run" / "msg").glob("*.sock")
        spec = {"marker": MARK, "data_dir": str(srv.data), "home": str(home), "ws_parent": str(srv.ws),
                "msg_socket": str(sock), "victim_task": "victim1",
                "pids": {"serve": srv.proc.pid, "victim_job": job, "victim_cli": cli},
                "ports": {"metadata": meta_port, "serve": srv.port},
                "allowed_url": f"https://127.0.0.1:{tls_port}/file", "ca_file": str(crt),
                "denied_host": "outside.example:443"}
        return srv, auth, spec, cli, job
    yield start
    for srv, auth in victims:            # a hanging victim must not outlive the test
        if srv.proc.poll() is None:
            http_request(srv, "POST", "/cancel/victim1", headers=auth)


def run_hostile(srv, auth, spec):
    b = {"prompt": json.dumps(spec), "anthropicApiKey": API_KEY + "-own", "allowedHosts": ["127.0.0.1"],
         "environmentSecrets": {"HOSTILE_SECRET": MARK + "-own-env"}}
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=300)
    c.request("POST", "/run", body=json.dumps(b), headers=dict(auth, **{"Content-Type": "application/json"}))
    r = c.getresponse()
    data = r.read().decode()
    assert r.status == 200, data
    probes = [l for l in sse_lines(data) if isinstance(l, dict) and l.get("subtype") == "probes"]
    assert probes, data[-2000:]
    return probes[0]["results"], data


@pytest.mark.parametrize("mode", ["auto", "landlock"])
def test_hostile_agent_next_to_a_victim_is_contained(world, mode):
    if mode == "landlock" and landlock_abi() < 6:
        pytest.skip("this kernel's Landlock lacks signal scoping (ABI < 6)")
    srv, auth, spec, cli, job = world(mode)
    results, stream = run_hostile(srv, auth, spec)
    print(json.dumps(results, indent=1))
    opened = {k: v for k, v in results.items() if not k.startswith("allowed_") and not v.startswith("blocked")}
    assert not opened, opened
    assert results["allowed_download"].startswith("OPEN"), results["allowed_download"]
    assert MARK not in stream.replace(API_KEY, ""), "no secret in the hostile task's stream"
    assert not FakeMetadata.hits, FakeMetadata.hits
    victim_log = b"".join(p.read_bytes() for p in (srv.data / "sessions" / "victim1").glob("*.jsonl"))
    assert b"-forged" not in victim_log, "no forged message reached the victim's CLI"
    # Everything attacked is still alive and well.
    assert srv.proc.poll() is None and pid_alive(job) and pid_alive(cli)
    status, _, data = http_request(srv, "GET", "/tasks/victim1", headers=auth)
    assert status == 200 and json.loads(data)["status"] == "running", data
    status, _, data = http_request(srv, "POST", "/cancel/victim1", headers=auth)
    assert status == 200, data
    level = "namespaces+landlock" if mode == "auto" else "landlock"
    for _ in range(100):
        meta = json.loads((srv.data / "sessions" / "victim1" / "metadata.json").read_text())
        if meta["status"] == "cancelled":
            break
        time.sleep(0.1)
    assert meta["status"] == "cancelled" and meta["sandbox"] == level, meta


def test_operator_secrets_leave_the_environment_of_serve_and_job(world):
    srv, auth, spec, cli, job = world("auto")
    for pid in (srv.proc.pid, job):
        env = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
        assert MARK.encode() not in env, (pid, "a secret is still in /proc/<pid>/environ")


def test_sandbox_level_is_reported_and_modes_are_checked(local_serve, tmp_path):
    srv = local_serve()
    status, _, data = http_request(srv, "GET", "/health?verbose=true")
    assert status == 200, data
    box = json.loads(data)["sandbox"]
    assert box["mode"] == "auto" and box["level"] == "namespaces+landlock", box
    with pytest.raises(AssertionError) as bad:
        local_serve(CCR_SANDBOX="sometimes")
    assert "CCR_SANDBOX must be auto, required, landlock or off" in str(bad.value)
