#!/usr/bin/python3
"""A scripted stand-in for the `claude` CLI, for `ccr job` tests.

It reads the prompt from stdin like the real CLI, records what it was given
(argv, cwd, environment, prompt) in $FAKE_CLAUDE_RECORD if set, then follows
the behaviour named by $FAKE_CLAUDE_MODE (a JSON object, passed to it through
the task's environmentSecrets):

  {"lines": [...]}          print these stream-json lines (objects or raw strings)
  {"delay": s}              sleep s seconds between lines
  {"exit": n}               exit code at the end (default 0)
  {"hang_after": true}      after the lines, sleep forever (watchdog tests)
  {"ignore_term": true}     ignore SIGTERM (forces the SIGKILL escalation)
  {"child": true}           start a grandchild `sleep 1000` in the same group and
                            record its pid in $FAKE_CLAUDE_RECORD (group-kill tests)
  {"silent": s}             print nothing for s seconds first (idle watchdog)
  {"write": {"path": p, "content": c}}   write a file relative to cwd
  {"api": true}             POST one /v1/messages request through
                            $ANTHROPIC_BASE_URL with the dummy credential it was
                            given, and print the answer's text as a line
  {"stderr": "text"}        write this to stderr

Without a mode it prints an init line, one assistant line and a result line.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request


def emit(obj):
    sys.stdout.write(obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":")))
    sys.stdout.write("\n")
    sys.stdout.flush()


def default_lines(prompt):
    return [
        {"type": "system", "subtype": "init", "session_id": "fake-session", "tools": [], "mcp_servers": []},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "echo: " + prompt[:40]}]}},
        {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1, "session_id": "fake-session",
         "total_cost_usd": 0.0123, "usage": {"input_tokens": 10, "output_tokens": 5}},
    ]


def call_api():
    base = os.environ["ANTHROPIC_BASE_URL"].rstrip("/")
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    if os.environ.get("ANTHROPIC_API_KEY"):
        headers["x-api-key"] = os.environ["ANTHROPIC_API_KEY"]
    elif os.environ.get("CLAUDE_CODE_OAUTH_TOKEN"):
        headers["authorization"] = "Bearer " + os.environ["CLAUDE_CODE_OAUTH_TOKEN"]
    body = json.dumps({"model": "fake", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
    req = urllib.request.Request(base + "/v1/messages", data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.load(r)
    text = "".join(b.get("text", "") for b in answer.get("content", []))
    emit({"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}})


def main():
    prompt = sys.stdin.read()
    mode = json.loads(os.environ.get("FAKE_CLAUDE_MODE") or "{}")
    record = os.environ.get("FAKE_CLAUDE_RECORD")
    info = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ), "prompt": prompt, "pid": os.getpid()}
    if mode.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode.get("child"):
        child = subprocess.Popen(["sleep", "1000"])
        info["child_pid"] = child.pid
    if record:
        with open(record, "w") as f:
            json.dump(info, f)
    if mode.get("stderr"):
        sys.stderr.write(mode["stderr"])
        sys.stderr.flush()
    if mode.get("silent"):
        time.sleep(mode["silent"])
    if mode.get("write"):
        with open(mode["write"]["path"], "w") as f:
            f.write(mode["write"]["content"])
    if mode.get("api"):
        call_api()
    for line in mode.get("lines") or default_lines(prompt):
        emit(line)
        if mode.get("delay"):
            time.sleep(mode["delay"])
    if mode.get("hang_after"):
        while True:
            time.sleep(3600)
    sys.exit(int(mode.get("exit", 0)))


if __name__ == "__main__":
    main()
