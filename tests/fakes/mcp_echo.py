#!/usr/bin/python3
"""A tiny MCP server over stdio (newline-delimited JSON-RPC 2.0) for tests.

Tools:
    echo(text)      -> returns text unchanged
    add(a, b)       -> returns a + b as text
    env_digest(name) -> the SHA-256 (hex) of environment variable `name` as
                       the server received it, or "unset" (proves a value
                       arrived without showing it)

Handles: initialize, notifications/initialized (and any other notification),
ping, tools/list, tools/call; other requests get JSON-RPC error -32601.
If MCP_ECHO_LOG is set, every received message is appended to that file as
one JSON line (for assertions).  Nothing but JSON-RPC is written to stdout.
"""

import hashlib
import json
import os
import sys

SERVER_NAME = "mcp-echo"
SERVER_VERSION = "1.0.0"
DEFAULT_PROTOCOL = "2025-06-18"

TOOLS = [
    {
        "name": "echo",
        "description": "Return the given text unchanged.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "text to echo"}},
            "required": ["text"],
        },
    },
    {
        "name": "add",
        "description": "Add two numbers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
    {
        "name": "env_digest",
        "description": "SHA-256 of one of the server's environment variables.",
        "inputSchema": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    },
]


def log(msg):
    path = os.environ.get("MCP_ECHO_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(msg) + "\n")


def send(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def result(mid, res):
    send({"jsonrpc": "2.0", "id": mid, "result": res})


def error(mid, code, message):
    send({"jsonrpc": "2.0", "id": mid, "error": {"code": code, "message": message}})


def call_tool(params):
    name = params.get("name")
    args = params.get("arguments") or {}
    if name == "echo":
        return {"content": [{"type": "text", "text": str(args.get("text", ""))}], "isError": False}
    if name == "add":
        try:
            total = float(args["a"]) + float(args["b"])
        except (KeyError, TypeError, ValueError) as e:
            return {"content": [{"type": "text", "text": "bad arguments: %s" % e}], "isError": True}
        if total == int(total):
            total = int(total)
        return {"content": [{"type": "text", "text": str(total)}], "isError": False}
    if name == "env_digest":
        v = os.environ.get(str(args.get("name", "")))
        text = "unset" if v is None else hashlib.sha256(v.encode()).hexdigest()
        return {"content": [{"type": "text", "text": text}], "isError": False}
    return None


def handle(msg):
    method = msg.get("method")
    mid = msg.get("id")
    is_request = "id" in msg and method is not None
    if method is None:
        return  # a response to something we never asked; ignore
    if not is_request:
        return  # notifications (initialized, cancelled, ...)
    params = msg.get("params") or {}
    if method == "initialize":
        result(mid, {
            "protocolVersion": params.get("protocolVersion") or DEFAULT_PROTOCOL,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": SERVER_NAME, "version": SERVER_VERSION},
        })
    elif method == "ping":
        result(mid, {})
    elif method == "tools/list":
        result(mid, {"tools": TOOLS})
    elif method == "tools/call":
        res = call_tool(params)
        if res is None:
            error(mid, -32602, "unknown tool: %s" % params.get("name"))
        else:
            result(mid, res)
    elif method in ("resources/list", "prompts/list"):
        error(mid, -32601, "method not supported: %s" % method)
    else:
        error(mid, -32601, "method not found: %s" % method)


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            error(None, -32700, "parse error")
            continue
        log(msg)
        for m in msg if isinstance(msg, list) else [msg]:
            if isinstance(m, dict):
                handle(m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
