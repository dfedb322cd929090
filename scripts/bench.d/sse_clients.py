#!/usr/bin/python3
"""Hold N concurrent SSE streams open against `ccr serve` (scripts/bench).

usage: sse_clients.py --port P --task ID --n N --hold SECONDS [--procs K]

Opens N connections to 127.0.0.1:P, K client processes with N/K streams
each (default 2: one Python process cannot read 1,000 sockets fast enough to
time a fan-out in milliseconds).  Each stream sends `GET /tasks/ID/events`
and waits for the 200.  Then it prints `OPEN <opened> <failed> <seconds>`
on stdout, keeps every stream open for --hold seconds while reading its
frames with one epoll loop per process, and for each
`{"type":"stamp","t":...}` frame written after all streams were open
records arrival - t (the fan-out latency from the job's line to this
client; older lines are replayed history and not counted).  Finally it
closes every stream and prints one JSON summary line.  Everything is
bounded by --hold and a 30 s connect budget; it sends traffic to loopback
only.
"""
import argparse
import json
import os
import re
import selectors
import socket
import sys
import time

HOST = "127.0.0.1"
STAMP_T = re.compile(rb'"type":\s*"stamp".*?"t":\s*([0-9.]+)')


class Stream:
    def __init__(self):
        self.sock = None
        self.buf = b""
        self.frames = 0
        self.error = None
        self.ended = False


def open_one(port, task, st):
    try:
        s = socket.create_connection((HOST, port), timeout=15)
        s.sendall(("GET /tasks/%s/events HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n"
                   % (task, HOST, port)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            got = s.recv(65536)
            if not got:
                raise ConnectionError("closed before the response head")
            head += got
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        s.setblocking(False)
        st.sock, st.buf = s, head.split(b"\r\n\r\n", 1)[1]
    except Exception as e:  # noqa: BLE001 - reported in the summary
        st.error = "%s: %s" % (type(e).__name__, e)


def take_lines(st, now, since, lat):
    """Count complete `data:` lines; record stamps written after `since`."""
    *lines, st.buf = st.buf.split(b"\n")
    for line in lines:
        if line.startswith(b"data: "):
            st.frames += 1
            m = STAMP_T.search(line)
            if m and since is not None and float(m.group(1)) > since:
                lat.append(now - float(m.group(1)))


def pump(sel, timeout, since, lat):
    for key, _ in sel.select(timeout):
        st = key.data
        try:
            chunk = st.sock.recv(262144)
        except BlockingIOError:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            st.ended = True
            sel.unregister(st.sock)
            continue
        st.buf += chunk
        take_lines(st, time.time(), since, lat)


def worker(port, task, n, hold, wr, rd):
    """One client process: open n streams, report, wait for `since`, read."""
    streams = [Stream() for _ in range(n)]
    sel = selectors.DefaultSelector()
    lat = []
    t0 = time.monotonic()
    for i, st in enumerate(streams):
        if time.monotonic() - t0 > 30:
            for rest in streams[i:]:
                rest.error = "connect budget exhausted"
            break
        open_one(port, task, st)
        if st.sock is not None:
            sel.register(st.sock, selectors.EVENT_READ, st)
        if i % 50 == 49:
            pump(sel, 0, None, lat)             # drain replayed history as we go
    os.write(wr, b"%d\n" % sum(1 for st in streams if st.error is None))
    since = float(os.read(rd, 64).decode())
    end = time.monotonic() + hold
    while time.monotonic() < end:
        pump(sel, min(0.2, max(0.0, end - time.monotonic())), since, lat)
    for st in streams:
        if st.sock is not None:
            st.sock.close()
    errors = {}
    for st in streams:
        if st.error:
            errors[st.error] = errors.get(st.error, 0) + 1
    frames = [st.frames for st in streams if st.error is None]
    return {"opened": len(frames), "ended_early": sum(1 for st in streams if st.ended), "errors": errors,
            "frames": [min(frames), max(frames)] if frames else [0, 0], "lat": lat}


def spawn(a, share):
    """Fork a worker; returns (pid, its result pipe, its `since` pipe, its OPEN pipe)."""
    open_r, open_w = os.pipe()
    since_r, since_w = os.pipe()
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            out = worker(a.port, a.task, share, a.hold, open_w, since_r)
            data = json.dumps(out).encode()
            while data:
                data = data[os.write(res_w, data):]
        finally:
            os._exit(0)
    for fd in (open_w, since_r, res_w):
        os.close(fd)
    return pid, res_r, since_w, open_r


def read_all(fd):
    chunks = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--procs", type=int, default=2)
    a = ap.parse_args()
    k = max(1, min(a.procs, a.n))
    t0 = time.monotonic()
    kids = [spawn(a, a.n // k + (1 if i < a.n % k else 0)) for i in range(k)]
    opened = sum(int(os.read(open_r, 64).decode() or 0) for _, _, _, open_r in kids)
    # Lines written before every stream was open reach late-comers as
    # replayed history; the latency counts only lines written after this.
    since = time.time()
    for _, _, since_w, _ in kids:
        os.write(since_w, b"%.6f" % since)
    print("OPEN %d %d %.3f" % (opened, a.n - opened, time.monotonic() - t0), flush=True)
    results = []
    for pid, res_r, _, _ in kids:
        raw = read_all(res_r)
        os.waitpid(pid, 0)
        if raw:
            results.append(json.loads(raw))
    lat = sorted(x for r in results for x in r["lat"])
    errors = {}
    for r in results:
        for msg, c in r["errors"].items():
            errors[msg] = errors.get(msg, 0) + c
    print(json.dumps({
        "opened": opened, "failed": a.n - opened, "ended_early": sum(r["ended_early"] for r in results),
        "errors": dict(list(errors.items())[:5]),
        "frames_min": min((r["frames"][0] for r in results), default=0),
        "frames_max": max((r["frames"][1] for r in results), default=0),
        "stamps": len(lat), "procs": k,
        "lat_med": lat[len(lat) // 2] if lat else None,
        "lat_p90": lat[len(lat) * 9 // 10] if lat else None,
        "lat_max": lat[-1] if lat else None,
    }), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
