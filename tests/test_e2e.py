"""End to end with the real Claude Code CLI, in local mode and in cloud mode:

    client -> `ccr serve` -> `ccr job` -> token proxy -> `claude` -> fake Anthropic API

Every scenario runs twice (the `e2e` fixture is parametrized):
  local  `ccr serve` on its embedded default: a data directory, a local key,
         tasks run as child processes;
  cloud  `ccr serve` on the fake Google Cloud (tests/fakes/fake_gcp.py): the
         payload is sealed with its Cloud KMS, stored in its Cloud Storage, and
         its Cloud Run Jobs fake runs `ccr job` (the same binary) as the job.
The job runs CLAUDE_BIN = the pinned CLI (tests/fakes/install-claude) with
CCR_ANTHROPIC_UPSTREAM = the fake API (tests/fakes/fake_anthropic.py, which
insists on the real key), DANGEROUSLY_SKIP_PERMISSIONS=true and temporary
workspace and HOME directories.  The CLI is kept offline and quiet the way a
user would do it: through the request's environmentSecrets.

Scenarios (issue 6 section 2): A the SSE stream of a run that writes a file,
B the real key stays in the proxy, C async run with git clone, commit, push
(over HTTPS and over SSH with an ed25519 key) and a signed webhook, D an MCP
server reported connected, E cancel mid-run kills the CLI's whole process
group (and the command of a running Bash tool, which lives in a session of its
own), F the idle watchdog, G reconnect with Last-Event-ID, H (cloud mode only)
20% 503s from Cloud Storage, Cloud KMS and Cloud Run.  Each scenario's wall
time is printed (never asserted); the module prints a summary at the end.

The module is skipped, saying why, when the npm registry cannot be reached to
install the CLI (install-claude exits 3).
"""
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import ROOT, Hook, http_request
from fakes import testenv
from fakes.fake_anthropic import FakeAnthropic
from test_cloud import CLOUD_NAMES, Cloud, all_strings_of
from test_http_server import Serve

INSTALL_CLAUDE = ROOT / "tests" / "fakes" / "install-claude"
MCP_ECHO = ROOT / "tests" / "fakes" / "mcp_echo.py"
PYTHON = "/usr/bin/python3"
REAL_KEY = "sk-ant-api03-e2e-real-" + secrets.token_hex(16)

# What a user passes to keep the CLI from calling home (no telemetry, error
# reports, auto-update, release notes, model discovery...).
CLI_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_MAX_RETRIES": "0",
}

# What ccr itself puts in the CLI's environment (src/job/claude_cmd.c).
CLI_ALLOWED_ENV = {"ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "HOME", "PATH", "CLAUDE_CODE_ACTION",
                   "CLAUDE_CODE_ENTRYPOINT", "DISABLE_AUTOUPDATER", "IS_SANDBOX", "CLAUDE_CONFIG_DIR",
                   "GIT_SSH_COMMAND", "TMPDIR", "TMP", "TEMP",
                   # the egress proxy (the sandbox's only way out)
                   "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                   "all_proxy"}

TIMES = {}
MODES = ("local", "cloud")
# the developer's settings that would point ccr or the CLI elsewhere
FOREIGN_ENV = ("CCR_", "GCS_", "GCE_", "CLOUDSDK_", "CLOUDRUN_", "KMS_", "ANTHROPIC_", "CLAUDE_", "SSL_CERT",
               "STORAGE_EMULATOR", "GOOGLE_")


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def claude_bin():
    t0 = time.monotonic()
    r = subprocess.run([str(INSTALL_CLAUDE)], capture_output=True, text=True, timeout=1800)
    if r.returncode == 3:
        pytest.skip("the real Claude Code CLI cannot be installed, the npm registry is unreachable: "
                    + r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0, "install-claude failed (%d): %s" % (r.returncode, r.stderr)
    path = r.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK)
    print("install-claude: %s in %.1fs" % (path, time.monotonic() - t0))
    return os.path.realpath(path)


@pytest.fixture(scope="module", autouse=True)
def timing_summary(request):
    yield
    if not TIMES:
        return
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    cap = request.config.pluginmanager.get_plugin("capturemanager")
    lines = ["", "e2e scenario wall times (real CLI):"]
    lines += ["  %-56s %6.2f s" % (k, v) for k, v in sorted(TIMES.items())]
    if tr is None or cap is None:
        print("\n".join(lines))
        return
    with cap.global_and_fixture_disabled():
        for line in lines:
            tr.write_line(line)


class Scenario:
    """Times one scenario: `with Scenario(srv, "A ..."):`."""

    def __init__(self, srv, name):
        self.name = "%s [%s]" % (name, srv.mode)

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        dt = time.monotonic() - self.t0
        TIMES[self.name + ("" if exc[0] is None else " (failed)")] = dt
        print("scenario %s: %.2fs" % (self.name, dt))


@pytest.fixture
def fake():
    with FakeAnthropic(expected_key=REAL_KEY) as f:
        yield f


@pytest.fixture(params=MODES)
def e2e(request, ccr_bin, claude_bin, fake, tmp_path, monkeypatch):
    """start(**env) -> a running `ccr serve` wired to the real CLI and the fake
    API, in the mode of this parametrization.  env goes to serve and, in cloud
    mode, to the Cloud Run job's container too."""
    mode = request.param
    for k in list(os.environ):
        if k.startswith(FOREIGN_ENV) or k in CLOUD_NAMES:
            monkeypatch.delenv(k)
    started = []

    def start(**env):
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        e = {"CCR_WORKSPACE_ROOT": str(tmp_path / "ws"), "HOME": str(home), "CLAUDE_BIN": claude_bin,
             "CCR_ANTHROPIC_UPSTREAM": fake.url, "DANGEROUSLY_SKIP_PERMISSIONS": "true",
             "CCR_KILL_GRACE_MS": "1000", "CCR_CANCEL_GRACE_MS": "5000",
             # the MCP servers of these scenarios are scripts in the repository: shown read-only in the sandbox
             "CCR_SANDBOX_RO_PATHS": str(ROOT / "tests" / "fakes"),
             # what the scenarios' MCP servers record, read by the tests
             "CCR_SANDBOX_RW_PATHS": str(tmp_path / "rec")}
        (tmp_path / "rec").mkdir(exist_ok=True)
        e.update({k: str(v) for k, v in env.items()})
        cloud = None
        if mode == "local":
            # job_log() reads a finished job's log: keep it after success too
            s = Serve(ccr_bin, dict(e, CCR_DATA_DIR=str(tmp_path / "data"), CCR_KEEP_JOB_LOGS="1"))
        else:
            cloud = Cloud(ccr_bin, tmp_path / "cloud", e)
            s = cloud.serve(**e)
        s.mode, s.cloud = mode, cloud
        s.data, s.ws, s.home, s.fake, s.claude = (tmp_path / "data", tmp_path / "ws", home, fake,
                                                  claude_bin)
        started.append(s)
        return s
    yield start
    for s in started:
        s.kill()
        if s.cloud is not None:
            s.cloud.close()
        reap_leftovers(s)


def reap_leftovers(srv):
    """After a failed test: kill the jobs and CLIs this test's serve started
    (each by its own pid, checked to belong to this data directory)."""
    run = srv.data / ".run"
    for pidfile in run.glob("*.pid") if srv.mode == "local" and run.is_dir() else []:
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        env = environ_of(pid)
        if env and env.get("CCR_DATA_DIR") == str(srv.data):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
    for pid in claude_pids(srv):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def body(script_env=None, **fields):
    b = {"prompt": "Do the task.", "anthropicApiKey": REAL_KEY, "environmentSecrets": dict(CLI_ENV)}
    b["environmentSecrets"].update(script_env or {})
    b.update(fields)
    return b


# --------------------------------------------------------------------------
# HTTP helpers


def call(srv, method, path, payload=None, headers=None, timeout=30):
    status, _, data = http_request(srv, method, path, payload, headers, timeout)
    return status, data


class SSE:
    """An open SSE response, read frame by frame: (event, id, data)."""

    def __init__(self, srv, method, path, payload=None, headers=None, timeout=120):
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        self.conn.request(method, path, body=None if payload is None else json.dumps(payload), headers=h)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()
        assert self.resp.getheader("Content-Type").startswith("text/event-stream")
        self.frames = []

    def __iter__(self):
        ev, fid, data = None, None, None
        while True:
            raw = self.resp.readline()
            if not raw:
                return
            line = raw.decode("utf-8").rstrip("\n")
            if line == "":
                if data is not None:
                    frame = (ev, fid, data)
                    self.frames.append(frame)
                    yield frame
                ev, fid, data = None, None, None
            elif line.startswith(":"):
                continue
            elif line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("id: "):
                fid = int(line[4:])
            elif line.startswith("data: "):
                data = line[6:] if data is None else data + "\n" + line[6:]

    def read_all(self):
        for _ in self:
            pass
        self.close()
        return self.frames

    def close(self):
        self.conn.close()


def lines_of(frames):
    """The CLI's output lines (frames without an event name), parsed."""
    return [json.loads(d) for ev, _, d in frames if ev is None]


def terminal(frames):
    named = [(ev, json.loads(d)) for ev, _, d in frames if ev is not None]
    assert named and named[-1][0] == "done", named
    return named


# --------------------------------------------------------------------------
# what a task left in storage: the data directory or the fake's bucket


def stored(srv, name):
    """The bytes of one object (same layout in both modes), or None."""
    if srv.mode == "cloud":
        return srv.cloud.raw(name)
    p = srv.data / name
    return p.read_bytes() if p.is_file() else None


def stored_names(srv, prefix):
    if srv.mode == "cloud":
        return srv.cloud.names(prefix)
    if not srv.data.is_dir():
        return []
    return sorted(str(p.relative_to(srv.data)) for p in srv.data.rglob("*")
                  if p.is_file() and str(p.relative_to(srv.data)).startswith(prefix))


def task_ids(srv):
    return sorted(n.split("/")[1] for n in stored_names(srv, "sessions/") if n.endswith("/metadata.json"))


def stored_meta(srv, task_id):
    raw = stored(srv, "sessions/%s/metadata.json" % task_id)
    return None if raw is None else json.loads(raw)


def stored_lines(srv, task_id):
    chunks = [n for n in stored_names(srv, "sessions/%s/" % task_id) if n.endswith(".jsonl")]
    return [json.loads(x) for n in chunks for x in stored(srv, n).decode().splitlines() if x.strip()]


def everything_stored(srv):
    """(where, bytes) of every file and object ccr or the fakes kept."""
    out = []
    for root in (srv.data, srv.home, srv.ws):
        # a task's workspace may be wiped while this walks it: what vanished is skipped
        for dirpath, _, names in os.walk(root):
            for n in names:
                p = pathlib.Path(dirpath) / n
                try:
                    if p.is_file() and not p.is_symlink():
                        out.append((str(p), p.read_bytes()))
                except OSError:
                    pass
    if srv.mode == "cloud":
        out += all_strings_of(srv.cloud)
    return out


def execution_of(srv, task_id):
    """Cloud mode: the fake Cloud Run execution started for a task."""
    for ex in srv.cloud.fake.executions():
        if {"name": "TASK_ID", "value": task_id} in ex["env_overrides"]:
            return ex
    return None


def job_pid(srv, task_id):
    """The pid of the task's `ccr job` process."""
    if srv.mode == "local":
        return int((srv.data / ".run" / ("%s.pid" % task_id)).read_text().split()[0])
    ex = wait_for(lambda: execution_of(srv, task_id), 10, "the execution of " + task_id)
    return wait_for(lambda: (srv.cloud.fake.execution(ex["exec_id"])["tasks"][0]["attempts"] or [{}])[-1].get("pid"),
                    10, "the job process")


def job_log(srv, task_id):
    """What `ccr job` wrote to stderr (local: .run/<id>.log; cloud: the
    execution's container output)."""
    if srv.mode == "local":
        return (srv.data / ".run" / ("%s.log" % task_id)).read_text()
    ex = execution_of(srv, task_id)
    out = ""
    for att in ex["tasks"][0]["attempts"]:
        for p in (att["stdout"], att["stderr"]):
            with open(p, errors="replace") as f:
                out += f.read()
    return out


def wait_status(srv, task_id, want, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, data = call(srv, "GET", "/tasks/%s" % task_id)
        if status == 200 and json.loads(data)["status"] in want:
            return json.loads(data)
        time.sleep(0.1)
    raise AssertionError("%s never reached %s" % (task_id, want))


# --------------------------------------------------------------------------
# processes


def proc_stat(pid):
    """(state, ppid, pgrp) of a process, or None when it is gone."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2])


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def claude_pids(srv):
    """The real CLI's processes running in this test's workspaces."""
    out = []
    for pid in all_pids():
        try:
            exe = os.readlink("/proc/%d/exe" % pid)
            cwd = os.readlink("/proc/%d/cwd" % pid)
        except OSError:
            continue
        if exe == srv.claude and cwd.startswith(str(srv.ws) + "/"):
            out.append(pid)
    return out


def group_members(pgid):
    """Live (non-zombie) processes of a process group."""
    live = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[2] == pgid and st[0] != "Z":
            live.append(pid)
    return live


def environ_of(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        # a process that is exiting has already dropped its memory map and
        # reads as empty; it is not evidence either way, so look again later
        return None
    return dict(x.decode("utf-8", "replace").split("=", 1) for x in raw.split(b"\0") if b"=" in x)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


# --------------------------------------------------------------------------
# A: /run writes a file; SSE lines in order; the file is uploaded


def write_script(text="done"):
    return [{"tool_use": {"name": "Write", "input": {"file_path": "hello.txt",
                                                       "content": "hello from the fake model\n"}}},
            {"text": text}]


def test_a_run_streams_the_cli_lines_and_writes_the_file(e2e):
    srv = e2e()
    srv.fake.load_script(write_script("All done."))
    with Scenario(srv, "A /run Write tool + SSE + upload"):
        frames = SSE(srv, "POST", "/run", body(
            postExecutionActions={"uploadFiles": {"globPatterns": ["hello.txt"]}})).read_all()
    lines = lines_of(frames)
    named = terminal(frames)
    done = named[-1][1]
    assert done["status"] == "completed" and done["terminalReason"] == "completed", done
    assert done["exitCode"] == 0
    assert [ev for ev, _ in named] == ["done"], "no error/cancelled event on success"

    types = [x["type"] for x in lines]
    init = lines[0]
    assert (init["type"], init.get("subtype")) == ("system", "init"), types
    # init, assistant(tool_use), user(tool_result), assistant(text), result: in that order
    i_tool = next(i for i, x in enumerate(lines) if x["type"] == "assistant"
                  and any(b.get("type") == "tool_use" for b in x["message"]["content"]))
    i_res = next(i for i, x in enumerate(lines) if x["type"] == "user"
                 and any(isinstance(b, dict) and b.get("type") == "tool_result"
                         for b in x["message"]["content"]))
    i_text = next(i for i, x in enumerate(lines) if x["type"] == "assistant"
                  and any(b.get("type") == "text" for b in x["message"]["content"]))
    assert 0 < i_tool < i_res < i_text < len(lines) - 1, types
    assert lines[-1]["type"] == "result" and lines[-1]["subtype"] == "success"
    assert lines[-1]["result"] == "All done." and lines[-1]["is_error"] is False
    tool = next(b for b in lines[i_tool]["message"]["content"] if b.get("type") == "tool_use")
    result = next(b for b in lines[i_res]["message"]["content"] if b.get("type") == "tool_result")
    assert tool["name"] == "Write" and result["tool_use_id"] == tool["id"]
    assert not result.get("is_error"), result
    # ids: one per line, 1..N
    assert [fid for ev, fid, _ in frames if ev is None] == list(range(1, len(lines) + 1))
    assert done["usage"]["output_tokens"] > 0 and done["proxyUsage"]["requests"] >= 2

    (task,) = task_ids(srv)
    assert task.startswith("sync-")
    assert stored(srv, "files/%s/hello.txt" % task) == b"hello from the fake model\n"
    meta = stored_meta(srv, task)
    assert meta["status"] == "completed"
    wait_for(lambda: stored(srv, "tasks/%s/payload.enc" % task) is None, 10, "the sealed payload's deletion")
    assert stored_lines(srv, task) == lines, "the stream is the stored log"
    wait_wiped(srv)
    # the CLI kept its session transcript in the per-task config directory,
    # wiped with the workspace: nothing of the conversation is left in HOME
    left = [str(p) for p in srv.home.rglob("*") if p.is_file()]
    assert not [p for p in left if p.endswith(".jsonl")], left
    status, data = call(srv, "GET", "/tasks/status")
    assert status == 200 and json.loads(data)["active"] == 0, data


# --------------------------------------------------------------------------
# B: the real key stays in the token proxy


def test_a_system_prompts_over_the_argument_limit_reach_the_model(e2e):
    # Linux refuses one argument over 128 KiB (E2BIG): ccr hands these to the CLI as files
    srv = e2e()
    srv.fake.load_script([{"text": "ok"}])
    system = "You are terse. " + "s" * 200_000 + " END-OF-SYSTEM"
    append = "Also polite. " + "a" * 150_000 + " END-OF-APPEND"
    with Scenario(srv, "A long systemPrompt and appendSystemPrompt"):
        frames = SSE(srv, "POST", "/run", body(systemPrompt=system, appendSystemPrompt=append)).read_all()
    done = terminal(frames)[-1][1]
    assert done["status"] == "completed", done
    main = [q for q in srv.fake.requests() if q["kind"] == "main"]
    assert main, "the fake API saw no main request"
    sent = json.dumps(main[0]["body"].get("system"))
    assert "END-OF-SYSTEM" in sent and "END-OF-APPEND" in sent and "s" * 200_000 in sent


def test_b_real_key_only_reaches_the_api_and_the_cli_holds_a_dummy(e2e):
    hook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    srv = e2e(CLOUDRUN_CALLBACK_SECRET=hook_secret)
    # the second turn waits a little, so the CLI is alive long enough to be inspected
    srv.fake.load_script([write_script()[0], {"text": "done", "delay": 1.0}])
    envs = {}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for pid in claude_pids(srv):
                if pid not in envs:
                    env = environ_of(pid)
                    if env is not None:
                        envs[pid] = env
            time.sleep(0.02)
    th = threading.Thread(target=watch, daemon=True)
    with Scenario(srv, "B real key never leaves the proxy"):
        th.start()
        frames = SSE(srv, "POST", "/run", body()).read_all()
        stop.set()
        th.join()
    done = terminal(frames)[-1][1]
    assert done["status"] == "completed", done

    reqs = srv.fake.requests()
    assert reqs, "the fake API saw no request"
    main = [q for q in reqs if q["kind"] == "main"]
    assert len(main) >= 2
    for q in reqs:
        assert q["credential"]["value"] == REAL_KEY, (q["path"], q["credential"]["kind"])
        assert q["status"] == 200, q

    assert envs, "never saw the CLI process"
    for pid, env in envs.items():
        assert REAL_KEY not in json.dumps(env), "the real key is in the CLI's environment"
        cred = env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN")
        assert cred and cred != REAL_KEY, sorted(env)
        assert env["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
        assert env["ANTHROPIC_BASE_URL"] != srv.fake.url, "the CLI must talk to the proxy"
        assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1", "environmentSecrets reach the CLI"
        # inside the sandbox, HOME and TMPDIR are the task's own, in its workspace
        assert env["HOME"].startswith(str(srv.ws) + "/ws-") and env["HOME"].endswith("/home"), env["HOME"]
        assert env["TMPDIR"] == env["HOME"][:-len("home")] + "tmp", env["TMPDIR"]
        # the CLI's own files (transcripts...) live in the workspace and go with it
        assert env["CLAUDE_CONFIG_DIR"].startswith(str(srv.ws) + "/"), env["CLAUDE_CONFIG_DIR"]
        # an explicit environment: nothing of serve's (CCR_*, the webhook secret...)
        extra = set(env) - CLI_ALLOWED_ENV - set(CLI_ENV)
        assert extra <= {"PLAYWRIGHT_MCP_EXECUTABLE_PATH", "PLAYWRIGHT_MCP_SANDBOX"}, extra
        assert hook_secret not in json.dumps(env)
    dummies = {env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN") for env in envs.values()}
    for q in reqs:
        assert q["credential"]["value"] not in dummies

    # nowhere on disk or in serve's output
    srv.stop()
    out = json.dumps(srv.lines) + srv.stderr_text
    assert REAL_KEY not in out, "the real key is in serve's output"
    for where, raw in everything_stored(srv):
        assert REAL_KEY.encode() not in raw, "the real key is in %s" % where


# --------------------------------------------------------------------------
# D: an MCP server over stdio, reported connected


def test_d_mcp_server_is_connected(e2e, tmp_path):
    srv = e2e()
    log = tmp_path / "rec" / "mcp.log"
    srv.fake.load_script([{"tool_use": {"name": "mcp__echo__echo", "input": {"text": "ping-42"}}},
                          {"text": "echoed"}])
    mcp = {"mcpServers": {"echo": {"command": PYTHON, "args": [str(MCP_ECHO)],
                                   "env": {"MCP_ECHO_LOG": str(log)}}}}
    with Scenario(srv, "D mcpConfig stdio server"):
        frames = SSE(srv, "POST", "/run", body(mcpConfig=mcp)).read_all()
    done = terminal(frames)[-1][1]
    assert done["status"] == "completed", done
    lines = lines_of(frames)
    init = lines[0]
    assert (init["type"], init["subtype"]) == ("system", "init")
    servers = {s["name"]: s["status"] for s in init["mcp_servers"]}
    assert servers.get("echo") == "connected", init["mcp_servers"]
    assert "mcp__echo__echo" in init["tools"]
    results = [b for x in lines if x["type"] == "user" for b in x["message"]["content"]
               if isinstance(b, dict) and b.get("type") == "tool_result"]
    assert results and "ping-42" in json.dumps(results[0]["content"])
    methods = [json.loads(x).get("method") for x in log.read_text().splitlines()]
    assert "tools/call" in methods
    assert lines[-1]["type"] == "result" and lines[-1]["result"] == "echoed"
    # the job read the init line too, and says so in its log
    (task,) = task_ids(srv)
    joblog = job_log(srv, task)
    assert "MCP servers: 1/1 connected (echo: connected)" in joblog, joblog


def test_d_failed_mcp_server_is_explained_from_the_cli_log(e2e):
    """A server that dies at start: the job reads the CLI's own log of it
    (seed-spec 14.2), logs the reason with secrets redacted, and removes
    the CLI's logs of the workspace afterwards."""
    srv = e2e()
    token = "mcp-token-" + secrets.token_hex(8)
    srv.fake.load_script([{"text": "no tools today"}])
    mcp = {"mcpServers": {"broken": {"command": "/bin/sh", "args": [
        "-c", 'echo "cannot start: token $MCP_TOKEN was rejected" >&2; exit 3'],
        "env": {"MCP_TOKEN": "${MCP_TOKEN}"}}}}
    with Scenario(srv, "D a failing MCP server explained"):
        frames = SSE(srv, "POST", "/run", body({"MCP_TOKEN": token}, mcpConfig=mcp)).read_all()
    assert terminal(frames)[-1][1]["status"] == "completed"
    init = lines_of(frames)[0]
    assert [(s["name"], s["status"]) for s in init["mcp_servers"]] == [("broken", "failed")]
    (task,) = task_ids(srv)
    joblog = job_log(srv, task)
    assert "MCP servers: 0/1 connected (broken: failed)" in joblog, joblog
    assert "MCP server 'broken' did not connect: " in joblog, joblog
    assert "cannot start: token [REDACTED] was rejected" in joblog, joblog
    assert token not in joblog
    # the CLI's logs of this workspace are gone with it
    wait_wiped(srv)
    left = [str(p) for p in (srv.home / ".cache").rglob("mcp-logs-*")] if (srv.home / ".cache").is_dir() else []
    assert left == [], left
    for where, raw in everything_stored(srv):
        assert token.encode() not in raw, "the MCP server's secret is in %s" % where


# --------------------------------------------------------------------------
# E: cancel mid-run kills the CLI's whole process group


def test_e_cancel_mid_run_kills_the_process_group(e2e, tmp_path):
    srv = e2e()
    # An MCP server gives the CLI a child process in its group.
    mcp = {"mcpServers": {"echo": {"command": PYTHON, "args": [str(MCP_ECHO)]}}}
    srv.fake.load_script([{"text": "thinking hard", "stall": "forever", "stall_pings": 0.5}])
    with Scenario(srv, "E cancel mid-run"):
        sse = SSE(srv, "POST", "/run", body(mcpConfig=mcp))
        it = iter(sse)
        first = next(it)
        assert json.loads(first[2])["subtype"] == "init"
        wait_for(lambda: any(q["kind"] == "main" and q["status"] == 200 for q in srv.fake.requests()),
                 30, "the stalled main request")
        (pid,) = wait_for(lambda: claude_pids(srv), 10, "the CLI process")
        pgid = proc_stat(pid)[2]
        up, chain = pid, []
        while up and up > 1 and len(chain) < 5:
            up = proc_stat(up)[1]
            chain.append(up)
        # the group is led by the CLI itself, or by the sandbox that holds it (the CLI's ancestor)
        assert pgid == pid or pgid in chain, "the CLI's process group is its own or its sandbox's"
        members = group_members(pgid)
        (task,) = task_ids(srv)
        jpid = job_pid(srv, task)
        assert proc_stat(jpid) is not None
        t1 = time.monotonic()
        status, data = call(srv, "POST", "/cancel/%s" % task)
        assert status == 200, data
        assert json.loads(data)["status"] == "cancelled"
        for _ in it:
            pass
        print("E: the stream ended %.2fs after the cancel" % (time.monotonic() - t1))
        sse.close()
        frames = sse.frames
    print("CLI group %d had %d live processes before the cancel" % (pgid, len(members)))
    named = terminal(frames)
    assert [ev for ev, _ in named] == ["cancelled", "done"], named
    done = named[-1][1]
    assert done["status"] == "cancelled" and done["terminalReason"] == "cancelled", done
    meta = wait_status(srv, task, ("cancelled",))
    assert meta["status"] == "cancelled"
    survivors = wait_for_group_gone(pgid, 5)
    assert survivors == [], "processes of the CLI's group survived the cancel: %s" % survivors
    for m in members:
        st = proc_stat(m)
        assert st is None or st[0] == "Z" or st[2] != pgid, "pid %d survived" % m
    wait_for(lambda: proc_stat(jpid) is None or proc_stat(jpid)[0] == "Z", 10, "`ccr job` to exit")
    if srv.mode == "cloud":
        ex = wait_for(lambda: (lambda x: x if x["state"] != "RUNNING" else None)(execution_of(srv, task)), 10,
                      "the execution to end")
        assert ex["cancel_requested"] and ex["state"] == "CANCELLED", ex["state"]
    # the token proxy hung up on the API: nothing keeps the stalled request open
    wait_for(lambda: [q["status"] for q in srv.fake.requests() if q["kind"] == "main"] == ["client-gone"],
             5, "the stalled API request to be dropped")
    wait_wiped(srv)


def marked_processes(marker):
    """Processes whose command line holds marker: (pid, (state, ppid, pgrp))."""
    out = []
    for pid in all_pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        st = proc_stat(pid)
        if marker.encode() in cmd and st and st[0] != "Z" and pid != os.getpid():
            out.append((pid, st))
    return out


def test_e_cancel_during_a_bash_tool_stops_its_command(e2e):
    """The Bash tool runs its command in a session of its own, outside the
    CLI's process group: on cancel, the CLI must be given time to stop it
    (CCR_KILL_GRACE_MS, default 5 s) and nothing may be left running."""
    srv = e2e(CCR_KILL_GRACE_MS=5000)
    marker = "e2e_cancel_marker_%s" % secrets.token_hex(4)
    srv.fake.load_script([{"tool_use": {"name": "Bash", "input": {
        "command": "%s -c 'import time; time.sleep(300)' %s" % (PYTHON, marker),
        "description": "a long command"}}}, {"text": "never reached"}])
    with Scenario(srv, "E cancel during a Bash tool"):
        sse = SSE(srv, "POST", "/run", body())
        it = iter(sse)
        for ev, _, d in it:
            if json.loads(d).get("subtype") == "task_started":
                break
        procs = wait_for(lambda: marked_processes(marker), 20, "the Bash tool's command")
        (cli,) = claude_pids(srv)
        pgid = proc_stat(cli)[2]
        (task,) = task_ids(srv)
        t1 = time.monotonic()
        status, data = call(srv, "POST", "/cancel/%s" % task)
        assert status == 200, data
        for _ in it:
            pass
        sse.close()
        print("the stream ended %.2fs after the cancel" % (time.monotonic() - t1))
    print("CLI %d leads group %d; the Bash command runs as (pid, (state, ppid, pgrp)) %s"
          % (cli, pgid, procs))
    done = terminal(sse.frames)[-1][1]
    assert done["status"] == "cancelled", done
    print("exit code %s (143: SIGTERM was enough, 137: SIGKILL after the grace)" % done["exitCode"])
    assert wait_for_group_gone(pgid, 5) == []
    deadline = time.monotonic() + 5
    while marked_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = marked_processes(marker)
    for pid, _ in survivors:  # never leave it behind, even when failing
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], "the Bash tool's command survived the cancel"
    wait_wiped(srv)


def wait_wiped(srv, timeout=10):
    """The job wipes its workspace right after the terminal metadata."""
    wait_for(lambda: not srv.ws.is_dir() or not list(srv.ws.iterdir()), timeout, "the workspace wipe")


def wait_for_group_gone(pgid, timeout):
    deadline = time.monotonic() + timeout
    while True:
        left = group_members(pgid)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


# --------------------------------------------------------------------------
# F: a model that stalls forever trips the idle watchdog


def test_f_stalled_model_trips_the_idle_watchdog(e2e):
    srv = e2e(CCR_IDLE_TIMEOUT_S=3)
    srv.fake.load_script([{"stall": "forever", "stall_at": "start"}])
    with Scenario(srv, "F idle watchdog (3 s)"):
        frames = SSE(srv, "POST", "/run", body()).read_all()
    named = terminal(frames)
    assert [ev for ev, _ in named] == ["error", "done"], named
    done = named[-1][1]
    assert done["status"] == "failed" and done["terminalReason"] == "idle_timeout", done
    assert "idle" in done["error"], done
    lines = lines_of(frames)
    assert lines and lines[0]["subtype"] == "init"
    assert not any(x.get("type") == "result" for x in lines)
    assert claude_pids(srv) == []


# --------------------------------------------------------------------------
# G: reconnect halfway with Last-Event-ID


def test_g_reconnect_with_last_event_id_gets_every_line_once(e2e):
    srv = e2e()
    # the answer after the tool result comes late, so the task is still
    # running when the client drops and comes back
    srv.fake.load_script([write_script()[0], {"text": "finally done", "delay": 2.0}])
    with Scenario(srv, "G reconnect with Last-Event-ID"):
        status, data = call(srv, "POST", "/run-async",
                               body(callbackUrl="https://example.invalid/hook", taskId="e2e-resume"))
        assert status == 202, data
        first = SSE(srv, "GET", "/tasks/e2e-resume/events")
        got = []
        for ev, fid, d in first:
            assert ev is None, "task ended before the reconnect"
            got.append((fid, json.loads(d)))
            if got[-1][1]["type"] == "user":
                break
        first.close()
        cut = got[-1][0]
        assert wait_status(srv, "e2e-resume", ("running",), 5)["status"] == "running"
        rest = SSE(srv, "GET", "/tasks/e2e-resume/events", headers={"Last-Event-ID": str(cut)}).read_all()
    named = terminal(rest)
    assert named[-1][1]["status"] == "completed"
    got += [(fid, json.loads(d)) for ev, fid, d in rest if ev is None]
    ids = [fid for fid, _ in got]
    assert ids == list(range(1, len(ids) + 1)), "every line exactly once, in order: %s" % ids
    assert [x for _, x in got] == stored_lines(srv, "e2e-resume")
    assert got[-1][1]["type"] == "result" and got[-1][1]["result"] == "finally done"


# --------------------------------------------------------------------------
# C: /run-async with git over HTTPS, commit + push, signed webhook


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """OpenSSH's sshd on loopback; the ed25519 user key may only run git-shell."""
    from fakes.git_servers import sshd_for_tests
    s = sshd_for_tests(tmp_path_factory.mktemp("sshd"), {"ed25519": ("ed25519", 'git-shell -c "$SSH_ORIGINAL_COMMAND"')})
    yield s
    s.close()


class GitRemote:
    """The origin repository of scenario C, served over HTTPS (a token in the
    URL) or over SSH (an ed25519 key in the request, the host key pinned by
    sshKnownHosts).  .fields is what the request adds; .secret what must never
    show up in storage or logs."""

    def __init__(self, transport, tmp_path, request):
        from fakes.git_servers import GitHttps, make_ca
        from test_git import make_origin
        self.bare = make_origin(tmp_path / "srv")
        self.env, self.server = {}, None
        if transport == "https":
            self.secret = "ghp_e2eGitToken_" + secrets.token_hex(8)
            ca, cert, key = make_ca(tmp_path / "tls")
            self.server = GitHttps(tmp_path / "srv", cert, key, token=self.secret)
            url = self.server.url("origin.git").replace("https://", "https://x-access-token:%s@" % self.secret)
            self.fields = {"gitRepo": url}
            self.env = {"SSL_CERT_FILE": ca}
        else:
            sshd = request.getfixturevalue("sshd")
            key = pathlib.Path(sshd.keys["ed25519"]).read_text()
            self.secret = "".join(key.strip().splitlines()[1:-1])  # the key's body
            self.fields = {"gitRepo": sshd.url(str(self.bare)), "sshKey": key,
                           "sshKnownHosts": sshd.known_hosts_line() + "\n"}

    def close(self):
        if self.server is not None:
            self.server.close()


@pytest.mark.skipif(not shutil.which("git") or not shutil.which("openssl"), reason="needs git and openssl")
@pytest.mark.parametrize("transport", ["https", "ssh"])
def test_c_async_git_commit_push_and_signed_webhook(e2e, hook_url, tmp_path, request, transport):
    from test_git import git

    remote = GitRemote(transport, tmp_path, request)
    bare = remote.bare
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    try:
        srv = e2e(CCR_ALLOW_PRIVATE_CALLBACKS=1, CLOUDRUN_CALLBACK_SECRET=secret, **remote.env)
        srv.fake.load_script([{"tool_use": {"name": "Write", "input": {
            "file_path": "feature.txt", "content": "written by the agent\n"}}}, {"text": "committed"}])
        with Scenario(srv, "C async git over %s, commit/push + webhook" % transport.upper()):
            status, data = call(srv, "POST", "/run-async", body(
                callbackUrl=hook_url, taskId="e2e-git", gitBranch="main", metadata={"who": "e2e"},
                postExecutionActions={"git": {"commit": True, "push": True, "branch": "ccr/e2e",
                                              "commitMessage": "agent: add feature.txt"}},
                **remote.fields))
            assert status == 202, data
            meta = wait_status(srv, "e2e-git", ("completed", "failed", "cancelled"), 90)
            wait_for(lambda: Hook.seen, 30, "the webhook")
        assert meta["status"] == "completed", meta
        pushed = git("rev-parse", "ccr/e2e", cwd=bare)
        assert git("show", "ccr/e2e:feature.txt", cwd=bare) == "written by the agent"
        assert git("log", "-1", "--format=%s", "ccr/e2e", cwd=bare) == "agent: add feature.txt"
        assert git("rev-parse", "ccr/e2e^", cwd=bare) == git("rev-parse", "main", cwd=bare)
        # only the agent's work: not the .env ccr wrote from environmentSecrets, nor prompt files
        changed = git("diff", "--name-only", "ccr/e2e^", "ccr/e2e", cwd=bare).split()
        assert changed == ["feature.txt"], changed

        assert len(Hook.seen) == 1
        headers, raw = Hook.seen[0]
        ts = headers["X-Webhook-Timestamp"]
        want = hmac.new(secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
        assert headers["X-Webhook-Signature"] == "sha256=" + want
        k = base64.b64decode(secret[len("whsec_"):])
        std = base64.b64encode(hmac.new(k, ("%s.%s." % (headers["webhook-id"], headers["webhook-timestamp"])).encode()
                                        + raw, hashlib.sha256).digest()).decode()
        assert "v1," + std in headers["webhook-signature"].split()
        hookdoc = json.loads(raw)
        assert hookdoc["taskId"] == "e2e-git" and hookdoc["status"] == "completed"
        assert hookdoc["gitCommit"]["sha"] == pushed and hookdoc["gitCommit"]["pushed"] is True
        assert hookdoc["metadata"] == {"who": "e2e"}
        res = hookdoc["result"]
        assert res["usage"]["output_tokens"] > 0 and res["session_id"]
        init = stored_lines(srv, "e2e-git")[0]
        assert res["session_id"] == init["session_id"]
        assert remote.secret not in json.dumps(srv.lines)
        for where, raw in everything_stored(srv):
            assert remote.secret.encode() not in raw, "the git credential is in %s" % where
        wait_wiped(srv)
    finally:
        remote.close()


# --------------------------------------------------------------------------
# H (cloud mode): 20% 503s from Cloud Storage, Cloud KMS and Cloud Run


@pytest.mark.parametrize("e2e", ["cloud"], indirect=True)
def test_h_cloud_faults_still_complete_with_the_whole_log(e2e):
    srv = e2e(CCR_RETRY_BASE_MS=50)
    srv.fake.load_script(write_script("done despite the faults"))
    # 20% at random everywhere, and surely the first call of KMS and of
    # Cloud Run (one task makes only a couple of those)
    rules = [{"name": "%s-first" % svc, "service": svc, "status": 503, "count": 1} for svc in ("kms", "run")]
    rules += [{"name": "%s-503" % svc, "service": svc, "status": 503, "probability": 0.2}
              for svc in ("storage", "kms", "run")]
    srv.cloud.fake.faults(rules=rules, seed=11)
    with Scenario(srv, "H 20% 503s on GCS, KMS and Cloud Run"):
        frames = SSE(srv, "POST", "/run", body(
            postExecutionActions={"uploadFiles": {"globPatterns": ["hello.txt"]}})).read_all()
    done = terminal(frames)[-1][1]
    assert done["status"] == "completed", done
    lines = lines_of(frames)
    assert [fid for ev, fid, _ in frames if ev is None] == list(range(1, len(lines) + 1))
    assert lines[0]["subtype"] == "init" and lines[-1]["type"] == "result"
    assert lines[-1]["result"] == "done despite the faults"
    fired = {r["name"]: r["fired"] for r in srv.cloud.fake.fault_state()["rules"]}
    faulted = len(srv.cloud.fake.requests())
    srv.cloud.fake.clear_faults()
    (task,) = task_ids(srv)
    assert stored_lines(srv, task) == lines, "the stored log is complete"
    assert stored_meta(srv, task)["status"] == "completed"
    assert stored(srv, "files/%s/hello.txt" % task) == b"hello from the fake model\n"
    srv.cloud.wait_gone("tasks/%s/payload.enc" % task)
    print("503s injected: %s of %d requests" % (fired, faulted))
    assert fired.get("storage-503", 0) >= 3, fired
    assert fired["kms-first"] == 1 and fired["run-first"] == 1, fired
    runs = [ex for ex in srv.cloud.fake.executions()]
    assert len(runs) == 1, "a retried jobs.run started %d executions" % len(runs)


# --------------------------------------------------------------------------
# compatibility with the original service (issue 13): the CLI expands
# mcpConfig's ${VAR} itself; the operator's ~/.claude is seen by every task


def tool_results(lines):
    return [b for x in lines if x["type"] == "user" for b in x["message"]["content"]
            if isinstance(b, dict) and b.get("type") == "tool_result"]


def settled_stored(srv, tries=50):
    """everything_stored() once the job has finished removing its files."""
    for _ in range(tries):
        try:
            return everything_stored(srv)
        except FileNotFoundError:
            time.sleep(0.1)
    return everything_stored(srv)


def result_text(block):
    c = block["content"]
    return c if isinstance(c, str) else "".join(x.get("text", "") for x in c if isinstance(x, dict))


@pytest.mark.parametrize("e2e", ["local"], indirect=True)
def test_mcp_config_references_are_expanded_by_the_cli_from_its_environment(e2e, tmp_path):
    srv = e2e()
    log = tmp_path / "rec" / "mcp-echo.log"
    token = "mcp-token-" + secrets.token_hex(8)
    srv.fake.load_script([
        {"tool_use": {"name": "Bash", "input": {"command": "cat .mcp.json", "description": "show the config"}}},
        {"tool_use": {"name": "mcp__echo__env_digest", "input": {"name": "ECHO_TOKEN"}}},
        {"text": "checked"}])
    mcp = {"mcpServers": {"echo": {"command": PYTHON, "args": ["${ECHO_SCRIPT}"],
                                   "env": {"MCP_ECHO_LOG": "${ECHO_LOG}", "ECHO_TOKEN": "${ECHO_TOKEN}",
                                           "NOT_GIVEN": "${NOT_IN_SECRETS}"}}}}
    with Scenario(srv, "mcpConfig ${VAR} expanded by the CLI"):
        frames = SSE(srv, "POST", "/run", body(
            {"ECHO_SCRIPT": str(MCP_ECHO), "ECHO_LOG": str(log), "ECHO_TOKEN": token}, mcpConfig=mcp)).read_all()
    done = terminal(frames)[-1][1]
    assert done["status"] == "completed", done
    lines = lines_of(frames)
    init = lines[0]
    # ${ECHO_SCRIPT} in args: the server started; ${ECHO_LOG} in env: it logged there
    assert [(s["name"], s["status"]) for s in init["mcp_servers"]] == [("echo", "connected")], init
    assert "tools/call" in [json.loads(x).get("method") for x in log.read_text().splitlines()]
    shown, digest = (result_text(b) for b in tool_results(lines))
    # the file holds the reference, never the value ...
    assert json.loads(shown) == mcp, shown
    # ... and the server received the value itself
    assert digest == hashlib.sha256(token.encode()).hexdigest(), digest
    (task,) = task_ids(srv)
    joblog = job_log(srv, task)
    assert ('Environment variable \\"NOT_IN_SECRETS\\" referenced in mcpConfig.mcpServers.echo.env.NOT_GIVEN '
            'but not defined in environmentSecrets') in joblog, joblog
    assert token not in joblog
    wait_wiped(srv)
    for where, raw in settled_stored(srv):
        assert token.encode() not in raw, "the MCP token is in %s" % where


@pytest.mark.parametrize("e2e", ["local"], indirect=True)
def test_operator_claude_home_is_seen_and_transcripts_stay_with_the_task(e2e):
    srv = e2e()
    dot = srv.home / ".claude"
    for sub in ("commands", "agents", "skills/opskill"):
        (dot / sub).mkdir(parents=True)
    (dot / "commands" / "opcmd.md").write_text("---\ndescription: an operator command\n---\nSay hi.\n")
    (dot / "agents" / "opagent.md").write_text("---\nname: opagent\ndescription: An operator agent\n---\n"
                                               "You are an agent.\n")
    (dot / "skills" / "opskill" / "SKILL.md").write_text("---\nname: opskill\ndescription: An operator skill\n"
                                                         "---\nDo things.\n")
    (dot / "settings.json").write_text(json.dumps({"env": {"OPERATOR_SETTING": "from-home-settings"}}))
    (srv.home / ".claude.json").write_text(json.dumps({"mcpServers": {"usermcp": {
        "type": "stdio", "command": PYTHON, "args": [str(MCP_ECHO)], "env": {}}}}))
    before = sorted(str(p) for p in srv.home.rglob("*") if p.is_file())
    srv.fake.load_script([
        {"tool_use": {"name": "Bash", "input": {
            "command": 'echo "setting=$OPERATOR_SETTING"; ls "$CLAUDE_CONFIG_DIR"/projects/*/',
            "description": "look around"}}},
        {"text": "seen"}])
    with Scenario(srv, "operator ~/.claude visible per task"):
        frames = SSE(srv, "POST", "/run", body()).read_all()
    done = terminal(frames)[-1][1]
    assert done["status"] == "completed", done
    lines = lines_of(frames)
    init = lines[0]
    assert "opcmd" in init["slash_commands"], init["slash_commands"]
    assert "opagent" in init["agents"], init["agents"]
    assert "opskill" in init["skills"], init["skills"]
    assert ("usermcp", "connected") in [(s["name"], s["status"]) for s in init["mcp_servers"]], init
    (shown,) = (result_text(b) for b in tool_results(lines))
    assert "setting=from-home-settings" in shown, shown
    # the session's transcript is in the per-task directory, in the workspace ...
    assert init["session_id"] + ".jsonl" in shown, shown
    assert init["memory_paths"]["auto"].startswith(str(srv.ws) + "/"), init["memory_paths"]
    wait_wiped(srv)
    # ... and went with it: HOME holds exactly the files the operator put there
    for _ in range(50):  # the job may still be removing the CLI's MCP logs
        try:
            after = sorted(str(p) for p in srv.home.rglob("*") if p.is_file())
            break
        except FileNotFoundError:
            time.sleep(0.1)
    assert after == before


# --------------------------------------------------------------------------
# J: the agent's own git (HTTPS and SSH) goes through the egress proxy from inside the sandbox


class _Metadata(http.server.BaseHTTPRequestHandler):
    """A loopback stand-in for the metadata server: any request reaching it is a breach."""
    hits = []

    def do_GET(self):
        _Metadata.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


@pytest.mark.skipif(not all(shutil.which(t) for t in ("git", "openssl", "curl")), reason="needs git, openssl, curl")
def test_j_the_agents_git_and_downloads_go_through_the_egress_proxy(e2e, tmp_path, request):
    from fakes.git_servers import GitHttps, make_ca
    from test_git import make_origin
    bare = make_origin(tmp_path / "srv")
    ca, cert, key = make_ca(tmp_path / "tls")
    token = "ghp_agentOwnToken_" + secrets.token_hex(8)
    https = GitHttps(tmp_path / "srv", cert, key, token=token)
    sshd = request.getfixturevalue("sshd")
    _Metadata.hits = []
    meta = testenv.serve_http(_Metadata)
    meta_port = meta.port
    user_key = pathlib.Path(sshd.keys["ed25519"]).read_text()
    url = https.url("origin.git").replace("https://", "https://x:%s@" % token)
    # 127.0.0.1 is in NO_PROXY (the token proxy is reached directly): an internal server
    # named by that address is reached through the egress proxy once NO_PROXY is dropped
    script = " ; ".join([
        "unset NO_PROXY no_proxy",
        f"git -c http.sslCAInfo={ca} ls-remote {url} >/dev/null 2>&1; echo git-https=$?",
        "git ls-remote origin >/dev/null 2>&1; echo git-ssh=$?",
        f"curl -s -o /dev/null -w 'download=%{{http_code}}\\n' --cacert {ca} -u x:{token} "
        f"'{https.url('origin.git/info/refs?service=git-upload-pack')}'",
        f"curl -s -m 10 -o /dev/null -w 'metadata=%{{http_code}}\\n' http://127.0.0.1:{meta_port}/computeMetadata/v1/",
        f"curl -s -m 10 --noproxy '*' -o /dev/null http://127.0.0.1:{meta_port}/ ; echo direct=$?",
    ])
    try:
        srv = e2e(CCR_EGRESS_ALLOW_PRIVATE=f"127.0.0.1:{https.port},127.0.0.1:{sshd.port}",
                  CCR_SANDBOX_RO_PATHS=f"{ROOT / 'tests' / 'fakes'}:{pathlib.Path(ca).parent}")
        srv.fake.load_script([{"tool_use": {"name": "Bash", "input": {"command": script}}}, {"text": "probed"}])
        with Scenario(srv, "J the agent's git (HTTPS, SSH) and download through the egress proxy"):
            frames = SSE(srv, "POST", "/run", body(
                gitRepo=sshd.url(str(bare)), sshKey=user_key, sshKnownHosts=sshd.known_hosts_line() + "\n",
                allowedHosts=["127.0.0.1"])).read_all()
        done = terminal(frames)[-1][1]
        assert done["status"] == "completed", done
        results = [b for x in lines_of(frames) if x["type"] == "user"
                   for b in x["message"]["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
        text = json.dumps(results)
        assert "git-https=0" in text and "git-ssh=0" in text and "download=200" in text, text
        assert "metadata=403" in text, text                 # refused by the proxy: a private address
        assert "direct=0" not in text, text                  # no route around the proxy
        assert not _Metadata.hits, _Metadata.hits
    finally:
        https.close()
        meta.stop()
# I: the agent's network goes through the job's egress proxy


@pytest.mark.skipif(not shutil.which("curl") or not shutil.which("openssl"), reason="needs curl and openssl")
def test_i_the_agents_https_download_goes_through_the_egress_proxy(e2e, tmp_path):
    """The real CLI's Bash tool runs curl with the environment ccr gave it:
    an HTTPS download from a loopback TLS server that CCR_EGRESS_ALLOW_PRIVATE
    admits arrives intact through CONNECT; a loopback port it does not admit
    is refused with a 403 and never reached."""
    from test_egress import Web, make_cert
    ca, cert, key = make_cert(tmp_path / "tls", "127.0.0.2")
    blob = secrets.token_bytes(256 * 1024)
    web = Web("127.0.0.2", {"/blob": blob}, tls=(cert, key))
    closed = Web("127.0.0.2", {"/": b"never\n"})
    # written by the agent from inside its sandbox: in the fixture's read-write directory
    got, refused = tmp_path / "rec" / "got.bin", tmp_path / "rec" / "refused.txt"
    try:
        srv = e2e(CCR_EGRESS_ALLOW_PRIVATE="127.0.0.2:%d" % web.port,
                  CCR_SANDBOX_RO_PATHS="%s:%s" % (ROOT / "tests" / "fakes", pathlib.Path(ca).parent))
        srv.fake.load_script([{"tool_use": {"name": "Bash", "input": {
            "command": "curl -sS --cacert %s -o %s https://127.0.0.2:%d/blob; "
                       "curl -sS -w ' code=%%{http_code}' http://127.0.0.2:%d/ > %s"
                       % (ca, got, web.port, closed.port, refused),
            "description": "download"}}}, {"text": "downloaded"}])
        with Scenario(srv, "I HTTPS download through the egress proxy"):
            frames = SSE(srv, "POST", "/run", body(allowedHosts=["127.0.0.2"])).read_all()
        done = terminal(frames)[-1][1]
        assert done["status"] == "completed", done
        assert got.read_bytes() == blob
        assert "code=403" in refused.read_text() and "loopback" in refused.read_text()
        assert [r["path"] for r in web.seen] == ["/blob"] and closed.seen == []
        wait_wiped(srv)
    finally:
        web.close()
        closed.close()
