"""Follow-up messages, interrupt and end for a running task (idleAfterResultSeconds), with the
scripted stand-in for claude (its stream-json input loop), in local mode and in cloud mode.

POST /tasks/:id/messages seals the message; in local mode serve hands it to the job over the
task's unix socket (src/task/msgsock.h), and stores it in the task's inbox (inbox/<id>/...) when
that is not possible, as it always does in cloud mode; serve's log says which ("via").  The job
passes it to the CLI's stdin as a stream-json user message; the CLI's replay of it is in the
task's log, so every SSE stream of the task shows it.  /interrupt sends the
CLI's interrupt control request; /end closes stdin; a result with no message after it for
idleAfterResultSeconds ends the task too.  The latency from the POST to the CLI reading the
message is printed (never asserted).
"""
import json
import os
import signal
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


def is_said(text):
    return lambda x: x.get("type") == "user" and x["message"]["content"][0]["text"] == text


def accepted(srv, task, count=None, timeout=10):
    """How serve passed on each request it accepted for task: [(kind, via)].  serve logs
    a request before it answers, but the test reads serve's stdout on another thread:
    with count, wait (up to timeout) until that many requests are in the log."""
    deadline = time.time() + timeout
    while True:
        got = [(x["kind"], x["via"]) for x in list(srv.lines)
               if x.get("message") == "task inbox: accepted" and x.get("task_id") == task]
        if count is None or len(got) >= count or time.time() > deadline:
            return got
        time.sleep(0.02)


def said(mode, task):
    return [x["message"]["content"][0]["text"] for x in mode.lines(task) if x.get("type") == "user"]


def sockets(srv):
    d = srv.data / ".run" / "msg"
    return sorted(d.glob("*.sock")) if d.is_dir() else []


def start_conversation(mode, task, prompt="first words"):
    st, _, data = http_request(mode.srv, "POST", "/run-async", mode.body(
        {}, prompt=prompt, idleAfterResultSeconds=120, callbackUrl=mode.hook, taskId=task))
    assert st == 202, data


def send(mode, task, text):
    st, _, data = http_request(mode.srv, "POST", "/tasks/%s/messages" % task, {"text": text})
    assert st == 202, data


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
    # local mode: everything went over the job's socket; cloud mode: through the inbox
    way = "socket" if mode.name == "local" else "inbox"
    assert accepted(mode.srv, "conv-1", 4) == [("message", way), ("message", way), ("interrupt", way),
                                            ("end", way)], accepted(mode.srv, "conv-1")
    if mode.name == "local":
        assert sockets(mode.srv) == [], "the job removed its socket"

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


def test_quick_messages_keep_their_order_from_the_start(mode):
    """Messages sent at once after the start, before the job runs and while it starts (in
    local mode the first ones go to the inbox and the later ones over the socket), then a
    burst in mid-conversation: the CLI takes them all, in the order they were accepted."""
    start_conversation(mode, "conv-o", prompt="m0")
    early = []
    while len(early) < 300:            # local: until two have gone over the socket
        early.append("m%d" % (len(early) + 1))
        send(mode, "conv-o", early[-1])
        ways = [v for _, v in accepted(mode.srv, "conv-o", len(early))]
        if ways.count("socket") >= 2 or (mode.name == "cloud" and len(early) == 6):
            break
        time.sleep(0.02)
    mode.wait_line("conv-o", is_result(early[-1]), "the last early message's result", timeout=60)
    burst = ["b%d" % i for i in range(1, 9)]
    for text in burst:
        send(mode, "conv-o", text)
    mode.wait_line("conv-o", is_result("b8"), "the burst's last result")
    assert said(mode, "conv-o") == ["m0"] + early + burst, said(mode, "conv-o")
    vias = [v for _, v in accepted(mode.srv, "conv-o", len(early) + len(burst))]
    print("ways of the %d early messages [%s]: %d inbox, then %d socket"
          % (len(early), mode.name, vias[:len(early)].count("inbox"), vias[:len(early)].count("socket")))
    if mode.name == "local":
        assert vias[len(early):] == ["socket"] * 8, vias
    else:
        assert vias == ["inbox"] * 14, vias
    assert http_request(mode.srv, "POST", "/tasks/conv-o/end")[0] == 202
    assert mode.wait_status("conv-o", ("completed", "failed", "cancelled"))["status"] == "completed"


def test_without_the_socket_messages_go_through_the_inbox(local_serve):
    """Local mode with the job's socket gone: serve stores each request in the inbox, which
    the job still polls; order, interrupt and end work the same."""
    srv = local_serve(CCR_INBOX_POLL_MS=50)
    mode = Mode("local", srv, local_body, None, lambda n: (srv.data / n).read_bytes()
                if (srv.data / n).is_file() else None, "https://example.invalid/hook")
    mode.names = lambda prefix: sorted(str(p.relative_to(srv.data)) for p in srv.data.rglob("*")
                                       if p.is_file() and str(p.relative_to(srv.data)).startswith(prefix))
    start_conversation(mode, "conv-f")
    mode.wait_line("conv-f", is_result("first words"), "first result")
    (sock,) = sockets(srv)
    send(mode, "conv-f", "over the socket")
    mode.wait_line("conv-f", is_result("over the socket"), "its result")
    sock.unlink()
    texts = ["inbox %d" % i for i in range(1, 5)]
    for text in texts:
        send(mode, "conv-f", text)
    mode.wait_line("conv-f", is_result("inbox 4"), "the last result")
    assert said(mode, "conv-f") == ["first words", "over the socket"] + texts
    assert http_request(srv, "POST", "/tasks/conv-f/interrupt")[0] == 202
    mode.wait_line("conv-f", lambda x: x.get("type") == "control_response", "the interrupt's answer")
    assert http_request(srv, "POST", "/tasks/conv-f/end")[0] == 202
    meta = mode.wait_status("conv-f", ("completed", "failed", "cancelled"))
    assert meta["status"] == "completed", meta
    assert accepted(srv, "conv-f", 7) == [("message", "socket")] + [("message", "inbox")] * 4 + \
        [("interrupt", "inbox"), ("end", "inbox")], accepted(srv, "conv-f")
    assert mode.names("inbox/") == []


def test_a_stalled_job_falls_back_and_the_reconciler_clears_its_leftovers(local_serve):
    """A job that does not answer on its socket (stopped here) makes serve store the message
    in the inbox; when the job then dies, the reconciler finalises the task and deletes the
    inbox object and the socket file."""
    srv = local_serve()
    mode = Mode("local", srv, local_body, None, None, "https://example.invalid/hook")
    mode.raw = lambda n: (srv.data / n).read_bytes() if (srv.data / n).is_file() else None
    mode.names = lambda prefix: sorted(str(p.relative_to(srv.data)) for p in srv.data.rglob("*")
                                       if p.is_file() and str(p.relative_to(srv.data)).startswith(prefix))
    start_conversation(mode, "conv-d")
    mode.wait_line("conv-d", is_result("first words"), "first result")
    assert len(sockets(srv)) == 1
    pid = int((srv.data / ".run" / "conv-d.pid").read_text().split()[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        send(mode, "conv-d", "nobody takes this")
        assert accepted(srv, "conv-d", 1) == [("message", "inbox")], accepted(srv, "conv-d")
        assert len(mode.names("inbox/conv-d/")) == 1
    finally:
        os.killpg(pid, signal.SIGKILL)
    meta = mode.wait_status("conv-d", ("completed", "failed", "cancelled"))
    assert meta["status"] == "failed", meta
    deadline = time.time() + 10
    while (mode.names("inbox/") or sockets(srv)) and time.time() < deadline:
        time.sleep(0.05)
    assert mode.names("inbox/") == [] and sockets(srv) == [], (mode.names("inbox/"), sockets(srv))
