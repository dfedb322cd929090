#!/usr/bin/python3
"""Fake Anthropic Messages API for driving the real Claude Code CLI in tests.

Run:  /usr/bin/python3 tests/fakes/fake_anthropic.py --port 0 [--script FILE]
      [--expected-key KEY] [--host 127.0.0.1] [--verbose]
Prints "LISTENING <port>" on stdout once it accepts connections.

Point the CLI at it with ANTHROPIC_BASE_URL=http://127.0.0.1:<port>.

Script
------
A script is a JSON list of turns, or an object
    {"turns": [...], "subagent_turns": [...], "expected_key": "...",
     "default": {turn}, "side_default": {turn}}
loaded with --script FILE or POST /_fake/script (which replaces the script and
resets the turn cursor; fields it leaves out return to the server's settings, e.g.
expected_key to --expected-key; the request log is kept -- DELETE /_fake/requests
clears it).

Each turn answers the next *main-conversation* request to POST /v1/messages.
Side requests (the CLI's small/fast-model calls: titles, summaries, quota
probes...; see classify_messages_request) never consume a turn; they get
`side_default` (text "Fake session"), or when they ask for a json_schema output
format, a JSON object shaped by that schema ({"title": "Fake session"}).

Turn fields (all optional; a turn may also be a bare string = text reply):
    "text": "..."                         one text block
    "tool_use": {"name", "input", "id"?}  one tool_use block (or a list of them)
    "content": [blocks]                   explicit blocks: {"type":"text","text"},
                                          {"type":"tool_use","name","input","id"?},
                                          {"type":"thinking","thinking","signature"?}
    "stop_reason": "end_turn"|...         default: "tool_use" if any tool_use else "end_turn"
    "usage": {...}                        merged into the reported usage
    "error": {"status": 529, "type": "overloaded_error", "message": "...",
              "headers": {...}}           answer an HTTP error instead (Anthropic error shape)
    "stream_error": {"type", "message"}   send `event: error` mid-stream, then end the stream
    "drop": true                          close the connection mid-stream (no final chunk)
    "delay": seconds                      sleep before sending response headers
    "event_delay": seconds                sleep between SSE events
    "stall": seconds | "forever"          go silent mid-stream; "forever" = until the client
                                          hangs up (capped by --max-stall, default 900 s)
    "stall_pings": seconds                during the stall send a `ping` every N seconds
                                          (stall + stall_pings = "only pings")
    "stall_at": "delta" | "start"         where the mid-stream actions (stall, drop,
                                          stream_error, in that order) happen: after the
                                          first non-empty delta of the first block (default)
                                          or right after message_start (no block yet)
    "times": n                            answer n consecutive main requests with this turn
                                          (e.g. an error the CLI retries)
    "json_chunk": n                       partial_json piece size (default 12 chars)

When the script runs out, main requests get `default` (text "fake: script exhausted").

Subagents (the Task tool) run concurrently with the main thread in Claude Code
2.1.332, so their requests interleave with it unpredictably.  Their requests
carry an x-claude-code-agent-id header; when the script has "subagent_turns",
those requests take turns from that list instead of "turns" (the request log
marks them "subagent": true; "turn" is then an index into subagent_turns).

Control / inspection endpoints (no credential needed):
    GET    /_fake/requests   every request seen: method, path, query, headers (credential
                             values included, for assertions), credential, body, kind,
                             turn index, status
    DELETE /_fake/requests   clear that log
    POST   /_fake/script     load a script (see above)
    GET    /_fake/state      cursor, remaining turns, expected key set or not
    GET    /_fake/health     200 "ok"

Credentials are never written to the console (stdout/stderr).
"""

import argparse
import itertools
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

STATUS_TEXT = {529: "Overloaded"}

CREDENTIAL_HEADERS = ("x-api-key", "authorization", "proxy-authorization", "cookie")

MODELS = [
    ("claude-opus-4-5", "Claude Opus 4.5"),
    ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
    ("claude-haiku-4-5", "Claude Haiku 4.5"),
]

DEFAULT_MAIN_REPLY = {"text": "fake: script exhausted"}
DEFAULT_SIDE_REPLY = {"text": "Fake session"}


def _rid(prefix, n=24):
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


def estimate_tokens(obj):
    if obj is None:
        return 0
    if not isinstance(obj, str):
        obj = json.dumps(obj, separators=(",", ":"))
    return max(1, len(obj) // 4)


def split_pieces(s, size):
    size = max(1, int(size))
    return [s[i:i + size] for i in range(0, len(s), size)] or [""]


def split_text(s):
    """Split text into a few word-ish deltas (at least one)."""
    if len(s) <= 4:
        return [s]
    out, cur = [], ""
    for ch in s:
        cur += ch
        if ch == " " and len(cur) >= 4:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


# --------------------------------------------------------------------------
# request classification


def _system_text(body):
    system = body.get("system")
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(b.get("text", "") for b in system if isinstance(b, dict))
    return ""


MAIN_REQUEST_CLASSES = ("main", "subagent", "workflow")


def _output_schema(body):
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return fmt.get("schema") or {}
    return None


def classify_messages_request(body, headers=None):
    """Return "main" or "side" for a POST /v1/messages body.

    Observed with Claude Code 2.1.332 in -p mode: every inference request is
    the main conversation (tools present, the main model, max_tokens 128000,
    or 64000 for its non-streaming fallback).  Its side calls ("toolFreeHelper"
    queries: session title, tool-use summaries, WebFetch digests, quota probes)
    carry no tools, and use the small/fast (haiku) model, a tiny max_tokens or
    a JSON-schema output format.  So:
      * x-claude-code-request-class header, when sent: main/subagent/workflow
        are main, anything else (auxiliary, compaction, side_reply) is side;
      * tools present and non-empty -> main;
      * no tools and (haiku model, max_tokens <= 1, or a json_schema output
        format) -> side;
      * otherwise main (a tool-less main conversation, e.g. --tools "").
    """
    headers = headers or {}
    rclass = headers.get("x-claude-code-request-class")
    if rclass:
        return "main" if rclass in MAIN_REQUEST_CLASSES else "side"
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        return "main"
    model = str(body.get("model", "")).lower()
    if "haiku" in model:
        return "side"
    try:
        if int(body.get("max_tokens", 0)) <= 1:
            return "side"
    except (TypeError, ValueError):
        pass
    if _output_schema(body) is not None:
        return "side"
    return "main"


def _value_for_schema(schema, name=""):
    t = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(t, list):
        t = t[0] if t else None
    if t == "object":
        props = schema.get("properties") or {}
        return {k: _value_for_schema(v, k) for k, v in props.items()}
    if t == "array":
        return []
    if t in ("number", "integer"):
        return 0
    if t == "boolean":
        return False
    if isinstance(schema, dict) and schema.get("enum"):
        return schema["enum"][0]
    return "Fake session" if name == "title" else "fake"


def side_answer(body, side_default):
    """The turn a side request gets: JSON matching its schema when it asks
    for a json_schema output format, else the side default."""
    schema = _output_schema(body)
    if schema is not None:
        return {"text": json.dumps(_value_for_schema(schema))}
    return dict(side_default)


# --------------------------------------------------------------------------
# state


def _normalize_turn(turn):
    if isinstance(turn, str):
        return {"text": turn}
    if not isinstance(turn, dict):
        raise ValueError("a turn must be an object or a string: %r" % (turn,))
    return dict(turn)


def _expand_turns(turns):
    out = []
    for t in turns:
        t = _normalize_turn(t)
        n = int(t.pop("times", 1))
        out.extend(dict(t) for _ in range(max(0, n)))
    return out


class FakeState:
    def __init__(self, expected_key=None, max_stall=900.0, ping_interval=10.0):
        self.lock = threading.Lock()
        self.turns = []
        self.cursor = 0
        self.sub_turns = None  # None: subagent requests share `turns`
        self.sub_cursor = 0
        self.default = dict(DEFAULT_MAIN_REPLY)
        self.side_default = dict(DEFAULT_SIDE_REPLY)
        self.base_expected_key = expected_key
        self.expected_key = expected_key
        self.requests = []
        self.seq = itertools.count(1)
        self.max_stall = max_stall
        self.ping_interval = ping_interval
        self.closing = threading.Event()

    def load_script(self, script):
        if isinstance(script, list):
            script = {"turns": script}
        if not isinstance(script, dict):
            raise ValueError("script must be a list of turns or an object")
        turns = _expand_turns(script.get("turns", []))
        sub_turns = script.get("subagent_turns")
        if sub_turns is not None:
            sub_turns = _expand_turns(sub_turns)
        default = _normalize_turn(script.get("default", DEFAULT_MAIN_REPLY))
        side_default = _normalize_turn(script.get("side_default", DEFAULT_SIDE_REPLY))
        with self.lock:
            self.turns = turns
            self.cursor = 0
            self.sub_turns = sub_turns
            self.sub_cursor = 0
            # Fields a script leaves out go back to the server's own settings.
            self.expected_key = script.get("expected_key", self.base_expected_key)
            self.default = default
            self.side_default = side_default

    def next_turn(self, subagent=False):
        """(index, turn) for the next main request; index None = default.
        Subagent requests take from subagent_turns when the script has it."""
        with self.lock:
            if subagent and self.sub_turns is not None:
                if self.sub_cursor < len(self.sub_turns):
                    self.sub_cursor += 1
                    return self.sub_cursor - 1, dict(self.sub_turns[self.sub_cursor - 1])
                return None, dict(self.default)
            if self.cursor < len(self.turns):
                idx = self.cursor
                self.cursor += 1
                return idx, dict(self.turns[idx])
            return None, dict(self.default)

    def record(self, rec):
        with self.lock:
            rec["seq"] = next(self.seq)
            self.requests.append(rec)
            return rec

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.requests))

    def state(self):
        with self.lock:
            return {
                "cursor": self.cursor,
                "turns": len(self.turns),
                "remaining": max(0, len(self.turns) - self.cursor),
                "subagent_remaining": (None if self.sub_turns is None
                                       else max(0, len(self.sub_turns) - self.sub_cursor)),
                "expected_key_set": self.expected_key is not None,
                "requests": len(self.requests),
            }


# --------------------------------------------------------------------------
# response building


def build_blocks(turn):
    """Turn -> list of content blocks (full form, tool_use with ids)."""
    blocks = []
    if "content" in turn:
        for b in turn["content"]:
            b = dict(b)
            if b.get("type") == "tool_use":
                b.setdefault("id", _rid("toolu_01"))
                b.setdefault("input", {})
            elif b.get("type") == "thinking":
                b.setdefault("signature", _rid("sig", 40))
            blocks.append(b)
        return blocks
    if "text" in turn and turn["text"] is not None:
        blocks.append({"type": "text", "text": str(turn["text"])})
    tu = turn.get("tool_use")
    if tu:
        for t in tu if isinstance(tu, list) else [tu]:
            blocks.append({
                "type": "tool_use",
                "id": t.get("id") or _rid("toolu_01"),
                "name": t["name"],
                "input": t.get("input", {}),
            })
    if not blocks:
        blocks.append({"type": "text", "text": ""})
    return blocks


def stop_reason_for(turn, blocks):
    if turn.get("stop_reason"):
        return turn["stop_reason"]
    if any(b.get("type") == "tool_use" for b in blocks):
        return "tool_use"
    return "end_turn"


def usage_for(body, blocks, turn):
    inp = estimate_tokens(body.get("messages")) + estimate_tokens(body.get("system")) \
        + estimate_tokens(body.get("tools"))
    out = sum(estimate_tokens(b.get("text") or b.get("thinking") or b.get("input") or "")
              for b in blocks)
    usage = {
        "input_tokens": inp,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": max(1, out),
        "service_tier": "standard",
    }
    usage.update(turn.get("usage") or {})
    return usage


def full_message(body, turn, blocks):
    return {
        "id": _rid("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or "claude-sonnet-4-5",
        "content": blocks,
        "stop_reason": stop_reason_for(turn, blocks),
        "stop_sequence": None,
        "usage": usage_for(body, blocks, turn),
    }


def sse_events(body, turn, blocks):
    """Yield ("event", data) pairs, plus ("__stall__", None) / ("__drop__", None)
    / ("__error__", err) markers at the place a mid-stream action happens."""
    usage = usage_for(body, blocks, turn)
    start_usage = dict(usage)
    start_usage["output_tokens"] = 1
    msg = {
        "id": _rid("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    yield "message_start", {"type": "message_start", "message": msg}
    chunk = int(turn.get("json_chunk", 12))
    mid_done = False

    def mid_actions():
        if turn.get("stall") is not None:
            yield "__stall__", None
        if turn.get("drop"):
            yield "__drop__", None
        if turn.get("stream_error"):
            yield "__error__", turn["stream_error"]

    if turn.get("stall_at") == "start":
        mid_done = True
        yield from mid_actions()

    for i, b in enumerate(blocks):
        btype = b.get("type")
        if btype == "text":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "text", "text": ""}}
            if i == 0:
                yield "ping", {"type": "ping"}
            for piece in split_text(b.get("text", "")):
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "text_delta", "text": piece}}
                if not mid_done:
                    mid_done = True
                    yield from mid_actions()
        elif btype == "tool_use":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "tool_use", "id": b["id"],
                                                            "name": b["name"], "input": {}}}
            if i == 0:
                yield "ping", {"type": "ping"}
            pieces = [""] + split_pieces(json.dumps(b.get("input", {})), chunk)
            for piece in pieces:
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "input_json_delta",
                                                        "partial_json": piece}}
                if not mid_done and piece:
                    mid_done = True
                    yield from mid_actions()
        elif btype == "thinking":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "thinking", "thinking": "",
                                                            "signature": ""}}
            for piece in split_text(b.get("thinking", "")):
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "thinking_delta",
                                                        "thinking": piece}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "signature_delta",
                                                    "signature": b["signature"]}}
        else:
            raise ValueError("unsupported block type %r" % (btype,))
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
        if not mid_done:
            mid_done = True
            yield from mid_actions()
    delta_usage = dict(usage)
    delta_usage.pop("service_tier", None)
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": stop_reason_for(turn, blocks),
                                      "stop_sequence": None},
                            "usage": delta_usage}
    yield "message_stop", {"type": "message_stop"}


# --------------------------------------------------------------------------
# HTTP handler


class ClientGone(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True   # stream events without Nagle/delayed-ACK stalls
    protocol_version = "HTTP/1.1"
    server_version = "fake-anthropic/1"
    sys_version = ""

    @property
    def st(self):
        return self.server.state

    def log_message(self, fmt, *args):  # request line only; never headers
        if self.server.verbose:
            sys.stderr.write("fake_anthropic: %s\n" % (fmt % args))

    # -- helpers ----------------------------------------------------------

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _credential(self):
        key = self.headers.get("x-api-key")
        if key is not None:
            return {"kind": "x-api-key", "value": key}
        auth = self.headers.get("authorization")
        if auth is not None:
            if auth.lower().startswith("bearer "):
                return {"kind": "bearer", "value": auth[7:].strip()}
            return {"kind": "authorization", "value": auth}
        return {"kind": None, "value": None}

    def _send_json(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self._rec["status"] = status  # before the client can see the answer
        self.send_response(status, STATUS_TEXT.get(status))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", _rid("req_01"))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, status, etype=None, message=None, extra_headers=None):
        etype = etype or ERROR_TYPES.get(status, "api_error")
        self._send_json(status, {"type": "error",
                                 "error": {"type": etype, "message": message or etype},
                                 "request_id": _rid("req_01")}, extra_headers)

    def _chunk(self, data):
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            raise ClientGone()

    def _event(self, name, data):
        self._chunk(("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode())

    def _sleep_with_pings(self, seconds, ping_every):
        """Sleep `seconds`; send a ping every `ping_every` s (None = stay silent,
        but notice a client that hung up)."""
        deadline = time.monotonic() + seconds
        while not self.st.closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, ping_every) if ping_every else min(left, 0.25))
            if ping_every:
                self._event("ping", {"type": "ping"})
            else:
                self._check_alive()

    def _check_alive(self):
        """Detect a client that hung up while we stay silent."""
        try:
            self.connection.setblocking(False)
            try:
                data = self.connection.recv(1, socket.MSG_PEEK)
                if data == b"":
                    raise ClientGone()
            except (BlockingIOError, InterruptedError):
                pass
            finally:
                self.connection.setblocking(True)
        except ClientGone:
            raise
        except OSError:
            raise ClientGone()

    def _is_auth_ok(self):
        cred = self._rec["credential"]
        expected = self.st.expected_key
        if cred["value"] is None:
            self._send_error(401, "authentication_error", "x-api-key header is required")
            return False
        if expected is not None and cred["value"] != expected:
            self._send_error(401, "authentication_error", "invalid x-api-key")
            return False
        return True

    # -- dispatch ---------------------------------------------------------

    def _handle(self):
        url = urlsplit(self.path)
        raw = self._read_body()
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"_unparsed": raw[:2000].decode("utf-8", "replace")}
        self._rec = {
            "time": time.time(),
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "credential": self._credential(),
            "body": body,
            "kind": "other",
            "turn": None,
            "subagent": False,
            "status": None,
        }
        path = url.path.rstrip("/") or "/"
        if path.startswith("/_fake/"):
            self._rec["kind"] = "control"
            return self._control(path, body)
        self.st.record(self._rec)
        try:
            if path == "/v1/messages" and self.command == "POST":
                return self._messages(body)
            if path == "/v1/messages/count_tokens" and self.command == "POST":
                self._rec["kind"] = "count_tokens"
                if not self._is_auth_ok():
                    return
                if not isinstance(body, dict) or "messages" not in body:
                    return self._send_error(400, message="messages: Field required")
                return self._send_json(200, {"input_tokens": estimate_tokens(body.get("messages"))
                                             + estimate_tokens(body.get("system"))
                                             + estimate_tokens(body.get("tools"))})
            if path == "/v1/models" and self.command == "GET":
                self._rec["kind"] = "models"
                if not self._is_auth_ok():
                    return
                data = [self._model_info(m) for m in MODELS]
                return self._send_json(200, {"data": data, "has_more": False,
                                             "first_id": data[0]["id"], "last_id": data[-1]["id"]})
            if path.startswith("/v1/models/") and self.command == "GET":
                self._rec["kind"] = "models"
                if not self._is_auth_ok():
                    return
                mid = path[len("/v1/models/"):]
                for m in MODELS:
                    if m[0] == mid:
                        return self._send_json(200, self._model_info(m))
                return self._send_error(404, message="model: %s" % mid)
            if path == "/api/hello":
                self._rec["kind"] = "hello"
                return self._send_json(200, {"message": "hello"})
            if path.startswith("/api/event_logging"):
                self._rec["kind"] = "telemetry"
                return self._send_json(200, {})
            return self._send_error(404, message="Not found: %s %s" % (self.command, url.path))
        except ClientGone:
            self._rec["status"] = "client-gone"
            self.close_connection = True
        except Exception as e:  # a bad script turn, mostly: say so, don't hang
            self.close_connection = True
            if self._rec["status"] is None:
                try:
                    self._send_error(500, "api_error", "fake_anthropic: %s: %s"
                                     % (type(e).__name__, e))
                except OSError:
                    pass
            self._rec["status"] = "fake-error: %s: %s" % (type(e).__name__, e)
            if self.server.verbose:
                raise

    @staticmethod
    def _model_info(m):
        return {"type": "model", "id": m[0], "display_name": m[1],
                "created_at": "2025-01-01T00:00:00Z"}

    def _control(self, path, body):
        if path == "/_fake/requests" and self.command == "GET":
            return self._send_json(200, self.st.snapshot())
        if path == "/_fake/requests" and self.command == "DELETE":
            with self.st.lock:
                self.st.requests.clear()
            return self._send_json(200, {"ok": True})
        if path == "/_fake/script" and self.command in ("POST", "PUT"):
            try:
                self.st.load_script(body if body is not None else [])
            except (ValueError, KeyError, TypeError) as e:
                return self._send_error(400, message="bad script: %s" % e)
            return self._send_json(200, self.st.state())
        if path == "/_fake/state" and self.command == "GET":
            return self._send_json(200, self.st.state())
        if path == "/_fake/health":
            return self._send_json(200, {"ok": True})
        return self._send_error(404, message="no such control endpoint")

    def _messages(self, body):
        self._rec["kind"] = "messages"
        if not self._is_auth_ok():
            return
        if not isinstance(body, dict):
            return self._send_error(400, message="body: expected a JSON object")
        for field in ("model", "max_tokens", "messages"):
            if field not in body:
                return self._send_error(400, message="%s: Field required" % field)
        kind = classify_messages_request(body, self._rec["headers"])
        self._rec["kind"] = kind
        if kind == "main":
            subagent = bool(self._rec["headers"].get("x-claude-code-agent-id"))
            self._rec["subagent"] = subagent
            idx, turn = self.st.next_turn(subagent)
            self._rec["turn"] = idx
        else:
            with self.st.lock:
                side_default = dict(self.st.side_default)
            turn = side_answer(body, side_default)
        if turn.get("delay"):
            self._sleep_silent(float(turn["delay"]))
        err = turn.get("error")
        if err:
            if isinstance(err, int):
                err = {"status": err}
            status = int(err.get("status", 500))
            return self._send_error(status, err.get("type"), err.get("message"),
                                    err.get("headers"))
        blocks = build_blocks(turn)
        if not body.get("stream"):
            if turn.get("stall") is not None:
                self._sleep_silent(self._stall_seconds(turn))
            return self._send_json(200, full_message(body, turn, blocks))
        self._stream(body, turn, blocks)

    def _stall_seconds(self, turn):
        s = turn.get("stall")
        if s in ("forever", -1, "inf"):
            return self.st.max_stall
        return min(float(s), self.st.max_stall)

    def _sleep_silent(self, seconds):
        self._sleep_with_pings(seconds, None)

    def _stream(self, body, turn, blocks):
        self._rec["status"] = 200
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", _rid("req_01"))
        self.end_headers()
        event_delay = float(turn.get("event_delay", 0) or 0)
        for name, data in sse_events(body, turn, blocks):
            if name == "__stall__":
                pings = turn.get("stall_pings")
                self._sleep_with_pings(self._stall_seconds(turn),
                                       float(pings) if pings else None)
                continue
            if name == "__drop__":
                self._rec["status"] = "dropped"
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if name == "__error__":
                err = dict(data) if isinstance(data, dict) else {}
                err.setdefault("type", "overloaded_error")
                err.setdefault("message", "Overloaded")
                self._rec["status"] = "stream-error"
                self._event("error", {"type": "error", "error": err})
                self._chunk(b"")
                return
            if event_delay:
                time.sleep(event_delay)
            self._event(name, data)
        self._chunk(b"")

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def do_HEAD(self):
        self._handle()

    def do_PATCH(self):
        self._handle()

    def do_OPTIONS(self):
        self._handle()


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler=None, state=None, verbose=False):
        self.state = state
        self.verbose = verbose
        super().__init__(addr, handler or Handler)

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


# --------------------------------------------------------------------------
# in-process use (tests)


class FakeAnthropic:
    """Run the fake in a background thread:

        with FakeAnthropic(script=[...], expected_key="k") as fake:
            env["ANTHROPIC_BASE_URL"] = fake.url
            ...
            fake.requests()
    """

    def __init__(self, script=None, expected_key=None, host="127.0.0.1", port=0,
                 verbose=False):
        self.state = FakeState(expected_key=expected_key)
        if script is not None:
            self.state.load_script(script)
        try:
            from fakes import testenv           # imported by the tests
        except ImportError:
            import testenv                      # this file run as a script
        self.server = testenv.serve_http(Handler, host=host, port=port, server_class=FakeServer,
                                         attrs={"state": self.state, "verbose": verbose})
        self.port = self.server.port
        self.url = self.server.url()

    def start(self):
        """Serving began in the constructor (testenv); kept for `with`."""
        return self

    def stop(self):
        self.state.closing.set()
        self.server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def load_script(self, script):
        self.state.load_script(script)

    def requests(self):
        return self.state.snapshot()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Anthropic Messages API")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--script", help="JSON script file (list of turns or object)")
    ap.add_argument("--expected-key", default=os.environ.get("FAKE_ANTHROPIC_EXPECTED_KEY"),
                    help="answer 401 unless x-api-key / Bearer equals this")
    ap.add_argument("--max-stall", type=float, default=900.0)
    ap.add_argument("--verbose", action="store_true", help="log request lines to stderr")
    args = ap.parse_args(argv)

    state = FakeState(expected_key=args.expected_key, max_stall=args.max_stall)
    if args.script:
        with open(args.script) as f:
            state.load_script(json.load(f))
    server = FakeServer((args.host, args.port), Handler, state, args.verbose)

    def _term(signum, frame):
        state.closing.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    print("LISTENING %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
