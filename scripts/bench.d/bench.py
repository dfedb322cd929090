#!/usr/bin/python3
"""The measurements behind scripts/bench (run that, not this).

usage: bench.py --tmp DIR --mark MARK --ccr BIN [--quick] [--wrk PATH]
       bench.py --reap MARK      kill what a run marked MARK left behind

Starts `ccr serve` in local mode (loopback, PORT chosen here, data under
--tmp) with the scripted stand-in for claude, measures, and prints a table.
Figures are printed, never asserted: this exits 0 unless a step could not
run at all.  Every process it starts is stopped in a `finally`; the tasks'
`ccr job` children run in their own sessions, so they (and the stand-ins)
carry CCR_BENCH_MARK=MARK in their environment and --reap finds them by it.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FAKE_CLAUDE = os.path.join(ROOT, "tests", "fakes", "fake_claude.py")
FAKE_ANTHROPIC = os.path.join(ROOT, "scripts", "bench.d", "fake_anthropic_nodelay.py")
SSE_CLIENTS = os.path.join(ROOT, "scripts", "bench.d", "sse_clients.py")
TLS_BLOB = os.path.join(ROOT, "scripts", "bench.d", "tls_blob_server.py")
INSTALL_CLAUDE = os.path.join(ROOT, "tests", "fakes", "install-claude")
# what a user passes to keep the real CLI offline (as in tests/test_e2e.py)
CLI_ENV = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
           "DISABLE_ERROR_REPORTING": "1", "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_MAX_RETRIES": "0"}
CLOUD_BUCKET = "ccr-bench-logs"
CLOUD_JOB = "claude-code-async-worker"
PY = "/usr/bin/python3"
HOST = "127.0.0.1"
REAL_KEY = "sk-ant-bench-0000000000000000"
CALLBACK = "https://example.invalid/bench-hook"   # never resolves (RFC 6761): accepted at submit, never contacted


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------- processes

class Run:
    def __init__(self, args):
        self.tmp = args.tmp
        self.mark = args.mark
        self.ccr = args.ccr
        self.procs = []

    def track(self, p):
        self.procs.append(p)
        with open(os.path.join(self.tmp, "pids"), "a") as f:
            f.write("%d\n" % p.pid)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            stop(p)
        reap(self.mark)


def stop(p, timeout=12):
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        except ProcessLookupError:
            pass


def reap(mark):
    """SIGKILL every process whose environment holds CCR_BENCH_MARK=mark."""
    needle = ("CCR_BENCH_MARK=%s" % mark).encode()
    me = os.getpid()
    killed = 0
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env:
            try:
                os.kill(int(d), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serve_env(run, data, extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CCR_", "GCS_", "CLOUDRUN_", "ANTHROPIC_", "CLAUDE_", "GOOGLE_"))
           and k not in ("PORT", "PROJECT_ID", "REGION", "LOG_LEVEL")}
    env.update({"PORT": "0", "CCR_BIND": HOST, "CCR_DATA_DIR": os.path.join(data, "data"),
                "CCR_WORKSPACE_ROOT": os.path.join(data, "ws"), "CLAUDE_BIN": FAKE_CLAUDE,
                "CCR_BENCH_MARK": run.mark})
    env.update(extra or {})
    return env


class Serve:
    """A `ccr serve` whose stdout goes to a file; .port once it listens."""

    def __init__(self, run, name, extra=None):
        self.dir = os.path.join(run.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.logpath = os.path.join(self.dir, "serve.log")
        self.out = open(self.logpath, "wb")
        self.err = open(os.path.join(self.dir, "serve.err"), "wb")
        self.proc = run.track(subprocess.Popen([run.ccr, "serve"], env=serve_env(run, self.dir, extra),
                                               stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL))
        self.port = None
        deadline = time.monotonic() + 15
        while self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError("ccr serve exited %s: %s" % (self.proc.returncode, self.stderr()))
            if time.monotonic() > deadline:
                raise RuntimeError("ccr serve did not log its port within 15 s")
            with open(self.logpath, "rb") as f:
                for line in f:
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        continue
                    if "port" in doc:
                        self.port = int(doc["port"])
            time.sleep(0.01)
        self.pid = self.proc.pid

    def stderr(self):
        with open(os.path.join(self.dir, "serve.err"), "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def stop(self):
        stop(self.proc)
        self.out.close()
        self.err.close()


# ---------------------------------------------------------------- /proc

def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024.0       # MiB
            elif k == "Threads":
                out[k] = int(v)
    out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    return out


def count_inotify(pid):
    """Open inotify descriptors of pid (ccr serve makes one per waiting SSE stream)."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += "inotify" in os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return n


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_percent(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


# ---------------------------------------------------------------- HTTP

def http(port, method, path, body=None, timeout=30):
    """(status, body bytes), Connection: close."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        data = b"" if body is None else json.dumps(body).encode()
        head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n" % (method, path, HOST, port)
        if body is not None:
            head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
        s.sendall(head.encode() + b"\r\n" + data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else 0
    return status, got.split(b"\r\n\r\n", 1)[-1]


def health_once(port, timeout=1.0):
    try:
        st, _ = http(port, "GET", "/health", timeout=timeout)
        return st
    except OSError:
        return 0


class SSE:
    """One SSE response read over HTTP/1.1 (chunked), frame by frame, with arrival times."""

    def __init__(self, port, method, path, body=None, timeout=60):
        self.t_send = time.time()
        self.s = socket.create_connection((HOST, port), timeout=timeout)
        data = b"" if body is None else json.dumps(body).encode()
        head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n" % (method, path, HOST, port)
        if body is not None:
            head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
        self.t_send = time.time()
        self.s.sendall(head.encode() + b"\r\n" + data)
        self.raw = b""
        while b"\r\n\r\n" not in self.raw:
            self._recv()
        self.t_head = time.time()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])
        self.chunked = b"transfer-encoding: chunked" in head.lower()
        self.text = b""
        self.eof = False
        self.t_arrival = self.t_head
        self._body()

    def _recv(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError
        self.raw += chunk

    def _body(self):
        """Move decoded body bytes from raw to text; False at the end of the body."""
        if not self.chunked:
            self.text += self.raw
            self.raw = b""
            return True
        while b"\r\n" in self.raw:
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.eof = True
                return False
            if len(rest) < size + 2:
                return True
            self.text += rest[:size]
            self.raw = rest[size + 2:]
        return True

    def frames(self):
        """Yield (arrival time, event, id, data) for each frame until the stream ends."""
        while True:
            while b"\n\n" in self.text:
                block, self.text = self.text.split(b"\n\n", 1)
                ev = fid = data = None
                for line in block.split(b"\n"):
                    if line.startswith(b"event: "):
                        ev = line[7:].decode()
                    elif line.startswith(b"id: "):
                        fid = int(line[4:])
                    elif line.startswith(b"data: "):
                        data = line[6:].decode()
                if data is not None:
                    yield self.t_arrival, ev, fid, data
            if self.eof:
                return
            try:
                self._recv()
            except EOFError:
                return
            self.t_arrival = time.time()
            if not self._body():
                continue

    def close(self):
        self.s.close()


def task_body(mode, **kw):
    b = {"prompt": "bench", "anthropicApiKey": REAL_KEY,
         "environmentSecrets": {"FAKE_CLAUDE_MODE": json.dumps(mode), "CCR_BENCH_MARK": kw.pop("mark")}}
    b.update(kw)
    return b


def start_async(run, srv, mode, task_id):
    st, data = http(srv.port, "POST", "/run-async",
                    task_body(mode, mark=run.mark, callbackUrl=CALLBACK, taskId=task_id))
    if st != 202:
        raise RuntimeError("POST /run-async: %d %s" % (st, data[:300]))
    return json.loads(data)["taskId"]


def cancel(srv, task_id):
    try:
        http(srv.port, "POST", "/cancel/" + task_id, timeout=10)
    except OSError:
        pass


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def median(xs):
    return pct(xs, 0.5)


# ---------------------------------------------------------------- table

ROWS = []


def row(metric, value, note=""):
    ROWS.append((metric, value, note))
    log("%-44s %s  %s" % (metric, value, note))


def ms(x):
    return "%.1f ms" % (x * 1000.0)


def mib(x):
    return "%.1f MiB" % x


# ---------------------------------------------------------------- measurements

def m_cold_start(run, n):
    times = []
    for i in range(n):
        d = os.path.join(run.tmp, "cold%d" % i)
        os.makedirs(d)
        port = free_port()
        env = serve_env(run, d, {"PORT": str(port)})
        t0 = time.monotonic()
        p = run.track(subprocess.Popen([run.ccr, "serve"], env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
        ok = False
        while time.monotonic() - t0 < 10:
            if health_once(port, timeout=1.0) == 200:
                ok = True
                break
            if p.poll() is not None:
                break
            time.sleep(0.0005)
        t = time.monotonic() - t0
        stop(p)
        if ok:
            times.append(t)
    if not times:
        row("cold start -> first /health 200", "FAILED", "serve never answered")
        return
    row("cold start -> first /health 200", ms(median(times)),
        "median of %d (min %s, max %s); fresh data dir each" % (len(times), ms(min(times)), ms(max(times))))


def m_idle_and_wrk(run, wrk, seconds):
    srv = Serve(run, "main")
    for _ in range(3):
        health_once(srv.port)
    time.sleep(1.0)
    st = proc_status(srv.pid)
    row("idle RSS", mib(st["VmRSS"]), "VmRSS after 3 /health and 1 s idle; %d threads, %d fds"
        % (st["Threads"], st["fds"]))
    if not wrk:
        row("/health req/s, 50 connections", "SKIPPED", "wrk not installed (apt-get install wrk)")
        return srv
    cmd = [wrk, "-t2", "-c50", "-d%ds" % seconds, "--timeout", "5s", "--latency",
           "http://%s:%d/health" % (HOST, srv.port)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    with open(os.path.join(run.tmp, "wrk.txt"), "w") as f:
        f.write(out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"\n\s+50%\s+(\S+)", out)
    p99 = re.search(r"\n\s+99%\s+(\S+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:(.*)", out)
    total = re.search(r"(\d+) requests in", out)
    after = proc_status(srv.pid)
    note = "wrk -t2 -c50 -d%ds (client shares the 2 cores); p50 %s, p99 %s; %s requests" % (
        seconds, p50.group(1) if p50 else "?", p99.group(1) if p99 else "?", total.group(1) if total else "?")
    if non2xx:
        note += "; %s non-2xx" % non2xx.group(1)
    if errs:
        note += "; socket errors:%s" % errs.group(1)
    row("/health req/s, 50 connections", rps.group(1) if rps else "FAILED", note)
    time.sleep(1.0)
    after2 = proc_status(srv.pid)
    row("RSS after the wrk run", mib(after["VmRSS"]),
        "peak (VmHWM) %s; 1 s later %s, %d threads" % (mib(after["VmHWM"]), mib(after2["VmRSS"]),
                                                        after2["Threads"]))
    return srv


def wrk_rps(wrk, url, seconds):
    cmd = [wrk, "-t2", "-c50", "-d%ds" % seconds, "--timeout", "5s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"\n\s+50%\s+(\S+)", out)
    return (rps.group(1) if rps else None), (p50.group(1) if p50 else "?")


def m_nginx(run, nginx, wrk, seconds):
    """The same /health load on nginx (one worker, `return 200 ok`), for comparison."""
    if not nginx or not wrk:
        row("/health req/s, nginx", "SKIPPED", "nginx-light or wrk not installed (apt-get install nginx-light wrk)")
        return
    d = os.path.join(run.tmp, "nginx")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("daemon off; worker_processes 1; pid %s/nginx.pid; error_log %s/error.log;\n"
                "events { worker_connections 1024; }\n"
                "http { access_log off; server { listen %s:%d; location /health { return 200 ok; } } }\n"
                % (d, d, HOST, port))
    p = run.track(subprocess.Popen([nginx, "-c", conf, "-p", d], stdout=subprocess.DEVNULL,
                                   stderr=open(os.path.join(d, "stderr"), "wb")))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not health_once(port):
            time.sleep(0.05)
        rps, p50 = wrk_rps(wrk, "http://%s:%d/health" % (HOST, port), seconds)
        row("/health req/s, nginx", rps or "FAILED",
            "nginx-light, 1 worker, `return 200 ok`, same wrk load as the row above; p50 %s" % p50)
    finally:
        stop(p)


def count_chunks(data_dir, task):
    d = os.path.join(data_dir, "data", "sessions", task)
    try:
        return sum(1 for f in os.listdir(d) if f.endswith(".jsonl"))
    except OSError:
        return 0


def wait_chunks(srv, task, want, timeout):
    """Until `want` chunks exist, or their number stops growing for 1.5 s."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = count_chunks(srv.dir, task)
        if n >= want:
            return n
        if n != last:
            last, since = n, time.monotonic()
        elif n > 0 and time.monotonic() - since > 1.5:
            return n
        time.sleep(0.2)
    return count_chunks(srv.dir, task)


def m_sse_fanout(run, n, hold, chunks=0):
    """n streams on one task; with chunks, the task first writes that many
    log chunks (a long task's history), then stays quiet while the streams
    open (serve's idle CPU), then writes a line every 2 s (fan-out)."""
    extra = {"CCR_MAX_CONNECTIONS": str(n + 100), "CCR_MAX_CONNECTIONS_PER_CLIENT": str(n + 100)}
    mode = {"stamp": True, "count": 100000, "delay": 2.0}
    quiet = 0.0
    if chunks:
        # every line its own chunk: the job stores a complete line at once when
        # the last chunk is older than CCR_LOG_FLUSH_MS
        extra["CCR_LOG_FLUSH_MS"] = "1"
        quiet = 20.0
        mode.update({"prefill": [chunks, 0.004], "quiet": quiet})
    tag = " (%d chunks)" % chunks if chunks else ""
    # every stream comes from this one client address: the per-client cap is lifted for it
    srv = Serve(run, "sse%d" % chunks, extra)
    health_once(srv.port)
    time.sleep(0.5)
    base = proc_status(srv.pid)
    task = start_async(run, srv, mode, "bench-fanout-%d" % chunks)
    have = wait_chunks(srv, task, chunks, 60) if chunks else 0
    t_quiet = time.monotonic()
    time.sleep(0.5)
    cl = run.track(subprocess.Popen([PY, SSE_CLIENTS, "--port", str(srv.port), "--task", task, "--n", str(n),
                                     "--hold", str(hold + quiet)], stdout=subprocess.PIPE, text=True))
    first = cl.stdout.readline().split()
    if not first or first[0] != "OPEN":
        stop(cl)
        cancel(srv, task)
        row("RSS with %d SSE streams open%s" % (n, tag), "FAILED", "client did not start")
        return
    opened, failed, secs = int(first[1]), int(first[2]), float(first[3])
    idle_cpu = None
    if chunks:
        time.sleep(2.0)     # the history replay to every stream ends
        left = quiet - (time.monotonic() - t_quiet) - 0.5
        if left > 1.0:
            idle_cpu = cpu_percent(srv.pid, min(5.0, left))
        time.sleep(max(0.0, quiet - (time.monotonic() - t_quiet)) + 1.0)
    else:
        time.sleep(min(2.0, hold / 3))
    st = proc_status(srv.pid)
    try:
        with open("/proc/sys/fs/inotify/max_user_instances") as f:
            ino = f.read().strip()
    except OSError:
        ino = "?"
    inotify_fds = max(count_inotify(srv.pid) for _ in range(5))
    cpu = cpu_percent(srv.pid, min(4.0, hold / 3))
    try:
        out, _ = cl.communicate(timeout=hold + quiet + 60)
        summary = json.loads(out.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        stop(cl)
        summary = {}
    cancel(srv, task)
    time.sleep(2.0)
    after = proc_status(srv.pid)
    row("RSS with %d SSE streams open%s" % (n, tag), mib(st["VmRSS"]),
        "%d opened in %.1f s, %d failed; idle before %s; +%.1f KiB/stream; %d threads, %d fds%s"
        % (opened, secs, failed, mib(base["VmRSS"]), (st["VmRSS"] - base["VmRSS"]) * 1024 / max(opened, 1),
           st["Threads"], st["fds"], "; %d chunks in the task" % have if chunks else ""))
    if idle_cpu is not None:
        row("  serve CPU with them open, idle%s" % tag, "%.0f %%" % idle_cpu,
            "of one core; no line written while measured")
    row("  serve CPU with them open%s" % tag, "%.0f %%" % cpu,
        "of one core; one line every 2 s to all streams; %d inotify fds open (fs.inotify.max_user_instances=%s)"
        % (inotify_fds, ino))
    if summary.get("lat_med") is not None:
        row("  fan-out latency line -> %d clients%s" % (n, tag), ms(summary["lat_med"]),
            "median; p90 %s, max %s; %d stamps; frames/stream %d..%d; %d ended early"
            % (ms(summary["lat_p90"]), ms(summary["lat_max"]), summary["stamps"], summary["frames_min"],
               summary["frames_max"], summary["ended_early"]))
    elif summary:
        row("  fan-out latency line -> %d clients%s" % (n, tag), "n/a", "no stamp frames arrived: %s" % summary)
    if summary.get("errors"):
        row("  stream errors%s" % tag, str(sum(summary["errors"].values())), json.dumps(summary["errors"])[:200])
    row("  after they closed%s" % tag, mib(after["VmRSS"]), "%d threads, %d fds (before: %d threads, %d fds)"
        % (after["Threads"], after["fds"], base["Threads"], base["fds"]))
    srv.stop()


def m_line_latency(run, srv, label, count, delay):
    task = start_async(run, srv, {"silent": 1.0, "stamp": True, "count": count, "delay": delay},
                       "bench-lat-%d" % int(delay * 1000))
    sse = SSE(srv.port, "GET", "/tasks/%s/events" % task)
    lat, done = [], None
    try:
        for t, ev, _, data in sse.frames():
            if ev is None:
                doc = json.loads(data)
                if doc.get("type") == "stamp":
                    lat.append(t - doc["t"])
            elif ev == "done":
                done = json.loads(data).get("status")
                break
    finally:
        sse.close()
    if not lat:
        row("line latency, %s" % label, "FAILED", "no stamp frames (done: %s)" % done)
        return
    row("job line -> SSE client, %s" % label, ms(median(lat)),
        "median; p90 %s, max %s; %d/%d lines, task %s" % (ms(pct(lat, 0.9)), ms(max(lat)), len(lat), count, done))


def m_e2e(run, srv, n):
    first, head, spawn, boot, pipe = [], [], [], [], []
    for i in range(n):
        sse = SSE(srv.port, "POST", "/run", task_body({"stamp": True, "count": 1}, mark=run.mark))
        try:
            got = False
            for t, ev, _, data in sse.frames():
                if ev is None and not got:
                    got = True
                    first.append(t - sse.t_send)
                    head.append(sse.t_head - sse.t_send)
                    doc = json.loads(data)
                    spawn.append(doc["t0"] - sse.t_send)
                    boot.append(doc["t"] - doc["t0"])
                    pipe.append(t - doc["t"])
                if ev == "done":
                    break
        finally:
            sse.close()
    if not first:
        row("POST /run -> first SSE data frame", "FAILED")
        return
    row("POST /run -> first SSE data frame", ms(median(first)),
        "median of %d (min %s, max %s); headers after %s" % (len(first), ms(min(first)), ms(max(first)),
                                                               ms(median(head))))
    row("  of which: request -> stand-in running", ms(median(spawn)),
        "seal, store, spawn `ccr job`, unseal, workspace, proxy, exec claude, Python boot")
    row("  of which: stand-in's own imports", ms(median(boot)), "fake_claude.py importing its modules (not ccr)")
    row("  of which: line written -> SSE client", ms(median(pipe)), "log sink debounce + storage + SSE")


def m_sandbox_startup(run, n):
    """POST /run -> the stand-in CLI running, with the agent's sandbox off and on."""
    for mode in ("off", "auto"):
        srv = Serve(run, "sandbox-" + mode, {"CCR_SANDBOX": mode})
        spawn = []
        try:
            for i in range(n):
                sse = SSE(srv.port, "POST", "/run", task_body({"stamp": True, "count": 1}, mark=run.mark))
                try:
                    for t, ev, _, data in sse.frames():
                        if ev is None:
                            spawn.append(json.loads(data)["t0"] - sse.t_send)
                            break
                finally:
                    sse.close()
        finally:
            srv.stop()
        level = "none" if mode == "off" else "namespaces+landlock where available"
        row("task start-up, CCR_SANDBOX=%s" % mode, ms(median(spawn)) if spawn else "FAILED",
            "POST /run -> stand-in CLI running, median of %d (%s)" % (len(spawn), level))


def m_proxy_selftest(run):
    unit = os.path.join(os.path.dirname(run.ccr), "ccr-unit")   # the unit tests, next to ccr
    if not os.access(unit, os.X_OK):
        row("proxy TTFB (ccr-unit proxy/overhead)", "FAILED", "%s missing: run `vendor/zig build unit`" % unit)
        return
    out = subprocess.run([unit, "proxy/overhead"], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r"TTFB median (\d+) us direct, (\d+) us proxied \(([+-]?\d+)\); p90 (\d+) / (\d+) us; n=(\d+)",
                  out)
    if not m:
        row("proxy TTFB (ccr-unit proxy/overhead)", "FAILED", out.strip()[-200:])
        return
    d, p, delta, dp, pp, n = m.groups()
    row("proxy TTFB overhead (ccr-unit, in-process)", "%+d us" % int(delta),
        "median %s us direct vs %s us proxied; p90 %s / %s us; n=%s; C client, C fake" % (d, p, dp, pp, n))


def task_line(srv, mode, kind, mark, timeout):
    """Run a task with the stand-in in `mode` through POST /run; its first line of type `kind`."""
    res = None
    sse = SSE(srv.port, "POST", "/run", task_body(mode, mark=mark), timeout=timeout)
    try:
        for _, ev, _, data in sse.frames():
            if ev is None:
                doc = json.loads(data)
                if doc.get("type") == kind and res is None:
                    res = doc
            elif ev == "done":
                break
    finally:
        sse.close()
    return res


def m_proxy_job(run, n):
    fake = run.track(subprocess.Popen([PY, FAKE_ANTHROPIC, "--port", "0", "--expected-key", REAL_KEY],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                      stdin=subprocess.DEVNULL))
    line = fake.stdout.readline().split()
    if len(line) != 2 or line[0] != "LISTENING":
        row("proxy TTFB through a real job", "FAILED", "fake Anthropic API did not start")
        return
    url = "http://%s:%s" % (HOST, line[1])
    # the stand-in also measures the direct path, which the agent's sandbox (rightly) closes
    srv = Serve(run, "proxy", {"CCR_ANTHROPIC_UPSTREAM": url, "CCR_SANDBOX": "off"})
    res = task_line(srv, {"bench_api": {"n": n, "direct": url, "key": REAL_KEY}}, "bench_api", run.mark, 120)
    srv.stop()
    stop(fake)
    if not res or not res["direct"].get("n") or not res["proxy"].get("n"):
        row("proxy TTFB through a real job", "FAILED", json.dumps(res)[:200])
        return
    d, p = res["direct"], res["proxy"]
    row("proxy TTFB overhead (real job)", "%+d us" % (p["ttfb_med_us"] - d["ttfb_med_us"]),
        "median TTFB %d us direct vs %d us proxied; p90 %d / %d us; n=%d/%d, errors %d/%d"
        % (d["ttfb_med_us"], p["ttfb_med_us"], d["ttfb_p90_us"], p["ttfb_p90_us"], d["n"], p["n"],
           d["errors"], p["errors"]))
    row("  whole streamed answer", "%+d us" % (p["total_med_us"] - d["total_med_us"]),
        "median %d us direct vs %d us proxied (Python client, Python fake with TCP_NODELAY)"
        % (d["total_med_us"], p["total_med_us"]))


def m_egress(run, n):
    """A 10 MiB HTTPS download by the agent (curl in the stand-in CLI) from a
    loopback TLS server on 127.0.0.2, straight and through the job's egress
    proxy (CONNECT), interleaved."""
    name = "egress proxy: added time for a 10 MB HTTPS download"
    srv_tls = run.track(subprocess.Popen([PY, TLS_BLOB, "--dir", os.path.join(run.tmp, "egress-tls"),
                                          "--ip", "127.0.0.2", "--mib", "10"], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL))
    line = srv_tls.stdout.readline().split()
    if len(line) != 3 or line[0] != "LISTENING":
        row(name, "FAILED", "the TLS test server did not start")
        return
    port, ca = line[1], line[2]
    # the stand-in also measures the direct download, which the agent's sandbox (rightly) closes
    srv = Serve(run, "egress", {"CCR_EGRESS_ALLOW_PRIVATE": "127.0.0.2:%s" % port, "CCR_SANDBOX": "off"})
    mode = {"bench_egress": {"n": n, "url": "https://127.0.0.2:%s/blob" % port, "ca": ca}}
    res = task_line(srv, mode, "bench_egress", run.mark, 300)
    srv.stop()
    stop(srv_tls)
    if not res or not res["direct"].get("n") or not res["proxy"].get("n"):
        row(name, "FAILED", json.dumps(res)[:200])
        return
    d, p = res["direct"], res["proxy"]
    row(name, "%+.1f ms" % ((p["med_us"] - d["med_us"]) / 1000.0),
        "median %.1f ms direct vs %.1f ms proxied; p90 %.1f / %.1f ms; %d bytes; n=%d/%d, errors %d/%d "
        "(curl, Python TLS server on 127.0.0.2)"
        % (d["med_us"] / 1000.0, p["med_us"] / 1000.0, d["p90_us"] / 1000.0, p["p90_us"] / 1000.0,
           res["bytes"], d["n"], p["n"], d["errors"], p["errors"]))


# ---------------------------------------------------------------- the real CLI

def install_claude():
    """The pinned CLI's path, or None with the reason logged."""
    r = subprocess.run([INSTALL_CLAUDE], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
        if r.returncode == 3:
            why = "the npm registry is unreachable: " + why
        return None, why
    return r.stdout.strip().splitlines()[-1], None


def start_fake_api(run):
    """The fake Anthropic API (TCP_NODELAY), answering every turn with text."""
    script = os.path.join(run.tmp, "api-script.json")
    with open(script, "w") as f:
        json.dump({"turns": [], "default": {"text": "bench answer"}}, f)
    fake = run.track(subprocess.Popen([PY, FAKE_ANTHROPIC, "--port", "0", "--expected-key", REAL_KEY,
                                       "--script", script], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL))
    line = fake.stdout.readline().split()
    if len(line) != 2 or line[0] != "LISTENING":
        raise RuntimeError("the fake Anthropic API did not start")
    return fake, "http://%s:%s" % (HOST, line[1])


def start_fake_cloud(run, job_env):
    """The fake Google Cloud with the Cloud Run job = `ccr job`; serve's env for it."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from fakes.gcp_client import FakeGCP
    d = os.path.join(run.tmp, "cloud")
    os.makedirs(os.path.join(d, "gcloud"), exist_ok=True)
    fenv = serve_env(run, d)
    fake = FakeGCP(state_dir=os.path.join(d, "fake"), buckets=[CLOUD_BUCKET], env=fenv).start()
    env = {"GCS_LOGS_BUCKET": CLOUD_BUCKET, "GOOGLE_APPLICATION_CREDENTIALS": fake.sa_path,
           "CLOUDSDK_CONFIG": os.path.join(d, "gcloud"), "STORAGE_EMULATOR_HOST": fake.url,
           "CCR_KMS_ENDPOINT": fake.url, "CCR_RUN_ENDPOINT": fake.url, "CCR_SECRETMANAGER_ENDPOINT": fake.url,
           "REGION": fake.region, "CLOUDRUN_JOB_NAME": CLOUD_JOB}
    fake.register_job(CLOUD_JOB, command=[run.ccr, "job"], env=dict(fenv, **env, **job_env))
    return fake, env


def m_cloud_latency(run, streams_list, count, delay):
    """Cloud mode on the fake: job line -> SSE client while lines flow, and
    the storage calls serve makes per stream, with 1 and with N streams."""
    fake, cenv = start_fake_cloud(run, {})
    srv = Serve(run, "cloud-lat", cenv)
    try:
        for n in streams_list:
            task = start_async(run, srv, {"silent": 1.0, "stamp": True, "count": count, "delay": delay},
                               "bench-cloud-%d" % n)
            fake.clear_requests()
            t0 = time.time()
            lat, lock = [], threading.Lock()

            def follow():
                sse = SSE(srv.port, "GET", "/tasks/%s/events" % task, timeout=120)
                try:
                    for t, ev, _, data in sse.frames():
                        if ev is None:
                            doc = json.loads(data)
                            if doc.get("type") == "stamp":
                                with lock:
                                    lat.append(t - doc["t"])
                        elif ev == "done":
                            break
                finally:
                    sse.close()
            ths = [threading.Thread(target=follow) for _ in range(n)]
            for th in ths:
                th.start()
            for th in ths:
                th.join(timeout=180)
            secs = time.time() - t0
            reqs = fake.requests(service="storage")
            reads = [q for q in reqs if q.get("method") == "GET"]
            writes = [q for q in reqs if q.get("method") in ("POST", "PUT", "PATCH")]
            if not lat:
                row("cloud: job line -> SSE client, %d stream(s)" % n, "FAILED", "no stamp frames")
                continue
            row("cloud: job line -> SSE client, %d stream(s)" % n, ms(median(lat)),
                "median; p90 %s; lines %d ms apart; %d storage reads (%.0f per stream per minute), "
                "%d writes (%.0f per minute) in %.0f s" % (ms(pct(lat, 0.9)), int(delay * 1000), len(reads),
                                                          len(reads) / n / secs * 60, len(writes),
                                                          len(writes) / secs * 60, secs))
    finally:
        srv.stop()
        fake.stop()


def m_real_cli(run, n, mode):
    """POST /run -> the CLI's init line, and -> `event: done`, with the real CLI."""
    label = "real CLI, %s mode" % mode
    claude, why = install_claude()
    if claude is None:
        row("%s: POST /run -> init line" % label, "skipped", why[:120])
        return
    fake, url = start_fake_api(run)
    home = os.path.join(run.tmp, "cli-home-" + mode)
    os.makedirs(home, exist_ok=True)
    env = {"CLAUDE_BIN": claude, "CCR_ANTHROPIC_UPSTREAM": url, "DANGEROUSLY_SKIP_PERMISSIONS": "true",
           "HOME": home, "CCR_WORKSPACE_ROOT": os.path.join(run.tmp, "ws-" + mode)}
    cloud = None
    if mode == "cloud":
        cloud, cenv = start_fake_cloud(run, env)
        env.update(cenv)
    srv = Serve(run, "cli-" + mode, env)
    first, done = [], []
    try:
        for _ in range(n):
            body = {"prompt": "bench", "anthropicApiKey": REAL_KEY,
                    "environmentSecrets": dict(CLI_ENV, CCR_BENCH_MARK=run.mark)}
            sse = SSE(srv.port, "POST", "/run", body, timeout=120)
            got = False
            try:
                for t, ev, _, data in sse.frames():
                    if ev is None and not got:
                        got = True
                        first.append(t - sse.t_send)
                    if ev == "done":
                        if json.loads(data).get("status") != "completed":
                            raise RuntimeError("a task ended %s" % data[:200])
                        done.append(t - sse.t_send)
                        break
            finally:
                sse.close()
    finally:
        srv.stop()
        stop(fake)
        if cloud is not None:
            cloud.stop()
    row("%s: POST /run -> init line" % label, ms(median(first)),
        "median of %d (min %s, max %s); CLI start-up included" % (len(first), ms(min(first)), ms(max(first))))
    row("%s: POST /run -> done" % label, ms(median(done)),
        "one text turn through the token proxy to the fake API; max %s" % ms(max(done)))


def m_message_latency(run, n):
    """POST /tasks/:id/messages -> the stand-in CLI reading it on stdin (the "t" of its replay),
    n messages one after another: local mode over the job's socket, local mode through the
    inbox (the socket removed; the job polls the inbox once a second while it listens), and
    cloud mode through the inbox on the fake GCS (polled once a second)."""
    def conversation(srv, task, steps):
        st, data = http(srv.port, "POST", "/run-async", task_body({}, mark=run.mark, callbackUrl=CALLBACK,
                                                                  taskId=task, idleAfterResultSeconds=120))
        if st != 202:
            raise RuntimeError("POST /run-async: %d %s" % (st, data[:300]))
        sse = SSE(srv.port, "GET", "/tasks/%s/events" % task, timeout=120)
        frames = sse.frames()

        def wait_for(pred):
            for _, ev, _, data in frames:
                doc = json.loads(data) if ev is None else {}
                if pred(doc):
                    return doc
            raise RuntimeError("the stream of %s ended early" % task)
        try:
            wait_for(lambda d: d.get("type") == "result")
            for label, before in steps:
                if before:
                    before()
                lat = []
                for i in range(n):
                    text = "%s %d" % (label, i)
                    t0 = time.time()
                    st, data = http(srv.port, "POST", "/tasks/%s/messages" % task, {"text": text})
                    if st != 202:
                        raise RuntimeError("POST /tasks/:id/messages: %d %s" % (st, data[:200]))
                    lat.append(wait_for(lambda d: d.get("type") == "user" and
                                        d["message"]["content"][0].get("text") == text)["t"] - t0)
                    wait_for(lambda d: d.get("type") == "result")
                row("message -> CLI stdin, %s" % label, ms(median(lat)),
                    "median of %d (min %s, max %s)" % (len(lat), ms(min(lat)), ms(max(lat))))
        finally:
            http(srv.port, "POST", "/tasks/%s/end" % task)
            sse.close()

    srv = Serve(run, "msg-local")
    sockdir = os.path.join(srv.dir, "data", ".run", "msg")
    try:
        conversation(srv, "bench-msg-local", [
            ("local, job's socket", None),
            ("local, inbox fallback", lambda: [os.unlink(os.path.join(sockdir, f)) for f in os.listdir(sockdir)])])
    finally:
        srv.stop()
    fake, cenv = start_fake_cloud(run, {})
    srv = Serve(run, "msg-cloud", cenv)
    try:
        conversation(srv, "bench-msg-cloud", [("cloud, inbox on the fake GCS", None)])
    finally:
        srv.stop()
        fake.stop()


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp")
    ap.add_argument("--mark")
    ap.add_argument("--ccr")
    ap.add_argument("--wrk", default="")
    ap.add_argument("--nginx", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reap")
    a = ap.parse_args()
    if a.reap:
        n = reap(a.reap)
        if n:
            log("killed %d leftover process(es)" % n)
        return 0
    run = Run(a)
    q = a.quick
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    failed = []
    def step(name, fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - one step failing does not stop the others
            failed.append("%s: %s" % (name, e))
            log("step %s failed: %s" % (name, e))

    try:
        step("cold start", lambda: m_cold_start(run, 5 if q else 10))
        srv = step("idle/wrk", lambda: m_idle_and_wrk(run, a.wrk, 3 if q else 10))
        step("nginx", lambda: m_nginx(run, a.nginx, a.wrk, 3 if q else 10))
        if srv is not None:
            step("latency spaced", lambda: m_line_latency(run, srv, "lines 100 ms apart", 20 if q else 60, 0.1))
            step("latency burst", lambda: m_line_latency(run, srv, "lines 5 ms apart", 100 if q else 300, 0.005))
            step("e2e", lambda: m_e2e(run, srv, 5 if q else 10))
            srv.stop()
        step("sandbox start-up", lambda: m_sandbox_startup(run, 5 if q else 15))
        step("sse fan-out", lambda: m_sse_fanout(run, 1000, 6.0 if q else 15.0))
        step("sse fan-out, long task", lambda: m_sse_fanout(run, 1000, 6.0 if q else 15.0, 1000))
        step("proxy selftest", lambda: m_proxy_selftest(run))
        step("proxy job", lambda: m_proxy_job(run, 50 if q else 200))
        step("egress proxy", lambda: m_egress(run, 5 if q else 20))
        step("cloud latency", lambda: m_cloud_latency(run, (1, 10) if q else (1, 50), 20 if q else 60, 0.2))
        step("message latency", lambda: m_message_latency(run, 10 if q else 20))
        step("real CLI local", lambda: m_real_cli(run, 3 if q else 10, "local"))
        step("real CLI cloud", lambda: m_real_cli(run, 3 if q else 10, "cloud"))
    finally:
        run.stop_all()

    order = ["cold start", "idle RSS", "/health req/s, 50", "/health req/s, nginx", "RSS after the wrk", "RSS with", "  serve CPU",
             "  fan-out", "  stream errors", "  after they", "job line", "POST /run", "  of which", "task start-up", "proxy TTFB", "  whole", "egress proxy", "cloud: job line", "real CLI, local",
             "real CLI, cloud"]

    def key(r):
        for i, p in enumerate(order):
            if r[0].startswith(p):
                return i
        return len(order)

    rows = sorted(ROWS, key=key)
    w = max(len(r[0]) for r in rows) if rows else 10
    vw = max(len(r[1]) for r in rows) if rows else 10
    print()
    print("ccr bench (%s run, %s, %d cores, %.0f s)" % ("quick" if q else "full",
                                                         subprocess.run([run.ccr, "version"], capture_output=True,
                                                                        text=True).stdout.split("\n")[0],
                                                         os.cpu_count(), time.monotonic() - t0))
    print("%-*s  %*s  %s" % (w, "metric", vw, "value", "how / detail"))
    print("%s  %s  %s" % ("-" * w, "-" * vw, "-" * 40))
    for m, v, note in rows:
        print("%-*s  %*s  %s" % (w, m, vw, v, note))
    for f in failed:
        print("step failed: %s" % f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
