"""A task's state never lies (local mode, scripted stand-in for claude).

- `ccr job` exits 0, 1 and 130 for completed, failed and cancelled tasks;
- a CLI that lingers after a success result is stopped and counts as completed;
- a tool that is silent but busy outlives the idle limit; a silent, idle CLI does not;
- a retried attempt never runs the agent twice;
- kill -9 of a job: the reconciler of either of two serve instances finalises the task
  as failed/lost, its SSE stream ends with the terminal event, its webhook is delivered
  exactly once, its processes and workspace are gone;
- queued tasks live in storage: they survive a SIGTERM of serve and run, in order, under
  the next instance; cancelling a queued task ends it at once;
- a /run client that disconnects leaves the task running, and it can resume.
"""
import json
import os
import signal
import socket
import time

import pytest

from conftest import ROOT, Hook, get_until_close, http_request, post_run_then_drop
from test_job import Job, pid_alive
from fakes.fake_claude import read_record

FAKE_CLAUDE = str(ROOT / "tests" / "fakes" / "fake_claude.py")
KEY = "sk-ant-lifecycle-canary-42"
HANG = {"lines": [{"type": "system", "subtype": "init"}], "hang_after": True}


@pytest.fixture
def job(ccr_bin, tmp_path):
    return Job(ccr_bin, tmp_path)


# ---- ccr job ----

@pytest.mark.parametrize("mode,code,status", [
    ({}, 0, "completed"),
    ({"exit": 3}, 1, "failed"),
])
def test_job_exit_code_follows_the_task(job, mode, code, status):
    job.payload("x1", mode=mode)
    rc, out, err = job.run("x1")
    assert rc == code, err
    assert job.meta("x1")["status"] == status


def test_cancelled_job_exits_130(job):
    job.payload("x2", mode=HANG)
    p = job.start("x2", CCR_KILL_GRACE_MS=500)
    for _ in range(200):
        if job.record.exists() and job.record.stat().st_size:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    assert p.returncode == 130
    assert job.meta("x2")["status"] == "cancelled"


def test_lingering_cli_after_a_success_result_counts_as_completed(job):
    job.payload("l1", mode={"hang_after": True}, postExecutionActions={"uploadFiles": []})
    rc, out, err = job.run("l1", CCR_RESULT_GRACE_S=1, CCR_KILL_GRACE_MS=300)
    m = job.meta("l1")
    assert rc == 0, err
    assert m["status"] == "completed" and m["terminalReason"] == "completed" and m["exitCode"] == 0
    assert m["stoppedAfterResult"] is True
    assert "error" not in m


def test_lingering_cli_after_an_error_result_is_still_a_failure(job):
    lines = [{"type": "result", "subtype": "error_during_execution", "is_error": True, "result": "boom"}]
    job.payload("l2", mode={"lines": lines, "hang_after": True})
    rc, out, err = job.run("l2", CCR_RESULT_GRACE_S=1, CCR_KILL_GRACE_MS=300)
    m = job.meta("l2")
    assert rc == 1 and m["status"] == "failed" and m["terminalReason"] == "hang_after_result"
    assert "stoppedAfterResult" not in m


def test_silent_but_busy_tool_outlives_the_idle_limit(job):
    job.payload("b1", mode={"busy": 5})
    rc, out, err = job.run("b1", CCR_IDLE_TIMEOUT_S=2, timeout=120)
    m = job.meta("b1")
    assert rc == 0, err
    assert m["status"] == "completed", m


def test_request_idle_timeout_stops_a_silent_idle_cli(job):
    job.payload("b2", mode={"silent": 60}, idleTimeoutMinutes=0.05)
    t0 = time.time()
    rc, out, err = job.run("b2", CCR_IDLE_TIMEOUT_S=900, CCR_KILL_GRACE_MS=300)
    m = job.meta("b2")
    assert rc == 1 and m["terminalReason"] == "idle_timeout"
    assert time.time() - t0 < 30


def test_retried_attempt_never_runs_the_agent_again(job, hook_url):
    job.payload("r1", mode={}, callbackUrl=hook_url)
    meta = job.data / "sessions" / "r1" / "metadata.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"taskId": "r1", "status": "running", "createdAt": "2026-01-01T00:00:00.000Z"}))
    chunk = meta.parent / "000001-20260101000000.jsonl"
    chunk.write_text('{"type":"system","subtype":"init"}\n')
    rc, out, err = job.run("r1", CLOUD_RUN_TASK_ATTEMPT=1, CLOUDRUN_CALLBACK_SECRET="s3cret",
                           CCR_ALLOW_PRIVATE_CALLBACKS=1)
    assert rc == 1, err
    m = job.meta("r1")
    assert m["status"] == "failed" and m["terminalReason"] == "job_retried"
    assert not job.record.exists(), "the agent did not run"
    assert chunk.read_text() == '{"type":"system","subtype":"init"}\n', "the first attempt's log is kept"
    assert any("retried" in l for l in job.lines("r1")), "the log says why"
    assert len(Hook.seen) == 1 and json.loads(Hook.seen[0][1])["status"] == "failed"
    assert not (job.data / "tasks" / "r1" / "payload.enc").exists()
    # a further retry of a finished task changes nothing and exits with its code
    rc, out, err = job.run("r1", CLOUD_RUN_TASK_ATTEMPT=2)
    assert rc == 1 and job.meta("r1") == m


def test_orphans_die_with_the_job(job):
    job.payload("o1", mode=dict(HANG, child=True, escaped=True))
    p = job.start("o1")
    for _ in range(200):
        if job.record.exists() and job.record.stat().st_size:
            break
        time.sleep(0.05)
    rec = job.claude_record()
    assert pid_alive(rec["pid"]) and pid_alive(rec["child_pid"]) and pid_alive(rec["escaped_pid"])
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(pid_alive(rec[k]) for k in ("pid", "child_pid", "escaped_pid")):
        time.sleep(0.05)
    assert not pid_alive(rec["pid"]), "the CLI died with its job"
    assert not pid_alive(rec["child_pid"]), "so did its process group"
    assert not pid_alive(rec["escaped_pid"]), "and a descendant in a session of its own"


# ---- serve: reconciler, durable queue, disconnects ----

@pytest.fixture
def local(local_serve):
    def start(**env):
        return local_serve(**dict({"CCR_RECONCILE_INTERVAL_S": "1",
                "CLOUDRUN_CALLBACK_SECRET": "whsec_dGVzdHNlY3JldA==", "CCR_ALLOW_PRIVATE_CALLBACKS": "1"}, **env))
    return start


def body(mode=None, record=None, **fields):
    b = {"prompt": "hello", "anthropicApiKey": KEY, "environmentSecrets": {}}
    if mode is not None:
        b["environmentSecrets"]["FAKE_CLAUDE_MODE"] = json.dumps(mode)
    if record is not None:
        b["environmentSecrets"]["FAKE_CLAUDE_RECORD"] = str(record)
    b.update(fields)
    return b


def submit(srv, task_id, mode, hook=None, **kw):
    status, _, data = http_request(srv, "POST", "/run-async",
                                   body(mode, callbackUrl=hook or "https://example.invalid/h", taskId=task_id, **kw))
    assert status == 202, data
    return json.loads(data)


def task(srv, task_id):
    status, _, data = http_request(srv, "GET", f"/tasks/{task_id}")
    assert status == 200, data
    return json.loads(data)


def wait_status(srv, task_id, want, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = task(srv, task_id)
        if doc["status"] in want:
            return doc
        time.sleep(0.1)
    raise AssertionError(f"{task_id} never reached {want}: {task(srv, task_id)}")


def job_pid(srv, task_id):
    return int((srv.data / ".run" / f"{task_id}.pid").read_text().split()[0])


def sse_until_done(srv, task_id):
    return get_until_close(srv, f"/tasks/{task_id}/events").decode()


def test_kill_9_of_a_job_is_finalised_once_by_two_reconcilers(local, tmp_path, hook_url):
    # the default sweep interval: the instance whose child died looks at once
    a = local(CCR_RECONCILE_INTERVAL_S=10)
    b = local(CCR_RECONCILE_INTERVAL_S=10)
    rec = tmp_path / "rec" / "rec.json"
    submit(a, "lost1", dict(HANG, child=True, escaped=True), hook=hook_url, record=rec)
    wait_status(a, "lost1", ("running",))
    for _ in range(200):
        if rec.exists() and rec.stat().st_size:
            break
        time.sleep(0.05)
    info = read_record(rec)
    ws = [p for p in a.ws.iterdir() if p.name.startswith("ws-lost1-")]
    assert ws, "the workspace is named after its task"
    events = []
    import threading
    ended = []
    th = threading.Thread(target=lambda: (events.append(sse_until_done(b, "lost1")), ended.append(time.time())),
                          daemon=True)
    th.start()
    time.sleep(0.5)
    t0 = time.time()
    os.kill(job_pid(a, "lost1"), signal.SIGKILL)
    th.join(timeout=60)
    took = ended[0] - t0
    m = wait_status(b, "lost1", ("failed", "completed", "cancelled"))
    assert m["status"] == "failed" and m["terminalReason"] == "lost", m
    assert "gone" in m["error"] or "ended" in m["error"]
    th.join(timeout=30)
    assert events and "event: error" in events[0] and "event: done" in events[0]
    print(f"local: kill -9 -> terminal SSE event in {took:.2f} s (reconcile interval 10 s)")
    time.sleep(3)          # both reconcilers get more sweeps in
    assert len(Hook.seen) == 1, "the webhook went out exactly once"
    hook = json.loads(Hook.seen[0][1])
    assert hook["status"] == "failed" and hook["terminalReason"] == "lost"
    assert not (a.data / "tasks" / "lost1" / "payload.enc").exists()
    assert not (a.data / "active" / "lost1").exists()
    assert not any(p.exists() for p in ws), "the workspace (with its .env) is gone"
    for k in ("pid", "child_pid", "escaped_pid"):
        assert not pid_alive(info[k]), f"{k} died with the job"
    assert task(a, "lost1")["webhook"]["delivered"] is True
    status, _, data = http_request(a, "POST", "/cancel/lost1")
    assert status == 404


def test_queued_tasks_survive_a_serve_restart_and_run_in_order(local, tmp_path):
    a = local(CCR_MAX_CONCURRENT_TASKS=1)
    submit(a, "q1", HANG)
    wait_status(a, "q1", ("running",))
    for tid in ("q2", "q3", "q4"):
        assert submit(a, tid, {"lines": [{"type": "system"}]})["status"] == "queued"
        time.sleep(0.01)
    a.stop()
    b = local(CCR_MAX_CONCURRENT_TASKS=1)
    assert task(b, "q2")["status"] == "queued"
    time.sleep(1)         # several dispatch rounds: q1's job, started by a, still holds the only slot
    assert task(b, "q2")["status"] == "queued", "a restarted serve counts the jobs it inherited"
    status, _, data = http_request(b, "POST", "/cancel/q3")
    assert status == 200 and json.loads(data)["status"] == "cancelled"
    assert task(b, "q3")["status"] == "cancelled", "a queued task is cancelled at once"
    status, _, data = http_request(b, "POST", "/cancel/q1")
    assert status == 200
    wait_status(b, "q1", ("cancelled",))
    q2 = wait_status(b, "q2", ("completed",))
    q4 = wait_status(b, "q4", ("completed",))
    assert q2["startedAt"] <= q4["startedAt"], "FIFO"
    assert task(b, "q3")["status"] == "cancelled", "a cancelled queued task never runs"


def test_run_client_that_disconnects_leaves_the_task_running(local):
    srv = local()
    lines = [{"type": "system", "subtype": "init"}] + [{"type": "assistant", "i": i} for i in range(20)]
    post_run_then_drop(srv, body({"lines": lines, "delay": 0.1}), b"id: 2\n")
    tid = os.listdir(srv.data / "sessions")[0]
    m = wait_status(srv, tid, ("completed", "failed", "cancelled"))
    assert m["status"] == "completed", m
    text = get_until_close(srv, f"/tasks/{tid}/events", "Last-Event-ID: 2\r\n")
    ids = [int(l[4:]) for l in text.decode().split("\n") if l.startswith("id: ")]
    assert ids == list(range(3, 22)), "resumed after the last event id, nothing lost"


@pytest.mark.parametrize("field,value,message", [
    ("timeoutMinutes", 1e-7, "timeoutMinutes"),
    ("idleTimeoutMinutes", 0.001, "idleTimeoutMinutes must be at least one second"),
    ("cancelOnDisconnect", "yes", "cancelOnDisconnect must be a boolean"),
])
def test_durations_and_flags_are_validated(local, field, value, message):
    srv = local()
    status, _, data = http_request(srv, "POST", "/run-async",
                                   body(callbackUrl="https://example.invalid/h", **{field: value}))
    assert status == 400 and message in json.loads(data)["error"], data


# ---- cloud mode, on the fake Google Cloud ----

from test_cloud import HOOK_SECRET, cloud, body as cloud_body  # noqa: E402,F401


def cloud_attempt_pid(c, exec_name, attempt=0, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        atts = c.fake.execution(exec_name)["tasks"][0]["attempts"]
        if len(atts) > attempt and atts[attempt].get("pid"):
            return atts[attempt]["pid"]
        time.sleep(0.05)
    raise AssertionError("the attempt never started")


def cloud_start(c, srv, task_id, hook_url, record):
    mode = dict(HANG, child=True)
    status, _, data = http_request(srv, "POST", "/run-async", cloud_body(
        mode, callbackUrl=hook_url, taskId=task_id,
        environmentSecrets={"FAKE_CLAUDE_MODE": json.dumps(mode), "FAKE_CLAUDE_RECORD": str(record)}))
    assert status == 202, data
    exec_name = json.loads(data)["executionName"]
    wait_status(srv, task_id, ("running",))
    for _ in range(300):
        if record.exists() and record.stat().st_size and c.log_lines(task_id):
            break
        time.sleep(0.05)
    return exec_name


def test_cloud_kill_9_of_a_job_is_finalised_once(cloud, hook_url, tmp_path):
    c = cloud()
    env = {"CCR_RECONCILE_INTERVAL_S": 1, "CLOUDRUN_CALLBACK_SECRET": HOOK_SECRET, "CCR_ALLOW_PRIVATE_CALLBACKS": 1}
    a, b = c.serve(**env), c.serve(**env)
    record = tmp_path / "rec" / "claude.json"
    exec_name = cloud_start(c, a, "cloud-lost-1", hook_url, record)
    info = read_record(record)
    events = []
    import threading
    th = threading.Thread(target=lambda: events.append(sse_until_done(b, "cloud-lost-1")), daemon=True)
    th.start()
    time.sleep(0.5)
    t0 = time.time()
    os.kill(cloud_attempt_pid(c, exec_name), signal.SIGKILL)
    th.join(timeout=60)
    took = time.time() - t0
    assert events and "event: error" in events[0] and "event: done" in events[0], events
    m = c.meta("cloud-lost-1")
    assert m["status"] == "failed" and m["terminalReason"] == "lost" and "ended" in m["error"], m
    print(f"cloud: kill -9 -> terminal SSE event in {took:.2f} s")
    time.sleep(3)
    assert len(Hook.seen) == 1, "exactly one webhook across two reconcilers"
    assert c.raw("tasks/cloud-lost-1/payload.enc") is None
    assert not pid_alive(info["pid"]) and not pid_alive(info["child_pid"])


def test_cloud_retried_attempt_finalises_without_running_the_agent(cloud, hook_url, tmp_path):
    c = cloud()
    c.fake.register_job("claude-code-async-worker", command=[c.bin, "job"], env=c.job_env, max_retries=1)
    srv = c.serve()
    record = tmp_path / "rec" / "claude.json"
    exec_name = cloud_start(c, srv, "cloud-retry-1", hook_url, record)
    first = record.read_text()
    os.kill(cloud_attempt_pid(c, exec_name), signal.SIGKILL)
    m = wait_status(srv, "cloud-retry-1", ("failed", "completed", "cancelled"))
    assert m["status"] == "failed" and m["terminalReason"] == "job_retried", m
    assert record.read_text() == first, "the agent ran once"
    # The retried attempt writes the terminal record before it exits, so wait for its exit.
    for _ in range(300):
        ex = c.fake.execution(exec_name)
        attempts = ex["tasks"][0]["attempts"]
        if len(attempts) == 2 and attempts[1]["done"]:
            break
        time.sleep(0.1)
    assert len(attempts) == 2 and attempts[1]["exit_code"] == 1, attempts
    for _ in range(100):
        if Hook.seen:
            break
        time.sleep(0.1)
    assert len(Hook.seen) == 1 and json.loads(Hook.seen[0][1])["terminalReason"] == "job_retried"


# ---- every job ends ----

def test_job_whose_storage_keeps_failing_gives_up_in_bounded_time(job):
    lines = [{"type": "assistant", "i": i} for i in range(2000)]
    job.payload("s1", mode={"lines": lines, "delay": 0.05})
    p = job.start("s1", CCR_STORAGE_GIVE_UP_S=5, CCR_LOG_FLUSH_MS=50)
    for _ in range(200):
        if job.record.exists() and job.record.stat().st_size:
            break
        time.sleep(0.05)
    time.sleep(0.5)
    job.data.rename(job.data.with_name("data-gone"))     # atomic: the job keeps writing meanwhile
    job.data.write_text("not a directory any more")       # every write now fails
    t0 = time.time()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    assert time.time() - t0 < 30, "bounded by CCR_STORAGE_GIVE_UP_S, not a retry loop"
    assert "could not be stored" in err
    assert not pid_alive(job.claude_record()["pid"])


def test_sigterm_ends_a_job_in_a_phase_that_does_not_listen(job):
    job.payload("t1", mode={}, preExecutionCommands=["sleep 60"])
    p = job.start("t1", CCR_STOP_BUDGET_MS=3000)
    for _ in range(100):
        if (job.data / "sessions" / "t1" / "metadata.json").exists():
            break
        time.sleep(0.05)
    time.sleep(0.5)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    assert p.returncode == 130
    assert time.time() - t0 < 10


# ---- redaction of what the agent prints ----

def encodings(secret):
    import base64
    import urllib.parse
    raw = secret.encode()
    forms = {secret, urllib.parse.quote(secret, safe="")}
    for pad in (b"", b"x", b"xy"):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            text = enc(pad + raw + b" tail").decode()
            k, n = len(pad), len(raw)
            forms.add(text[(8 * k + 5) // 6: 8 * (k + n) // 6])     # the characters only the secret decides
    return forms


def test_secrets_printed_by_the_agent_never_reach_log_stream_metadata_or_webhook(local, hook_url):
    srv = local()
    env_secret = "env-secret-value-0af3c9d1e2"
    b = body({"leak": [KEY, env_secret]})
    b["environmentSecrets"]["OTHER"] = env_secret
    status, _, data = http_request(srv, "POST", "/run", b)
    assert status == 200
    stream = data.decode()
    status, _, data2 = http_request(srv, "POST", "/run-async", dict(b, callbackUrl=hook_url, taskId="leak2"))
    assert status == 202, data2
    wait_status(srv, "leak2", ("completed", "failed"))
    for _ in range(100):
        if Hook.seen:
            break
        time.sleep(0.1)
    assert Hook.seen, "the webhook arrived"
    stored = "".join(p.read_text() for d in ("sessions",) for p in (srv.data / d).rglob("*") if p.is_file())
    hooks = "".join(h[1].decode() for h in Hook.seen)
    assert "[REDACTED]" in stream and "[REDACTED]" in stored
    assert stream.count("[REDACTED]") >= 7, "raw, 3 base64 alignments, base64url, percent, split"
    for secret in (KEY, env_secret):
        for form in encodings(secret):
            assert form not in stream, ("SSE stream", form)
            assert form not in stored, ("stored log or metadata", form)
            assert form not in hooks, ("webhook", form)


# ---- local mode: loopback host names only, verbose health behind keys ----

def raw_status(srv, request):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        part = s.recv(4096)
        if not part:
            break
        data += part
    s.close()
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize("host,ok", [
    ("localhost", True), ("localhost:8080", True), ("LOCALHOST", True), ("127.0.0.1", True),
    ("127.0.0.1:1234", True), ("127.1.2.3", True), ("[::1]", True), ("[::1]:8080", True),
    ("evil.example", False), ("evil.example:8080", False), ("127.0.0.1.evil.example", False),
    ("localhost.evil.example", False), ("[::2]", False), ("10.0.0.1", False),
])
def test_without_keys_only_loopback_host_names_are_answered(local, host, ok):
    srv = local()
    status, data = raw_status(srv, f"GET /tasks/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    if ok:
        assert status == 200, data
    else:
        assert status == 403 and b"loopback" in data, data


def test_with_keys_any_host_and_verbose_health_needs_a_key(local, tmp_path):
    cli = tmp_path / "claude-count"
    count = tmp_path / "count"
    cli.write_text(f"#!/bin/sh\necho x >> {count}\nsleep 0.3\necho 2.0.0\n")
    cli.chmod(0o755)
    srv = local(CCR_API_KEYS="k-0123456789", CLAUDE_BIN=str(cli))
    status, _ = raw_status(srv, "GET /tasks/status HTTP/1.1\r\nHost: api.example\r\n"
                                "Authorization: Bearer k-0123456789\r\nConnection: close\r\n\r\n")
    assert status == 200, "with keys the Host does not matter"
    status, _ = raw_status(srv, "GET /health?verbose=true HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert status == 401
    status, _ = raw_status(srv, "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert status == 200, "the plain health check stays open for probes"
    import threading
    results = []

    def probe():
        results.append(raw_status(srv, "GET /health?verbose=true HTTP/1.1\r\nHost: localhost\r\n"
                                       "Authorization: Bearer k-0123456789\r\nConnection: close\r\n\r\n")[0])
    threads = [threading.Thread(target=probe) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 8
    assert len(count.read_text().splitlines()) == 1, "one CLI check for a burst of verbose health checks"
