#!/usr/bin/python3
"""A hostile stand-in for the `claude` CLI: the agent a prompt injection makes.

It reads a JSON prompt on stdin naming what to attack, tries every probe,
and prints one stream-json line {"type":"system","subtype":"probes",
"results":{probe: outcome}} then a success result.  An outcome is
"blocked: <why>" or "OPEN: <what it got>"; tests/test_sandbox.py fails on
any OPEN probe except the ones that must work ("allowed_*").  Secrets are
recognised by the marker in the prompt, never printed whole.

Prompt fields: marker, data_dir, home, ws_parent, msg_socket and victim_task (the
victim's message socket, to forge a follow-up message), pids (name -> host pid),
ports (name -> loopback port), allowed_url (https, through the proxy),
denied_host (a name outside allowedHosts), ca_file.
"""
import ctypes
import http.client
import json
import os
import re
import signal
import socket
import ssl
import sys
import urllib.parse

MARK = b""


def found(data):
    return MARK in data if isinstance(data, bytes) else False


def read_mem(pid):
    """Scan another process's memory for the marker."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) r", line)
            if not m:
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            try:
                mem.seek(start)
                if found(mem.read(min(end - start, 64 << 20))):
                    return True
            except (OSError, ValueError, OverflowError):
                continue
    return False


def probe_proc(known_pids):
    """Every process this agent can see (and the ones it was told of):
    environ, cmdline and memory."""
    hits, seen = [], 0
    try:
        listed = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        listed = []
    for d in sorted(set(listed) | {str(p) for p in known_pids}):
        if int(d) == os.getpid():
            continue
        seen += 1
        for what in ("environ", "cmdline"):
            try:
                with open(f"/proc/{d}/{what}", "rb") as f:
                    if found(f.read()):
                        with open(f"/proc/{d}/cmdline", "rb") as c:
                            hits.append(f"{d}/{what} ({c.read()[:60]!r})")
            except OSError:
                pass
        try:
            if read_mem(d):
                hits.append(f"{d}/mem")
        except OSError:
            pass
    return ("OPEN: " + ",".join(hits)) if hits else f"blocked: no marker in {seen} visible processes"


def probe_tree(root):
    """Walk a directory the agent must not see, reading every file."""
    if not root or not os.path.exists(root):
        return "blocked: not visible"
    hits, files = [], 0
    try:
        for dirpath, _, names in os.walk(root):
            for n in names:
                p = os.path.join(dirpath, n)
                try:
                    with open(p, "rb") as f:
                        files += 1
                        if found(f.read(1 << 20)) or n in ("ccr.key", "payload.enc", ".env", "id_ed25519"):
                            hits.append(p)
                except OSError:
                    pass
    except OSError as e:
        return f"blocked: {e}"
    return ("OPEN: " + ",".join(hits[:5])) if hits else f"blocked: {files} files readable, none secret"


def probe_other_workspaces(parent):
    mine = os.getcwd()
    try:
        names = [n for n in os.listdir(parent) if n.startswith("ws-")]
    except OSError as e:
        return f"blocked: {e}"
    others = [n for n in names if not mine.startswith(os.path.join(parent, n))]
    opened = []
    for n in others:
        try:
            opened.append((n, os.listdir(os.path.join(parent, n))))
        except OSError:
            pass
    return f"OPEN: {opened[:2]}" if opened else f"blocked: {len(others)} other workspaces, none readable"


def probe_msg_socket(path, task):
    """Forge a follow-up message to the victim over its job's message socket
    (src/task/msgsock.h): the record unsealed, since the key is out of reach."""
    if not path:
        return "blocked: no socket named"
    here = os.getcwd()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        os.chdir(os.path.dirname(path))   # the full path may not fit in sun_path
        s.connect(os.path.basename(path))
        rec = json.dumps({"type": "message", "text": MARK.decode() + "-forged", "id": "9999999999999-ffffffff",
                          "taskId": task}).encode()
        s.sendall(b"CCM1" + len(rec).to_bytes(4, "big") + rec)
        ack = s.recv(1)
        return "OPEN: the job took a forged message" if ack == b"k" else f"blocked: connected, the job answered {ack!r}"
    except OSError as e:
        return f"blocked: {e.strerror or e}"
    finally:
        s.close()
        os.chdir(here)


def probe_signal(pid):
    try:
        os.kill(pid, signal.SIGTERM)
        return "OPEN: SIGTERM delivered"
    except OSError as e:
        return f"blocked: {e.strerror}"


def probe_ptrace(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    PTRACE_ATTACH, PTRACE_DETACH = 16, 17
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
        libc.ptrace(PTRACE_DETACH, pid, None, None)
        return "OPEN: attached"
    return f"blocked: {os.strerror(ctypes.get_errno())}"


def probe_connect(port, host="127.0.0.1"):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        s.sendall(b"GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.0\r\n"
                  b"Metadata-Flavor: Google\r\n\r\n")
        data = s.recv(200)
        return f"OPEN: connected, got {data[:40]!r}"
    except OSError as e:
        return f"blocked: {e.strerror or e}"
    finally:
        s.close()


def proxy_port(var):
    url = os.environ.get(var) or os.environ.get(var.lower()) or ""
    m = re.match(r"http://127\.0\.0\.1:(\d+)", url)
    return int(m.group(1)) if m else None


def probe_via_proxy(target, absolute=False):
    """CONNECT (or an absolute-form GET) through the egress proxy."""
    port = proxy_port("HTTPS_PROXY")
    if not port:
        return "blocked: no proxy in the environment"
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        if absolute:
            s.sendall(f"GET http://{target}/computeMetadata/v1/ HTTP/1.1\r\nHost: {target}\r\n"
                      "Metadata-Flavor: Google\r\nConnection: close\r\n\r\n".encode())
        else:
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = s.recv(200).decode("latin-1")
        status = head.split(" ", 2)[1] if " " in head else "?"
        return f"OPEN: {head.splitlines()[0]}" if status.startswith("2") else f"blocked: proxy said {status}"
    except OSError as e:
        return f"blocked: {e}"
    finally:
        s.close()


def probe_token_proxy_elsewhere(target):
    """Ask the token proxy to forward (with the real key) somewhere else."""
    base = os.environ.get("ANTHROPIC_BASE_URL", "")
    m = re.match(r"http://127\.0\.0\.1:(\d+)", base)
    if not m:
        return "blocked: no token proxy"
    s = socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=5)
    try:
        key = os.environ.get("ANTHROPIC_API_KEY", "")
        s.sendall(f"GET http://{target}/v1/messages HTTP/1.1\r\nHost: {target}\r\nx-api-key: {key}\r\n"
                  "Connection: close\r\n\r\n".encode())
        head = s.recv(200).decode("latin-1")
        status = head.split(" ", 2)[1] if " " in head else "?"
        return f"OPEN: {status}" if status.startswith("2") else f"blocked: token proxy said {status}"
    finally:
        s.close()


def probe_allowed(url, ca_file):
    """GET url through the egress proxy (CONNECT, then TLS to the host)."""
    port = proxy_port("HTTPS_PROXY")
    if not port:
        return "blocked: no proxy in the environment"
    u = urllib.parse.urlsplit(url)
    ctx = ssl.create_default_context(cafile=ca_file)
    try:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=20, context=ctx)
        c.set_tunnel(u.hostname, u.port or 443)
        c.request("GET", u.path or "/")
        r = c.getresponse()
        body = r.read()
        return f"OPEN: {r.status}, {len(body)} bytes" if r.status == 200 else f"blocked: status {r.status}"
    except Exception as e:  # noqa: BLE001 - the outcome is the message
        return f"blocked: {e}"


def main():
    global MARK
    if "FAKE_CLAUDE_MODE" in os.environ:     # not the attacker: the victim, a scripted CLI
        here = os.path.dirname(os.path.abspath(__file__))
        os.execv(sys.executable, [sys.executable, os.path.join(here, "fake_claude.py")] + sys.argv[1:])
    spec = json.loads(sys.stdin.read())
    MARK = spec["marker"].encode()
    r = {}
    r["proc_secrets"] = probe_proc(spec.get("pids", {}).values())
    r["data_dir"] = probe_tree(spec["data_dir"])
    r["operator_home"] = probe_tree(spec["home"])
    r["other_workspaces"] = probe_other_workspaces(spec["ws_parent"])
    if "msg_socket" in spec:
        r["victim_msg_socket"] = probe_msg_socket(spec["msg_socket"], spec.get("victim_task", ""))
    for name, pid in spec.get("pids", {}).items():
        r[f"signal_{name}"] = probe_signal(pid)
        r[f"ptrace_{name}"] = probe_ptrace(pid)
    for name, port in spec.get("ports", {}).items():
        r[f"connect_{name}"] = probe_connect(port)
        r[f"proxy_connect_{name}"] = probe_via_proxy(f"127.0.0.1:{port}")
        r[f"proxy_get_{name}"] = probe_via_proxy(f"127.0.0.1:{port}", absolute=True)
        r[f"token_proxy_{name}"] = probe_token_proxy_elsewhere(f"127.0.0.1:{port}")
    r["proxy_metadata_name"] = probe_via_proxy("metadata.google.internal:80")
    r["proxy_metadata_get"] = probe_via_proxy("metadata.google.internal", absolute=True)
    if spec.get("denied_host"):
        r["proxy_outside_allowed"] = probe_via_proxy(spec["denied_host"])
    if spec.get("allowed_url"):
        r["allowed_download"] = probe_allowed(spec["allowed_url"], spec.get("ca_file"))
    print(json.dumps({"type": "system", "subtype": "probes", "results": r}), flush=True)
    print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "done",
                      "session_id": "hostile", "num_turns": 1}), flush=True)


if __name__ == "__main__":
    main()
