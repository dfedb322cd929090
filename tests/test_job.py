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
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conftest import ROOT, start_fake_anthropic  # noqa: E402
from fakes import local_seal  # noqa: E402
from fakes.fake_claude import read_record  # noqa: E402

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
        # what the stand-in records must be writable inside the agent's sandbox
        self.rec_dir = tmp_path / "rec"
        self.rec_dir.mkdir()
        self.record = self.rec_dir / "claude-record.json"

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
               "CLAUDE_BIN": str(FAKE_CLAUDE), "CCR_RETRY_BASE_MS": "20",
               "CCR_SANDBOX_RW_PATHS": str(self.rec_dir)}
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
        return read_record(self.record)


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
    except (FileNotFoundError, ProcessLookupError):   # gone between kill() and the read
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
def hook_server(servers):
    Hook.answers, Hook.seen = [500, 503, 200], []
    return servers.http(Hook).url("/hook")


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


class Redirector(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that redirects: routes maps a path to (status,
    Location) or to a final status; every request is kept in seen as
    (method, path, headers, body)."""
    routes = {}
    seen = []

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        Redirector.seen.append((self.command, self.path, dict(self.headers), body))
        route = Redirector.routes.get(self.path, 404)
        status, location = route if isinstance(route, tuple) else (route, None)
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET = answer

    def log_message(self, *a):
        pass


@pytest.fixture
def redirector(servers):
    """Two receivers on loopback; their base URLs."""
    Redirector.routes, Redirector.seen = {}, []
    return [servers.http(Redirector).url() for _ in range(2)]


HOOK_SECRET = "whsec_" + base64.b64encode(b"redirect-test-secret-0123456789!").decode()


def signed_ok(headers, body):
    ts = headers["X-Webhook-Timestamp"]
    seed = hmac.new(HOOK_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return headers["X-Webhook-Signature"] == "sha256=" + seed


@pytest.mark.parametrize("code", [307, 308])
def test_webhook_follows_307_and_308_with_method_body_and_signature(job, redirector, code):
    a, b = redirector
    Redirector.routes = {"/hook": (code, "/moved"), "/moved": (code, b + "/final"), "/final": 200}
    job.payload(f"r{code}", callbackUrl=a + "/hook")
    rc, out, err = job.run(f"r{code}", CLOUDRUN_CALLBACK_SECRET=HOOK_SECRET, CCR_ALLOW_PRIVATE_CALLBACKS=1)
    assert [(m, p) for m, p, _, _ in Redirector.seen] == [("POST", "/hook"), ("POST", "/moved"), ("POST", "/final")]
    first, last = Redirector.seen[0], Redirector.seen[-1]
    assert last[3] == first[3] and json.loads(last[3])["taskId"] == f"r{code}", "the same body on every hop"
    for name in ("X-Webhook-Signature", "X-Webhook-Timestamp", "webhook-id", "webhook-signature", "Content-Type"):
        assert last[2][name] == first[2][name]
    assert signed_ok(last[2], last[3])
    m = job.meta(f"r{code}")["webhook"]
    assert m["delivered"] is True and m["attempts"] == 1 and m["lastStatus"] == 200


@pytest.mark.parametrize("code", [301, 302, 303])
def test_webhook_301_302_303_continue_as_get_like_fetch(job, redirector, code):
    a, b = redirector
    Redirector.routes = {"/hook": (code, b + "/seen"), "/seen": 204}
    job.payload(f"g{code}", callbackUrl=a + "/hook")
    job.run(f"g{code}", CLOUDRUN_CALLBACK_SECRET=HOOK_SECRET, CCR_ALLOW_PRIVATE_CALLBACKS=1)
    (m1, _, h1, b1), (m2, p2, h2, b2) = Redirector.seen
    assert (m1, m2, p2) == ("POST", "GET", "/seen")
    assert b2 == b"" and "Content-Type" not in h2 and "Content-Length" not in h2
    assert h2["X-Webhook-Signature"] == h1["X-Webhook-Signature"] and signed_ok(h1, b1)
    assert job.meta(f"g{code}")["webhook"]["delivered"] is True


def test_webhook_redirect_loop_stops_without_retrying(job, redirector):
    a, _ = redirector
    Redirector.routes = {"/hook": (307, "/hook")}
    job.payload("loop1", callbackUrl=a + "/hook")
    job.run("loop1", CLOUDRUN_CALLBACK_SECRET=HOOK_SECRET, CCR_ALLOW_PRIVATE_CALLBACKS=1)
    assert len(Redirector.seen) == 22, "the first request and 21 redirects, as axios follows"
    m = job.meta("loop1")["webhook"]
    assert m["delivered"] is False and m["attempts"] == 1 and "more than 21 redirects" in m["error"]


def test_webhook_redirect_to_a_denied_address_is_refused(job, redirector):
    a, b = redirector
    b_port = b.rsplit(":", 1)[1]
    # Private callbacks are off; the first receiver is let through by name only (the operator's
    # allow-list), so its redirect to another loopback name must be checked and refused.
    Redirector.routes = {"/hook": (307, f"http://localhost:{b_port}/inner")}
    job.payload("deny1", callbackUrl=a + "/hook")
    job.run("deny1", CLOUDRUN_CALLBACK_SECRET=HOOK_SECRET, CCR_CALLBACK_ALLOW_HOSTS="example.invalid, 127.0.0.1")
    assert [p for _, p, _, _ in Redirector.seen] == ["/hook"], "the denied target was never contacted"
    m = job.meta("deny1")["webhook"]
    assert m["delivered"] is False and m["attempts"] == 1
    assert "redirect 1 refused" in m["error"] and "localhost" in m["error"] and "loopback" in m["error"]


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
def fake_api(servers):
    return start_fake_anthropic(servers, "--expected-key", CANARY)


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


# --------------------------------------------------------------------------
# compatibility with the original service (issue 13): mcpConfig ${VAR},
# the operator's ~/.claude, the pre-execution environment, SSH host keys


def sh_results(job):
    rec = job.claude_record()
    return {r["cmd"]: r for r in rec.get("sh", [])}, rec


def test_mcp_config_references_stay_for_the_cli_and_unknown_ones_only_warn(job):
    mcp = {"mcpServers": {"gh": {"command": "srv", "args": ["--token=${MY_SECRET}"],
                                 "env": {"GITHUB_TOKEN": "${MY_SECRET}", "OTHER": "${NOT_GIVEN_ANYWHERE}",
                                         "BROWSER": "${PLAYWRIGHT_MCP_EXECUTABLE_PATH}"}}}}
    job.payload("m1", mcpConfig=mcp, mode={"sh": ["cat .mcp.json"]})
    rc, out, err = job.run("m1")
    assert rc == 0, err
    m = job.meta("m1")
    assert m["status"] == "completed", m
    res, rec = sh_results(job)
    on_disk = json.loads(res["cat .mcp.json"]["out"])
    assert on_disk == mcp, "written as given: the CLI expands the references itself"
    assert ENV_CANARY not in res["cat .mcp.json"]["out"]
    # the CLI gets the values through its environment, and the file by path
    assert rec["env"]["MY_SECRET"] == ENV_CANARY
    assert rec["argv"][rec["argv"].index("--mcp-config") + 1].endswith("/.mcp.json")
    # the seed's warning for the unknown one, none for what the job sets itself
    assert ('Environment variable \\"NOT_GIVEN_ANYWHERE\\" referenced in '
            'mcpConfig.mcpServers.gh.env.OTHER but not defined in environmentSecrets') in err
    assert "MY_SECRET\\\" referenced" not in err and "PLAYWRIGHT_MCP_EXECUTABLE_PATH\\\" referenced" not in err
    assert ENV_CANARY not in out + err
    for path, data in everything_under(job.data):
        assert ENV_CANARY.encode() not in data, path


def test_pre_execution_commands_get_the_agent_environment_without_the_jobs_secrets(job, tmp_path):
    dump = job.rec_dir / "precmd-env.json"
    job.payload("e1", preExecutionCommands=[
        "/usr/bin/python3 -c 'import json, os; print(json.dumps(dict(os.environ)))' > %s" % dump])
    own = {"CLOUDRUN_CALLBACK_SECRET": "whsec_c2VjcmV0", "GOOGLE_APPLICATION_CREDENTIALS": "/creds.json",
           "CCR_API_KEYS": "k-canary-1", "MY_DEPLOY_TOKEN": "tok-canary-2", "npm_config_cache": "/npm",
           "NODE_PATH": "/node", "PLAYWRIGHT_BROWSERS_PATH": "/pw-browsers", "LANG": "C.UTF-8",
           "ANTHROPIC_API_KEY": CANARY, "GIT_SSH": "/bin/false"}
    rc, out, err = job.run("e1", **own)
    assert rc == 0, err
    assert job.meta("e1")["status"] == "completed", job.meta("e1")
    pre = json.loads(dump.read_text())
    cli = job.claude_record()["env"]
    # what the original passed: the job's environment (minus npm_*, NODE_PATH, PWD) ...
    assert pre["PLAYWRIGHT_BROWSERS_PATH"] == "/pw-browsers" and pre["LANG"] == "C.UTF-8"
    assert pre["TASK_ID"] == "e1"
    assert "npm_config_cache" not in pre and "NODE_PATH" not in pre
    # ... overlaid with the CLI's environment, then CI=true and NODE_ENV=""
    for k, v in cli.items():
        if k not in ("PWD", "SHLVL", "_", "OLDPWD", "LC_CTYPE"):  # the shell's and python's own
            assert pre.get(k) == v, k
    assert pre["CI"] == "true" and pre["NODE_ENV"] == ""
    assert pre["GIT_SSH_COMMAND"] == cli["GIT_SSH_COMMAND"] and "UserKnownHostsFile" in pre["GIT_SSH_COMMAND"]
    assert pre["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:") and pre["MY_SECRET"] == ENV_CANARY
    # minus what must never reach the agent
    for k in ("CLOUDRUN_CALLBACK_SECRET", "GOOGLE_APPLICATION_CREDENTIALS", "CCR_API_KEYS", "MY_DEPLOY_TOKEN",
              "GIT_SSH", "CCR_DATA_DIR"):
        assert k not in pre, k
    assert pre["ANTHROPIC_API_KEY"] != CANARY
    blob = json.dumps(pre)
    for secret in (CANARY, "whsec_c2VjcmV0", "k-canary-1", "tok-canary-2"):
        assert secret not in blob


def test_operator_claude_home_is_visible_in_the_per_task_config_dir(job):
    home = job.data.parent
    dot = home / ".claude"
    for sub in ("commands", "agents", "skills/opskill", "projects/-old"):
        (dot / sub).mkdir(parents=True)
    (dot / "commands" / "opcmd.md").write_text("Say hi\n")
    (dot / "settings.json").write_text('{"env": {"OPERATOR_SETTING": "1"}}')
    (dot / "CLAUDE.md").write_text("operator memory\n")
    (dot / "projects" / "-old" / "old-session.jsonl").write_text("{}\n")
    (dot / ".credentials.json").write_text('{"claudeAiOauth": "operator-credential-canary"}')
    (home / ".claude.json").write_text(json.dumps({"mcpServers": {"usermcp": {"command": "x"}},
                                                   "primaryApiKey": "operator-key-canary"}))
    job.payload("o1", mode={"sh": ['cd "$CLAUDE_CONFIG_DIR" && ls -A && readlink commands agents skills '
                                   '&& cat settings.json && cat .claude.json',
                                   'touch "$CLAUDE_CONFIG_DIR/settings.json" "$CLAUDE_CONFIG_DIR/new-state"']})
    rc, out, err = job.run("o1")
    assert rc == 0, err
    res, rec = sh_results(job)
    (listing,) = [r for c, r in res.items() if c.startswith("cd ")]
    assert listing["status"] == 0, listing
    text = listing["out"]
    names = set(text.split("\n")[:8])
    assert {"commands", "agents", "skills", "settings.json", "CLAUDE.md", ".claude.json"} <= names, text
    assert "projects" not in names and ".credentials.json" not in names
    assert "%s/commands\n%s/agents\n%s/skills\n" % (dot, dot, dot) in text
    assert '{"env": {"OPERATOR_SETTING": "1"}}' in text
    assert "usermcp" in text and "operator-key-canary" not in text
    assert rec["env"]["CLAUDE_CONFIG_DIR"].startswith(str(job.ws_root) + "/")
    # what the CLI writes stays per task: HOME's files are untouched
    assert (dot / "settings.json").read_text() == '{"env": {"OPERATOR_SETTING": "1"}}'
    assert sorted(p.name for p in dot.iterdir()) == [".credentials.json", "CLAUDE.md", "agents", "commands",
                                                     "projects", "settings.json", "skills"]
    assert list(job.ws_root.iterdir()) == [], "the per-task directory went with the workspace"


# ---- SSH host keys: one policy for ccr's clone and the agent's own git ----

PUBLISHED_FINGERPRINTS = {
    # docs.github.com "GitHub's SSH key fingerprints"
    ("github.com", "ED25519"): "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
    ("github.com", "ECDSA"): "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
    ("github.com", "RSA"): "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
    # docs.gitlab.com, GitLab.com SSH host keys fingerprints
    ("gitlab.com", "ED25519"): "SHA256:eUXGGm1YGsMAS7vkcx6JOJdOGHPem5gQp4taiCfCLB8",
    ("gitlab.com", "ECDSA"): "SHA256:HbW3g8zUjNSksFbqTiUWPWg2Bq1x8xdGUrliXFzSnUw",
    ("gitlab.com", "RSA"): "SHA256:ROQFvPThGrW4RuWLoL9tq9I9zJ42fK4XywyRtbOz/EQ",
    # Bitbucket Cloud (support.atlassian.com), keys of 2023-06-20
    ("bitbucket.org", "ED25519"): "SHA256:ybgmFkzwOSotHTHLJgHO0QN8L0xErw6vd0VhFA9m3SM",
    ("bitbucket.org", "ECDSA"): "SHA256:FC73VB6C4OQLSCrjEayhMp9UMxS97caD/Yyi2bhW/J0",
    ("bitbucket.org", "RSA"): "SHA256:46OSHA1Rmj8E8ERTC6xkNcmGOw9oFxYr0WF6zWW8l1E",
}

# The known_hosts file named by the agent's GIT_SSH_COMMAND.
SHOW_KNOWN_HOSTS = ('eval "set -- $GIT_SSH_COMMAND"; for a; do case $a in UserKnownHostsFile=*) '
                    'f=${a#UserKnownHostsFile=}; f=${f#\\"}; cat "${f%\\"}";; esac; done')


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """OpenSSH's sshd on loopback; its ed25519 user key may only run git-shell."""
    from fakes.git_servers import sshd_for_tests
    s = sshd_for_tests(tmp_path_factory.mktemp("sshd"),
                       {"ed25519": ("ed25519", 'git-shell -c "$SSH_ORIGINAL_COMMAND"')})
    yield s
    s.close()


@pytest.fixture(scope="module")
def ssh_origin(tmp_path_factory):
    from fakes.git_servers import run as git_run
    bare = tmp_path_factory.mktemp("sshrepo") / "origin.git"
    git_run(["git", "init", "-q", "--bare", "-b", "main", bare])
    return bare


def agent_ls_remote(job, sshd, origin, task_id, key=True, known=None, fields=None, **env):
    fields = dict(fields or {})
    if key:
        fields["sshKey"] = pathlib.Path(sshd.keys["ed25519"]).read_text()
    if known is not None:
        fields["sshKnownHosts"] = known
    cmd = "git ls-remote %s; echo status=$?" % sshd.url(str(origin))
    job.payload(task_id, mode={"sh": [cmd, SHOW_KNOWN_HOSTS]}, **fields)
    # the agent's ssh leaves through the egress proxy (ProxyCommand `ccr connect`),
    # which admits the loopback sshd only when the operator says so
    env.setdefault("CCR_EGRESS_ALLOW_PRIVATE", "127.0.0.1:%d" % sshd.port)
    rc, out, err = job.run(task_id, **env)
    assert rc == 0, err
    assert job.meta(task_id)["status"] == "completed", job.meta(task_id)
    res, rec = sh_results(job)
    return res[cmd]["out"], res[SHOW_KNOWN_HOSTS]["out"], rec["env"]["GIT_SSH_COMMAND"]


def test_agent_git_over_ssh_trusts_the_payloads_known_hosts(job, sshd, ssh_origin):
    out, kh, cmd = agent_ls_remote(job, sshd, ssh_origin, "s1", known=sshd.known_hosts_line() + "\n")
    assert "status=0" in out, out
    assert "StrictHostKeyChecking=yes" in cmd and "IdentitiesOnly=yes" in cmd and "/.ssh/deploy_key" in cmd
    assert kh.splitlines()[0] == sshd.known_hosts_line()


def test_agent_git_over_ssh_refuses_an_unknown_host_key(job, sshd, ssh_origin):
    out, kh, _ = agent_ls_remote(job, sshd, ssh_origin, "s2")
    assert "status=0" not in out and "Host key verification failed" in out, out
    # only the built-in keys: github.com, gitlab.com, bitbucket.org
    assert {line.split()[0] for line in kh.splitlines()} == {"github.com", "gitlab.com", "bitbucket.org"}


def test_agent_git_over_ssh_trusts_ccr_ssh_known_hosts(job, sshd, ssh_origin, tmp_path):
    f = tmp_path / "operator_known_hosts"
    f.write_text(sshd.known_hosts_line() + "\n")
    out, kh, _ = agent_ls_remote(job, sshd, ssh_origin, "s3", CCR_SSH_KNOWN_HOSTS=f)
    assert "status=0" in out, out
    # without an sshKey the agent still gets the policy (its own key or agent)
    out2, _, cmd = agent_ls_remote(job, sshd, ssh_origin, "s4", key=False, CCR_SSH_KNOWN_HOSTS=f)
    assert "-i " not in cmd and "StrictHostKeyChecking=yes" in cmd
    assert "Host key verification failed" not in out2, out2


def test_agent_git_over_ssh_follows_the_payloads_opt_out(job, sshd, ssh_origin):
    out, _, cmd = agent_ls_remote(job, sshd, ssh_origin, "s6", fields={"sshStrictHostKeyChecking": False})
    assert "status=0" in out, out
    assert "StrictHostKeyChecking=no" in cmd and "UserKnownHostsFile=/dev/null" in cmd


def test_builtin_host_keys_are_the_published_ones(job, tmp_path):
    job.payload("s5", mode={"sh": [SHOW_KNOWN_HOSTS]})
    rc, out, err = job.run("s5")
    assert rc == 0, err
    res, _ = sh_results(job)
    kh = tmp_path / "builtin_known_hosts"
    kh.write_text(res[SHOW_KNOWN_HOSTS]["out"])
    r = subprocess.run(["ssh-keygen", "-l", "-f", str(kh)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = {}
    for line in r.stdout.splitlines():
        bits, fp, host, kind = line.split()
        got[(host, kind.strip("()"))] = fp
    assert got == PUBLISHED_FINGERPRINTS
