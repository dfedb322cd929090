"""Follow-up messages, interrupt and end for a running task (idleAfterResultSeconds), with the
scripted stand-in for claude (its stream-json input loop), in local mode and in cloud mode.

POST /tasks/:id/messages stores the message sealed in the task's inbox (inbox/<id>/...); the
job's inbox thread passes it to the CLI's stdin as a stream-json user message; the CLI's replay
of it is in the task's log, so every SSE stream of the task shows it.  /interrupt sends the
CLI's interrupt control request; /end closes stdin; a result with no message after it for
idleAfterResultSeconds ends the task too.  The latency from the POST to the CLI reading the
message is printed (never asserted).
"""
import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import get_until_close, http_request  # noqa: E402
from test_cloud import body as cloud_body, cloud  # noqa: E402,F401
from test_serve import body as local_body, parse_sse  # noqa: E402


class Mode:
    def __init__(self, name, srv, body, names, raw, hook):
        self.name, self.srv, self.body, self.names, self.raw, self.hook = name, srv, body, names, raw, hook

    def lines(self, task):
        chunks = sorted(n for n in self.names("sessions/%s/" % task) if n.endswith(".jsonl"))
        out = []
        for n in chunks:
            for ln in (self.raw(n) or b"").decode().splitlines():
                try:
                    out.append(json.loads(ln))
                except ValueError:
                    pass
        return out

    def wait_line(self, task, pred, what, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for x in self.lines(task):
                if pred(x):
                    return x
            time.sleep(0.02)
        raise AssertionError("no %s in the log of %s: %r" % (what, task, self.lines(task)[-5:]))

    def meta(self, task):
        raw = self.raw("sessions/%s/metadata.json" % task)
        return json.loads(raw) if raw else None

    def wait_status(self, task, want, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.meta(task)
            if m and m["status"] in want:
                return m
            time.sleep(0.05)
        raise AssertionError("%s never reached %s: %r" % (task, want, self.meta(task)))


@pytest.fixture(params=["local", "cloud"])
def mode(request, local_serve, cloud, hook_url):
    if request.param == "local":
        srv = local_serve(CCR_INBOX_POLL_MS=50)
        root = srv.data

        def names(prefix):
            return [str(p.relative_to(root)) for p in root.rglob("*")
                    if p.is_file() and str(p.relative_to(root)).startswith(prefix)] if root.is_dir() else []

        def raw(name):
            p = root / name
            return p.read_bytes() if p.is_file() else None
        return Mode("local", srv, local_body, names, raw, "https://example.invalid/hook")
    c = cloud(CCR_INBOX_POLL_MS=1000)
    return Mode("cloud", c.serve(), cloud_body, c.names, c.raw, hook_url)


def is_result(text):
    return lambda x: x.get("type") == "result" and x.get("result") == "echo: " + text


def test_messages_interrupt_and_end_reach_the_cli(mode):
    st, _, data = http_request(mode.srv, "POST", "/run-async", mode.body(
        {}, prompt="first words", idleAfterResultSeconds=120, callbackUrl=mode.hook, taskId="conv-1"))
    assert st == 202, data
    mode.wait_line("conv-1", is_result("first words"), "first result")
    assert mode.meta("conv-1")["acceptsMessages"] is True

    latencies = []
    for text in ("second words", "third words"):
        t0 = time.time()
        st, _, data = http_request(mode.srv, "POST", "/tasks/conv-1/messages", {"text": text})
        assert st == 202, data
        ack = json.loads(data)
        assert ack["taskId"] == "conv-1" and ack["type"] == "message" and ack["status"] == "queued"
        echo = mode.wait_line("conv-1", lambda x: x.get("type") == "user" and
                              x["message"]["content"][0]["text"] == text, "the replayed message")
        latencies.append(echo["t"] - t0)
        mode.wait_line("conv-1", is_result(text), "its result")
    print("POST /tasks/:id/messages -> CLI stdin [%s]: %s ms" % (mode.name, ", ".join(
        "%.0f" % (x * 1000) for x in latencies)))

    st, _, data = http_request(mode.srv, "POST", "/tasks/conv-1/interrupt")
    assert st == 202 and json.loads(data)["type"] == "interrupt", data
    resp = mode.wait_line("conv-1", lambda x: x.get("type") == "control_response", "the interrupt's answer")
    assert resp["response"]["request_id"] == "ccr-interrupt-1"
    assert mode.meta("conv-1")["status"] == "running"

    st, _, data = http_request(mode.srv, "POST", "/tasks/conv-1/end")
    assert st == 202, data
    meta = mode.wait_status("conv-1", ("completed", "failed", "cancelled"))
    assert meta["status"] == "completed" and meta["terminalReason"] == "completed", meta
    st, _, data = http_request(mode.srv, "POST", "/tasks/conv-1/messages", {"text": "too late"})
    assert st == 409 and "has ended" in json.loads(data)["error"], data
    assert mode.names("inbox/") == [], "the inbox is emptied"

    # every follower sees the conversation: the stream holds each message the CLI took
    frames = parse_sse(get_until_close(mode.srv, "/tasks/conv-1/events").decode().split("\r\n\r\n", 1)[1])
    said = [json.loads(d)["message"]["content"][0]["text"] for ev, _, d in frames
            if ev is None and json.loads(d).get("type") == "user"]
    assert said == ["first words", "second words", "third words"], said


def test_a_result_nobody_answers_ends_the_task(mode):
    t0 = time.time()
    st, _, data = http_request(mode.srv, "POST", "/run", mode.body({}, prompt="only this",
                                                                    idleAfterResultSeconds=1), timeout=60)
    assert st == 200, data
    frames = parse_sse(data.decode())
    done = json.loads(frames[-1][2])
    assert frames[-1][0] == "done" and done["status"] == "completed", frames[-3:]
    assert time.time() - t0 < 30


def test_messages_are_refused_where_they_cannot_go(mode):
    st, _, data = http_request(mode.srv, "POST", "/run", mode.body({}), timeout=60)
    assert st == 200
    st, _, data = http_request(mode.srv, "POST", "/run-async", mode.body(
        {"lines": [{"type": "system", "subtype": "init"}], "hang_after": True},
        callbackUrl=mode.hook, taskId="plain-1"))
    assert st == 202, data
    st, _, data = http_request(mode.srv, "POST", "/tasks/plain-1/messages", {"text": "hi"})
    assert st == 409 and json.loads(data)["error"] == \
        "the task does not take messages: start it with idleAfterResultSeconds", data
    st, _, data = http_request(mode.srv, "POST", "/tasks/plain-1/interrupt")
    assert st == 409, data
    assert http_request(mode.srv, "POST", "/cancel/plain-1")[0] == 200
    st, _, data = http_request(mode.srv, "POST", "/tasks/nope-9/messages", {"text": "hi"})
    assert st == 404 and json.loads(data)["error"] == "Task not found"
    st, _, data = http_request(mode.srv, "POST", "/tasks/bad%20id/end")
    assert st == 400, data
    for bad in ({}, {"text": ""}, {"text": 5}):
        st, _, data = http_request(mode.srv, "POST", "/tasks/plain-1/messages", bad)
        assert st == 400 and json.loads(data)["error"] == \
            "text is required: a non-empty string of at most 1 MiB", (bad, data)


@pytest.mark.parametrize("value,msg", [(-1, "idleAfterResultSeconds must be between 0 and 3600"),
                                       (4000, "idleAfterResultSeconds must be between 0 and 3600"),
                                       ("soon", "idleAfterResultSeconds must be a number or a string holding "
                                                "one (such as \"10\")")])
def test_bad_idle_after_result_is_400(local_serve, value, msg):
    srv = local_serve()
    st, _, data = http_request(srv, "POST", "/run", local_body({}, idleAfterResultSeconds=value))
    assert st == 400 and json.loads(data) == {"error": msg}
