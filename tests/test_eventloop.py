"""The HTTP core's event loop (src/http/server_loop.c): an idle keep-alive
connection and an open SSE stream cost no thread (serve's thread count does
not grow with them), and every stream still gets every line in order.
Behaviour only: the figures (threads, CPU, latency) are in scripts/bench."""
import os
import pathlib
import re
import resource
import socket
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_fanout import open_stream, parse, read_all, submit  # noqa: E402


def threads(srv):
    """Threads: of the serve process, from /proc."""
    with open("/proc/%d/status" % srv.proc.pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line")


def read_head(s, until=b"retry: 3000"):
    """What the server sent until `until` (the stream is open and parked)."""
    s.settimeout(30)
    out = bytearray()
    while until not in out:
        part = s.recv(65536)
        assert part, "closed before %r: %r" % (until, bytes(out))
        out += part
    return out


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))


def test_open_streams_cost_no_thread(local_serve, hook_url):
    raise_fd_limit()
    srv = local_serve(CCR_MAX_CONNECTIONS=600, CCR_MAX_CONNECTIONS_PER_CLIENT=600, CCR_ALLOW_PRIVATE_CALLBACKS=1)
    submit(srv, "idle200", {"silent": 8, "stamp": True, "count": 3, "delay": 0.05}, hook_url)
    before = threads(srv)
    socks = [open_stream(srv, "idle200") for _ in range(200)]
    heads = [read_head(s) for s in socks]
    during = threads(srv)
    assert during < 40, "%d threads with 200 open streams (%d before)" % (during, before)
    # and each stream still gets every line, in order, and the closing events
    bad = 0
    for s, head in zip(socks, heads):
        ids, named = parse(head + read_all(s))
        if ids != [1, 2, 3] or [e for e, _ in named] != ["done"]:
            bad += 1
    assert bad == 0, "%d of 200 streams missed lines" % bad


def test_idle_keepalive_connections_cost_no_thread(local_serve):
    raise_fd_limit()
    srv = local_serve(CCR_MAX_CONNECTIONS=600, CCR_MAX_CONNECTIONS_PER_CLIENT=600)
    conns = []
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        # a route answered on a worker (not the inline /health)
        s.sendall(b"GET /no-such-route HTTP/1.1\r\nHost: h\r\n\r\n")
        conns.append(s)
    for s in conns:
        assert read_head(s, b"Cannot GET").startswith(b"HTTP/1.1 404")
    # the burst may have started workers; idle ones retire within seconds
    deadline = time.time() + 30
    while threads(srv) >= 40 and time.time() < deadline:
        time.sleep(0.5)
    n = threads(srv)
    assert n < 40, "%d threads with 200 idle keep-alive connections" % n
    # they are still open and served: a second request on each
    for s in conns:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n")
    for s in conns:
        assert read_head(s, b"\r\n\r\nok").startswith(b"HTTP/1.1 200")
        s.close()


def test_pipelined_health_and_worker_requests_answer_in_order(local_serve):
    """Inline answers (/health on the loop) and worker answers keep the order of a pipeline."""
    srv = local_serve()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    reqs = [b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /nope HTTP/1.1\r\nHost: h\r\n\r\n",
            b"HEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /health?verbose=false HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"]
    s.sendall(b"".join(reqs))
    out = bytearray()
    while True:
        part = s.recv(65536)
        if not part:
            break
        out += part
    s.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", bytes(out))
    assert statuses == [b"200", b"404", b"200", b"200", b"200"], out
    assert out.count(b"Connection: close") == 1 and out.endswith(b"\r\n\r\nok"), out
