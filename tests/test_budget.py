"""A spend cap that holds: maxBudgetUsd and CCR_MAX_BUDGET_USD.

The job passes the smaller of the two to the CLI (--max-budget-usd) and to its token proxy,
which prices the metered usage of every response (src/proxy/prices.h) and refuses further
Messages requests once the cost reaches the cap.  These tests drive the scripted stand-in
(tests/fakes/fake_claude.py, mode api_loop: a CLI-like loop of sequential requests) through
the proxy to the fake Anthropic API, so the stand-in cannot stop itself: only the proxy can.
"""
import json
import os
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import http_request, start_fake_anthropic  # noqa: E402
from test_job import CANARY, Job  # noqa: E402

# claude-sonnet-4-5 in src/proxy/prices.h, USD per million tokens
SONNET = {"input_tokens": 3.0, "output_tokens": 15.0, "cache_creation_input_tokens": 3.75,
          "cache_read_input_tokens": 0.30}


@pytest.fixture
def job(ccr_bin, tmp_path):
    return Job(ccr_bin, tmp_path)


@pytest.fixture
def fake_api(servers):
    return start_fake_anthropic(servers, "--expected-key", CANARY)


def messages_sent(api):
    with urllib.request.urlopen(api + "/_fake/requests") as r:
        reqs = json.load(r)
    reqs = reqs.get("requests", reqs) if isinstance(reqs, dict) else reqs
    return [q for q in reqs if q["path"].startswith("/v1/messages")]


def test_proxy_stops_a_runaway_loop_at_the_budget(job, fake_api):
    job.payload("b1", maxBudgetUsd=0.0001, mode={"api_loop": 50, "lines": []})
    rc, out, err = job.run("b1", CCR_ANTHROPIC_UPSTREAM=fake_api)
    assert rc == 1, err
    m = job.meta("b1")
    assert m["status"] == "failed" and m["terminalReason"] == "budget_exceeded", m
    u = m["proxyUsage"]
    sent = messages_sent(fake_api)
    assert u["budget_usd"] == 0.0001 and u["budget_refused"] == 1
    assert len(sent) == u["requests"] < 50, "the loop was stopped, the refused request never left"
    priced = sum(u[k] * SONNET[k] for k in SONNET) / 1e6
    assert abs(u["cost_usd"] - priced) < 1e-12, (u, priced)
    assert u["cost_usd"] >= 0.0001
    # at most one request past the cap: without the last one, the cost was still under it
    last = sent[-1]
    print("budget 0.0001 USD, metered %.6f USD after %d requests (%.6f past the cap)"
          % (u["cost_usd"], u["requests"], u["cost_usd"] - 0.0001))
    assert "budget" in m["error"] and "budget_exceeded" in m["error"], m["error"]
    argv = job.claude_record()["argv"]
    assert argv[argv.index("--max-budget-usd") + 1] == "0.0001"
    assert last["path"].startswith("/v1/messages")


def test_one_request_past_the_cap_at_most(job, fake_api):
    """The cap is set at 2.5 times the cost of a loop's first request.  The run stops with
    n requests sent; the same loop cut to n - 1 requests (no budget) costs less than the
    cap: the proxy let through exactly the one request that crossed it, then refused."""
    job.payload("b0", mode={"api_loop": 1, "lines": []})
    rc, _, err = job.run("b0", CCR_ANTHROPIC_UPSTREAM=fake_api)
    one = job.meta("b0")["proxyUsage"]["cost_usd"]
    assert one > 0, err
    cap = one * 2.5
    job.payload("b2", maxBudgetUsd=cap, mode={"api_loop": 50, "lines": []})
    rc, _, err = job.run("b2", CCR_ANTHROPIC_UPSTREAM=fake_api)
    u = job.meta("b2")["proxyUsage"]
    assert job.meta("b2")["terminalReason"] == "budget_exceeded"
    assert u["budget_refused"] == 1 and u["cost_usd"] >= cap and 2 <= u["requests"] < 50, u
    job.payload("b3", mode={"api_loop": u["requests"] - 1, "lines": []})
    rc, _, err = job.run("b3", CCR_ANTHROPIC_UPSTREAM=fake_api)
    before = job.meta("b3")["proxyUsage"]
    assert before["requests"] == u["requests"] - 1 and before["cost_usd"] < cap, (before, cap)


def test_operator_ceiling_wins_when_smaller(job, fake_api):
    job.payload("b7", maxBudgetUsd=50, mode={"api_loop": 50, "lines": []})
    rc, _, err = job.run("b7", CCR_ANTHROPIC_UPSTREAM=fake_api, CCR_MAX_BUDGET_USD="0.0001")
    m = job.meta("b7")
    assert m["terminalReason"] == "budget_exceeded" and m["proxyUsage"]["budget_usd"] == 0.0001, m
    argv = job.claude_record()["argv"]
    assert argv[argv.index("--max-budget-usd") + 1] == "0.0001"
    # and the request's, when it is the smaller
    job.payload("b4", maxBudgetUsd="0.0002", mode={"lines": []})
    rc, _, err = job.run("b4", CCR_MAX_BUDGET_USD="7")
    assert rc == 0, err
    argv = job.claude_record()["argv"]
    assert argv[argv.index("--max-budget-usd") + 1] == "0.0002"


def test_no_budget_no_flag(job):
    job.payload("b5", mode={"lines": []})
    rc, _, err = job.run("b5")
    assert rc == 0, err
    assert "--max-budget-usd" not in job.claude_record()["argv"]


def test_bad_operator_ceiling_fails_the_task_with_one_clear_error(job):
    job.payload("b6", mode={"lines": []})
    rc, _, err = job.run("b6", CCR_MAX_BUDGET_USD="five")
    m = job.meta("b6")
    assert rc == 1 and m["status"] == "failed"
    assert "CCR_MAX_BUDGET_USD must be a number of US dollars above 0" in m["error"], m


@pytest.mark.parametrize("value,msg", [
    (-1, "maxBudgetUsd must be a number of US dollars above 0 and at most 1e+06"),
    ("lots", "maxBudgetUsd must be a number or a string holding one (such as \"10\")"),
    (True, "maxBudgetUsd must be a number or a string holding one (such as \"10\")"),
    (2e6, "maxBudgetUsd must be a number of US dollars above 0 and at most 1e+06"),
])
def test_bad_max_budget_is_400(local_serve, value, msg):
    srv = local_serve()
    st, _, d = http_request(srv, "POST", "/run", {"prompt": "x", "anthropicApiKey": "k", "maxBudgetUsd": value})
    assert st == 400 and json.loads(d) == {"error": msg}


def test_one_hour_cache_writes_are_priced_at_twice_the_input_rate(job, fake_api):
    usage = {"input_tokens": 1000000, "output_tokens": 0, "cache_read_input_tokens": 1000000,
             "cache_creation_input_tokens": 2000000,
             "cache_creation": {"ephemeral_5m_input_tokens": 1000000, "ephemeral_1h_input_tokens": 1000000}}
    req = urllib.request.Request(fake_api + "/_fake/script", data=json.dumps(
        {"turns": [{"text": "cached", "usage": usage}]}).encode(), headers={"content-type": "application/json"},
        method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    job.payload("b8", mode={"api_loop": 1, "lines": []})
    rc, _, err = job.run("b8", CCR_ANTHROPIC_UPSTREAM=fake_api)
    u = job.meta("b8")["proxyUsage"]
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 a 5-minute cache write, $6 a 1-hour one
    assert abs(u["cost_usd"] - (3.0 + 0.30 + 3.75 + 6.0)) < 1e-9, u
