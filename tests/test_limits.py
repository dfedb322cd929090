"""Limits on what one task can make ccr hold: output lines are capped in the job
(CCR_MAX_LINE_BYTES, truncated with a marker and a warning, never dropped), assembled in
linear time, and chunks are cut at about 1 MiB so a reader holds little at once."""
import json
import time

import pytest

from test_job import Job


@pytest.fixture
def job(ccr_bin, tmp_path):
    return Job(ccr_bin, tmp_path)


def test_a_huge_line_is_stored_truncated_with_a_marker(job):
    n = 20 << 20
    job.payload("big1", mode={"big_line": n, "lines": [{"type": "assistant", "after": True}]})
    t0 = time.time()
    rc, out, err = job.run("big1", timeout=120)
    took = time.time() - t0
    assert rc == 0, err
    lines = job.lines("big1")
    big = [l for l in lines if l.startswith('{"type":"text"')]
    assert len(big) == 1
    assert big[0].endswith(f" [ccr: line truncated, {n} bytes in all]")
    assert len(big[0]) <= (4 << 20) + 100
    assert json.loads(lines[-1]) == {"type": "assistant", "after": True}, "the next line is intact"
    assert "truncated" in err and "CCR_MAX_LINE_BYTES" in err
    print(f"20 MiB line handled in {took:.2f} s")


def test_line_limit_is_configurable_and_chunks_stay_small(job):
    job.payload("big2", mode={"pad_lines": [12, 200_000], "big_line": 300_000, "lines": []})
    rc, out, err = job.run("big2", CCR_MAX_LINE_BYTES=100_000)
    assert rc == 0, err
    stored = job.lines("big2")
    assert len(stored) == 13 and all(len(l) < 100_100 for l in stored)
    assert sum(" [ccr: line truncated," in l for l in stored) == 13
    job.payload("big3", mode={"pad_lines": [40, 100_000], "lines": []})
    rc, out, err = job.run("big3")
    assert rc == 0, err
    chunks = job.chunks("big3")
    assert len(job.lines("big3")) == 40 and len(chunks) >= 4, "4 MB cut into ~1 MiB chunks"
    assert all(c.stat().st_size < (1 << 20) + 200_000 for c in chunks)
