"""Idempotency-Key on POST /run and POST /run-async, in local mode and in cloud mode.

The same key with the same body within 24 hours answers with the original task (the same
202 body; for /run the original task's stream, from the start or from Last-Event-ID); the
same key with another body is a 422; the record is in storage (idempotency/<hmac>), so a
second serve instance sharing the store answers the same; it names neither the key nor the
credential.
"""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import http_request  # noqa: E402
from test_cloud import body as cloud_body, cloud  # noqa: E402,F401
from test_serve import body as local_body, parse_sse, wait_status  # noqa: E402

KEY = "sk-ant-serve-canary-0123456789"


def post(srv, path, payload, key, headers=None):
    h = {"Idempotency-Key": key}
    h.update(headers or {})
    return http_request(srv, "POST", path, payload, h, timeout=60)


def task_dirs(data):
    return sorted(p.name for p in (data / "sessions").iterdir()) if (data / "sessions").exists() else []


def test_run_async_same_key_same_body_is_the_same_task(local_serve):
    srv = local_serve()
    b = local_body({"lines": [{"i": 1}]}, callbackUrl="https://example.invalid/hook")
    st1, _, d1 = post(srv, "/run-async", b, "order-42")
    assert st1 == 202, d1
    st2, _, d2 = post(srv, "/run-async", b, "order-42")
    assert st2 == 202, d2
    assert json.loads(d1) == json.loads(d2), "the same 202 body"
    assert task_dirs(srv.data) == [json.loads(d1)["taskId"]], "one task, not two"
    # a second instance sharing the data directory finds the same record
    srv2 = local_serve()
    st3, _, d3 = post(srv2, "/run-async", b, "order-42")
    assert st3 == 202 and json.loads(d3) == json.loads(d1)
    # the record names neither the key nor the credential
    recs = list((srv.data / "idempotency").iterdir())
    assert len(recs) == 1
    raw = recs[0].read_bytes()
    assert b"order-42" not in raw and KEY.encode() not in raw and b"order-42" not in recs[0].name.encode()
    wait_status(srv, json.loads(d1)["taskId"], ("completed",))
    # once the task ended, a replay still answers with it
    st4, _, d4 = post(srv, "/run-async", b, "order-42")
    assert st4 == 202 and json.loads(d4) == json.loads(d1)


def test_same_key_other_body_is_422_and_other_keys_are_new_tasks(local_serve):
    srv = local_serve()
    b = local_body({"lines": [{"i": 1}]}, callbackUrl="https://example.invalid/hook")
    st, _, d1 = post(srv, "/run-async", b, "k-1")
    assert st == 202
    st, ctype, d = post(srv, "/run-async", dict(b, prompt="something else"), "k-1")
    assert st == 422 and ctype.startswith("application/json"), d
    err = json.loads(d)["error"]
    assert "Idempotency-Key was already used with a different request body" in err and json.loads(d1)["taskId"] in err
    # the same key on the other endpoint is another request too
    st, _, d = post(srv, "/run", local_body({"lines": [{"i": 1}]}), "k-1")
    assert st == 422, d
    # another key, or the same key under another credential: a new task
    st, _, d2 = post(srv, "/run-async", b, "k-2")
    assert st == 202 and json.loads(d2)["taskId"] != json.loads(d1)["taskId"]
    st, _, d3 = post(srv, "/run-async", dict(b, anthropicApiKey="sk-ant-someone-else-000"), "k-1")
    assert st == 202 and json.loads(d3)["taskId"] not in (json.loads(d1)["taskId"], json.loads(d2)["taskId"])
    # a failed validation claims nothing: the key stays free
    st, _, d = post(srv, "/run-async", dict(b, prompt=""), "k-3")
    assert st == 400 and json.loads(d)["error"] == "prompt is required"
    st, _, d4 = post(srv, "/run-async", b, "k-3")
    assert st == 202, d4
    assert len(task_dirs(srv.data)) == 4


@pytest.mark.parametrize("bad", ["", "x" * 256, "caf\u00e9"])
def test_bad_idempotency_key_is_400(local_serve, bad):
    srv = local_serve()
    hdr = bad.encode("latin-1").decode("latin-1")
    st, _, d = post(srv, "/run-async", local_body(callbackUrl="https://example.invalid/hook"), hdr)
    assert st == 400, d
    assert json.loads(d)["error"] == "Idempotency-Key must be 1 to 255 printable ASCII characters"
    assert task_dirs(srv.data) == []


def test_run_replay_streams_the_original_task_from_last_event_id(local_serve):
    srv = local_serve()
    lines = [{"i": i} for i in range(5)] + [{"type": "result", "subtype": "success"}]
    b = local_body({"lines": lines})
    st, _, d1 = post(srv, "/run", b, "stream-1")
    assert st == 200
    f1 = parse_sse(d1.decode())
    assert f1[-1][0] == "done" and [f[1] for f in f1[:6]] == [1, 2, 3, 4, 5, 6]
    st, _, d2 = post(srv, "/run", b, "stream-1")
    assert st == 200
    assert parse_sse(d2.decode()) == f1, "the original task's stream, from the start"
    st, _, d3 = post(srv, "/run", b, "stream-1", {"Last-Event-ID": "4"})
    f3 = parse_sse(d3.decode())
    assert [f[1] for f in f3 if f[1] is not None] == [5, 6] and f3[-1] == f1[-1]
    assert len(task_dirs(srv.data)) == 1


def test_cloud_idempotency_key(cloud, hook_url):
    c = cloud()
    srv = c.serve()
    b = cloud_body({"lines": [{"i": 1}, {"type": "result", "subtype": "success"}]}, callbackUrl=hook_url)
    st, _, d1 = post(srv, "/run-async", b, "cloud-order-7")
    assert st == 202, d1
    srv2 = c.serve()
    st, _, d2 = post(srv2, "/run-async", b, "cloud-order-7")
    assert st == 202 and json.loads(d2) == json.loads(d1), "another instance answers with the original"
    st, _, d = post(srv2, "/run-async", dict(b, prompt="another"), "cloud-order-7")
    assert st == 422, d
    recs = c.names("idempotency/")
    assert len(recs) == 1
    assert b"cloud-order-7" not in c.raw(recs[0])
    assert c.names("keys/") == ["keys/serve-hmac.enc"]
    assert c.raw("keys/serve-hmac.enc").startswith(b'{"version":"v2-envelope"')
    tasks = {n.split("/")[1] for n in c.names("sessions/")}
    assert tasks == {json.loads(d1)["taskId"]}
    # /run: the replay is the original stream
    rb = cloud_body({"lines": [{"i": 1}, {"type": "result", "subtype": "success"}]})
    st, _, r1 = post(srv, "/run", rb, "cloud-stream-1")
    st2, _, r2 = post(srv2, "/run", rb, "cloud-stream-1")
    assert st == st2 == 200
    assert parse_sse(r1.decode()) == parse_sse(r2.decode())
    assert parse_sse(r1.decode())[-1][0] == "done"
