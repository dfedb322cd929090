"""`ccr serve` in cloud mode against the fake Google Cloud (tests/fakes/fake_gcp.py).

Storage is the fake's Cloud Storage, sealing its Cloud KMS, and execution its Cloud Run
Jobs, which really run `ccr job` (the same binary) with the execution's env overrides, so a
task takes the whole production path: serve seals and stores the payload, starts an
execution, the job opens it, runs the scripted claude stand-in, uploads JSONL chunks and the
terminal metadata, and serve streams the chunks back as SSE.

Covers: /run streaming and what the bucket and the fake's request log hold afterwards (no
credential in the clear anywhere), /run-async with a signed webhook, cancel from a second
serve instance (executions.cancel -> SIGTERM -> cancelled), resume with Last-Event-ID and the
bytes downloaded per stream, 20% 503s on storage and KMS, a chunk-download outage longer than
the client's retries, and a half-configured cloud mode.

Each test starts its own fake and its own serve.  Run:
    /usr/bin/python3 -m pytest -q tests/test_cloud.py
"""
import base64
import hashlib
import hmac
from fakes.fake_claude import read_record  # noqa: E402
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import ROOT, Hook, http_request  # noqa: E402
from fakes.gcp_client import FakeGCP  # noqa: E402
from test_http_server import Serve  # noqa: E402

FAKE_CLAUDE = str(ROOT / "tests" / "fakes" / "fake_claude.py")
BUCKET = "ccr-cloud-logs"
JOB = "claude-code-async-worker"
CANARY = "sk-ant-cloud-canary-" + "9e41c07db3a25f68"
ENV_CANARY = "env-secret-cloud-canary-77a1"
HOOK_SECRET = "whsec_" + base64.b64encode(b"cloud-test-hook-secret-32-bytes!").decode()
# Anything in the developer's environment that would point ccr elsewhere.
CLOUD_VARS = ("GOOGLE_", "GCE_", "CLOUDSDK_", "CCR_", "KMS_", "CLOUDRUN_", "ANTHROPIC_")
CLOUD_NAMES = ("STORAGE_EMULATOR_HOST", "PROJECT_ID", "GCS_PROJECT_ID", "GCLOUD_PROJECT", "REGION",
               "GCS_LOGS_BUCKET", "CLAUDE_BIN", "CLAUDE_CODE_OAUTH_TOKEN")


def clean_environ():
    return {k: v for k, v in os.environ.items() if not k.startswith(CLOUD_VARS) and k not in CLOUD_NAMES}


class Cloud:
    """One fake Google Cloud with the Cloud Run job registered as `ccr job`, and the
    environment serve and the job need to reach it."""

    def __init__(self, ccr_bin, tmp_path, job_env=None):
        self.bin = str(ccr_bin)
        self.tmp = tmp_path
        (tmp_path / "home").mkdir(parents=True)
        (tmp_path / "gcloud").mkdir()
        (tmp_path / "ws").mkdir()
        fenv = clean_environ()
        fenv["HOME"] = str(tmp_path / "home")
        self.fake = FakeGCP(state_dir=str(tmp_path / "fake"), buckets=[BUCKET], env=fenv).start()
        self.env = {
            "GCS_LOGS_BUCKET": BUCKET,
            "GOOGLE_APPLICATION_CREDENTIALS": self.fake.sa_path,
            "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
            "STORAGE_EMULATOR_HOST": self.fake.url,
            "CCR_KMS_ENDPOINT": self.fake.url,
            "CCR_RUN_ENDPOINT": self.fake.url,
            "CCR_SECRETMANAGER_ENDPOINT": self.fake.url,
            "REGION": self.fake.region,
            "CLOUDRUN_JOB_NAME": JOB,
            "CCR_RETRY_BASE_MS": "5",
            # webhook receivers are on loopback: serve checks callbackUrl at submit, the job at delivery
            "CCR_ALLOW_PRIVATE_CALLBACKS": "1",
        }
        # the stand-in's records: the test's own tmp_path/rec, writable inside the sandbox
        (tmp_path.parent / "rec").mkdir(exist_ok=True)
        self.job_env = dict(self.env, CLAUDE_BIN=FAKE_CLAUDE, CCR_WORKSPACE_ROOT=str(tmp_path / "ws"),
                            CCR_SANDBOX_RW_PATHS=str(tmp_path.parent / "rec"),
                            CCR_KILL_GRACE_MS="500", CLOUDRUN_CALLBACK_SECRET=HOOK_SECRET)
        self.job_env.update(job_env or {})
        self.fake.register_job(JOB, command=[self.bin, "job"], env=self.job_env)
        self.serves = []

    def serve(self, **extra):
        env = dict(self.env)
        env.update({k: str(v) for k, v in extra.items()})
        s = Serve(self.bin, env)
        self.serves.append(s)
        return s

    def close(self):
        for s in self.serves:
            s.kill()
        self.fake.stop()

    # ---- the bucket, raw ------------------------------------------------------------------
    def raw(self, name):
        url = (f"{self.fake.url}/_fake/objects/{urllib.parse.quote(BUCKET, safe='')}/"
               f"{urllib.parse.quote(name, safe='')}")
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def names(self, prefix=""):
        return sorted(o["name"] for o in self.fake.list_objects(BUCKET) if o["name"].startswith(prefix))

    def chunks(self, task_id):
        return [n for n in self.names(f"sessions/{task_id}/") if n.endswith(".jsonl")]

    def log_lines(self, task_id):
        return [ln for n in self.chunks(task_id) for ln in self.raw(n).decode().splitlines() if ln.strip()]

    def log_size(self, task_id):
        return sum(len(self.raw(n)) for n in self.chunks(task_id))

    def meta(self, task_id):
        raw = self.raw(f"sessions/{task_id}/metadata.json")
        return json.loads(raw) if raw is not None else None

    def wait_gone(self, name, timeout=15):
        deadline = time.time() + timeout
        while self.raw(name) is not None:
            assert time.time() < deadline, f"{name} is still in the bucket"
            time.sleep(0.05)


@pytest.fixture
def cloud(ccr_bin, tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith(CLOUD_VARS) or k in CLOUD_NAMES:
            monkeypatch.delenv(k)
    made = []

    def start(**job_env):
        c = Cloud(ccr_bin, tmp_path / f"c{len(made)}", {k: str(v) for k, v in job_env.items()})
        made.append(c)
        return c
    yield start
    bad = []
    for c in made:
        try:
            bad += c.fake.violations()
        finally:
            c.close()
    # every request serve and the job sent, and every answer the fake gave, is as Google's
    # discovery documents describe (a violation fails the test that caused it)
    assert not bad, "not wire-exact with the discovery documents:\n" + "\n".join(
        f"{v['where']}: {v['method']} {v['path']}: {v['violation']}" for v in bad[:20])


# ---- HTTP and SSE helpers --------------------------------------------------------------------

def body(mode=None, **fields):
    b = {"prompt": "hello from the cloud test", "anthropicApiKey": CANARY,
         "environmentSecrets": {"MY_SECRET": ENV_CANARY}}
    if mode is not None:
        b["environmentSecrets"]["FAKE_CLAUDE_MODE"] = json.dumps(mode)
    b.update(fields)
    return b


def request(srv, method, path, payload=None, headers=None, timeout=30):
    status, _, data = http_request(srv, method, path, payload, headers, timeout)
    return status, data


def parse_sse(text):
    """[(event, id, data)] of complete frames; comments and retry lines dropped."""
    frames = []
    for block in text.split("\n\n")[:-1]:
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


class Stream:
    """One SSE request read incrementally: .frames, .first_frame_s (request sent -> first
    `id:` frame), .text.  stop_after_id: close the connection once that frame arrived."""

    def __init__(self, srv, method, path, payload=None, headers=None, stop_after_id=None, timeout=60):
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        t0 = time.monotonic()
        self.conn.request(method, path, body=None if payload is None else json.dumps(payload), headers=h)
        r = self.conn.getresponse()
        self.status, self.ctype = r.status, r.getheader("Content-Type")
        self.first_frame_s = None
        raw = b""
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, "stream did not end in time: %r" % raw[-500:]
            chunk = r.read1(65536)
            if not chunk:
                break
            raw += chunk
            if self.first_frame_s is None and b"\nid: " in b"\n" + raw:
                self.first_frame_s = time.monotonic() - t0
            if stop_after_id is not None and any(f[1] == stop_after_id for f in parse_sse(raw.decode())):
                break
        self.conn.close()
        self.text = raw.decode()
        self.frames = parse_sse(self.text)
        if stop_after_id is not None:
            cut = [f[1] for f in self.frames].index(stop_after_id)
            self.frames = self.frames[:cut + 1]

    def lines(self):
        return [f for f in self.frames if f[0] is None]

    def done(self):
        ev, _, data = self.frames[-1]
        assert ev == "done", self.frames[-3:]
        return json.loads(data)


def wait_status(srv, task_id, want, timeout=30):
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, data = request(srv, "GET", f"/tasks/{task_id}")
        if status == 200:
            meta = json.loads(data)
            if not seen or seen[-1] != meta["status"]:
                seen.append(meta["status"])
            if meta["status"] in want:
                return meta, seen
        time.sleep(0.05)
    raise AssertionError(f"{task_id} never reached {want}; seen {seen}")


def wait_access_log(srv, path, count, timeout=15):
    """Serve writes an access line when a request is over (for SSE: when the stream ended)."""
    deadline = time.time() + timeout
    while len([a for a in srv.access_logs() if a["httpRequest"]["requestUrl"] == path]) < count:
        assert time.time() < deadline, f"no access log line for {path}"
        time.sleep(0.02)


def chunk_downloads(reqs, task_id):
    """Requests that downloaded one of the task's log chunks."""
    pat = re.compile(rf"^/(?:download/)?storage/v1/b/{BUCKET}/o/sessions/{task_id}/\d+-[^/]*\.jsonl$")
    return [q for q in reqs if q["method"] == "GET" and pat.match(q["path"])
            and q["query"].get("alt") == "media"]


def all_strings_of(cloud):
    """Everything the fake holds, as text: every object, the request log, and every file in its
    state dir (job stdout/stderr, its own logs)."""
    out = []
    for o in cloud.fake.list_objects(BUCKET):
        out.append((f"gs://{BUCKET}/{o['name']}", cloud.raw(o["name"]) or b""))
    out.append(("request log", json.dumps(cloud.fake.requests()).encode()))
    out.append(("executions", json.dumps(cloud.fake.executions()).encode()))
    for dirpath, _, files in os.walk(cloud.fake.state_dir):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out.append((p, fh.read()))
    return out


# ---- 1. /run ---------------------------------------------------------------------------------

def test_run_streams_via_cloud_run_and_leaves_only_sealed_secrets(cloud):
    c = cloud()
    srv = c.serve()
    lines = [{"type": "system", "subtype": "init", "session_id": "s-cloud"}, "a plain text line",
             {"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": "hi"}]}},
             {"type": "result", "subtype": "success", "session_id": "s-cloud",
              "usage": {"input_tokens": 11, "output_tokens": 7}}]
    # Capture the sealed payload while the job runs (it deletes it when done).
    sealed = {}

    def grab():
        deadline = time.time() + 20
        while time.time() < deadline and not sealed:
            for n in c.names("tasks/"):
                data = c.raw(n)
                if data:
                    sealed[n] = data
            time.sleep(0.01)
    th = threading.Thread(target=grab, daemon=True)
    th.start()
    s = Stream(srv, "POST", "/run", body({"lines": lines, "delay": 0.3}))
    th.join()
    assert s.status == 200 and s.ctype.startswith("text/event-stream")
    assert s.text.startswith("retry: 3000\n\n")
    got = s.lines()
    assert [f[1] for f in got] == [1, 2, 3, 4]
    assert json.loads(got[0][2])["session_id"] == "s-cloud"
    assert json.loads(got[1][2]) == {"type": "text", "content": "a plain text line"}
    done = s.done()
    assert done["status"] == "completed" and done["exitCode"] == 0, done
    assert done["usage"] == {"input_tokens": 11, "output_tokens": 7}
    print(f"\ncloud /run: first frame after {s.first_frame_s * 1000:.0f} ms")
    assert s.first_frame_s < 5

    [task] = [n.split("/")[1] for n in c.names("sessions/") if n.endswith("/metadata.json")]
    assert task.startswith("sync-")
    meta = c.meta(task)
    assert meta["status"] == "completed" and meta["terminalReason"] == "completed" and meta["exitCode"] == 0
    assert re.fullmatch(rf"projects/{c.fake.project}/locations/{c.fake.region}/jobs/{JOB}/executions/{JOB}-\w+",
                        meta["executionName"]), meta["executionName"]
    assert c.log_lines(task) == [json.dumps(x, separators=(",", ":")) if isinstance(x, dict) else x
                                 for x in lines]
    c.wait_gone(f"tasks/{task}/payload.enc")
    c.wait_gone(f"active/{task}")
    assert c.names("tasks/") == [] and c.names("active/") == []

    # The payload was sealed: a v2 envelope, no secret readable in it.
    [(pname, blob)] = sealed.items()
    assert pname == f"tasks/{task}/payload.enc"
    env = json.loads(blob)
    assert env["version"] == "v2-envelope" and set(env) == {"version", "encryptedDek", "iv", "authTag",
                                                            "encryptedData"}
    assert CANARY.encode() not in blob and CANARY.encode() not in base64.b64decode(env["encryptedData"])

    # One execution, started with nothing but ids in its environment.  The job
    # exits just after its last cleanup (slower under ASan): wait for that.
    deadline = time.time() + 30
    while c.fake.executions()[0]["state"] == "RUNNING" and time.time() < deadline:
        time.sleep(0.05)
    [ex] = c.fake.executions()
    assert ex["name"] == meta["executionName"] and ex["state"] == "SUCCEEDED"
    assert ex["env_overrides"] == [{"name": "TASK_ID", "value": task},
                                   {"name": "ENCRYPTED_PAYLOAD_PATH", "value": f"gs://{BUCKET}/tasks/{task}/payload.enc"},
                                   {"name": "CCR_TASK_TYPE", "value": "sync"}]

    # The request log: only the expected calls, all authorised with a bearer token, all 2xx.
    reqs = c.fake.requests()
    kms = f"/v1/projects/{c.fake.project}/locations/{c.fake.region}/keyRings/cloudrun-claude-code-keys/cryptoKeys/async-task-payload-key"
    names_ok = re.compile(rf"^(sessions/{task}/(metadata\.json|owner\.json|\d{{6}}-\d+\.jsonl)|tasks/{task}/payload\.enc|"
                          rf"active/{task}|keys/serve-hmac\.enc)$")
    counts = {}
    key_404 = f"/storage/v1/b/{BUCKET}/o/keys%2Fserve-hmac.enc"
    for q in reqs:
        p, m, svc = q["path"], q["method"], q["service"]
        if q["status"] == 404 and m == "GET" and q["raw_path"].startswith(key_404):
            counts["server-key-absent"] = counts.get("server-key-absent", 0) + 1
            continue            # serve's first look for its server key, in a new bucket
        assert q["status"] is not None and 200 <= q["status"] < 300, q
        assert "assertion" not in q["raw_path"] and "access_token" not in q["raw_path"], q
        if svc == "oauth":
            assert (m, p) == ("POST", "/token"), q
            kind = "token"
        else:
            assert q["auth"] and q["auth_type"].lower() == "bearer" and q["auth_ok"], q
            if svc == "kms":
                assert m == "POST" and p in (kms + ":encrypt", kms + ":decrypt"), q
                kind = p.rsplit(":", 1)[1]
            elif svc == "run" and m == "GET":
                # the reconciler asking whether the execution still runs
                assert p == "/v2/" + meta["executionName"], q
                kind = "reconcile-get"
            elif svc == "run":
                assert (m, p) == ("POST", f"/v2/projects/{c.fake.project}/locations/{c.fake.region}/jobs/{JOB}:run"), q
                kind = "run"
            elif svc == "storage" and m == "POST" and p == f"/upload/storage/v1/b/{BUCKET}/o":
                assert q["query"]["uploadType"] in ("media", "multipart"), q
                assert q["query"]["uploadType"] == "multipart" or names_ok.match(q["query"]["name"]), q
                kind = "upload"
            elif svc == "storage" and m == "GET" and p == f"/storage/v1/b/{BUCKET}/o":
                assert q["query"]["prefix"] in (f"sessions/{task}/", "active/"), q
                kind = "list" if q["query"]["prefix"] != "active/" else "reconcile-list"
            elif svc == "storage" and m in ("GET", "DELETE") and p.startswith(f"/storage/v1/b/{BUCKET}/o/"):
                assert names_ok.match(p[len(f"/storage/v1/b/{BUCKET}/o/"):]), q
                assert m == "DELETE" or q["query"] == {"alt": "media"}, q
                kind = m.lower()
            else:
                raise AssertionError(f"unexpected call {q}")
        counts[kind] = counts.get(kind, 0) + 1
    # encrypt: the payload, and serve's server key (made once, in a new bucket: serve/serverkey.h)
    assert counts["run"] == 1 and counts["encrypt"] == 2 and counts["decrypt"] == 1, counts
    assert counts["server-key-absent"] == 1, counts
    assert counts["token"] == 2, "one token for serve, one for the job: %r" % counts
    assert counts["delete"] == 2, "the payload and the active marker"
    downloads = chunk_downloads(reqs, task)
    assert len(downloads) == len(c.chunks(task)), "each chunk downloaded once"
    run_at = next(q["time"] for q in reqs if q["service"] == "run")
    stored_at = next(q["time"] for q in reqs if q["method"] == "POST" and
                     q["query"].get("name", "").endswith(".jsonl"))
    print(f"cloud /run: jobs.run -> first chunk stored {(stored_at - run_at) * 1000:.0f} ms -> "
          f"downloaded by serve {(downloads[0]['time'] - stored_at) * 1000:.0f} ms later")

    # No credential in the clear in anything the fake holds, nor in serve's log.
    sa_key = c.fake.sa_info()["private_key"].splitlines()[1]
    for where, data in all_strings_of(c):
        assert CANARY.encode() not in data, f"the API key is readable in {where}"
        assert ENV_CANARY.encode() not in data, f"an environment secret is readable in {where}"
        assert b"ya29." not in data, f"an access token is readable in {where}"
        if not where.endswith("sa.json"):
            assert sa_key.encode() not in data, where
    serve_log = json.dumps(srv.lines)
    assert CANARY not in serve_log and ENV_CANARY not in serve_log and "ya29." not in serve_log


# ---- 2. /run-async ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["normal", "full", "minimal"])
def test_run_async_names_the_execution_and_sends_the_webhook(cloud, hook_url, mode):
    """Also with every Google answer generated from its response schema: "full" (every field,
    realistic values under the scenario's own) and "minimal" (no default-valued and no
    informational field): serve and the job read what they need either way."""
    c = cloud()
    c.fake.config(response_mode=mode)
    srv = c.serve()
    lines = [{"type": "system", "subtype": "init"}] + [{"i": i} for i in range(4)] + \
            [{"type": "result", "subtype": "success", "usage": {"input_tokens": 1, "output_tokens": 2}}]
    status, data = request(srv, "POST", "/run-async",
                           body({"lines": lines, "delay": 0.25}, callbackUrl=hook_url, taskId="cloud-async-1",
                                metadata={"who": "cloud-test"}))
    assert status == 202, data
    doc = json.loads(data)
    assert list(doc) == ["taskId", "status", "logsPath", "createdAt", "executionName"]
    assert doc["taskId"] == "cloud-async-1" and doc["status"] == "pending"
    assert doc["logsPath"] == f"gs://{BUCKET}/sessions/cloud-async-1/"
    # the execution, not the jobs.run operation (seed bug B4)
    assert re.fullmatch(rf"projects/{c.fake.project}/locations/{c.fake.region}/jobs/{JOB}/executions/{JOB}-[a-z0-9]+",
                        doc["executionName"]), doc["executionName"]
    assert c.fake.execution(doc["executionName"])["name"] == doc["executionName"]

    meta, seen = wait_status(srv, "cloud-async-1", ("completed", "failed", "cancelled"))
    assert meta["status"] == "completed", meta
    assert "running" in seen and seen[-1] == "completed", seen
    assert set(seen) <= {"pending", "running", "completed"}, seen
    assert meta["executionName"] == doc["executionName"]
    assert meta["callbackUrl"] == hook_url and meta["metadata"] == {"who": "cloud-test"}

    deadline = time.time() + 15
    while not Hook.seen:
        assert time.time() < deadline, "the webhook never arrived"
        time.sleep(0.05)
    headers, raw = Hook.seen[0]
    ts = headers["X-Webhook-Timestamp"]
    assert headers["X-Webhook-Signature"] == "sha256=" + hmac.new(HOOK_SECRET.encode(), f"{ts}.".encode() + raw,
                                                                  hashlib.sha256).hexdigest()
    hook = json.loads(raw)
    assert hook["taskId"] == "cloud-async-1" and hook["status"] == "completed" and hook["exitCode"] == 0
    assert hook["logsPath"] == doc["logsPath"] and hook["executionName"] == doc["executionName"]
    assert hook["metadata"] == {"who": "cloud-test"}
    assert CANARY not in raw.decode() and ENV_CANARY not in raw.decode()
    # the job records the delivery in the terminal metadata
    deadline = time.time() + 10
    while not (c.meta("cloud-async-1") or {}).get("webhook"):
        assert time.time() < deadline
        time.sleep(0.05)
    assert c.meta("cloud-async-1")["webhook"]["delivered"] is True
    assert len(c.log_lines("cloud-async-1")) == len(lines)
    c.wait_gone("tasks/cloud-async-1/payload.enc")
    deadline = time.time() + 15        # the job exits just after deleting the payload
    while c.fake.execution(doc["executionName"])["state"] == "RUNNING" and time.time() < deadline:
        time.sleep(0.05)
    assert c.fake.execution(doc["executionName"])["state"] == "SUCCEEDED"


def test_lost_answers_neither_conflict_nor_run_twice(cloud, hook_url):
    """The answers to the task's metadata create, to the KMS calls (serve's encrypt, the job's
    decrypt) and to jobs.run are lost after the fake acted on them: the retried create is
    recognised as the API's own (not a 409 'already exists'), KMS is simply asked again, and
    the retried jobs.run adopts the execution it started (one execution, not two), which runs
    the task to completion."""
    c = cloud()
    srv = c.serve()
    c.fake.faults(rules=[
        {"name": "create-lost", "service": "storage", "method": "POST", "query": {"ifGenerationMatch": "0"},
         "path_contains": "upload", "drop": "after_body", "count": 1},
        {"name": "encrypt-lost", "service": "kms", "path_contains": ":encrypt", "drop": "after_body",
         "count": 1},
        {"name": "decrypt-lost", "service": "kms", "path_contains": ":decrypt", "drop": "after_body",
         "count": 1},
        {"name": "run-lost", "service": "run", "method": "POST", "path_contains": ":run",
         "drop": "after_body", "count": 1}])
    lines = [{"type": "result", "subtype": "success", "usage": {"input_tokens": 1, "output_tokens": 1}}]
    status, data = request(srv, "POST", "/run-async", body({"lines": lines}, callbackUrl=hook_url,
                                                           taskId="lost-answers"))
    assert status == 202, data
    fired = {r["name"]: r["fired"] for r in c.fake.fault_state()["rules"]}
    assert fired == {"create-lost": 1, "encrypt-lost": 1, "decrypt-lost": 0, "run-lost": 1}, fired
    mine = [e for e in c.fake.executions() if {"name": "TASK_ID", "value": "lost-answers"} in e["env_overrides"]]
    assert [e["name"] for e in mine] == [json.loads(data)["executionName"]]
    meta, _ = wait_status(srv, "lost-answers", ("completed", "failed", "cancelled"))
    assert meta["status"] == "completed", meta
    fired = {r["name"]: r["fired"] for r in c.fake.fault_state()["rules"]}
    assert fired["decrypt-lost"] == 1, fired
    ex = c.fake.execution(mine[0]["name"])
    assert len(ex["tasks"][0]["attempts"]) == 1, "the task ran once"
    # a second submission of the same taskId is still refused
    status, data = request(srv, "POST", "/run-async", body({"lines": lines}, callbackUrl=hook_url,
                                                           taskId="lost-answers"))
    assert status == 409 and "already exists" in json.loads(data)["error"], data



def test_lost_run_answer_with_the_execution_on_page_two_runs_once(cloud, hook_url):
    """jobs.run starts the task's execution and its answer is lost; before serve lists the
    job's executions another one starts, and the list's pages hold one execution each: serve
    follows nextPageToken to the second page, adopts its execution, and the task runs once."""
    c = cloud()
    srv = c.serve()
    c.fake.config(max_page_size=1)
    c.fake.faults(rules=[
        {"name": "run-lost", "service": "run", "method": "POST", "path_contains": ":run",
         "drop": "after_body", "count": 1},
        {"name": "slow-list", "service": "run", "method": "GET", "path_contains": "/executions",
         "latency_ms": 2500, "count": 1}])
    token = c.fake.access_token()
    lines = [{"type": "result", "subtype": "success", "usage": {"input_tokens": 1, "output_tokens": 1}}]
    answer = {}

    def submit():
        answer["r"] = request(srv, "POST", "/run-async", body({"lines": lines}, callbackUrl=hook_url,
                                                              taskId="page-two"), timeout=60)
    t = threading.Thread(target=submit)
    t.start()
    deadline = time.time() + 30
    while not any(e["dropped"] for e in c.fake.requests(service="run") if e["method"] == "POST"):
        assert time.time() < deadline, "jobs.run was not sent"
        time.sleep(0.01)
    other = urllib.request.Request(
        f"{c.fake.url}/v2/projects/{c.fake.project}/locations/{c.fake.region}/jobs/{JOB}:run",
        data=json.dumps({"overrides": {"containerOverrides": [{"env": [
            {"name": "TASK_ID", "value": "someone-else"}]}]}}).encode(), method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(other, timeout=30) as r:
        assert r.status == 200
    t.join(60)
    status, data = answer["r"]
    assert status == 202, data
    mine = [e for e in c.fake.executions() if {"name": "TASK_ID", "value": "page-two"} in e["env_overrides"]]
    assert [e["name"] for e in mine] == [json.loads(data)["executionName"]]
    lists = [e for e in c.fake.requests(service="run") if e["method"] == "GET" and e["path"].endswith("/executions")]
    assert ["pageToken" in e["query"] for e in lists] == [False, True], lists
    meta, _ = wait_status(srv, "page-two", ("completed", "failed", "cancelled"))
    assert meta["status"] == "completed", meta
    assert len(c.fake.execution(mine[0]["name"])["tasks"][0]["attempts"]) == 1

# ---- 3. cancel from another instance ----------------------------------------------------------

def test_cancel_from_a_second_instance_reaches_cloud_run(cloud, hook_url, tmp_path):
    c = cloud()
    a = c.serve()
    b = c.serve()
    record = tmp_path / "rec" / "claude.json"
    status, data = request(a, "POST", "/run-async",
                           body({"lines": [{"type": "system", "subtype": "init"}], "hang_after": True},
                                callbackUrl=hook_url, taskId="cloud-cancel-1",
                                environmentSecrets={"FAKE_CLAUDE_MODE": json.dumps(
                                    {"lines": [{"type": "system", "subtype": "init"}], "hang_after": True}),
                                    "FAKE_CLAUDE_RECORD": str(record)}))
    assert status == 202, data
    exec_name = json.loads(data)["executionName"]
    wait_status(a, "cloud-cancel-1", ("running",))
    deadline = time.time() + 15
    while not c.log_lines("cloud-cancel-1"):        # claude is up and its first line is stored
        assert time.time() < deadline
        time.sleep(0.05)
    claude_pid = read_record(record)["pid"]

    mark = max([q["id"] for q in c.fake.requests()] or [0])
    t0 = time.time()
    status, data = request(b, "POST", "/cancel/cloud-cancel-1")
    assert status == 200 and json.loads(data) == {"message": "Task cancelled successfully",
                                                  "taskId": "cloud-cancel-1", "status": "cancelled"}
    cancels = [q for q in c.fake.requests(since=mark, service="run") if q["method"] == "POST"]
    assert [q["path"] for q in cancels] == [f"/v2/{exec_name}:cancel"] and cancels[0]["status"] == 200
    # again: still stopping, or (the job is quick to store "cancelled") already over
    status, data = request(b, "POST", "/cancel/cloud-cancel-1")
    assert (status, json.loads(data).get("status") or json.loads(data)["error"]) in \
        ((200, "cancelling"), (404, "Task not found")), data

    meta, _ = wait_status(a, "cloud-cancel-1", ("cancelled", "failed", "completed"))
    assert meta["status"] == "cancelled" and meta["terminalReason"] == "cancelled", meta
    assert meta["error"] == "Task cancelled by user"
    # The job got SIGTERM and ended on its own, well before the fake's SIGKILL (10 s grace).
    deadline = time.time() + 15
    while c.fake.execution(exec_name)["state"] not in ("CANCELLED", "FAILED", "SUCCEEDED"):
        assert time.time() < deadline
        time.sleep(0.05)
    ex = c.fake.execution(exec_name)
    att = ex["tasks"][0]["attempts"][0]
    assert ex["state"] == "CANCELLED" and att["kill_reason"] == "cancel", ex
    assert att["signal"] is None and att["exit_code"] == 130, "ccr job handled SIGTERM (exit 130): %r" % att
    assert att["end"] - t0 < 8
    with pytest.raises(ProcessLookupError):
        os.kill(claude_pid, 0)
    deadline = time.time() + 10
    while not Hook.seen:
        assert time.time() < deadline, "no webhook for the cancelled task"
        time.sleep(0.05)
    assert json.loads(Hook.seen[0][1])["status"] == "cancelled"
    c.wait_gone("active/cloud-cancel-1")
    status, data = request(a, "GET", "/tasks/status")
    assert json.loads(data)["active"] == 0
    status, data = request(b, "POST", "/cancel/cloud-cancel-1")
    assert status == 404 and json.loads(data)["error"] == "Task not found"


# ---- 4. resume -------------------------------------------------------------------------------

def test_resume_with_last_event_id_and_bytes_downloaded_per_stream(cloud):
    c = cloud(CCR_LOG_FLUSH_MS=150)
    srv = c.serve()
    n, pad = 60, "x" * 400
    status, data = request(srv, "POST", "/run-async",
                           body({"lines": [{"i": i, "pad": pad} for i in range(n)], "delay": 0.03},
                                callbackUrl="https://example.invalid/hook", taskId="cloud-resume-1"))
    assert status == 202, data
    path = "/tasks/cloud-resume-1/events"
    streams = []

    def measured(target=path, **kw):
        mark = max([q["id"] for q in c.fake.requests()] or [0])
        before = len([a for a in srv.access_logs() if a["httpRequest"]["requestUrl"] == target])
        s = Stream(srv, "GET", target, **kw)
        wait_access_log(srv, target, before + 1)            # serve is done with this stream
        s.reqs = c.fake.requests(since=mark)
        streams.append(s)
        return s

    # 1: live, cut after line 17 while the task still writes
    first = measured(stop_after_id=17)
    assert [json.loads(f[2])["i"] for f in first.lines()] == list(range(17))
    # 2: resume from 17, live to the end
    second = measured(headers={"Last-Event-ID": "17"})
    got = [json.loads(f[2])["i"] for f in first.lines()] + [json.loads(f[2])["i"] for f in second.lines()]
    assert got == list(range(n)), "every line exactly once"
    assert [f[1] for f in second.lines()] == list(range(18, n + 1))
    assert second.done()["status"] == "completed"
    # 3: a resume after the end, by query parameter; 4: the whole log again
    third = measured(path + "?lastEventId=40")
    assert [f[1] for f in third.lines()] == list(range(41, n + 1)) and third.done()["status"] == "completed"
    fourth = measured()
    assert [json.loads(f[2])["i"] for f in fourth.lines()] == list(range(n))

    chunks = c.chunks("cloud-resume-1")
    size = c.log_size("cloud-resume-1")
    assert len(chunks) >= 3, "the test needs a log in several chunks: %r" % chunks
    report = []
    for i, s in enumerate(streams, 1):
        dl = chunk_downloads(s.reqs, "cloud-resume-1")
        got_bytes = sum(q["resp_bytes"] for q in dl)
        names = [q["path"] for q in dl]
        report.append(f"stream {i}: {len(dl)} chunk GETs, {got_bytes} B of {size} B log "
                      f"({got_bytes / size:.2f}x)")
        assert len(names) == len(set(names)), f"stream {i} downloaded a chunk twice: {names}"
        assert got_bytes <= 1.1 * size, report[-1]
    print("\n" + "\n".join(report) + f"\n({len(chunks)} chunks)")


# ---- 5. faults -------------------------------------------------------------------------------

def test_task_completes_with_its_whole_log_under_20_percent_503s(cloud):
    c = cloud(CCR_LOG_FLUSH_MS=100)
    srv = c.serve()
    c.fake.faults(rules=[{"name": "gcs-503", "service": "storage", "status": 503, "probability": 0.2},
                         {"name": "kms-503", "service": "kms", "status": 503, "probability": 0.2}], seed=7)
    n = 40
    lines = [{"i": i} for i in range(n)] + [{"type": "result", "subtype": "success",
                                             "usage": {"input_tokens": 1, "output_tokens": 1}}]
    s = Stream(srv, "POST", "/run", body({"lines": lines, "delay": 0.01}))
    assert s.status == 200
    assert [json.loads(f[2]).get("i") for f in s.lines()] == list(range(n)) + [None]
    assert [f[1] for f in s.lines()] == list(range(1, n + 2))
    assert s.done()["status"] == "completed", s.frames[-2:]
    [task] = [x.split("/")[1] for x in c.names("sessions/") if x.endswith("/metadata.json")]
    assert [json.loads(x).get("i") for x in c.log_lines(task)] == list(range(n)) + [None]
    assert c.meta(task)["status"] == "completed"
    c.wait_gone(f"tasks/{task}/payload.enc")
    fired = {r["name"]: r["fired"] for r in c.fake.fault_state()["rules"]}
    assert fired["gcs-503"] >= 3 and "kms-503" in fired, fired
    failed = [q for q in c.fake.requests() if q["status"] == 503]
    assert len(failed) == sum(fired.values())
    print(f"\n503s injected: {fired}, of {len(c.fake.requests())} requests")


# ---- 6. half-configured ---------------------------------------------------------------------

@pytest.mark.parametrize("case", ["key-without-project", "dead-metadata-server", "bad-kms-key"])
def test_half_configured_cloud_mode_refuses_to_start(ccr_bin, tmp_path, monkeypatch, case):
    for k in list(os.environ):
        if k.startswith(CLOUD_VARS) or k in CLOUD_NAMES:
            monkeypatch.delenv(k)
    (tmp_path / "gcloud").mkdir()
    env = dict(clean_environ(), GCS_LOGS_BUCKET=BUCKET, PORT="0", CCR_BIND="127.0.0.1",
               CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), HOME=str(tmp_path), CCR_RETRY_BASE_MS="5")
    want = ["GCS_LOGS_BUCKET", "PROJECT_ID"]
    if case == "key-without-project":
        key = {"type": "service_account", "client_email": "x@y.iam.gserviceaccount.com",
               "private_key_id": "k1", "token_uri": "http://127.0.0.1:9/token",
               "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"}
        (tmp_path / "sa.json").write_text(json.dumps(key))
        env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "sa.json")
    elif case == "dead-metadata-server":
        env["GCE_METADATA_HOST"] = "127.0.0.1:9"
    else:
        env.update(PROJECT_ID="p1", KMS_KEY_RING="ring/with/slashes")
        want = ["Cloud KMS", "ring/with/slashes", "is not a key name"]
    t0 = time.time()
    p = subprocess.run([str(ccr_bin), "serve"], env=env, capture_output=True, text=True, timeout=30)
    out = (p.stdout + p.stderr).strip().splitlines()
    assert p.returncode != 0, out
    assert len(out) == 1, out
    msg = json.loads(out[0])["message"] if out[0].startswith("{") else out[0]
    for w in want:
        assert w in msg, msg
    assert time.time() - t0 < 10
    print(f"\n{case}: {msg}")


def test_storage_outage_while_streaming_loses_no_line(cloud):
    """Chunk downloads fail for a while (longer than the client's retry deadline) after the task
    ended: the stream must not end with `done` before it delivered every line."""
    c = cloud()
    srv = c.serve()
    n = 12
    status, data = request(srv, "POST", "/run-async", body({"lines": [{"i": i} for i in range(n)]},
                                                           callbackUrl="https://example.invalid/h",
                                                           taskId="cloud-outage-1"))
    assert status == 202, data
    wait_status(srv, "cloud-outage-1", ("completed",))
    c.fake.faults(name="chunks-down", service="storage", method="GET", path_regex=r"\.jsonl$", status=503)
    timer = threading.Timer(2.5, c.fake.clear_faults)
    timer.start()
    try:
        s = Stream(srv, "GET", "/tasks/cloud-outage-1/events")
    finally:
        timer.cancel()
        c.fake.clear_faults()
    assert [json.loads(f[2])["i"] for f in s.lines()] == list(range(n)), s.frames
    assert s.done()["status"] == "completed"


def test_kms_location_is_region_as_in_the_seed_and_kms_location_is_ignored(cloud):
    # The seed's README sets KMS_LOCATION=global, but its code (and its setup script) use REGION:
    # a migrated deployment must find the key where the original created it.
    c = cloud()
    srv = c.serve(KMS_LOCATION="global")
    msgs = [(ln.get("severity"), ln.get("message", "")) for ln in srv.lines]
    assert ("INFO", f"cloud mode: bucket {BUCKET}, Cloud KMS key location {c.fake.region} (from REGION), "
                    "Cloud Run Jobs") in msgs
    warn = [m for sev, m in msgs if sev == "WARNING" and "KMS_LOCATION=global is ignored" in m]
    assert warn and "CCR_KMS_LOCATION" in warn[0] and c.fake.region in warn[0]
    status, data = request(srv, "POST", "/run-async", body({}, callbackUrl="https://example.invalid/h",
                                                         taskId="kms-loc-1"))
    assert status == 202, data
    paths = [r["path"] for r in c.fake.requests(service="kms")]
    assert paths and all(f"/locations/{c.fake.region}/keyRings/" in p for p in paths), paths
    # CCR_KMS_LOCATION chooses another location, and nothing is ignored then
    srv2 = c.serve(CCR_KMS_LOCATION="us-east1")
    msgs = [(ln.get("severity"), ln.get("message", "")) for ln in srv2.lines]
    assert any("Cloud KMS key location us-east1 (from CCR_KMS_LOCATION)" in m for _, m in msgs)
    assert not any(sev == "WARNING" and "KMS_LOCATION" in m for sev, m in msgs)
