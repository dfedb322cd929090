"""`ccr job` in local mode against a scripted stand-in for the claude CLI.

Each test writes a sealed payload (sealed by an independent Python
implementation), runs `ccr job` as serve would, and checks what it left in
the data directory: JSONL chunks, terminal metadata, the webhook it sent,
and that no secret leaked anywhere.
"""
import hashlib
import hmac
import base64
import http.server
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conftest import ROOT  # noqa: E402
from fakes import local_seal  # noqa: E402

FAKE_CLAUDE = ROOT / "tests" / "fakes" / "fake_claude.py"
CANARY = "sk-ant-canary-" + "7f3a9c1e5b2d4068"
ENV_CANARY = "env-secret-canary-51d2"


class Job:
    """A data dir, a key, and a way to run one task through `ccr job`."""

    def __init__(self, ccr_bin, tmp_path):
        self.bin = ccr_bin
        self.data = tmp_path / "data"
        self.data.mkdir()
        self.ws_root = tmp_path / "ws"
        self.key = local_seal.make_key(self.data / "ccr.key")
        self.record = tmp_path / "claude-record.json"

    def payload(self, task_id, **fields):
        mode = fields.pop("mode", {})
        body = {"prompt": "say hello", "anthropicApiKey": CANARY,
                "environmentSecrets": {"FAKE_CLAUDE_MODE": json.dumps(mode),
                                       "FAKE_CLAUDE_RECORD": str(self.record),
                                       "MY_SECRET": ENV_CANARY}}
        body.update(fields)
        path = self.data / "tasks" / task_id / "payload.enc"
        path.parent.mkdir(parents=True)
        path.write_bytes(local_seal.seal(self.key, json.dumps(body).encode()))
        return path

    def env(self, task_id, **extra):
        env = {"PATH": os.environ["PATH"], "HOME": str(self.data.parent), "TASK_ID": task_id,
               "ENCRYPTED_PAYLOAD_PATH": str(self.data / "tasks" / task_id / "payload.enc"),
               "CCR_DATA_DIR": str(self.data), "CCR_WORKSPACE_ROOT": str(self.ws_root),
               "CLAUDE_BIN": str(FAKE_CLAUDE), "CCR_RETRY_BASE_MS": "20"}
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, task_id, **extra):
        return subprocess.Popen([str(self.bin), "job"], env=self.env(task_id, **extra),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    def run(self, task_id, timeout=60, **extra):
        p = self.start(task_id, **extra)
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err

    def meta(self, task_id):
        return json.loads((self.data / "sessions" / task_id / "metadata.json").read_text())

    def chunks(self, task_id):
        d = self.data / "sessions" / task_id
        return sorted(p for p in d.iterdir() if p.name.endswith(".jsonl"))

    def lines(self, task_id):
        return [l for c in self.chunks(task_id) for l in c.read_text().splitlines()]

    def claude_record(self):
        return json.loads(self.record.read_text())


@pytest.fixture
def job(ccr_bin, tmp_path):
    return Job(ccr_bin, tmp_path)


def everything_under(path):
    for p in pathlib.Path(path).rglob("*"):
        if p.is_file():
            yield p, p.read_bytes()


def test_completed_task_stores_lines_metadata_and_cleans_up(job):
    job.payload("t1", mode={"lines": [{"type": "system", "subtype": "init", "session_id": "s1"},
                                      {"type": "assistant", "message": {"id": "m1", "content": []}},
                                      {"type": "assistant", "message": {"id": "m1", "content": []}},
                                      {"type": "assistant", "message": {"id": "m2", "content": []}},
                                      "plain text line",
                                      {"type": "result", "subtype": "success", "session_id": "s1",
                                       "num_turns": 2, "total_cost_usd": 0.5,
                                       "usage": {"input_tokens": 7, "output_tokens": 3}}]})
    rc, out, err = job.run("t1")
    assert rc == 0, err
    m = job.meta("t1")
    assert m["status"] == "completed" and m["terminalReason"] == "completed" and m["exitCode"] == 0
    assert list(m)[:6] == ["taskId", "status", "createdAt", "startedAt", "completedAt", "terminalReason"]
    assert m["result"]["session_id"] == "s1" and m["result"]["usage"] == {"input_tokens": 7, "output_tokens": 3}
    assert m["result"]["costSource"] == "claude-cli-estimate"
    lines = job.lines("t1")
    assert len(lines) == 6 and lines[4] == "plain text line"
    assert json.loads(lines[0])["subtype"] == "init"
    assert not (job.data / "tasks" / "t1" / "payload.enc").exists(), "payload deleted"
    assert list(job.ws_root.iterdir()) == [], "workspace wiped"
    rec = job.claude_record()
    assert rec["argv"][:4] == ["-p", "--verbose", "--output-format", "stream-json"]
    assert rec["prompt"] == "say hello"


def test_claude_env_is_explicit_and_holds_only_the_dummy(job):
    job.payload("t2", cwdRelative="sub/dir", environmentSecrets={
        "FAKE_CLAUDE_MODE": "{}", "FAKE_CLAUDE_RECORD": str(job.record), "MY_SECRET": ENV_CANARY,
        "ANTHROPIC_BASE_URL": "http://evil.example", "ANTHROPIC_API_KEY": "stolen"})
    rc, out, err = job.run("t2", CLOUDRUN_CALLBACK_SECRET="whsec_c2VjcmV0", GOOGLE_APPLICATION_CREDENTIALS="/x")
    assert rc == 0, err
    rec = job.claude_record()
    env = rec["env"]
    assert env["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
    assert env["ANTHROPIC_API_KEY"] not in (CANARY, "stolen") and len(env["ANTHROPIC_API_KEY"]) > 20
    assert env["MY_SECRET"] == ENV_CANARY
    for leaked in ("CLOUDRUN_CALLBACK_SECRET", "GOOGLE_APPLICATION_CREDENTIALS", "CCR_DATA_DIR", "TASK_ID"):
        assert leaked not in env
    assert rec["cwd"].endswith("/sub/dir"), "Claude runs in cwdRelative (B8)"


ERROR_RESULT = [{"type": "result", "subtype": "error_max_turns", "is_error": True, "result": "max turns"}]


@pytest.mark.parametrize("mode,reason,extra", [
    ({"lines": ERROR_RESULT, "hang_after": True}, "hang_after_result", {"CCR_RESULT_GRACE_S": 1}),
    ({"silent": 30}, "idle_timeout", {"CCR_IDLE_TIMEOUT_S": 1}),
    ({"exit": 3}, "failed", {}),
])
def test_watchdogs_and_failures_name_their_reason(job, mode, reason, extra):
    job.payload("w1", mode=mode)
    t0 = time.time()
    rc, out, err = job.run("w1", **extra)
    assert rc == 1, err
    m = job.meta("w1")
    assert m["terminalReason"] == reason
    assert m["status"] == "failed", "a watchdog or signal ending is never completed (B11)"
    assert time.time() - t0 < 20


def test_overall_timeout(job):
    job.payload("w2", timeoutMinutes=0.02, mode={"silent": 60})
    rc, out, err = job.run("w2", CCR_IDLE_TIMEOUT_S=100)
    m = job.meta("w2")
    assert m["terminalReason"] == "timeout" and m["exitCode"] == 124 and m["status"] == "failed"


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_cancels_and_kills_the_whole_group(job):
    job.payload("c1", mode={"child": True, "ignore_term": True, "hang_after": True,
                            "lines": [{"type": "system", "subtype": "init"}]})
    p = job.start("c1", CCR_KILL_GRACE_MS=500)
    for _ in range(200):
        if job.record.exists() and job.record.stat().st_size:
            break
        time.sleep(0.05)
    rec = job.claude_record()
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    m = job.meta("c1")
    assert m["status"] == "cancelled" and m["terminalReason"] == "cancelled"
    assert m["error"] == "Task cancelled by user"
    time.sleep(0.2)
    assert not pid_alive(rec["pid"]), "claude (ignoring SIGTERM) was SIGKILLed"
    assert not pid_alive(rec["child_pid"]), "its grandchild went with the group"


def test_chunks_sort_past_many_flushes_and_metadata_comes_last(job):
    n = 450
    job.payload("k1", mode={"lines": [{"type": "assistant", "message": {"id": f"m{i}"}, "i": i} for i in range(n)]})
    p = job.start("k1")
    seen_terminal_with = None
    meta = job.data / "sessions" / "k1" / "metadata.json"
    while p.poll() is None or seen_terminal_with is None:
        if meta.exists():
            try:
                m = json.loads(meta.read_text())
            except ValueError:
                m = {}
            if m.get("status") in ("completed", "failed"):
                seen_terminal_with = len(job.lines("k1"))
                break
        time.sleep(0.002)
    p.communicate(timeout=30)
    assert seen_terminal_with == n, "every line was stored before the terminal metadata"
    names = [c.name for c in job.chunks("k1")]
    assert len(names) >= 5 and names == sorted(names)
    assert all(len(c.split("-")[0]) == 6 for c in names)
    got = [json.loads(l)["i"] for l in job.lines("k1")]
    assert got == list(range(n))
    assert job.meta("k1")["durationMs"] >= 0


class Hook(http.server.BaseHTTPRequestHandler):
    answers = []
    seen = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.seen.append((dict(self.headers), body))
        status = Hook.answers.pop(0) if Hook.answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def hook_server():
    Hook.answers, Hook.seen = [500, 503, 200], []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook"
    srv.shutdown()


def test_webhook_retries_until_success_and_verifies_both_ways(job, hook_server):
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    job.payload("h1", callbackUrl=hook_server, metadata={"who": "test"})
    rc, out, err = job.run("h1", CLOUDRUN_CALLBACK_SECRET=secret, CCR_ALLOW_PRIVATE_CALLBACKS=1)
    assert rc == 0, err
    assert len(Hook.seen) == 3
    ids = {h["webhook-id"] for h, _ in Hook.seen}
    assert len(ids) == 1, "same webhook-id on every attempt"
    headers, body = Hook.seen[-1]
    ts = headers["X-Webhook-Timestamp"]
    want = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-Webhook-Signature"] == "sha256=" + want
    key = base64.b64decode(secret[len("whsec_"):])
    std = base64.b64encode(hmac.new(key, f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body,
                                    hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == "v1," + std
    payload = json.loads(body)
    assert list(payload)[:5] == ["taskId", "status", "exitCode", "logsPath", "summary"]
    assert payload["status"] == "completed" and payload["metadata"] == {"who": "test"}
    m = job.meta("h1")
    assert m["webhook"]["delivered"] is True and m["webhook"]["attempts"] == 3


def test_private_callback_refused_by_default(job, hook_server):
    job.payload("h2", callbackUrl=hook_server)
    rc, out, err = job.run("h2", CLOUDRUN_CALLBACK_SECRET="s3cret-value")
    m = job.meta("h2")
    assert m["webhook"]["delivered"] is False and "private" in m["webhook"]["error"]
    assert Hook.seen == []


def test_missing_secret_is_reported_not_silent(job, hook_server):
    job.payload("h3", callbackUrl=hook_server)
    rc, out, err = job.run("h3", CCR_ALLOW_PRIVATE_CALLBACKS=1)
    m = job.meta("h3")
    assert m["webhook"]["delivered"] is False and "CLOUDRUN_CALLBACK_SECRET" in m["webhook"]["error"]


def test_bad_payload_fails_with_terminal_metadata(job):
    path = job.data / "tasks" / "b1" / "payload.enc"
    path.parent.mkdir(parents=True)
    path.write_bytes(local_seal.seal(job.key, json.dumps({"prompt": 42, "anthropicApiKey": CANARY}).encode()))
    rc, out, err = job.run("b1")
    m = job.meta("b1")
    assert m["status"] == "failed" and "prompt must be a string" in m["error"]
    assert not path.exists()


def test_missing_env_exits_1_with_one_line(ccr_bin):
    r = subprocess.run([str(ccr_bin), "job"], env={"PATH": "/usr/bin"}, capture_output=True, text=True)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "TASK_ID" in r.stderr


def test_no_secret_anywhere_after_a_failing_run(job):
    job.payload("r1", mode={"stderr": f"oops {CANARY} and {ENV_CANARY}", "exit": 1,
                            "lines": [f"echoing {ENV_CANARY}"]})
    rc, out, err = job.run("r1")
    m = job.meta("r1")
    assert m["status"] == "failed"
    assert "[REDACTED]" in m["error"]
    for path, data in everything_under(job.data):
        assert CANARY.encode() not in data, path
    assert CANARY not in out + err and ENV_CANARY not in err


@pytest.fixture
def fake_api(tmp_path):
    p = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests" / "fakes" / "fake_anthropic.py"), "--port", "0",
                          "--expected-key", CANARY], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("LISTENING"), line
    yield f"http://127.0.0.1:{line.split()[1]}"
    p.terminate()
    p.wait(timeout=10)


def test_token_proxy_swaps_the_dummy_for_the_real_key(job, fake_api):
    import urllib.request
    job.payload("p1", mode={"api": True})
    rc, out, err = job.run("p1", CCR_ANTHROPIC_UPSTREAM=fake_api)
    assert rc == 0, err
    m = job.meta("p1")
    assert m["status"] == "completed", m
    with urllib.request.urlopen(fake_api + "/_fake/requests") as r:
        reqs = json.load(r)
    reqs = reqs.get("requests", reqs) if isinstance(reqs, dict) else reqs
    msgs = [q for q in reqs if q["path"].startswith("/v1/messages")]
    assert msgs and all(q["credential"] == CANARY or CANARY in json.dumps(q["headers"]) for q in msgs)
    assert m["proxyUsage"]["requests"] == 1 and m["proxyUsage"]["output_tokens"] > 0
    env = job.claude_record()["env"]
    assert CANARY not in json.dumps(env)


def test_git_clone_commit_push_and_billing_over_https(job, tmp_path):
    from fakes.git_servers import GitHttps, make_ca, run as git_run
    ca, cert, key = make_ca(tmp_path / "tls")
    repos = tmp_path / "repos"
    repos.mkdir()
    git_run(["git", "init", "-q", "--bare", "-b", "main", repos / "r.git"])
    seed = tmp_path / "seed"
    git_run(["git", "clone", "-q", repos / "r.git", seed])
    (seed / "README").write_text("hi\n")
    for cmd in (["add", "README"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
                ["push", "-q", "origin", "HEAD:main"]):
        git_run(["git", "-C", seed, *cmd])
    srv = GitHttps(repos, cert, key)
    try:
        manifest = {"stats": {"totalTests": 3}, "new_failures": ["t2"], "testCases": [1, 2, 3]}
        job.payload("g1", gitRepo=srv.url("r.git"), mode={"write": [
            {"path": "test-cases/login.md", "content": "# login\n"},
            {"path": "test-runs/20260101-1200/manifest.json", "content": json.dumps(manifest)}]},
            postExecutionActions={"git": {"commit": True, "push": True, "branch": "agent",
                                          "commitMessage": "agent work"}})
        rc, out, err = job.run("g1", SSL_CERT_FILE=ca)
        assert rc == 0, err
        m = job.meta("g1")
        assert m["status"] == "completed", m
        gc = m["gitCommit"]
        remote = git_run(["git", "--git-dir", repos / "r.git", "rev-parse", "refs/heads/agent"]).stdout.strip()
        assert gc["pushed"] is True and gc["branch"] == "agent" and gc["sha"] == remote
        files = git_run(["git", "--git-dir", repos / "r.git", "ls-tree", "-r", "--name-only", "agent"]).stdout.split()
        assert "test-cases/login.md" in files and ".env" not in files and "prompt.txt" not in files
        b = m["billing"]
        assert b["testCaseCreations"] == ["test-cases/login.md"]
        assert b["newFailures"] == ["t2"]
        assert b["testRuns"][0]["timestamp"] == "20260101-1200" and b["testRuns"][0]["testCaseCount"] == 3
    finally:
        srv.close()
