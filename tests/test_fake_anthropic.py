"""Tests of the fake Anthropic Messages API (tests/fakes/fake_anthropic.py),
and of the real Claude Code CLI (pinned in vendor/claude-code.lock) driven
against it.

Run: /usr/bin/python3 -m pytest tests/test_fake_anthropic.py -q
The real-CLI tests install the CLI with tests/fakes/install-claude (about
190 MB from the npm registry the first time, cached in $CCR_CACHE_DIR); they
are skipped only when that script says the registry cannot be reached (exit 3).
"""

import http.client
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakes import testenv  # noqa: E402
from fakes.fake_anthropic import FakeAnthropic, classify_messages_request  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
FAKES = HERE / "fakes"
FAKE_SCRIPT = FAKES / "fake_anthropic.py"
INSTALL_CLAUDE = FAKES / "install-claude"
MCP_ECHO = FAKES / "mcp_echo.py"
PYTHON = "/usr/bin/python3"
KEY = "sk-ant-test-0123456789"


# --------------------------------------------------------------------------
# a small client


def post(port, path, body, headers=None, timeout=30):
    """POST JSON; return (status, headers, raw body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    h.update(headers if headers is not None else {"x-api-key": KEY})
    conn.request("POST", path, body=json.dumps(body), headers=h)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def get(port, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def parse_sse(raw):
    """Parse an SSE body into [(event, data-dict)], strictly: every event
    must be exactly one `event:` line and one `data:` line."""
    text = raw.decode("utf-8")
    assert text.endswith("\n\n"), "stream must end with a blank line"
    events = []
    for frame in text.split("\n\n")[:-1]:
        lines = frame.split("\n")
        assert len(lines) == 2, "frame is not one event: + one data: line: %r" % frame
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        events.append((lines[0][len("event: "):], json.loads(lines[1][len("data: "):])))
    return events


def msg_body(stream=True, **kw):
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello"}],
        "tools": [{"name": "Write", "description": "write a file",
                   "input_schema": {"type": "object", "properties": {}}}],
    }
    body.update(kw)
    return body


def check_event_order(events):
    """Assert the Messages streaming grammar; return the content blocks
    reassembled from the deltas (tool_use input parsed from partial JSON)."""
    names = [e for e, _ in events]
    for name, data in events:
        assert data["type"] == name, "event name and data.type differ: %s" % name
    body = [(e, d) for e, d in events if e != "ping"]
    assert body[0][0] == "message_start"
    assert body[-1][0] == "message_stop"
    assert body[-2][0] == "message_delta"
    blocks, cur = [], None
    for name, data in body[1:-2]:
        if name == "content_block_start":
            assert cur is None, "block started inside another"
            assert data["index"] == len(blocks), "block indexes must be contiguous"
            cur = dict(data["content_block"])
            cur["_json"] = ""
        elif name == "content_block_delta":
            assert cur is not None and data["index"] == len(blocks)
            d = data["delta"]
            if d["type"] == "text_delta":
                cur["text"] += d["text"]
            elif d["type"] == "input_json_delta":
                cur["_json"] += d["partial_json"]
                cur["_pieces"] = cur.get("_pieces", 0) + 1
            elif d["type"] == "thinking_delta":
                cur["thinking"] += d["thinking"]
            elif d["type"] == "signature_delta":
                cur["signature"] = d["signature"]
        elif name == "content_block_stop":
            assert cur is not None and data["index"] == len(blocks)
            if cur["type"] == "tool_use":
                cur["input"] = json.loads(cur["_json"])
            blocks.append(cur)
            cur = None
        else:
            raise AssertionError("unexpected event %s inside the message: %s" % (name, names))
    assert cur is None
    return blocks


@pytest.fixture
def fake():
    with FakeAnthropic() as f:
        yield f


# --------------------------------------------------------------------------
# protocol tests


def test_text_stream_frames_and_usage(fake):
    fake.load_script([{"text": "Hello there, world"}])
    status, headers, raw = post(fake.port, "/v1/messages?beta=true", msg_body())
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = parse_sse(raw)
    names = [e for e, _ in events]
    assert names[0] == "message_start"
    assert "ping" in names
    blocks = check_event_order(events)
    assert [b["type"] for b in blocks] == ["text"]
    assert blocks[0]["text"] == "Hello there, world"
    assert sum(1 for e, d in events if e == "content_block_delta") >= 2

    start = events[0][1]["message"]
    assert start["role"] == "assistant" and start["type"] == "message"
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["id"].startswith("msg_") and start["model"] == "claude-sonnet-4-5"
    for field in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                  "cache_read_input_tokens"):
        assert isinstance(start["usage"][field], int)
    delta = [d for e, d in events if e == "message_delta"][0]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] >= 1
    assert delta["usage"]["input_tokens"] == start["usage"]["input_tokens"]


def test_tool_use_partial_json_reassembles(fake):
    inp = {"file_path": "/tmp/x/hello.txt", "content": "hi from fake, " * 5}
    fake.load_script([{"text": "Writing.", "tool_use": {"name": "Write", "input": inp}}])
    status, _, raw = post(fake.port, "/v1/messages", msg_body())
    assert status == 200
    events = parse_sse(raw)
    blocks = check_event_order(events)
    assert [b["type"] for b in blocks] == ["text", "tool_use"]
    tool = blocks[1]
    assert tool["name"] == "Write" and tool["id"].startswith("toolu_")
    assert tool["input"] == inp
    assert tool["_pieces"] >= 3, "input must be split over several input_json_delta events"
    start = [d for e, d in events if e == "content_block_start"][1]
    assert start["content_block"]["input"] == {}
    delta = [d for e, d in events if e == "message_delta"][0]
    assert delta["delta"]["stop_reason"] == "tool_use"


def test_explicit_content_thinking_and_two_tools(fake):
    fake.load_script([{"content": [
        {"type": "thinking", "thinking": "let me think"},
        {"type": "tool_use", "name": "Read", "input": {"file_path": "a"}, "id": "toolu_01A"},
        {"type": "tool_use", "name": "Read", "input": {"file_path": "b"}},
    ]}])
    _, _, raw = post(fake.port, "/v1/messages", msg_body())
    blocks = check_event_order(parse_sse(raw))
    assert [b["type"] for b in blocks] == ["thinking", "tool_use", "tool_use"]
    assert blocks[0]["thinking"] == "let me think" and blocks[0]["signature"]
    assert blocks[1]["id"] == "toolu_01A" and blocks[2]["input"] == {"file_path": "b"}
    assert blocks[1]["id"] != blocks[2]["id"]


def test_non_streaming_full_message(fake):
    inp = {"command": "ls"}
    fake.load_script([{"tool_use": {"name": "Bash", "input": inp}}])
    status, headers, raw = post(fake.port, "/v1/messages", msg_body(stream=False))
    assert status == 200 and headers["content-type"] == "application/json"
    msg = json.loads(raw)
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["stop_reason"] == "tool_use"
    assert msg["content"][0]["type"] == "tool_use" and msg["content"][0]["input"] == inp
    assert msg["usage"]["input_tokens"] > 0 and msg["usage"]["output_tokens"] > 0


def test_turns_consumed_in_order_then_default(fake):
    fake.load_script(["one", {"text": "two"}])
    texts = []
    for _ in range(3):
        _, _, raw = post(fake.port, "/v1/messages", msg_body(stream=False))
        texts.append(json.loads(raw)["content"][0]["text"])
    assert texts == ["one", "two", "fake: script exhausted"]
    assert [r["turn"] for r in fake.requests()] == [0, 1, None]


def test_side_requests_do_not_consume_turns(fake):
    fake.load_script(["main answer"])
    # small/fast model, no tools
    _, _, raw = post(fake.port, "/v1/messages", {
        "model": "claude-haiku-4-5", "max_tokens": 512, "stream": True,
        "messages": [{"role": "user", "content": "summarize"}]})
    blocks = check_event_order(parse_sse(raw))
    assert blocks[0]["text"] == "Fake session"
    # quota probe
    _, _, raw = post(fake.port, "/v1/messages", {
        "model": "claude-sonnet-4-5", "max_tokens": 1,
        "messages": [{"role": "user", "content": "quota"}]})
    assert json.loads(raw)["type"] == "message"
    # session title: JSON-schema output format gets a JSON answer
    _, _, raw = post(fake.port, "/v1/messages", {
        "model": "claude-sonnet-4-5", "max_tokens": 256, "stream": False,
        "messages": [{"role": "user", "content": "title please"}],
        "output_config": {"format": {"type": "json_schema", "schema": {
            "type": "object", "properties": {"title": {"type": "string"}},
            "required": ["title"]}}}})
    assert json.loads(json.loads(raw)["content"][0]["text"]) == {"title": "Fake session"}
    # the main request still gets turn 0
    _, _, raw = post(fake.port, "/v1/messages", msg_body(stream=False))
    assert json.loads(raw)["content"][0]["text"] == "main answer"
    assert [r["kind"] for r in fake.requests()] == ["side", "side", "side", "main"]


def test_classifier():
    main = {"model": "claude-opus-5-5", "max_tokens": 128000, "messages": [],
            "tools": [{"name": "Bash"}]}
    assert classify_messages_request(main) == "main"
    assert classify_messages_request(dict(main, tools=[])) == "main"
    assert classify_messages_request(dict(main, tools=[], model="claude-haiku-4-5")) == "side"
    assert classify_messages_request(main, {"x-claude-code-request-class": "auxiliary"}) == "side"
    assert classify_messages_request(main, {"x-claude-code-request-class": "subagent"}) == "main"


def test_auth_wrong_missing_and_bearer():
    with FakeAnthropic(script=["a", "b", "c"], expected_key=KEY) as fake:
        status, headers, raw = post(fake.port, "/v1/messages", msg_body(),
                                    headers={"x-api-key": "sk-wrong"})
        assert status == 401
        err = json.loads(raw)
        assert err["type"] == "error"
        assert err["error"]["type"] == "authentication_error" and err["error"]["message"]
        assert headers["content-type"] == "application/json"
        status, _, raw = post(fake.port, "/v1/messages", msg_body(), headers={})
        assert status == 401 and json.loads(raw)["error"]["type"] == "authentication_error"
        status, _, _ = post(fake.port, "/v1/messages", msg_body(stream=False),
                            headers={"authorization": "Bearer " + KEY})
        assert status == 200
        status, _, _ = post(fake.port, "/v1/messages", msg_body(stream=False))
        assert status == 200
        creds = [(r["credential"]["kind"], r["credential"]["value"], r["status"])
                 for r in fake.requests()]
        assert creds == [("x-api-key", "sk-wrong", 401), (None, None, 401),
                         ("bearer", KEY, 200), ("x-api-key", KEY, 200)]
        # a rejected request consumes no turn
        assert [r["turn"] for r in fake.requests()] == [None, None, 0, 1]


@pytest.mark.parametrize("status,etype", [(400, "invalid_request_error"), (429, "rate_limit_error"),
                                          (500, "api_error"), (529, "overloaded_error")])
def test_scripted_http_errors(fake, status, etype):
    fake.load_script([{"error": {"status": status, "headers": {"retry-after": "0"}}}, "after"])
    st, headers, raw = post(fake.port, "/v1/messages", msg_body())
    assert st == status and headers["retry-after"] == "0" and "request-id" in headers
    err = json.loads(raw)
    assert err["type"] == "error" and err["error"]["type"] == etype
    st, _, raw = post(fake.port, "/v1/messages", msg_body(stream=False))
    assert st == 200 and json.loads(raw)["content"][0]["text"] == "after"


def test_times_repeats_a_turn(fake):
    fake.load_script([{"error": {"status": 529, "message": "Overloaded"}, "times": 2}, "ok"])
    got = [post(fake.port, "/v1/messages", msg_body(stream=False))[0] for _ in range(3)]
    assert got == [529, 529, 200]


def test_bad_request_and_unknown_path(fake):
    st, _, raw = post(fake.port, "/v1/messages", {"model": "m", "messages": []})
    assert st == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    st, raw = get(fake.port, "/v1/nope", {"x-api-key": KEY})
    assert st == 404 and json.loads(raw)["error"]["type"] == "not_found_error"


def test_count_tokens_models_and_probes(fake):
    st, _, raw = post(fake.port, "/v1/messages/count_tokens?beta=true",
                      {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x" * 400}]})
    assert st == 200 and json.loads(raw)["input_tokens"] >= 100
    st, raw = get(fake.port, "/v1/models?limit=1000", {"x-api-key": KEY})
    models = json.loads(raw)
    assert st == 200 and models["has_more"] is False
    assert all("claude" in m["id"] and m["type"] == "model" for m in models["data"])
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    conn.request("HEAD", "/api/hello")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    conn.close()
    st, _, _ = post(fake.port, "/api/event_logging/batch", {"events": []})
    assert st == 200
    assert [r["kind"] for r in fake.requests()] == ["count_tokens", "models", "hello", "telemetry"]


def test_stream_error_event(fake):
    fake.load_script([{"text": "partial answer", "stream_error": {"type": "overloaded_error",
                                                                  "message": "Overloaded"}}])
    _, _, raw = post(fake.port, "/v1/messages", msg_body())
    events = parse_sse(raw)
    assert events[0][0] == "message_start"
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error",
                                                              "message": "Overloaded"}})
    assert "message_stop" not in [e for e, _ in events]


def test_drop_mid_stream(fake):
    fake.load_script([{"text": "this will be cut off", "drop": True}])
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    conn.request("POST", "/v1/messages", body=json.dumps(msg_body()),
                 headers={"x-api-key": KEY, "content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        resp.read()
    conn.close()


def test_stall_with_pings(fake):
    fake.load_script([{"text": "slow reply here", "stall": 1.2, "stall_pings": 0.3}])
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    t0 = time.monotonic()
    conn.request("POST", "/v1/messages", body=json.dumps(msg_body()),
                 headers={"x-api-key": KEY, "content-type": "application/json"})
    resp = conn.getresponse()
    raw = resp.read()
    elapsed = time.monotonic() - t0
    conn.close()
    events = parse_sse(raw)
    assert 1.1 <= elapsed < 5
    assert [e for e, _ in events].count("ping") >= 4  # 1 normal + >= 3 during the stall
    assert check_event_order(events)[0]["text"] == "slow reply here"


def test_stall_at_start_only_pings_until_client_leaves(fake):
    fake.load_script([{"stall": "forever", "stall_pings": 0.2, "stall_at": "start"}])
    sock = socket.create_connection(("127.0.0.1", fake.port), timeout=5)
    body = json.dumps(msg_body()).encode()
    sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: " + KEY.encode()
                 + b"\r\ncontent-type: application/json\r\ncontent-length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    deadline = time.monotonic() + 5
    while got.count(b"event: ping") < 3 and time.monotonic() < deadline:
        got += sock.recv(65536)
    sock.close()
    assert b"event: message_start" in got and got.count(b"event: ping") >= 3
    assert b"content_block_start" not in got
    deadline = time.monotonic() + 5  # the server notices at its next ping
    while fake.requests()[-1]["status"] != "client-gone" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.requests()[-1]["status"] == "client-gone"


def test_bad_turn_answers_500_with_reason(fake):
    fake.load_script([{"tool_use": {"input": {}}}, "next"])  # no tool name
    st, _, raw = post(fake.port, "/v1/messages", msg_body())
    assert st == 500 and "KeyError" in json.loads(raw)["error"]["message"]
    st, _, raw = post(fake.port, "/v1/messages", msg_body(stream=False))
    assert st == 200 and json.loads(raw)["content"][0]["text"] == "next"


def test_delay_before_headers(fake):
    fake.load_script([{"text": "late", "delay": 0.8}])
    t0 = time.monotonic()
    st, _, raw = post(fake.port, "/v1/messages", msg_body(stream=False))
    assert st == 200 and time.monotonic() - t0 >= 0.75


def test_cli_process_listening_script_file_and_quiet_console(tmp_path):
    """The script form: --port 0 prints LISTENING <port>; --script loads turns;
    POST /_fake/script replaces them; credentials never reach the console."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"turns": ["from file"], "expected_key": KEY}))
    err = tmp_path / "err"
    srv = testenv.start_server([PYTHON, FAKE_SCRIPT, "--port", "0", "--script", script, "--verbose"],
                               testenv.listening_line, timeout=10, stderr=err)
    try:
        assert srv.lines[0].startswith("LISTENING ")
        port = srv.port
        st, _, raw = post(port, "/v1/messages", msg_body(stream=False))
        assert st == 200 and json.loads(raw)["content"][0]["text"] == "from file"
        st, _, _ = post(port, "/v1/messages", msg_body(stream=False),
                        headers={"authorization": "Bearer sk-secret-wrong"})
        assert st == 401
        st, _, raw = post(port, "/_fake/script", ["from post"], headers={})
        assert st == 200 and json.loads(raw)["remaining"] == 1
        # the script posted without expected_key falls back to the server's (none)
        st, _, raw = post(port, "/v1/messages", msg_body(stream=False), headers={"x-api-key": "any"})
        assert st == 200 and json.loads(raw)["content"][0]["text"] == "from post"
        st, raw = get(port, "/_fake/requests")
        reqs = json.loads(raw)
        assert [r["credential"]["value"] for r in reqs] == [KEY, "sk-secret-wrong", "any"]
    finally:
        rc = srv.stop(timeout=10)
    console = "\n".join(srv.lines) + err.read_text()
    assert "POST /v1/messages" in console  # --verbose logs request lines...
    assert KEY not in console and "sk-secret-wrong" not in console  # ...never credentials
    assert rc == 0


# --------------------------------------------------------------------------
# installer


def test_install_claude_registry_unreachable_exits_3(tmp_path):
    if not shutil.which("npm"):
        pytest.skip("npm is not installed")
    port = testenv.free_port()  # nothing listens there now
    env = dict(os.environ, CCR_CACHE_DIR=str(tmp_path / "cache"),
               npm_config_registry="http://127.0.0.1:%d/" % port,
               npm_config_cache=str(tmp_path / "npm-cache"))
    r = subprocess.run([str(INSTALL_CLAUDE)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert r.stdout == ""
    assert "registry cannot be reached" in r.stderr.strip().splitlines()[-1]
    assert not list((tmp_path / "cache").glob("claude-code-*"))


# --------------------------------------------------------------------------
# the real Claude Code CLI


@pytest.fixture(scope="session")
def claude_bin():
    t0 = time.monotonic()
    r = subprocess.run([str(INSTALL_CLAUDE)], capture_output=True, text=True, timeout=1800)
    if r.returncode == 3:
        pytest.skip("Claude Code CLI not installed: " + r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0, "install-claude failed (%d): %s" % (r.returncode, r.stderr)
    path = r.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK)
    print("install-claude: %s in %.1fs" % (path, time.monotonic() - t0))
    return path


def claude_env(home, base_url, key=KEY, **extra):
    """The minimal environment the CLI needs to run offline against the fake."""
    env = {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": key,
        # no telemetry, error reports, auto-update, release notes, /api/hello probe...
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    if os.geteuid() == 0:
        # --dangerously-skip-permissions refuses to run as root unless told it
        # is in a deliberate sandbox.
        env["IS_SANDBOX"] = "1"
    env.update(extra)
    return env


def run_claude(claude, cwd, env, prompt, *args, timeout=180):
    argv = [claude, "-p", "--output-format", "stream-json", "--verbose",
            "--dangerously-skip-permissions", *args]
    t0 = time.monotonic()
    r = subprocess.run(argv, cwd=cwd, env=env, input=prompt, capture_output=True, text=True,
                       timeout=timeout)
    dt = time.monotonic() - t0
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    return r, lines, dt


def test_real_cli_write_tool_roundtrip(claude_bin, tmp_path, record_property):
    ws, home = tmp_path / "ws", tmp_path / "home"
    ws.mkdir()
    home.mkdir()
    script = [
        {"tool_use": {"name": "Write", "input": {"file_path": str(ws / "hello.txt"),
                                                  "content": "hi from fake"}}},
        {"text": "done"},
    ]
    with FakeAnthropic(script=script, expected_key=KEY) as fake:
        r, lines, dt = run_claude(claude_bin, ws, claude_env(home, fake.url),
                                  "Write hi from fake into hello.txt\n")
        reqs = fake.requests()
    record_property("claude_run_seconds", round(dt, 2))
    print("real CLI run (2 turns, Write tool): %.2fs" % dt)
    assert r.returncode == 0, r.stderr + r.stdout[-2000:]

    types = [(x.get("type"), x.get("subtype")) for x in lines]
    assert types[0] == ("system", "init")
    init = lines[0]
    assert init["cwd"] == str(ws) and "Write" in init["tools"]
    order = []
    for x in lines:
        if x["type"] == "assistant":
            order.append("assistant:" + x["message"]["content"][0]["type"])
        elif x["type"] == "user":
            c = x["message"]["content"]
            if isinstance(c, list) and c and c[0].get("type") == "tool_result":
                order.append("user:tool_result")
        elif x["type"] == "result":
            order.append("result")
    assert order == ["assistant:tool_use", "user:tool_result", "assistant:text", "result"]
    tool_use = next(x for x in lines if x["type"] == "assistant")["message"]["content"][0]
    tool_result = next(x for x in lines if x["type"] == "user")["message"]["content"][0]
    assert tool_use["name"] == "Write"
    assert tool_result["tool_use_id"] == tool_use["id"] and not tool_result.get("is_error")
    result = lines[-1]
    assert result["type"] == "result" and result["is_error"] is False
    assert result["result"] == "done" and result["num_turns"] == 2

    assert (ws / "hello.txt").read_text() == "hi from fake"

    msgs = [q for q in reqs if q["path"] == "/v1/messages"]
    assert [q["kind"] for q in msgs] == ["main", "main"] and [q["turn"] for q in msgs] == [0, 1]
    assert all(q["credential"] == {"kind": "x-api-key", "value": KEY} for q in reqs)
    assert all(q["status"] == 200 for q in reqs)
    # the second request carries the tool result of the first turn
    last = msgs[1]["body"]["messages"][-1]
    assert any(b.get("type") == "tool_result" and b.get("tool_use_id") == tool_use["id"]
               for b in last["content"] if isinstance(b, dict))
    assert msgs[0]["headers"]["anthropic-version"] == "2023-06-01"
    assert msgs[0]["headers"]["user-agent"].startswith("claude-cli/")
    assert msgs[0]["body"]["stream"] is True


def test_real_cli_mcp_stdio_server(claude_bin, tmp_path):
    ws, home = tmp_path / "ws", tmp_path / "home"
    ws.mkdir()
    home.mkdir()
    log = tmp_path / "mcp.log"
    cfg = tmp_path / "mcp.json"
    cfg.write_text(json.dumps({"mcpServers": {"echo": {
        "command": PYTHON, "args": [str(MCP_ECHO)], "env": {"MCP_ECHO_LOG": str(log)}}}}))
    script = [{"tool_use": {"name": "mcp__echo__echo", "input": {"text": "ping-42"}}},
              {"text": "echoed"}]
    with FakeAnthropic(script=script, expected_key=KEY) as fake:
        r, lines, dt = run_claude(claude_bin, ws, claude_env(home, fake.url), "use echo\n",
                                  "--mcp-config", str(cfg))
    print("real CLI run with MCP server: %.2fs" % dt)
    assert r.returncode == 0, r.stderr + r.stdout[-2000:]
    init = lines[0]
    assert (init["type"], init["subtype"]) == ("system", "init")
    servers = {s["name"]: s["status"] for s in init["mcp_servers"]}
    assert servers.get("echo") == "connected", init["mcp_servers"]
    assert "mcp__echo__echo" in init["tools"]
    results = [b for x in lines if x["type"] == "user" for b in x["message"]["content"]
               if isinstance(b, dict) and b.get("type") == "tool_result"]
    assert results and "ping-42" in json.dumps(results[0]["content"])
    methods = [json.loads(x).get("method") for x in log.read_text().splitlines()]
    assert "initialize" in methods and "tools/list" in methods and "tools/call" in methods
    assert lines[-1]["type"] == "result" and lines[-1]["result"] == "echoed"


def test_real_cli_wrong_key_fails_fast(claude_bin, tmp_path):
    """With the wrong key the fake answers 401; the CLI retries 401 like a
    server error (10 times, minutes of backoff) unless CLAUDE_CODE_MAX_RETRIES=0."""
    ws, home = tmp_path / "ws", tmp_path / "home"
    ws.mkdir()
    home.mkdir()
    with FakeAnthropic(script=["never"], expected_key="sk-the-real-key") as fake:
        r, lines, dt = run_claude(claude_bin, ws,
                                  claude_env(home, fake.url, CLAUDE_CODE_MAX_RETRIES="0"),
                                  "hi\n", timeout=120)
        reqs = fake.requests()
    assert r.returncode == 1
    result = lines[-1]
    assert result["type"] == "result" and result["is_error"] is True
    assert result["api_error_status"] == 401
    assert [q["status"] for q in reqs] == [401]
    assert reqs[0]["credential"]["value"] == KEY


def test_real_cli_subagent_turns(claude_bin, tmp_path):
    """The Task tool runs a subagent concurrently with the main thread; its
    requests (x-claude-code-agent-id) take turns from subagent_turns.  In
    2.1.332 the main thread answers "Async agent launched" at once, so the
    stream can hold two init and two result lines (the second after the
    task notification)."""
    ws, home = tmp_path / "ws", tmp_path / "home"
    ws.mkdir()
    home.mkdir()
    script = {
        "turns": [{"tool_use": {"name": "Task", "input": {
            "description": "sub job", "prompt": "report", "subagent_type": "general-purpose"}}},
            "main-1", "main-2"],
        "subagent_turns": ["sub-report"],
        "default": "main-extra",
        "expected_key": KEY,
    }
    with FakeAnthropic(script=script) as fake:
        r, lines, dt = run_claude(claude_bin, ws, claude_env(home, fake.url), "delegate\n")
        reqs = fake.requests()
    print("real CLI run with a subagent: %.2fs" % dt)
    assert r.returncode == 0, r.stderr + r.stdout[-2000:]
    sub = [q for q in reqs if q["subagent"]]
    assert len(sub) == 1 and sub[0]["turn"] == 0 and sub[0]["kind"] == "main"
    assert sub[0]["headers"]["x-claude-code-agent-id"]
    task_id = next(x for x in lines if x["type"] == "assistant")["message"]["content"][0]["id"]
    sub_msgs = [x for x in lines if x["type"] == "assistant"
                and x.get("parent_tool_use_id") == task_id]
    assert [m["message"]["content"][0]["text"] for m in sub_msgs] == ["sub-report"]
    main_turns = [q["turn"] for q in reqs if q["path"] == "/v1/messages" and not q["subagent"]]
    assert main_turns[:2] == [0, 1]
    assert lines[-1]["type"] == "result" and lines[-1]["is_error"] is False
    assert all(q["credential"]["value"] == KEY for q in reqs)
