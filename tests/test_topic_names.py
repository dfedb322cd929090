"""The topic reader in local mode (src/serve/topic.c, read_watched) takes the
names of new chunks from the storage watch (src/backend/dirwatch.c) and reads
each without listing the task's log; a gap or lost names fall back to one
listing.  Serve logs, at debug level, how many listings a reader made."""
import json
import os
import pathlib
import re
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_fanout import open_stream, parse, read_all, submit  # noqa: E402

STOPPED = re.compile(r"topic (\S+): reader stopped after (\d+) lines in (\d+) chunks, (\d+) listings \((\w+)\)")


def reader_report(srv, task_id, timeout=30):
    """(lines, chunks, listings, how) from the reader's closing debug line."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for doc in list(srv.lines):
            m = STOPPED.match(doc.get("message", ""))
            if m and m.group(1) == task_id:
                return int(m.group(2)), int(m.group(3)), int(m.group(4)), m.group(5)
        time.sleep(0.1)
    raise AssertionError("serve never logged the end of %s's reader" % task_id)


def sessions_dir(srv, task_id):
    [d] = [p for p in srv.data.rglob(task_id) if p.is_dir() and p.parent.name == "sessions"]
    return d


def put(d, name, text):
    """As the local backend writes: a temporary, then a rename into place."""
    tmp = d / (".tmp-test-" + name)
    tmp.write_text(text)
    os.rename(tmp, d / name)


def test_fifty_chunks_cost_no_listing_each(local_serve, hook_url):
    srv = local_serve(LOG_LEVEL="debug", CCR_LOG_FLUSH_MS=1, CCR_ALLOW_PRIVATE_CALLBACKS=1)
    n = 50
    submit(srv, "names50", {"silent": 2, "stamp": True, "count": n, "delay": 0.05}, hook_url)
    ids, named = parse(read_all(open_stream(srv, "names50")))
    assert ids == list(range(1, n + 1)) and [e for e, _ in named] == ["done"], (ids, named)
    chunks = len(list(sessions_dir(srv, "names50").glob("*.jsonl")))
    # about one chunk per line (fewer when a loaded machine makes a store slower than a line)
    assert chunks >= 10, "the job should store a chunk per line or so, stored %d" % chunks
    lines, read, listings, how = reader_report(srv, "names50")
    assert how == "watched" and lines == n and read == chunks, (lines, read, chunks, how)
    # the first listing (what was there before the watch) and the last (the task ended)
    assert listings <= 2, "%d listings for %d chunks" % (listings, chunks)


def test_a_gap_and_a_burst_of_chunks_lose_no_line(local_serve):
    srv = local_serve(LOG_LEVEL="debug")
    task = "names-gap"
    d = srv.data / "sessions" / task
    d.mkdir(parents=True)
    meta = {"taskId": task, "status": "running", "createdAt": "2026-01-01T00:00:00.000Z"}
    put(d, "metadata.json", json.dumps(meta))
    s = open_stream(srv, task)
    s.settimeout(30)
    want = [1, 2]
    put(d, "000001-20260101000000.jsonl", '{"n":1}\n{"n":2}\n')
    head = b""
    while b'{"n":2}' not in head:            # the reader is past its first listing
        part = s.recv(65536)
        assert part, "the stream ended early: %r" % head
        head += part
    # no chunk 2 (as if lifecycle deleted it): a gap, then more chunks at once
    # than the watch queues for a reader that is busy (dirwatch.h DW_QUEUE_MAX)
    k = 3
    for idx in range(3, 800):
        put(d, "%06d-20260101000000.jsonl" % idx, '{"n":%d}\n{"n":%d}\n' % (k, k + 1))
        want += [k, k + 1]
        k += 2
    meta["status"] = "completed"
    put(d, "metadata.json", json.dumps(meta))
    raw = head + read_all(s)
    ids, named = parse(raw)
    assert ids == list(range(1, len(want) + 1)), "lines lost, repeated or reordered"
    body = raw.decode()
    got = [int(x) for x in re.findall(r'data: \{"n":(\d+)\}', body)]
    assert got == want
    assert [e for e, _ in named] == ["done"], named
    lines, _, listings, how = reader_report(srv, task)
    assert how == "watched" and lines == len(want)
    assert listings >= 3, "the gap should have cost a listing (%d in all)" % listings
    print("%d chunks, %d listings" % (800 - 2, listings))
