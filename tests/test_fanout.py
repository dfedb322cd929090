"""One reader per task (src/serve/topic.c): every stream of a task gets every
line in order from shared frames, and a stream whose client reads too slowly
is cut off with `event: reconnect` and resumes without loss."""
import json
import os
import pathlib
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conftest import http_request  # noqa: E402

KEY = "sk-ant-fanout-" + "0" * 20


def submit(srv, task_id, mode, hook_url):
    body = {"prompt": "go", "anthropicApiKey": KEY, "taskId": task_id, "callbackUrl": hook_url,
            "environmentSecrets": {"FAKE_CLAUDE_MODE": json.dumps(mode)}}
    status, _, data = http_request(srv, "POST", "/run-async", body)
    assert status == 202, data


def open_stream(srv, task_id, last_id=None):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    extra = "Last-Event-ID: %d\r\n" % last_id if last_id is not None else ""
    s.sendall(("GET /tasks/%s/events HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % (task_id, extra)).encode())
    return s


def parse(raw):
    """(ids of data frames in order, [(event, data)] of named events) from a chunked SSE body."""
    _, _, body = bytes(raw).partition(b"\r\n\r\n")
    parts, pos = [], 0
    while pos < len(body):
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            break
        n = int(body[pos:eol], 16)
        if n == 0:
            break
        parts.append(body[eol + 2:eol + 2 + n])
        pos = eol + 2 + n + 2
    ids, named = [], []
    for block in b"".join(parts).decode().split("\n\n"):
        fields = dict(l.split(": ", 1) for l in block.split("\n") if ": " in l)
        if "event" in fields:
            named.append((fields["event"], json.loads(fields.get("data", "{}"))))
        elif "id" in fields:
            ids.append(int(fields["id"]))
    return ids, named


def read_all(s, timeout=120):
    """The whole response: up to the last chunk (the connection stays open for keep-alive)."""
    s.settimeout(timeout)
    out = bytearray()
    while not out.endswith(b"\r\n0\r\n\r\n"):
        part = s.recv(1 << 20)
        if not part:
            break
        out += part
    s.close()
    return out


def test_a_thousand_streams_each_get_every_line_in_order(local_serve, hook_url):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    srv = local_serve(CCR_MAX_CONNECTIONS=1100, CCR_MAX_CONNECTIONS_PER_CLIENT=1100, CCR_ALLOW_PRIVATE_CALLBACKS=1)
    lines = 30
    streams = 200 if os.environ.get("CCR_SANITIZED") == "1" else 1000   # ASan threads are heavy
    submit(srv, "fan1000", {"silent": 6, "stamp": True, "count": lines, "delay": 0.02}, hook_url)
    socks = [open_stream(srv, "fan1000") for _ in range(streams)]
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = bytearray()
    open_ = len(socks)
    deadline = time.time() + 180
    while open_ and time.time() < deadline:
        for key, _ in sel.select(timeout=5):
            try:
                part = key.fileobj.recv(1 << 16)
            except BlockingIOError:
                continue
            if part:
                bufs[key.fileobj] += part          # bytearray: appends in place
            if part and not bufs[key.fileobj].endswith(b"\r\n0\r\n\r\n"):
                continue
            sel.unregister(key.fileobj)                # complete (or closed)
            key.fileobj.close()
            open_ -= 1
    assert open_ == 0, "%d streams did not end" % open_
    want = list(range(1, lines + 1))
    bad = 0
    for raw in bufs.values():
        ids, named = parse(raw)
        if ids != want or [e for e, _ in named] != ["done"]:
            bad += 1
    assert bad == 0, "%d of %d streams missed, repeated or reordered lines" % (bad, streams)


def follow_to_end(srv, task_id, raw):
    """Every line id of a stream, resuming after each `event: reconnect`; and how many there were."""
    ids, reconnects = [], 0
    while True:
        got, named = parse(raw)
        ids += got
        events = [e for e, _ in named]
        if events == ["done"]:
            return ids, reconnects
        assert events == ["reconnect"], named
        reconnects += 1
        raw = read_all(open_stream(srv, task_id, named[0][1]["lastEventId"]))


def test_a_slow_stream_is_cut_off_with_reconnect_and_resumes_without_loss(local_serve, hook_url):
    # the window must hold more than a chunk (100 lines), which the reader takes in one go
    # (the slow client reads nothing until the task is over: no write deadline cuts it first)
    srv = local_serve(CCR_SSE_BACKLOG=256, CCR_ALLOW_PRIVATE_CALLBACKS=1, CCR_HTTP_WRITE_TIMEOUT_MS=600000)
    n = 2000
    submit(srv, "slow1", {"silent": 2, "pad_lines": [n, 8000]}, hook_url)
    slow = open_stream(srv, "slow1")
    fast = open_stream(srv, "slow1")
    fast_raw = read_all(fast)                    # reads as it comes
    time.sleep(1)
    slow_raw = read_all(slow)                    # reads only once the task is over: 16 MB behind
    ids, named = parse(slow_raw)
    assert [e for e, _ in named] == ["reconnect"], named
    last = named[0][1]["lastEventId"]
    assert ids == list(range(1, last + 1)) and last < n, (len(ids), last)
    t0 = time.time()
    fast_ids, fast_cuts = follow_to_end(srv, "slow1", fast_raw)
    assert len(fast_ids) >= n and fast_ids == list(range(1, len(fast_ids) + 1))
    slow_ids, _ = follow_to_end(srv, "slow1", slow_raw)
    assert slow_ids == fast_ids, "nothing lost, nothing repeated"
    print("fast reader cut off %d time(s) (a loaded machine may make it fall behind too); resumes took %.1f s"
          % (fast_cuts, time.time() - t0))
