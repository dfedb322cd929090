"""End to end with the real Claude Code CLI (issue 16), in local mode and in cloud mode, on
the fixtures of tests/test_e2e.py: a spend cap that holds, and Idempotency-Key.

    client -> `ccr serve` -> `ccr job` -> token proxy -> `claude` -> fake Anthropic API
"""
import json

from test_e2e import (SSE, Scenario, body, call, claude_bin, e2e, fake, lines_of, stored_meta,  # noqa: F401
                      task_ids, terminal, wait_status)


def busy_script(n=12):
    """A model that keeps working: n Bash tool calls, then a text."""
    return [{"tool_use": {"name": "Bash", "input": {"command": "echo step %d" % i, "description": "step"}}}
            for i in range(n)] + [{"text": "finished"}]


def test_budget_of_a_ten_thousandth_of_a_dollar_stops_the_task(e2e):
    srv = e2e()
    srv.fake.load_script(busy_script())
    with Scenario(srv, "budget $0.0001"):
        frames = SSE(srv, "POST", "/run", body(maxBudgetUsd=0.0001)).read_all()
    done = terminal(frames)[-1][1]
    (task,) = task_ids(srv)
    meta = stored_meta(srv, task)
    assert meta["status"] == "failed" and meta["terminalReason"] == "budget_exceeded", meta
    assert done["terminalReason"] == "budget_exceeded", done
    u = meta["proxyUsage"]
    main = [q for q in srv.fake.requests() if q.get("kind") == "main"]
    tools = [x for x in lines_of(frames) if x["type"] == "user"]
    print("budget $0.0001 [%s]: metered $%.6f after %d requests (%d refused), $%.6f past the cap; "
          "CLI result subtype %s, CLI estimate $%s"
          % (srv.mode, u["cost_usd"], u["requests"], u["budget_refused"], u["cost_usd"] - 0.0001,
             meta.get("result", {}).get("subtype"), meta.get("result", {}).get("total_cost_usd")))
    assert u["budget_usd"] == 0.0001 and u["cost_usd"] >= 0.0001
    assert len(tools) < 12, "the loop was stopped long before the script ran out"
    assert u["requests"] <= 3, u
    assert main, "the model was asked at least once"
    # stopped by the CLI's own --max-budget-usd (its result subtype) or by the proxy's refusal
    assert (meta["result"].get("subtype") == "error_max_budget_usd") or u["budget_refused"] >= 1, meta

