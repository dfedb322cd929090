"""`ccr serve` in local mode with the scripted stand-in for claude.

Covers the task endpoints: SSE frames and ids, the terminal events, resume
with Last-Event-ID, disconnect-then-cancel, cancel from a second instance
sharing the data directory, the async flow, API keys, a table of malformed
or hostile requests, and draining on SIGTERM.
"""
import http.client
import json
from fakes.fake_claude import read_record  # noqa: E402
import os
import signal
import socket
import time
import urllib.parse

import pytest

from conftest import ROOT, http_request, post_run_then_drop

FAKE_CLAUDE = str(ROOT / "tests" / "fakes" / "fake_claude.py")
KEY = "sk-ant-serve-canary-0123456789"


@pytest.fixture
def local(local_serve):
    def start(**env):
        return local_serve(**dict({"CCR_CANCEL_GRACE_MS": "2000"}, **env))
    return start


def body(mode=None, **fields):
    b = {"prompt": "hello", "anthropicApiKey": KEY}
    if mode is not None:
        b["environmentSecrets"] = {"FAKE_CLAUDE_MODE": json.dumps(mode)}
    b.update(fields)
    return b


request = http_request


def parse_sse(text):
    """[(event, id, data)] frames; comments and retry lines dropped."""
    frames = []
    for block in text.split("\n\n"):
        ev, fid, data = None, None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("id: "):
                fid = int(line[4:])
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            frames.append((ev, fid, data))
    return frames


def test_run_streams_every_line_with_ids_and_done(local):
    srv = local()
    lines = [{"type": "system", "subtype": "init", "n": 1.0}, "not json at all",
             {"type": "assistant", "message": {"id": "m1"}}, {"type": "result", "subtype": "success",
                                                               "usage": {"input_tokens": 3, "output_tokens": 4}}]
    status, ctype, data = request(srv, "POST", "/run", body({"lines": lines}))
    assert status == 200 and ctype.startswith("text/event-stream")
    text = data.decode()
    assert text.startswith("retry: 3000\n\n")
    frames = parse_sse(text)
    assert [f[1] for f in frames[:4]] == [1, 2, 3, 4]
    assert frames[0][2] == '{"type":"system","subtype":"init","n":1}', "JS re-serialisation (1.0 -> 1)"
    assert frames[1][2] == '{"type":"text","content":"not json at all"}'
    ev, _, done = frames[-1]
    assert ev == "done"
    d = json.loads(done)
    assert d["status"] == "completed" and d["exitCode"] == 0 and d["usage"] == {"input_tokens": 3, "output_tokens": 4}


def test_failed_task_sends_seed_error_event_then_done(local):
    srv = local()
    status, _, data = request(srv, "POST", "/run", body({"exit": 2, "stderr": "boom"}))
    frames = parse_sse(data.decode())
    assert frames[-2][0] == "error" and json.loads(frames[-2][2]) == {"error": "boom"}
    assert frames[-1][0] == "done" and json.loads(frames[-1][2])["status"] == "failed"


def start_async(srv, task_id, mode, **kw):
    status, _, data = request(srv, "POST", "/run-async",
                              body(mode, callbackUrl="https://example.invalid/hook", taskId=task_id, **kw))
    assert status == 202, data
    doc = json.loads(data)
    assert list(doc) == ["taskId", "status", "logsPath", "createdAt", "executionName"]
    return doc


def wait_status(srv, task_id, want, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, _, data = request(srv, "GET", f"/tasks/{task_id}")
        if status == 200 and json.loads(data)["status"] in want:
            return json.loads(data)
        time.sleep(0.05)
    raise AssertionError(f"{task_id} never reached {want}")


def test_resume_with_last_event_id_loses_and_repeats_nothing(local):
    srv = local()
    n = 30
    start_async(srv, "resume1", {"lines": [{"i": i} for i in range(n)], "delay": 0.02})
    wait_status(srv, "resume1", ("completed",))
    _, _, first = request(srv, "GET", "/tasks/resume1/events")
    frames = [f for f in parse_sse(first.decode()) if f[0] is None]
    assert [json.loads(f[2])["i"] for f in frames] == list(range(n))
    cut = frames[11][1]
    _, _, rest = request(srv, "GET", "/tasks/resume1/events", headers={"Last-Event-ID": str(cut)})
    again = [f for f in parse_sse(rest.decode()) if f[0] is None]
    got = [json.loads(f[2])["i"] for f in frames[:12]] + [json.loads(f[2])["i"] for f in again]
    assert got == list(range(n)), "every line exactly once"


@pytest.mark.parametrize("last", ["-1", "+5", " 5x", "18446744073709551616", "1e3"])
def test_last_event_id_must_be_a_line_number(local, last):
    """Only decimal digits that fit in 64 bits: "-1" used to wrap to 2^64-1
    and stream nothing, an overflowing value was taken as the maximum."""
    srv = local()
    start_async(srv, "resume2", {"lines": [{"i": 0}]})
    wait_status(srv, "resume2", ("completed",))
    status, _, data = request(srv, "GET", "/tasks/resume2/events", headers={"Last-Event-ID": last})
    assert status == 400 and "Last-Event-ID must be a line number" in json.loads(data)["error"], (status, data)
    status, _, data = request(srv, "GET", "/tasks/resume2/events?lastEventId=" + urllib.parse.quote(last))
    assert status == 400, (status, data)


def test_duplicate_keys_are_validated_as_the_job_reads_them(local):
    """JSON.parse keeps the last of duplicate keys, and so does the stored
    payload: the check must see that one too (it used to see the first, so
    this body got 202 and then failed inside the job)."""
    srv = local()
    raw = b'{"prompt":"hi","anthropicApiKey":"k","callbackUrl":"https://example.invalid/h","prompt":5}'
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    c.request("POST", "/run-async", body=raw, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    assert r.status == 400 and json.loads(data)["error"] == "prompt must be a string", (r.status, data)


def test_disconnect_cancels_the_task_when_asked(local):
    srv = local()
    post_run_then_drop(srv, body({"lines": [{"type": "system", "subtype": "init"}], "hang_after": True},
                                 cancelOnDisconnect=True), b"id: 1")
    task = os.listdir(srv.data / "sessions")[0]
    meta = wait_status(srv, task, ("cancelled", "failed", "completed"))
    assert meta["status"] == "cancelled" and meta["terminalReason"] == "cancelled", meta


def test_cancel_from_a_second_instance(local):
    a = local()
    b = local()
    start_async(a, "cancel2", {"lines": [{"type": "system", "subtype": "init"}], "hang_after": True})
    wait_status(a, "cancel2", ("running",))
    # The job is held stopped while both cancels come, so the second finds it still
    # stopping (a running job stores "cancelled" within milliseconds: then 404).
    pid = int((a.data / ".run" / "cancel2.pid").read_text().split()[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        status, _, data = request(b, "POST", "/cancel/cancel2")
        assert status == 200 and json.loads(data) == {"message": "Task cancelled successfully",
                                                      "taskId": "cancel2", "status": "cancelled"}
        status, _, data = request(b, "POST", "/cancel/cancel2")
        assert status == 200 and json.loads(data)["status"] == "cancelling"
    finally:
        os.kill(pid, signal.SIGCONT)
    meta = wait_status(a, "cancel2", ("cancelled", "failed", "completed"))
    assert meta["status"] == "cancelled"
    status, _, data = request(a, "GET", "/tasks/status")
    assert json.loads(data)["active"] == 0, "finished tasks leave /tasks/status (B6)"
    status, _, data = request(b, "POST", "/cancel/cancel2")
    assert status == 404 and json.loads(data)["error"] == "Task not found"


def test_a_succeeded_jobs_log_goes_unless_kept(local):
    """local mode: <data>/.run/<task>.log is removed once the job succeeds;
    CCR_KEEP_JOB_LOGS=1 keeps it (a failed job's log always stays)."""
    for task, env, kept in (("log-dropped", {}, False), ("log-kept", {"CCR_KEEP_JOB_LOGS": "1"}, True)):
        srv = local(**env)
        start_async(srv, task, {"lines": [{"type": "system", "subtype": "init"}]})
        assert wait_status(srv, task, ("completed", "failed", "cancelled"))["status"] == "completed"
        run = srv.data / ".run"
        deadline = time.time() + 10
        while (run / ("%s.pid" % task)).exists() and time.time() < deadline:
            time.sleep(0.05)                 # the job has exited once its pid file is gone
        time.sleep(0.3)
        assert (run / ("%s.log" % task)).exists() == kept, (task, sorted(p.name for p in run.iterdir()))
        srv.stop()


def test_async_task_is_listed_then_completes(local):
    srv = local()
    start_async(srv, "async3", {"lines": [{"type": "system"}], "delay": 0.5, "hang_after": False})
    status, _, data = request(srv, "GET", "/tasks/status")
    doc = json.loads(data)
    assert doc["active"] >= 1 and doc["tasks"][0]["taskId"] == "async3"
    assert set(doc["tasks"][0]) == {"taskId", "type", "executionName", "startedAt", "cancelling"}
    meta = wait_status(srv, "async3", ("completed",))
    assert meta["callbackUrl"] == "https://example.invalid/hook"
    status, _, data = request(srv, "POST", "/run-async", body(callbackUrl="https://x.invalid/", taskId="async3"))
    assert status == 409, "a task id is never reused"


def test_api_keys(local):
    srv = local(CCR_API_KEYS="k1-abcdef,k2-ghijkl")
    status, _, data = request(srv, "GET", "/tasks/status")
    assert status == 401 and "API key" in json.loads(data)["error"]
    status, _, _ = request(srv, "GET", "/tasks/status", headers={"Authorization": "Bearer k2-ghijkl"})
    assert status == 200
    status, _, _ = request(srv, "GET", "/health")
    assert status == 200, "health stays open for probes"


HOSTILE = [
    ("POST", "/run", "{", 400, None),
    ("POST", "/run", "[]", 400, "prompt is required"),
    ("POST", "/run", "\"x\"", 400, None),
    ("POST", "/run", "5", 400, None),
    ("POST", "/run", "null", 400, None),
    ("POST", "/run", "{}", 400, "prompt is required"),
    ("POST", "/run", '{"prompt":""}', 400, "prompt is required"),
    ("POST", "/run", '{"prompt":"x"}', 400, "Either anthropicApiKey or anthropicOAuthToken is required"),
    ("POST", "/run", '{"prompt":42,"anthropicApiKey":"k"}', 400, "prompt must be a string"),
    ("POST", "/run", '{"prompt":{"a":1},"anthropicApiKey":"k"}', 400, "prompt must be a string"),
    ("POST", "/run", '{"prompt":["a"],"anthropicApiKey":"k"}', 400, "prompt must be a string"),
    ("POST", "/run", '{"prompt":true,"anthropicApiKey":"k"}', 400, "prompt must be a string"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":5}', 400, "anthropicApiKey must be a string"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","allowedTools":"Bash"}', 400, "allowedTools must be an array of strings"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","allowedTools":[1]}', 400, "allowedTools must be an array of strings"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","environmentSecrets":{"A":1}}', 400, "environmentSecrets.A must be a string"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","environmentSecrets":"a"}', 400, "environmentSecrets must be an object"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","maxTurns":"5x"}', 400, 'maxTurns must be a number or a string holding one (such as "10")'),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","maxTurns":true}', 400, 'maxTurns must be a number or a string holding one (such as "10")'),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","timeoutMinutes":"1_0"}', 400, 'timeoutMinutes must be a number or a string holding one (such as "10")'),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","gitDepth":"Infinity"}', 400, 'gitDepth must be a number or a string holding one (such as "10")'),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","timeoutMinutes":1e-7}', 400, "timeoutMinutes must be at least one second (0.0166667 minutes), or 0 for the default"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","timeoutMinutes":" 1e-7 "}', 400, "timeoutMinutes must be at least one second (0.0166667 minutes), or 0 for the default"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","timeoutMinutes":-1}', 400, "timeoutMinutes must be positive"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k"} x', 400, "request body is not valid JSON: unexpected data after the JSON value (only white space may follow it) at byte 37"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k"}{}', 400, "request body is not valid JSON: unexpected data after the JSON value (only white space may follow it) at byte 36"),
    ("POST", "/run", '{"prompt":"ab\x00cd","anthropicApiKey":"k"}', 400, "request body is not valid JSON: a raw control character (0x00) inside a string (write it as an escape such as \\n or \\u0000) at byte 13"),
    ("POST", "/run", '{"prompt":"a\tb","anthropicApiKey":"k"}', 400, "request body is not valid JSON: a raw control character (0x09) inside a string (write it as an escape such as \\n or \\u0009) at byte 12"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","maxTurns":1e999}', 400, "request body is not valid JSON: a number too large for a double (JavaScript would read it as Infinity) at byte 47"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","metadata":{"n":-1e400}}', 400, "request body is not valid JSON: a number too large for a double (JavaScript would read it as Infinity) at byte 52"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","maxTurns":01}', 400, None),
    ("POST", "/run", '\x01{"prompt":"x","anthropicApiKey":"k"}', 400, "request body is not valid JSON: an unexpected byte 0x01 at byte 0"),
    ("POST", "/run", "", 400, "prompt is required"),
    ("POST", "/run", '\xef\xbb\xbf{"prompt":"x"}', 400, "Either anthropicApiKey or anthropicOAuthToken is required"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"http://127.0.0.1:9/hook"}', 400, "callbackUrl host 127.0.0.1 resolves to a loopback, private or link-local address (set CCR_ALLOW_PRIVATE_CALLBACKS=1 in local development, or name the host in CCR_CALLBACK_ALLOW_HOSTS)"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"http://localhost:9/hook"}', 400, "callbackUrl host localhost resolves to a loopback, private or link-local address (set CCR_ALLOW_PRIVATE_CALLBACKS=1 in local development, or name the host in CCR_CALLBACK_ALLOW_HOSTS)"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"http://[::1]/"}', 400, "callbackUrl host ::1 resolves to a loopback, private or link-local address (set CCR_ALLOW_PRIVATE_CALLBACKS=1 in local development, or name the host in CCR_CALLBACK_ALLOW_HOSTS)"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"https://10.1.2.3/"}', 400, "callbackUrl host 10.1.2.3 resolves to a loopback, private or link-local address (set CCR_ALLOW_PRIVATE_CALLBACKS=1 in local development, or name the host in CCR_CALLBACK_ALLOW_HOSTS)"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"http://169.254.169.254/"}', 400, "callbackUrl host 169.254.169.254 resolves to a loopback, private or link-local address (set CCR_ALLOW_PRIVATE_CALLBACKS=1 in local development, or name the host in CCR_CALLBACK_ALLOW_HOSTS)"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","gitDepth":-1}', 400, "gitDepth must be a positive number"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","mcpConfig":[1]}', 400, "mcpConfig must be an object"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","postExecutionActions":"git"}', 400, "postExecutionActions must be an object"),
    ("POST", "/run", '{"prompt":"x","anthropicApiKey":"k","sshKey":7}', 400, "sshKey must be a string"),
    ("POST", "/run", '{"prompt":"\xff\xfe"}', 400, "request body is not valid UTF-8"),
    ("POST", "/run", "[" * 5000 + "]" * 5000, 400, None),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k"}', 400, "callbackUrl is required for async tasks"),
    ("POST", "/run-async", '{"prompt":"x","callbackUrl":"http://a"}', 400, "Either anthropicApiKey or anthropicOAuthToken is required"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"not a url"}', 400, "callbackUrl is not a valid URL"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"ftp://a/b"}', 400, "callbackUrl must use http or https protocol"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"file:///etc/passwd"}', 400, "callbackUrl must use http or https protocol"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":5}', 400, "callbackUrl is not a valid URL"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"http://a/","taskId":"../etc"}', 400, "taskId must be URL-safe (alphanumeric, underscore, hyphen only)"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"http://a/","taskId":"a/b"}', 400, "taskId must be URL-safe (alphanumeric, underscore, hyphen only)"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"http://a/","taskId":"' + "a" * 300 + '"}', 400, "taskId must be URL-safe (alphanumeric, underscore, hyphen only)"),
    ("POST", "/run-async", '{"prompt":"x","anthropicApiKey":"k","callbackUrl":"http://a/","taskId":{"x":1}}', 400, "taskId must be URL-safe (alphanumeric, underscore, hyphen only)"),
    ("POST", "/cancel/..%2F..%2Fetc", "", 400, "Invalid taskId format. Must be alphanumeric with underscores and hyphens only."),
    ("POST", "/cancel/a%00b", "", 400, None),
    ("POST", "/cancel/nosuchtask", "", 404, "Task not found"),
    ("GET", "/tasks/..%2Fsessions", "", 400, None),
    ("GET", "/tasks/nosuch", "", 404, "Task not found"),
    ("GET", "/tasks/nosuch/events", "", 404, "Task not found"),
    ("GET", "/run", "", 404, None),
    ("DELETE", "/tasks/status", "", 404, None),
]


@pytest.mark.parametrize("method,path,raw,status,message", HOSTILE)
def test_hostile_requests_get_a_json_4xx(local, method, path, raw, status, message):
    srv = hostile_server(local)
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=15)
    c.putrequest(method, path, skip_accept_encoding=True)
    data = raw.encode("latin-1") if raw else b""
    c.putheader("Content-Type", "application/json")
    c.putheader("Content-Length", str(len(data)))
    c.endheaders(data)
    r = c.getresponse()
    got = r.read()
    assert r.status == status, got
    assert r.getheader("Content-Type").startswith("application/json")
    doc = json.loads(got)
    if message:
        assert doc["error"] == message
    assert request(srv, "GET", "/health")[0] == 200, "still serving"


_hostile = {}


def hostile_server(local):
    # One server per test module run is enough; it must survive every row.
    srv = _hostile.get("srv")
    if srv is None or srv.proc.poll() is not None:
        srv = _hostile["srv"] = local()
    return srv


def test_sigterm_drains_open_streams_with_a_final_event(local):
    srv = local()
    start_async(srv, "drain1", {"lines": [{"type": "system"}], "hang_after": True})
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    s.sendall(b"GET /tasks/drain1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
    got = b""
    while b"id: 1" not in got:
        got += s.recv(4096)
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    assert b"event: reconnect" in got
    assert srv.proc.wait(timeout=15) == 0 and time.time() - t0 < 10
    # The task itself goes on; a new instance can still reach and stop it.
    other = local()
    assert wait_status(other, "drain1", ("running",))
    assert request(other, "POST", "/cancel/drain1")[0] == 200
    wait_status(other, "drain1", ("cancelled",))


def test_default_system_prompt_hot_reloads_from_secret_manager(local, tmp_path):
    import sys
    sys.path.insert(0, str(ROOT / "tests"))
    from fakes.gcp_client import FakeGCP
    fake = FakeGCP()
    fake.start()
    try:
        fake.set_secret("sysprompt", "be terse")
        env = dict(fake.env_vars(), CCR_SECRETMANAGER_ENDPOINT=fake.url, CCR_SYSTEM_PROMPT_SECRET="sysprompt",
                   CCR_SYSTEM_PROMPT_REFRESH_S="1", PROJECT_ID=fake.project)
        srv = local(**env)
        record = tmp_path / "rec" / "rec.json"

        def argv_of(**extra):
            b = body({}, **extra)
            b["environmentSecrets"]["FAKE_CLAUDE_RECORD"] = str(record)
            status, _, data = request(srv, "POST", "/run", b)
            assert status == 200, data
            return read_record(record)["argv"]

        argv = argv_of()
        assert argv[argv.index("--system-prompt") + 1] == "be terse"
        argv = argv_of(systemPrompt="my own")
        assert argv[argv.index("--system-prompt") + 1] == "my own", "the request's prompt wins"
        fake.set_secret("sysprompt", "be verbose")
        time.sleep(1.5)
        argv = argv_of()
        assert argv[argv.index("--system-prompt") + 1] == "be verbose", "a new version is picked up"
    finally:
        fake.stop()


def test_local_concurrency_limit_queues_tasks(local):
    srv = local(CCR_MAX_CONCURRENT_TASKS=1)
    hang = {"lines": [{"type": "system"}], "hang_after": True}
    start_async(srv, "q1", hang)
    second = start_async(srv, "q2", {"lines": [{"type": "system"}]})
    assert second["status"] == "queued"
    status, _, data = request(srv, "GET", "/tasks/q2")
    assert json.loads(data)["status"] == "queued"
    wait_status(srv, "q1", ("running",))
    request(srv, "POST", "/cancel/q1")
    wait_status(srv, "q1", ("cancelled",))
    wait_status(srv, "q2", ("completed",))  # the queued task starts when a slot frees


def run_recorded(srv, record, mode=None, **fields):
    """POST /run with the fake CLI recording what it was given: (frames, record)."""
    b = body(mode or {}, **fields)
    b["environmentSecrets"]["FAKE_CLAUDE_RECORD"] = str(record)
    status, _, data = request(srv, "POST", "/run", b, timeout=60)
    assert status == 200, data
    return parse_sse(data.decode()), read_record(record)


def test_numeric_fields_accept_strings_as_javascript_number_does(local, tmp_path):
    srv = local()
    frames, rec = run_recorded(srv, tmp_path / "rec" / "rec.json", maxTurns=" 7 ", gitDepth="3", timeoutMinutes="2.5")
    assert rec["argv"][rec["argv"].index("--max-turns") + 1] == "7"
    assert json.loads(frames[-1][2])["status"] == "completed"
    # the string's value really is the limit: 0.02 minutes stops a hanging CLI after 1.2 s
    t0 = time.monotonic()
    frames, _ = run_recorded(srv, tmp_path / "rec" / "rec2.json", {"lines": [{"type": "system"}], "hang_after": True},
                             timeoutMinutes="0.02")
    done = json.loads(frames[-1][2])
    assert done["terminalReason"] == "timeout" and done["status"] == "failed", done
    assert time.monotonic() - t0 < 30
    # hex as in Number("0x10"); the stored payload keeps the string as sent
    frames, rec = run_recorded(srv, tmp_path / "rec" / "rec3.json", maxTurns="0x10")
    assert rec["argv"][rec["argv"].index("--max-turns") + 1] == "16"


def test_system_prompts_too_long_for_the_command_line_go_as_files(local, tmp_path):
    srv = local()
    # Linux refuses any single argument over 128 KiB with E2BIG: these would not start the CLI
    system = "S" * 300_000 + " end-of-system"
    append = "A" * 200_000 + " end-of-append"
    frames, rec = run_recorded(srv, tmp_path / "rec" / "rec.json", systemPrompt=system, appendSystemPrompt=append)
    done = json.loads(frames[-1][2])
    assert done["status"] == "completed", done
    argv = rec["argv"]
    assert "--system-prompt" not in argv and "--append-system-prompt" not in argv
    assert rec["prompt_files"] == {"--system-prompt-file": system, "--append-system-prompt-file": append}
    for flag in ("--system-prompt-file", "--append-system-prompt-file"):
        path = argv[argv.index(flag) + 1]
        assert not path.startswith(rec["cwd"] + "/repo"), "outside a cloned repository's tree"
        deadline = time.monotonic() + 15
        while os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(path), "wiped with the workspace"
    # a short prompt stays on the command line, as the original passed it
    frames, rec = run_recorded(srv, tmp_path / "rec" / "rec2.json", systemPrompt="be brief")
    assert rec["argv"][rec["argv"].index("--system-prompt") + 1] == "be brief"
    assert rec["prompt_files"] == {}


def test_root_and_health_answer_the_original_texts(local):
    srv = local()
    status, ctype, data = request(srv, "GET", "/")
    assert (status, data) == (200, b"Claude Code Agent is running") and ctype.startswith("text/html")
    for path in ("/health", "/healthz"):
        status, ctype, data = request(srv, "GET", path)
        assert (status, data) == (200, b"ok") and ctype.startswith("text/html")


def test_private_callback_allowed_by_name_or_by_switch(local, hook_url):
    srv = local(CCR_CALLBACK_ALLOW_HOSTS="127.0.0.1")
    status, _, data = request(srv, "POST", "/run-async", body(callbackUrl=hook_url, taskId="allow1"))
    assert status == 202, data
    status, _, data = request(srv, "POST", "/run-async", body(callbackUrl=hook_url.replace("127.0.0.1", "localhost"),
                                                             taskId="allow2"))
    assert status == 400 and "localhost" in json.loads(data)["error"], "only the names listed"
    srv = local(CCR_ALLOW_PRIVATE_CALLBACKS=1)
    status, _, data = request(srv, "POST", "/run-async", body(callbackUrl=hook_url.replace("127.0.0.1", "localhost"),
                                                             taskId="allow3"))
    assert status == 202, data
