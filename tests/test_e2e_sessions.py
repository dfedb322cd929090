"""End to end with the real Claude Code CLI (issue 16), in local mode and in cloud mode, on
the fixtures of tests/test_e2e.py:

    client -> `ccr serve` -> `ccr job` -> token proxy -> `claude` -> fake Anthropic API

a budget of $0.0001 stops a task with budget_exceeded; task 1 writes a file and ends, task 2
resumes it (resumeTaskId) and the fake API receives task 1's conversation; a follow-up message
sent mid-task reaches the model and an interrupt ends the turn; a repeated submit with the
same Idempotency-Key gives the same task; in local mode the follow-up requests reach the job
over its message socket, in cloud mode through the storage inbox.  Figures (transcript size,
overshoot, latency) are printed, never asserted.
"""
import json

from test_e2e import (SSE, Scenario, body, call, claude_bin, e2e, fake, lines_of, stored, stored_meta,  # noqa: F401
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



def write_script(path, text):
    return [{"tool_use": {"name": "Write", "input": {"file_path": path, "content": "from task one\n"}}},
            {"text": text}]


def messages_text(req):
    return json.dumps(req["body"].get("messages", []))


def test_resume_continues_the_conversation_in_a_new_task(e2e):
    srv = e2e()
    srv.fake.load_script(write_script("notes.txt", "Wrote notes.txt for you."))
    with Scenario(srv, "resume: task 1"):
        frames = SSE(srv, "POST", "/run", body(prompt="Please write notes.txt (first task marker 7c1e).")).read_all()
    assert terminal(frames)[-1][1]["status"] == "completed", frames[-3:]
    (t1,) = task_ids(srv)
    m1 = stored_meta(srv, t1)
    sid = m1["sessionId"]
    assert sid == m1["result"]["session_id"] and m1["sessionTranscriptBytes"] > 0, m1
    sealed = stored(srv, "sessions/%s/transcript.enc" % t1)
    # the whole phrase: four characters alone turn up in base64 ciphertext now and then
    assert sealed.startswith(b'{"version":"v2-envelope"') and b"first task marker" not in sealed
    print("transcript of task 1 [%s]: %d bytes (sealed %d)" % (srv.mode, m1["sessionTranscriptBytes"], len(sealed)))

    # another credential may not resume it
    st, data = call(srv, "POST", "/run", body(prompt="x", resumeTaskId=t1, anthropicApiKey="sk-ant-someone-else"))
    assert st == 403 and "another credential" in json.loads(data)["error"], data
    st, data = call(srv, "POST", "/run", body(prompt="x", resumeTaskId="no-such-task"))
    assert st == 404, data

    before = len(srv.fake.requests())
    srv.fake.load_script([{"text": "You asked me to write notes.txt, and I did."}])
    with Scenario(srv, "resume: task 2"):
        frames = SSE(srv, "POST", "/run", body(prompt="What did I ask you before?", resumeTaskId=t1)).read_all()
    done = terminal(frames)[-1][1]
    assert done["status"] == "completed", frames[-3:]
    t2 = [t for t in task_ids(srv) if t != t1][0]
    m2 = stored_meta(srv, t2)
    assert m2["resumedFrom"] == t1
    main = [q for q in srv.fake.requests()[before:] if q.get("kind") == "main"]
    assert main, "task 2 asked the model"
    text = messages_text(main[0])
    # task 1's conversation: its prompt, the Write call and its answer, then task 2's prompt
    assert "first task marker 7c1e" in text and "notes.txt" in text and "Wrote notes.txt for you." in text, text[:2000]
    assert "What did I ask you before?" in text
    assert text.index("7c1e") < text.index("What did I ask you before?")


def test_follow_up_message_and_interrupt_reach_the_real_cli(e2e):
    import datetime
    import time
    srv = e2e(CCR_INBOX_POLL_MS=200)
    srv.fake.load_script([{"text": "first reply"}, {"text": "second reply"},
                          {"text": "a reply that never comes", "stall": "forever", "stall_at": "start"},
                          {"text": "after the interrupt"}])
    stream = SSE(srv, "POST", "/run", body(prompt="Opening words.", idleAfterResultSeconds=60))
    results, task, sent_at, lat = 0, None, {}, []
    with Scenario(srv, "conversation: message + interrupt + end"):
        for ev, _, data in stream:
            if ev is not None:
                continue
            x = json.loads(data)
            if x.get("type") == "user" and isinstance(x["message"]["content"], list) and \
                    x["message"]["content"][0].get("text") in sent_at:
                t = datetime.datetime.fromisoformat(x["timestamp"].replace("Z", "+00:00")).timestamp()
                lat.append(t - sent_at[x["message"]["content"][0]["text"]])
            if x.get("type") != "result":
                continue
            results += 1
            task = task or [t for t in task_ids(srv)][0]
            if results == 1:
                sent_at["A follow-up, marker 9b3f."] = time.time()
                st, data = call(srv, "POST", "/tasks/%s/messages" % task, {"text": "A follow-up, marker 9b3f."})
                assert st == 202, data
            elif results == 2:
                st, data = call(srv, "POST", "/tasks/%s/messages" % task, {"text": "Now something slow."})
                assert st == 202, data
                deadline = time.time() + 30
                while len([q for q in srv.fake.requests() if q.get("kind") == "main"]) < 3:
                    assert time.time() < deadline, "the third turn never reached the model"
                    time.sleep(0.05)
                st, data = call(srv, "POST", "/tasks/%s/interrupt" % task)
                assert st == 202, data
            elif results == 3:
                # the interrupted turn ended; the conversation goes on
                st, data = call(srv, "POST", "/tasks/%s/messages" % task, {"text": "Carry on."})
                assert st == 202, data
            elif results == 4:
                st, data = call(srv, "POST", "/tasks/%s/end" % task)
                assert st == 202, data
    frames = stream.frames
    done = terminal(frames)[-1][1]
    lines = lines_of(frames)
    if done["status"] != "completed":
        for x in lines:
            print("LINE", json.dumps(x)[:400])
        print("DONE", done)
    assert done["status"] == "completed", done
    res = [x for x in lines if x["type"] == "result"]
    assert len(res) == 4, [x.get("result") for x in res]
    assert res[0]["result"] == "first reply" and res[1]["result"] == "second reply"
    assert res[3]["result"] == "after the interrupt"
    assert any(x["type"] == "control_response" for x in lines)
    assert any(x["type"] == "user" and "[Request interrupted by user]" in json.dumps(x) for x in lines)
    main = [q for q in srv.fake.requests() if q.get("kind") == "main"]
    assert "marker 9b3f" in json.dumps(main[1]["body"]["messages"]), "the follow-up reached the model"
    assert len(main) == 4, "the interrupted turn was not retried"
    assert "Carry on." in json.dumps(main[3]["body"]["messages"])
    ways = [(x["kind"], x["via"]) for x in list(srv.lines)
            if x.get("message") == "task inbox: accepted" and x.get("task_id") == task]
    way = "socket" if srv.mode == "local" else "inbox"    # local: straight to the job; cloud: storage
    assert ways == [("message", way), ("message", way), ("interrupt", way), ("message", way), ("end", way)], ways
    print("interrupted turn's result [%s]: %s" % (srv.mode, {k: res[2].get(k) for k in ("subtype", "is_error")}))
    print("POST /tasks/:id/messages -> CLI took it [%s, real CLI]: %s ms"
          % (srv.mode, ", ".join("%.0f" % (x * 1000) for x in lat)))


def test_idempotency_key_gives_the_same_task_with_the_real_cli(e2e, hook_url):
    srv = e2e(CCR_ALLOW_PRIVATE_CALLBACKS=1)
    srv.fake.load_script([{"text": "done once"}])
    b = body(prompt="Do it once.", callbackUrl=hook_url)
    with Scenario(srv, "Idempotency-Key repeat"):
        st1, d1 = call(srv, "POST", "/run-async", b, {"Idempotency-Key": "e2e-once-1"})
        st2, d2 = call(srv, "POST", "/run-async", b, {"Idempotency-Key": "e2e-once-1"})
        assert st1 == st2 == 202, (d1, d2)
        assert json.loads(d1) == json.loads(d2)
        task = json.loads(d1)["taskId"]
        meta = wait_status(srv, task, ("completed", "failed", "cancelled"))
    assert meta["status"] == "completed", meta
    assert task_ids(srv) == [task], "one task"
    assert len([q for q in srv.fake.requests() if q.get("kind") == "main"]) == 1, "the model was asked once"
    st3, d3 = call(srv, "POST", "/run-async", b, {"Idempotency-Key": "e2e-once-1"})
    assert st3 == 202 and json.loads(d3)["taskId"] == task


def test_end_right_after_an_interrupt_completes_the_task(e2e):
    import time
    srv = e2e(CCR_INBOX_POLL_MS=200)
    srv.fake.load_script([{"text": "a reply that never comes", "stall": "forever", "stall_at": "start"}])
    stream = SSE(srv, "POST", "/run", body(prompt="Take your time.", idleAfterResultSeconds=60))
    deadline = time.time() + 30
    while not [q for q in srv.fake.requests() if q.get("kind") == "main"]:
        assert time.time() < deadline, "the turn never reached the model"
        time.sleep(0.05)
    (task,) = task_ids(srv)
    assert call(srv, "POST", "/tasks/%s/interrupt" % task)[0] == 202
    for ev, _, data in stream:
        if ev is None and json.loads(data).get("type") == "result":
            assert call(srv, "POST", "/tasks/%s/end" % task)[0] == 202
    done = terminal(stream.frames)[-1][1]
    assert done["status"] == "completed" and done["exitCode"] == 0, done
