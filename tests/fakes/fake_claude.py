#!/usr/bin/python3
"""A scripted stand-in for the `claude` CLI, for `ccr job` tests.

It reads the prompt from stdin like the real CLI, records what it was given
(argv, cwd, environment, prompt, the content of --system-prompt-file and
--append-system-prompt-file) in $FAKE_CLAUDE_RECORD if set, then follows
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
  {"busy": s}               print nothing for s seconds first, while a tool-like
                            grandchild in a session of its own burns CPU (the idle
                            watchdog must count it as activity)
  {"leak": [s, ...]}        print each s raw, base64-encoded after 0, 1 and 2 bytes of
                            other text, base64url-encoded, percent-encoded, and raw
                            again split across two writes 0.2 s apart (redaction tests)
  {"big_line": n}           print one JSON line of n bytes, in 64 KiB writes
  {"pad_lines": [k, n]}     print k JSON lines of about n bytes each
  {"escaped": true}         start a grandchild `sleep 1000` in a session of its own
                            and record its pid as "escaped_pid" (orphan tests)
  {"write": {"path": p, "content": c}}   write a file relative to cwd (or a list of them)
  {"api": true}             POST one /v1/messages request through
                            $ANTHROPIC_BASE_URL with the dummy credential it was
                            given, and print the answer's text as a line
  {"api_loop": n}           like the CLI's main loop: up to n /v1/messages requests
                            through $ANTHROPIC_BASE_URL, one after another, each carrying
                            the conversation so far; an HTTP error ends the loop with the
                            CLI's error result line ("API Error: <status> <body>"), exit 1
  {"transcript": text}      like the real CLI, keep the session's transcript: write text to
                            $CLAUDE_CONFIG_DIR/projects/<cwd, non-alphanumerics as '-'>/
                            fake-session.jsonl.  With --resume ID, the CLI first prints
                            {"type":"resumed","session_id":ID,"transcript":<that file's
                            content for ID, or null>}
  --input-format stream-json   (the flag, as the real CLI takes it) the prompt and every
                            later message are stream-json lines on stdin: for each user
                            message print (with --replay-user-messages) the message back
                            with "t": time of receipt, then an assistant line "echo: <text>"
                            and a result line; for {"type":"control_request", "request":
                            {"subtype":"interrupt"}} a control_response and an error result
                            line ("interrupted": true); end at EOF (exit 0, or 1 when the
                            last turn was interrupted, as the real CLI).  Mode "lines"
                            (printed once, after the first message) still applies.
  {"stderr": "text"}        write this to stderr
  {"sh": ["cmd", ...]}      first run each command through /bin/sh (cwd and environment
                            as given to the CLI, 60 s each) and record
                            [{"cmd", "status", "out"}] (stdout and stderr) as "sh"
  {"stamp": true, "count": n}   instead of "lines", print n lines
                            {"type":"stamp","i":i,"t":<time.time()>} ("delay" apart),
                            for latency measurements (scripts/bench); with
                            "prefill": [k, gap] first k lines {"type":"pad"} gap s
                            apart (a long task's history), then "quiet": s of silence
  {"bench_api": {"n": n, "direct": url, "key": k}}
                            time n streamed /v1/messages requests straight to url
                            (with key k) and n through $ANTHROPIC_BASE_URL (with
                            the dummy), interleaved, one keep-alive connection
                            each; print one {"type":"bench_api",...} line with
                            each side's median/p90 time to first byte and to
                            the end of the stream, in microseconds (scripts/bench)

  {"bench_egress": {"n": n, "url": u, "ca": path}}
                            download u with curl n times straight (--noproxy '*') and
                            n times through $HTTPS_PROXY (the job's egress proxy),
                            interleaved; print one {"type":"bench_egress",...} line with
                            each side's median/p90 time_total in microseconds
                            (scripts/bench)

Stamp lines also carry "t0", the time this script began to run (after the
interpreter started, before its imports).

Without a mode it prints an init line, one assistant line and a result line.
"""
import time

T0 = time.time()

import json  # noqa: E402 - T0 is taken first
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402


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


def leak(secret):
    import base64
    import urllib.parse
    raw = secret.encode()
    emit({"type": "assistant", "message": {"content": [{"type": "text", "text": "the key is " + secret}]}})
    for pad in (b"", b"x", b"xy"):
        emit("b64: " + base64.b64encode(pad + raw + b" tail").decode())
    emit("b64url: " + base64.urlsafe_b64encode(b"z" + raw).decode())
    emit("url: https://example.invalid/?k=" + urllib.parse.quote(secret, safe=""))
    half = len(secret) // 2
    sys.stdout.write('{"type":"text","content":"split ' + secret[:half])
    sys.stdout.flush()
    time.sleep(0.2)
    sys.stdout.write(secret[half:] + ' end"}\n')
    sys.stdout.flush()


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


def api_loop(n):
    base = os.environ["ANTHROPIC_BASE_URL"].rstrip("/")
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01",
               "x-api-key": os.environ.get("ANTHROPIC_API_KEY", "")}
    messages = [{"role": "user", "content": "count to a thousand, slowly"}]
    for i in range(n):
        body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": messages})
        req = urllib.request.Request(base + "/v1/messages", data=body.encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                answer = json.load(r)
        except urllib.error.HTTPError as e:
            text = "API Error: %d %s" % (e.code, e.read().decode(errors="replace").strip())
            emit({"type": "result", "subtype": "success", "is_error": True, "num_turns": i, "result": text,
                  "session_id": "fake-session"})
            sys.exit(1)
        messages.append({"role": "assistant", "content": answer.get("content", [])})
        messages.append({"role": "user", "content": "go on (%d)" % i})
        emit({"type": "assistant", "message": answer})
    emit({"type": "result", "subtype": "success", "is_error": False, "num_turns": n, "result": "done",
          "session_id": "fake-session"})


def bench_api(spec):
    import http.client
    import urllib.parse

    def conn(url):
        u = urllib.parse.urlsplit(url)
        return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30), u.path.rstrip("/")

    proxy_key = os.environ.get("ANTHROPIC_API_KEY")
    proxy_bearer = os.environ.get("CLAUDE_CODE_OAUTH_TOKEN")
    body = json.dumps({"model": "fake", "max_tokens": 16, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    sides = {}
    for name, url, key, bearer in (("direct", spec["direct"], spec.get("key"), None),
                                   ("proxy", os.environ["ANTHROPIC_BASE_URL"], proxy_key, proxy_bearer)):
        c, base = conn(url)
        h = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        if key:
            h["x-api-key"] = key
        elif bearer:
            h["authorization"] = "Bearer " + bearer
        sides[name] = (c, base, h, {"ttfb": [], "total": [], "errors": 0})
    for i in range(int(spec.get("n", 100))):
        for name in (("direct", "proxy") if i % 2 == 0 else ("proxy", "direct")):
            c, base, h, out = sides[name]
            t0 = time.perf_counter()
            try:
                c.request("POST", base + "/v1/messages", body=body, headers=h)
                r = c.getresponse()
                t1 = time.perf_counter()
                r.read()
                t2 = time.perf_counter()
            except (OSError, http.client.HTTPException):
                out["errors"] += 1
                c.close()
                continue
            if r.status != 200:
                out["errors"] += 1
                continue
            out["ttfb"].append(t1 - t0)
            out["total"].append(t2 - t0)
    def summary(out):
        res = {"n": len(out["ttfb"]), "errors": out["errors"]}
        for k in ("ttfb", "total"):
            xs = sorted(out[k])
            if xs:
                res[k + "_med_us"] = round(xs[len(xs) // 2] * 1e6)
                res[k + "_p90_us"] = round(xs[len(xs) * 9 // 10] * 1e6)
        return res

    emit({"type": "bench_api", **{name: summary(v[3]) for name, v in sides.items()}})


def bench_egress(spec):
    def once(direct):
        cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", "--cacert", spec["ca"]]
        if direct:
            cmd += ["--noproxy", "*"]
        r = subprocess.run(cmd + [spec["url"]], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            return None
        t, size = r.stdout.split()
        return float(t), int(size)

    sides = {"direct": [], "proxy": []}
    errors = {"direct": 0, "proxy": 0}
    size = 0
    for i in range(int(spec.get("n", 10))):
        for name in (("direct", "proxy") if i % 2 == 0 else ("proxy", "direct")):
            got = once(name == "direct")
            if got is None:
                errors[name] += 1
            else:
                sides[name].append(got[0])
                size = got[1]
    out = {"type": "bench_egress", "bytes": size}
    for name, xs in sides.items():
        xs.sort()
        out[name] = {"n": len(xs), "errors": errors[name]}
        if xs:
            out[name]["med_us"] = round(xs[len(xs) // 2] * 1e6)
            out[name]["p90_us"] = round(xs[len(xs) * 9 // 10] * 1e6)
    emit(out)


def prompt_files(argv):
    """What the real CLI reads for --system-prompt-file and
    --append-system-prompt-file: {flag: file content} (it fails when the
    file does not exist, and so does this)."""
    got = {}
    for flag, value in zip(argv, argv[1:]):
        if flag in ("--system-prompt-file", "--append-system-prompt-file"):
            with open(value) as f:
                got[flag] = f.read()
    return got


def start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def host_pid(ns_pid, start):
    """The host's pid of the process that its own pid namespace calls ns_pid (None when gone)."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                ns = [l.split()[1:] for l in f if l.startswith("NSpid:")]
            if ns and ns[0] and int(ns[0][-1]) == ns_pid and start_time(int(d)) == start:
                return int(d)
        except (OSError, ValueError, IndexError):
            continue
    return None


def read_record(path):
    """A record written by this stand-in, its pids translated to the host's view."""
    with open(path) as f:
        info = json.load(f)
    for k, start in info.get("pid_starts", {}).items():
        info[k] = host_pid(info[k], start) or -1
    return info


def project_file(session_id):
    proj = "".join(c if c.isascii() and c.isalnum() else "-" for c in os.getcwd())
    return os.path.join(os.environ["CLAUDE_CONFIG_DIR"], "projects", proj, session_id + ".jsonl")


def resumed(argv):
    if "--resume" not in argv:
        return
    sid = argv[argv.index("--resume") + 1]
    try:
        with open(project_file(sid)) as f:
            text = f.read()
    except OSError:
        text = None
    emit({"type": "resumed", "session_id": sid, "transcript": text})


def keep_transcript(text):
    path = project_file("fake-session")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def conversation(mode, argv):
    """The stream-json input loop (see the module doc)."""
    replay = "--replay-user-messages" in argv
    first, interrupted = True, False
    for raw in sys.stdin:
        t = time.time()
        msg = json.loads(raw)
        if msg.get("type") == "control_request":
            emit({"type": "control_response", "response": {"subtype": "success",
                                                           "request_id": msg.get("request_id")}, "t": t})
            emit({"type": "result", "subtype": "error_during_execution", "is_error": True, "interrupted": True,
                  "session_id": "fake-session", "result": ""})
            interrupted = True
            continue
        interrupted = False
        text = "".join(b.get("text", "") for b in msg["message"]["content"])
        if first:
            emit({"type": "system", "subtype": "init", "session_id": "fake-session", "tools": [], "mcp_servers": []})
        if replay:
            emit(dict(msg, session_id="fake-session", t=t))
        if first:
            for line in mode.get("lines") or []:
                emit(line)
        first = False
        emit({"type": "assistant", "message": {"content": [{"type": "text", "text": "echo: " + text}]}})
        emit({"type": "result", "subtype": "success", "is_error": False, "session_id": "fake-session",
              "result": "echo: " + text})
    sys.exit(1 if interrupted else 0)   # as the real CLI: input that ends on an interrupted turn


def main():
    if "--input-format" in sys.argv and sys.argv[sys.argv.index("--input-format") + 1] == "stream-json":
        prompt = "(stream-json input)"
    else:
        prompt = sys.stdin.read()
    mode = json.loads(os.environ.get("FAKE_CLAUDE_MODE") or "{}")
    record = os.environ.get("FAKE_CLAUDE_RECORD")
    info = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ), "prompt": prompt, "pid": os.getpid(),
            "prompt_files": prompt_files(sys.argv[1:])}
    if mode.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode.get("child"):
        child = subprocess.Popen(["sleep", "1000"])
        info["child_pid"] = child.pid
    if mode.get("sh"):
        info["sh"] = []
        for cmd in mode["sh"]:
            r = subprocess.run(["/bin/sh", "-c", cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            info["sh"].append({"cmd": cmd, "status": r.returncode, "out": r.stdout.decode("utf-8", "replace")})
    if mode.get("escaped"):
        esc = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        info["escaped_pid"] = esc.pid
    if record:
        # Inside ccr's sandbox these pids are the box's own; their start
        # times let a test find the same processes on the host (read_record).
        info["pid_starts"] = {k: start_time(info[k]) for k in ("pid", "child_pid", "escaped_pid") if k in info}
        with open(record, "w") as f:
            json.dump(info, f)
    if mode.get("stderr"):
        sys.stderr.write(mode["stderr"])
        sys.stderr.flush()
    if prompt == "(stream-json input)":
        conversation(mode, sys.argv[1:])
    if mode.get("silent"):
        time.sleep(mode["silent"])
    if mode.get("busy"):
        spin = "import time\nend = time.time() + %f\nwhile time.time() < end: pass\n" % float(mode["busy"])
        subprocess.run([sys.executable, "-c", spin], start_new_session=True, check=True)
    writes = mode.get("write") or []
    for w in writes if isinstance(writes, list) else [writes]:
        if os.path.dirname(w["path"]):
            os.makedirs(os.path.dirname(w["path"]), exist_ok=True)
        with open(w["path"], "w") as f:
            f.write(w["content"])
    if mode.get("big_line"):
        n = int(mode["big_line"])
        head = '{"type":"text","content":"'
        sys.stdout.write(head)
        left = n - len(head) - 2
        block = "x" * 65536
        while left > 0:
            sys.stdout.write(block[:min(left, 65536)])
            left -= 65536
        sys.stdout.write('"}\n')
        sys.stdout.flush()
    if mode.get("pad_lines"):
        k, n = mode["pad_lines"]
        for i in range(k):
            emit({"type": "assistant", "i": i, "pad": "y" * n})
    for secret in mode.get("leak") or []:
        leak(secret)
    resumed(sys.argv[1:])
    if "transcript" in mode:
        keep_transcript(mode["transcript"])
    if mode.get("api"):
        call_api()
    if mode.get("api_loop"):
        api_loop(int(mode["api_loop"]))
    if mode.get("bench_api"):
        bench_api(mode["bench_api"])
    if mode.get("bench_egress"):
        bench_egress(mode["bench_egress"])
    if mode.get("stamp"):
        k, gap = mode.get("prefill", [0, 0])
        for i in range(int(k)):
            emit({"type": "pad", "i": i})
            time.sleep(float(gap))
        time.sleep(float(mode.get("quiet", 0)))
        for i in range(int(mode.get("count", 10))):
            emit({"type": "stamp", "i": i, "t": time.time(), "t0": T0})
            if mode.get("delay"):
                time.sleep(mode["delay"])
    else:
        for line in mode["lines"] if "lines" in mode else default_lines(prompt):
            emit(line)
            if mode.get("delay"):
                time.sleep(mode["delay"])
    if mode.get("hang_after"):
        while True:
            time.sleep(3600)
    sys.exit(int(mode.get("exit", 0)))


if __name__ == "__main__":
    main()
