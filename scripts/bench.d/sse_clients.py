#!/usr/bin/python3
"""Hold N concurrent SSE streams open against `ccr serve` (scripts/bench).

usage: sse_clients.py --port P --task ID --n N --hold SECONDS

Opens N connections to 127.0.0.1:P (in batches, so the listen backlog never
overflows), sends `GET /tasks/ID/events` on each and waits for the 200 and the
`retry:` line.  Then prints `OPEN <opened> <failed> <seconds>` on stdout,
keeps every stream open for --hold seconds while reading its frames, and for
each `{"type":"stamp","t":...}` frame written after all streams were open
records arrival - t (the fan-out latency from the job's line to this client;
older lines are replayed history and not counted).  Finally it closes every stream
and prints one JSON summary line.  Everything is bounded by --hold and a
30 s connect budget; it sends traffic to loopback only.
"""
import argparse
import asyncio
import json
import sys
import time

HOST = "127.0.0.1"


class Stream:
    def __init__(self):
        self.reader = self.writer = None
        self.frames = 0
        self.lat = []
        self.error = None
        self.since = None   # only lines written after this (wall clock) count


async def open_stream(port, task, st):
    try:
        st.reader, st.writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 15)
        st.writer.write(("GET /tasks/%s/events HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n"
                         % (task, HOST, port)).encode())
        await st.writer.drain()
        head = await asyncio.wait_for(st.reader.readuntil(b"\r\n\r\n"), 15)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    except Exception as e:  # noqa: BLE001 - reported in the summary
        st.error = "%s: %s" % (type(e).__name__, e)


async def read_stream(st):
    """Read frames until the connection ends or the task is cancelled."""
    buf = b""
    try:
        while True:
            chunk = await st.reader.read(65536)
            if not chunk:
                return
            now = time.time()
            buf += chunk
            # The body is chunked: frames may be split between chunks; we
            # only look at complete "data: " lines, which never straddle a
            # chunk-size line because ccr writes each frame in one chunk.
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.startswith(b"data: "):
                    st.frames += 1
                    try:
                        doc = json.loads(line[6:])
                    except ValueError:
                        continue
                    if isinstance(doc, dict) and doc.get("type") == "stamp" and st.since is not None \
                            and float(doc["t"]) > st.since:
                        st.lat.append(now - float(doc["t"]))
    except (asyncio.CancelledError, ConnectionError, OSError):
        return


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=50)
    a = ap.parse_args()

    streams = [Stream() for _ in range(a.n)]
    t0 = time.monotonic()
    readers = []
    for i in range(0, a.n, a.batch):
        if time.monotonic() - t0 > 30:
            for st in streams[i:]:
                st.error = "connect budget exhausted"
            break
        batch = streams[i:i + a.batch]
        await asyncio.gather(*(open_stream(a.port, a.task, st) for st in batch))
        readers += [asyncio.ensure_future(read_stream(st)) for st in batch if st.error is None]
    opened = sum(1 for st in streams if st.error is None)
    # Lines written before every stream was open reach late-comers as
    # replayed history; the latency counts only lines written after this.
    since = time.time()
    for st in streams:
        st.since = since
    print("OPEN %d %d %.3f" % (opened, a.n - opened, time.monotonic() - t0), flush=True)

    await asyncio.sleep(a.hold)
    # Streams that ended early (server closed them) are counted.
    ended_early = sum(1 for r in readers if r.done())
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for st in streams:
        if st.writer is not None:
            st.writer.close()
    for st in streams:
        if st.writer is not None:
            try:
                await asyncio.wait_for(st.writer.wait_closed(), 2)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
    lat = sorted(x for st in streams for x in st.lat)
    frames = [st.frames for st in streams if st.error is None]
    errors = {}
    for st in streams:
        if st.error:
            errors[st.error] = errors.get(st.error, 0) + 1
    print(json.dumps({
        "opened": opened, "failed": a.n - opened, "ended_early": ended_early,
        "errors": dict(list(errors.items())[:5]),
        "frames_min": min(frames) if frames else 0, "frames_max": max(frames) if frames else 0,
        "stamps": len(lat),
        "lat_med": lat[len(lat) // 2] if lat else None,
        "lat_p90": lat[len(lat) * 9 // 10] if lat else None,
        "lat_max": lat[-1] if lat else None,
    }), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
