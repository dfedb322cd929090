"""The job's egress proxy (src/egress/egress.c) and `ccr connect`, driven as the
agent drives them: a `ccr job` in local mode whose stand-in CLI
(tests/fakes/fake_claude.py, "sh" mode) runs curl, git and `ccr connect`
with the environment ccr gave it (HTTP_PROXY, HTTPS_PROXY, NO_PROXY,
GIT_SSH_COMMAND).

Every server is on loopback.  They listen on 127.0.0.2-127.0.0.5 rather than
127.0.0.1, because NO_PROXY sends 127.0.0.1 around the proxy (the token
proxy is reached directly); each records what reached it, so a refusal is
shown to have sent nothing.  The metadata server is only ever named, never
resolved: the proxy refuses it by name before any DNS query.
"""
import http.server
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from fakes import testenv  # noqa: E402
from test_job import Job, sh_results  # noqa: E402

pytestmark = pytest.mark.skipif(not shutil.which("curl") or not shutil.which("openssl"),
                                reason="needs curl and openssl")


def make_cert(d, ip):
    """A test CA and a server certificate for the IP address ip."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(args):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
    run(["req", "-x509", *ec, "-keyout", d / "ca.key", "-out", d / "ca.pem", "-days", "2",
         "-subj", "/CN=ccr egress test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["req", *ec, "-keyout", d / "srv.key", "-out", d / "srv.csr", "-subj", "/CN=" + ip])
    (d / "srv.ext").write_text("subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n" % ip)
    run(["x509", "-req", "-in", d / "srv.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
         "-CAcreateserial", "-out", d / "srv.pem", "-days", "2", "-extfile", d / "srv.ext"])
    return d / "ca.pem", d / "srv.pem", d / "srv.key"


class Web:
    """An HTTP(S) server on ip that serves `files` and records every request
    (path as received, headers)."""

    def __init__(self, ip, files, tls=None):
        self.seen = []
        web = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                web.seen.append({"path": self.path, "headers": dict(self.headers)})
                body = files.get(self.path)
                if body is None:
                    self.send_response(404)
                    body = b"not here\n"
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "keep-alive")
                self.end_headers()
                self.wfile.write(body)

        self.server = testenv.serve_http(H, host=ip, tls=tls)
        self.ip, self.port = ip, self.server.port

    def close(self):
        self.server.stop()


class Echo:
    """A TCP echo server on ip: each connection gets back what it sends."""

    def __init__(self, ip):
        self.server = testenv.serve_tcp(self._echo, host=ip)
        self.ip, self.port = ip, self.server.port

    @property
    def accepted(self):
        return self.server.accepted

    @staticmethod
    def _echo(c):
        while True:
            data = c.recv(65536)
            if not data:
                return
            c.sendall(data)

    def close(self):
        self.server.stop()


@pytest.fixture
def job(ccr_bin, tmp_path):
    return Job(ccr_bin, tmp_path)


@pytest.fixture
def net(tmp_path):
    """The loopback world of these tests."""
    ca, cert, key = make_cert(tmp_path / "tls", "127.0.0.2")
    blob = secrets.token_bytes(300 * 1024)
    n = type("Net", (), {})()
    n.ca, n.blob = ca, blob
    n.tls = Web("127.0.0.2", {"/blob": blob}, tls=(cert, key))
    n.plain = Web("127.0.0.2", {"/plain?x=1": b"plain body through the proxy\n"})
    n.closed = Web("127.0.0.2", {"/": b"must never be reached\n"})       # never admitted
    n.meta = Web("127.0.0.3", {"/computeMetadata/v1/": b"fake token\n"})  # a metadata stand-in
    n.other = Web("127.0.0.4", {"/plain": b"other\n"})
    n.fifth = Web("127.0.0.5", {"/plain": b"fifth\n"})
    n.echo = Echo("127.0.0.2")
    yield n
    for s in (n.tls, n.plain, n.closed, n.meta, n.other, n.fifth, n.echo):
        s.close()


def run_agent(job, task_id, cmds, env=None, **fields):
    job.payload(task_id, mode={"sh": cmds}, **fields)
    rc, out, err = job.run(task_id, timeout=120, **(env or {}))
    assert rc == 0, err
    assert job.meta(task_id)["status"] == "completed", job.meta(task_id)
    res, rec = sh_results(job)
    return res, rec, err


def refusals(err):
    """The job's log lines about refused connections."""
    out = []
    for line in err.splitlines():
        try:
            msg = json.loads(line).get("message", "")
        except ValueError:
            continue
        if msg.startswith("egress proxy refused"):
            out.append(msg)
    return out


def test_agent_reaches_admitted_servers_through_the_proxy_and_nothing_else(job, net, ccr_bin, tmp_path):
    got = job.rec_dir / "blob.out"         # written inside the agent's sandbox
    admit = "127.0.0.2:%d,127.0.0.2:%d,127.0.0.2:%d" % (net.tls.port, net.plain.port, net.echo.port)
    https = "curl -sS --cacert %s -o %s https://127.0.0.2:%d/blob; echo rc=$?" % (net.ca, got, net.tls.port)
    plain = "curl -sS -H 'Proxy-Authorization: Basic eDp5' 'http://127.0.0.2:%d/plain?x=1'" % net.plain.port
    closed_http = "curl -sS -w ' code=%%{http_code}' http://127.0.0.2:%d/" % net.closed.port
    closed_tls = "curl -sS --cacert %s https://127.0.0.2:%d/; echo rc=$?" % (net.ca, net.closed.port)
    meta_addr = "curl -sS -w ' code=%%{http_code}' http://127.0.0.3:%d/computeMetadata/v1/" % net.meta.port
    meta_name = "curl -sS -w ' code=%{http_code}' -H 'Metadata-Flavor: Google' " \
                "http://metadata.google.internal/computeMetadata/v1/"
    meta_tls = "curl -sS https://METADATA.google.internal./; echo rc=$?"
    echo = "printf 'ping through ccr connect' | %s connect 127.0.0.2 %d; r=$?; echo; echo rc=$r" % (
        ccr_bin, net.echo.port)
    refused = "%s connect 127.0.0.2 %d </dev/null; echo rc=$?" % (ccr_bin, net.closed.port)
    cmds = [https, plain, closed_http, closed_tls, meta_addr, meta_name, meta_tls, echo, refused]
    res, rec, err = run_agent(job, "eg1", cmds, {"CCR_EGRESS_ALLOW_PRIVATE": admit,
                                                 "CCR_SANDBOX_RO_PATHS": os.path.dirname(net.ca)})

    env = rec["env"]
    proxy = env["HTTPS_PROXY"]
    assert proxy.startswith("http://127.0.0.1:") and proxy != env["ANTHROPIC_BASE_URL"]
    for k in ("HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        assert env[k] == proxy, k
    assert env["NO_PROXY"] == env["no_proxy"] == "127.0.0.1,localhost,::1"
    assert "ProxyCommand=" in env["GIT_SSH_COMMAND"] and " connect %h %p" in env["GIT_SSH_COMMAND"]
    assert os.path.realpath(ccr_bin) in env["GIT_SSH_COMMAND"]

    # (a) HTTPS through CONNECT, TLS end to end with the test CA
    assert "rc=0" in res[https]["out"], res[https]["out"]
    assert got.read_bytes() == net.blob
    # (b) absolute-form HTTP, sent on in origin-form with the URL's Host
    assert res[plain]["out"] == "plain body through the proxy\n", res[plain]["out"]
    req = net.plain.seen[-1]
    assert req["path"] == "/plain?x=1" and req["headers"]["Host"] == "127.0.0.2:%d" % net.plain.port
    assert not any(h.lower().startswith("proxy-") for h in req["headers"]), req["headers"]
    assert req["headers"].get("Connection") == "close"
    # (c) refused: a loopback port not admitted, the metadata stand-in, the metadata name
    assert "code=403" in res[closed_http]["out"] and "loopback" in res[closed_http]["out"], res[closed_http]
    assert "rc=56" in res[closed_tls]["out"] and "403" in res[closed_tls]["out"], res[closed_tls]
    assert "code=403" in res[meta_addr]["out"], res[meta_addr]
    assert "code=403" in res[meta_name]["out"] and "metadata server" in res[meta_name]["out"], res[meta_name]
    assert "rc=56" in res[meta_tls]["out"], res[meta_tls]
    assert net.closed.seen == [] and net.meta.seen == []
    # (d) ccr connect: a tunnel to the admitted echo server, a refusal otherwise
    assert res[echo]["out"] == "ping through ccr connect\nrc=0\n", res[echo]["out"]
    lines = res[refused]["out"].splitlines()
    assert len(lines) == 2 and lines[1] == "rc=1", lines
    assert lines[0].startswith("ccr connect: the egress proxy refused 127.0.0.2:%d: 403" % net.closed.port)
    assert "loopback" in lines[0], lines[0]
    # (e) each refusal is one line of the job's log, with host, port and reason
    logged = refusals(err)
    assert any("127.0.0.2:%d" % net.closed.port in m and "loopback" in m for m in logged), logged
    assert any("127.0.0.3:%d" % net.meta.port in m for m in logged), logged
    assert any("metadata.google.internal:80" in m and "metadata server" in m for m in logged), logged
    assert any("CONNECT metadata.google.internal:443" in m for m in logged), logged
    assert len(logged) == 6, logged       # closed x2, meta addr, meta name x2, ccr connect


def test_allowed_hosts_narrows_the_operators_list(job, net):
    admit = ",".join("%s:%d" % (s.ip, s.port) for s in (net.plain, net.other, net.fifth))
    ok = "curl -sS 'http://127.0.0.2:%d/plain?x=1'" % net.plain.port
    task_out = "curl -sS -w ' code=%%{http_code}' http://127.0.0.4:%d/plain" % net.other.port
    op_out = "curl -sS -w ' code=%%{http_code}' http://127.0.0.5:%d/plain" % net.fifth.port
    res, _, err = run_agent(job, "eg2", [ok, task_out, op_out],
                            {"CCR_EGRESS_ALLOW_PRIVATE": admit, "CCR_EGRESS_ALLOW": "127.0.0.2, 127.0.0.4"},
                            allowedHosts=["127.0.0.2", "127.0.0.5"])
    assert res[ok]["out"] == "plain body through the proxy\n", res[ok]
    assert "code=403" in res[task_out]["out"] and "allowedHosts" in res[task_out]["out"], res[task_out]
    assert "code=403" in res[op_out]["out"] and "CCR_EGRESS_ALLOW" in res[op_out]["out"], res[op_out]
    assert net.other.seen == [] and net.fifth.seen == []
    logged = refusals(err)
    assert len(logged) == 2 and "allowedHosts" in logged[0] and "CCR_EGRESS_ALLOW" in logged[1], logged


def test_a_name_in_allowed_hosts_still_gets_the_address_check(job, net):
    # localhost is allowed by name, but it resolves to loopback and is not admitted
    cmd = "curl -sS --noproxy '' -x \"$HTTP_PROXY\" -w ' code=%%{http_code}' http://localhost:%d/" % net.closed.port
    res, _, err = run_agent(job, "eg3", [cmd], allowedHosts=["localhost", "*.example.org"])
    assert "code=403" in res[cmd]["out"] and "resolves to" in res[cmd]["out"], res[cmd]
    assert net.closed.seen == []


def test_agent_ssh_goes_through_the_proxy_and_is_refused_when_not_admitted(job, net):
    cmd = "git ls-remote ssh://git@127.0.0.2:%d/repo.git; echo rc=$?" % net.closed.port
    res, _, err = run_agent(job, "eg4", [cmd])
    out = res[cmd]["out"]
    assert "ccr connect: the egress proxy refused 127.0.0.2:%d: 403" % net.closed.port in out, out
    assert "rc=0" not in out
    assert any("CONNECT 127.0.0.2:%d" % net.closed.port in m for m in refusals(err)), err


def test_environment_secrets_cannot_replace_the_proxy_variables(job):
    job.payload("eg5", environmentSecrets={"FAKE_CLAUDE_MODE": "{}", "FAKE_CLAUDE_RECORD": str(job.record),
                                           "HTTPS_PROXY": "http://203.0.113.9:3128", "no_proxy": "*",
                                           "Http_Proxy": "http://203.0.113.9:3128", "KEEP_ME": "yes"})
    rc, out, err = job.run("eg5")
    assert rc == 0, err
    env = job.claude_record()["env"]
    assert env["HTTPS_PROXY"].startswith("http://127.0.0.1:") and env["no_proxy"] == "127.0.0.1,localhost,::1"
    assert "Http_Proxy" not in env and env["KEEP_ME"] == "yes"


@pytest.mark.parametrize("value,error", [
    ("github.com", "allowedHosts must be an array of strings"),
    (["github.com", 7], "allowedHosts must be an array of strings"),
    (["github.com", "not a host"], "allowedHosts[1]: 'not a host' is not a host name, '*.suffix' or IP address"),
    (["*"], "allowedHosts[0]: '*' is not an entry"),
])
def test_bad_allowed_hosts_is_a_400(local_serve, value, error):
    from conftest import http_request
    srv = local_serve()
    status, _, data = http_request(srv, "POST", "/run",
                                   {"prompt": "x", "anthropicApiKey": "k", "allowedHosts": value})
    assert status == 400 and error in json.loads(data)["error"], (status, data)


def test_a_bad_operator_list_fails_the_task_with_its_name(job):
    job.payload("eg6")
    rc, out, err = job.run("eg6", CCR_EGRESS_ALLOW="github.com,bad host")
    assert rc == 1
    m = job.meta("eg6")
    assert m["status"] == "failed" and "CCR_EGRESS_ALLOW: 'bad host' is not a host name" in m["error"], m


def test_ccr_connect_usage_and_missing_proxy(ccr_bin):
    r = subprocess.run([str(ccr_bin), "connect", "host"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("usage: ccr connect HOST PORT")
    env = {k: v for k, v in os.environ.items() if k.lower() != "https_proxy"}
    r = subprocess.run([str(ccr_bin), "connect", "example.com", "22"], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "HTTPS_PROXY is not set" in r.stderr, r.stderr
    r = subprocess.run([str(ccr_bin), "connect", "example.com", "x22"], capture_output=True, text=True)
    assert r.returncode == 2 and "not a port" in r.stderr


def raw(port, data, timeout=10):
    """Send data to the proxy, read until it closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    got = b""
    try:
        while True:
            part = s.recv(65536)
            if not part:
                break
            got += part
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return got


def test_malformed_requests_and_the_connection_cap(job, net):
    """The proxy of a running task, spoken to directly: bad requests get a
    clear 4xx, more than 256 connections a 503, and the task is unharmed."""
    job.payload("eg7", mode={"silent": 60})
    p = job.start("eg7", CCR_EGRESS_ALLOW_PRIVATE="127.0.0.2:%d" % net.echo.port)
    try:
        for _ in range(300):
            if job.record.exists() and job.record.stat().st_size:
                break
            time.sleep(0.1)
        port = int(json.loads(job.record.read_text())["env"]["HTTPS_PROXY"].rsplit(":", 1)[1])
        cases = [
            (b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", b"400", b"absolute-form"),
            (b"GET https://a.example/ HTTP/1.1\r\n\r\n", b"400", b"CONNECT"),
            (b"GET http://u:p@a.example/ HTTP/1.1\r\n\r\n", b"400", b"credentials"),
            (b"CONNECT a.example HTTP/1.1\r\n\r\n", b"400", b"host:port"),
            (b"CONNECT 2130706433:80 HTTP/1.1\r\n\r\n", b"400", b"not a valid host"),
            (b"CONNECT ::1:22 HTTP/1.1\r\n\r\n", b"400", b"brackets"),
            (b"CONNECT [::1]:22 HTTP/1.1\r\n\r\n", b"403", b"loopback"),
            (b"CONNECT [::ffff:127.0.0.2]:%d HTTP/1.1\r\n\r\n" % net.echo.port, b"403", b"loopback"),
            (b"CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n", b"403", b"metadata server"),
            (b"CONNECT 0x7f.1:80 HTTP/1.1\r\n\r\n", b"400", b"not a valid host"),
            (b"G\x00T http://a/ HTTP/1.1\r\n\r\n", b"400", b"malformed"),
            (b"GET http://a/ HTTP/2.0\r\n\r\n", b"505", b"HTTP/1.x"),
            (b"GET http://a/" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n", b"414", b"8192"),
            (b"GET http://a/ HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", b"431", b"100 header"),
            (b"GET http://a/ HTTP/1.1\r\nX: " + b"y" * 40000 + b"\r\n\r\n", b"431", b"32 KiB"),
        ]
        for req, status, word in cases:
            got = raw(port, req)
            assert got.startswith(b"HTTP/1.1 " + status) and word in got, (req[:60], got[:300])
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(256)]
        try:
            time.sleep(0.5)
            got = raw(port, b"CONNECT 127.0.0.2:%d HTTP/1.1\r\n\r\n" % net.echo.port)
            assert got.startswith(b"HTTP/1.1 503"), got
        finally:
            for s in idle:
                s.close()
        time.sleep(0.5)
        got = raw(port, b"CONNECT 127.0.0.2:%d HTTP/1.1\r\n\r\nafter the cap" % net.echo.port, timeout=2)
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"after the cap"), got
        assert p.poll() is None, "the job is still running"
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert "256 connections are open" in err


def test_an_idle_tunnel_is_closed(job, net):
    job.payload("eg8", mode={"silent": 30})
    p = job.start("eg8", CCR_EGRESS_ALLOW_PRIVATE="127.0.0.2:%d" % net.echo.port, CCR_EGRESS_IDLE_S=1)
    try:
        for _ in range(300):
            if job.record.exists() and job.record.stat().st_size:
                break
            time.sleep(0.1)
        port = int(json.loads(job.record.read_text())["env"]["HTTPS_PROXY"].rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"CONNECT 127.0.0.2:%d HTTP/1.1\r\n\r\nactive" % net.echo.port)
        got = b""
        while not got.endswith(b"active"):
            got += s.recv(4096)
        assert got.startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        assert s.recv(4096) == b"", "closed by the proxy"
        waited = time.monotonic() - t0
        s.close()
        assert 0.5 < waited < 5, waited
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.communicate(timeout=30)


def test_refusals_are_logged_redacted(job):
    from test_job import ENV_CANARY
    # a secret of the task used as a host name: refused by allowedHosts before any DNS query
    cmd = "curl -sS -w ' code=%%{http_code}' http://%s.example/" % ENV_CANARY
    res, _, err = run_agent(job, "eg9", [cmd], allowedHosts=["127.0.0.2"])
    assert "code=403" in res[cmd]["out"], res[cmd]
    logged = refusals(err)
    assert len(logged) == 1 and ".example:80" in logged[0] and "allowedHosts" in logged[0], logged
    assert ENV_CANARY not in err
