"""Integration tests of `ccr serve`'s HTTP/1.1 layer (src/http/server.c) and its health endpoints.

Run: /usr/bin/python3 -m pytest -q tests/test_http_server.py

Every test starts its own `ccr serve` on an ephemeral port (PORT=0; the port is read from the
JSON "listening" line on stdout) and talks to it over raw sockets, so that the exact bytes on
the wire are what is checked.
"""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from fakes import testenv

MiB = 1 << 20


class Serve:
    """A running `ccr serve` (started by tests/fakes/testenv); stdout JSON lines are
    collected in .lines."""

    def __init__(self, ccr_bin, env=None, bind='127.0.0.1'):
        e = dict(os.environ)
        for k in ('PORT', 'CCR_BIND', 'CCR_MAX_CONNECTIONS', 'CCR_HTTP_READ_TIMEOUT_MS',
                  'CCR_HTTP_IDLE_TIMEOUT_MS', 'GOOGLE_CLOUD_PROJECT', 'PROJECT_ID', 'CLAUDE_BIN',
                  'ANTHROPIC_API_KEY', 'CLAUDE_CODE_OAUTH_TOKEN', 'LOG_LEVEL'):
            e.pop(k, None)
        e.update({'PORT': '0', 'CCR_BIND': bind})
        e.update(env or {})
        self.host = bind
        self.lines = []
        self.port = None
        self.server = testenv.start_server([ccr_bin, 'serve'], lambda _: self.port is not None, env=e,
                                           host=bind, timeout=10, on_line=self._line, new_session=False)
        self.proc = self.server.proc

    def _line(self, line):
        doc = json.loads(line)
        self.lines.append(doc)
        if self.port is None and 'port' in doc:
            self.port = doc['port']

    @property
    def stderr_text(self):
        return self.server.stderr_text

    def connect(self, timeout=10):
        fam = socket.AF_INET6 if ':' in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((self.host, self.port))
        return s

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.server.stop()

    def kill(self):
        """SIGKILL when still running (the fixtures' teardown)."""
        self.server.stop(signal.SIGKILL)

    def access_logs(self):
        return [d for d in self.lines if 'httpRequest' in d]


@pytest.fixture
def serve(ccr_bin):
    started = []

    def start(env=None, bind='127.0.0.1'):
        s = Serve(ccr_bin, env, bind)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


class Reader:
    """Reads HTTP/1.1 responses one after another from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError('connection closed')
        self.buf += data

    def line(self):
        while b'\r\n' not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head=False):
        """(status, headers {lower name: value}, body, raw head bytes)."""
        status_line = self.line()
        raw = status_line + b'\r\n'
        parts = status_line.split(b' ', 2)
        assert parts[0] == b'HTTP/1.1', status_line
        status = int(parts[1])
        headers = {}
        while True:
            line = self.line()
            raw += line + b'\r\n'
            if not line:
                break
            k, v = line.split(b':', 1)
            name = k.decode().lower()
            assert name not in headers, 'duplicate header %s' % name
            headers[name] = v.strip().decode()
        body = b''
        if head or status in (204, 304) or status < 200:
            pass
        elif 'content-length' in headers:
            body = self.exact(int(headers['content-length']))
        elif headers.get('transfer-encoding') == 'chunked':
            while True:
                size = int(self.line().split(b';')[0], 16)
                if size == 0:
                    assert self.line() == b''
                    break
                body += self.exact(size)
                assert self.exact(2) == b'\r\n'
        return status, headers, body, raw

    def closed(self, timeout=5):
        """True when the server closes the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def exchange(srv, raw, head=False):
    """Send raw bytes on a new connection and read one response."""
    with srv.connect() as s:
        s.sendall(raw)
        return Reader(s).response(head=head)


def get(srv, path, headers=''):
    return exchange(srv, ('GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n' % (path, headers)).encode())


def assert_json_error(status_headers_body, status):
    st, h, body, _ = status_headers_body
    assert st == status, (st, body)
    assert h['content-type'] == 'application/json; charset=utf-8'
    doc = json.loads(body)
    assert list(doc) == ['error'] and isinstance(doc['error'], str) and doc['error']
    return doc['error']


def assert_healthy(srv):
    st, _, body, _ = get(srv, '/health')
    assert (st, body) == (200, b'ok')


# ---- health endpoints, byte-exact ----------------------------------------------------------


def test_root_and_health_bytes(serve):
    srv = serve()
    for path, body in (('/', b'Claude Code Agent is running'), ('/health', b'ok'), ('/healthz', b'ok'),
                       ('/health?verbose=false', b'ok'), ('/health?verbose=TRUE', b'ok'),
                       ('/health?verbose=true&verbose=true', b'ok'), ('/health?verbose', b'ok'),
                       ('/HEALTH/', b'ok')):
        st, h, got, raw = get(srv, path)
        assert st == 200 and got == body, (path, st, got)
        assert raw.startswith(b'HTTP/1.1 200 OK\r\nDate: ')
        assert h['content-type'] == 'text/html; charset=utf-8'
        assert h['content-length'] == str(len(body))
        assert 'x-powered-by' not in h and 'connection' not in h
        assert h['date'].endswith(' GMT') and len(h['date']) == 29
    st, h, body, _ = exchange(srv, b'HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n', head=True)
    assert st == 200 and h['content-length'] == '28' and body == b''
    srv.stop()


def test_health_verbose(serve, tmp_path):
    ok = tmp_path / 'claude-ok'
    ok.write_text('#!/bin/sh\necho "2.0.0 (Claude Code)"\nexit 0\n')
    ok.chmod(0o755)
    srv = serve({'CLAUDE_BIN': str(ok), 'ANTHROPIC_API_KEY': 'k', 'CLAUDE_CODE_OAUTH_TOKEN': 'abc\u00e9\U0001f600'})
    st, h, body, _ = get(srv, '/health?verbose=true')
    assert st == 200 and h['content-type'] == 'application/json; charset=utf-8'
    # the seed's fields, in its order, then ccr's sandbox report
    assert body.startswith(b'{"status":"healthy","server":"running","auth":{"hasApiKey":true,"hasAuthToken":true,'
                           b'"tokenLength":6},"claude":{"cliAvailable":true},"sandbox":{"mode":"auto","level":')
    st, _, body, _ = get(srv, '/healthz?x=1&verbose=true')
    assert json.loads(body)['claude'] == {'cliAvailable': True}
    srv.stop()

    srv = serve({'CLAUDE_BIN': str(tmp_path / 'missing')})
    st, _, body, _ = get(srv, '/health?verbose=true')
    assert body.startswith(b'{"status":"healthy","server":"running","auth":{"hasApiKey":false,"hasAuthToken":false,'
                           b'"tokenLength":0},"claude":{"cliAvailable":false},"sandbox":')
    srv.stop()


def test_health_verbose_never_hangs(serve, tmp_path):
    hang = tmp_path / 'claude-hang'
    hang.write_text('#!/bin/sh\nsleep 60 &\nsleep 60\n')
    hang.chmod(0o755)
    fail = tmp_path / 'claude-fail'
    fail.write_text('#!/bin/sh\nexit 3\n')
    fail.chmod(0o755)
    srv = serve({'CLAUDE_BIN': str(hang), 'CCR_CLI_CHECK_TIMEOUT_MS': '700'})
    t0 = time.monotonic()
    st, _, body, _ = get(srv, '/health?verbose=true')
    assert st == 200 and json.loads(body)['claude'] == {'cliAvailable': False}
    assert time.monotonic() - t0 < 5
    srv.stop()
    srv = serve({'CLAUDE_BIN': str(fail)})
    assert json.loads(get(srv, '/health?verbose=true')[2])['claude'] == {'cliAvailable': False}
    srv.stop()


def test_unknown_route_and_wrong_method(serve):
    srv = serve()
    assert assert_json_error(get(srv, '/nope'), 404) == 'Cannot GET /nope'
    err = assert_json_error(exchange(srv, b'POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n'), 404)
    assert err == 'Cannot POST /health'
    assert assert_json_error(exchange(srv, b'DELETE / HTTP/1.1\r\nHost: localhost\r\n\r\n'), 404) == 'Cannot DELETE /'
    srv.stop()


# ---- connection handling ---------------------------------------------------------------------


def test_keep_alive_and_pipelining(serve):
    srv = serve()
    with srv.connect() as s:
        r = Reader(s)
        for path, body in (('/', b'Claude Code Agent is running'), ('/health', b'ok'), ('/x', None),
                           ('/healthz', b'ok')):
            s.sendall(('GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n' % path).encode())
            st, h, got, _ = r.response()
            if body is None:
                assert st == 404
            else:
                assert (st, got) == (200, body)
            assert 'connection' not in h
        # three requests in one write: three answers, in order
        s.sendall(b'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\n\r\n'
                  b'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
        assert r.response()[2] == b'ok'
        assert r.response()[2] == b'Claude Code Agent is running'
        st, h, got, _ = r.response()
        assert got == b'ok' and h['connection'] == 'close'
        assert r.closed()
    # HTTP/1.0: closes unless asked to keep alive
    with srv.connect() as s:
        s.sendall(b'GET /health HTTP/1.0\r\n\r\n')
        r = Reader(s)
        st, h, got, _ = r.response()
        assert got == b'ok' and h['connection'] == 'close'
        assert r.closed()
    with srv.connect() as s:
        r = Reader(s)
        s.sendall(b'GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
        assert r.response()[1]['connection'] == 'keep-alive'
        s.sendall(b'GET /health HTTP/1.0\r\n\r\n')
        assert r.response()[2] == b'ok'
    srv.stop()


def test_chunked_request_body(serve):
    srv = serve()
    with srv.connect() as s:
        r = Reader(s)
        s.sendall(b'POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n'
                  b'5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer-X: 1\r\n\r\n')
        assert_json_error(r.response(), 404)
        # the body was consumed: the connection is in sync
        s.sendall(b'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n')
        assert r.response()[2] == b'ok'
    srv.stop()


def test_expect_100_continue(serve):
    srv = serve()
    with srv.connect() as s:
        r = Reader(s)
        s.sendall(b'POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
        assert r.line() == b'HTTP/1.1 100 Continue'
        assert r.line() == b''
        s.sendall(b'hello')
        assert_json_error(r.response(), 404)
    # refused before the body is sent: no 100
    with srv.connect() as s:
        s.sendall(b'POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n' % (3 * MiB))
        assert_json_error(Reader(s).response(), 413)
    assert_json_error(exchange(srv, b'POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx'), 417)
    srv.stop()


# ---- limits --------------------------------------------------------------------------------


def test_body_limit_413(serve):
    srv = serve()
    # Content-Length over 2 MiB: refused from the headers
    with srv.connect() as s:
        s.sendall(b'POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n' % (2 * MiB + 1))
        r = Reader(s)
        assert_json_error(r.response(), 413)
        assert r.closed()
    # a body sent in full gets its 413 too (no reset)
    with srv.connect() as s:
        s.sendall(b'POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n' % (2 * MiB + 1) + b'x' * (2 * MiB + 1))
        assert_json_error(Reader(s).response(), 413)
    # chunked bodies are counted as they arrive
    with srv.connect() as s:
        s.sendall(b'POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n')
        chunk = b'%x\r\n' % MiB + b'y' * MiB + b'\r\n'
        try:
            for _ in range(3):
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert_json_error(Reader(s).response(), 413)
    # exactly 2 MiB is accepted
    st, _, _, _ = exchange(srv, b'POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n' % (2 * MiB) + b'z' * (2 * MiB))
    assert st == 404
    assert_healthy(srv)
    srv.stop()


def test_header_limits_431_and_url_414(serve):
    srv = serve()
    assert 'large' in assert_json_error(get(srv, '/', 'X-Big: %s\r\n' % ('a' * 40000)), 431)
    many = ''.join('X-H%d: v\r\n' % i for i in range(101))
    assert 'many' in assert_json_error(get(srv, '/', many), 431)
    st, _, _, _ = get(srv, '/health', ''.join('X-H%d: v\r\n' % i for i in range(90)))
    assert st == 200
    assert_json_error(get(srv, '/' + 'u' * 9000), 414)
    assert get(srv, '/health?' + 'q' * 7000)[0] == 200
    assert_healthy(srv)
    srv.stop()


def test_slowloris_cut_off_while_others_served(serve):
    srv = serve({'CCR_HTTP_READ_TIMEOUT_MS': '1000'})
    slow = srv.connect()
    req = b'GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ' + b'a' * 200
    t0 = time.monotonic()
    cut = None
    for i, ch in enumerate(req):
        try:
            slow.send(bytes([ch]))
        except (BrokenPipeError, ConnectionResetError):
            cut = time.monotonic() - t0
            break
        if i % 10 == 0:
            assert_healthy(srv)        # others are served meanwhile
        time.sleep(0.02)
        if time.monotonic() - t0 > 1.5:
            break
    r = Reader(slow)
    try:
        st, h, body, _ = r.response()
        assert st == 408 and json.loads(body) == {'error': 'request timeout'}
        assert h['connection'] == 'close'
    except (EOFError, ConnectionResetError):
        pass
    assert r.closed(timeout=3)
    assert cut is None or cut < 3
    assert time.monotonic() - t0 < 5
    slow.close()
    assert_healthy(srv)
    srv.stop()


def test_slow_body_cut_off(serve):
    srv = serve({'CCR_HTTP_READ_TIMEOUT_MS': '800'})
    with srv.connect() as s:
        s.sendall(b'POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nabc')
        t0 = time.monotonic()
        assert assert_json_error(Reader(s).response(), 408) == 'request timeout'
        assert time.monotonic() - t0 < 3
    assert_healthy(srv)
    srv.stop()


def test_connection_cap_503(serve):
    srv = serve({'CCR_MAX_CONNECTIONS': '3'})
    held = [srv.connect() for _ in range(3)]
    time.sleep(0.2)
    st, h, body, _ = exchange(srv, b'GET /tasks/x HTTP/1.1\r\nHost: localhost\r\n\r\n')
    assert st == 503 and h['connection'] == 'close' and h['retry-after'] == '1'
    assert 'connection limit' in json.loads(body)['error']
    # a load balancer's plain health probe is still answered at the cap
    st, h, body, _ = exchange(srv, b'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n')
    assert (st, body, h['connection']) == (200, b'ok', 'close'), (st, body)
    st, _, body, _ = exchange(srv, b'GET /health?verbose=true HTTP/1.1\r\nHost: localhost\r\n\r\n')
    assert st == 503, "only the plain form is exempt"
    held.pop().close()
    deadline = time.monotonic() + 5
    while True:                         # the slot frees once the server sees the close
        st = get(srv, '/health')[0]
        if st == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert st == 200
    for s in held:
        s.close()
    srv.stop()
    assert any(d['httpRequest']['status'] == 503 for d in srv.access_logs())


def connect_from(srv, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(('127.0.0.1', srv.port))
    return s


def exchange_from(srv, source, raw):
    with connect_from(srv, source) as s:
        s.sendall(raw)
        return Reader(s).response()


def test_one_client_at_its_cap_does_not_block_another(serve):
    srv = serve({'CCR_MAX_CONNECTIONS': '10', 'CCR_MAX_CONNECTIONS_PER_CLIENT': '4'})
    held = [connect_from(srv, '127.0.0.1') for _ in range(4)]
    time.sleep(0.2)
    st, _, body, _ = exchange_from(srv, '127.0.0.1', b'GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n')
    assert st == 503 and 'this client address' in json.loads(body)['error'], body
    # another address still gets real answers, while the first holds its four
    st, _, body, _ = exchange_from(srv, '127.0.0.2', b'GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n')
    assert st == 404, (st, body)
    more = [connect_from(srv, '127.0.0.2') for _ in range(4)]
    time.sleep(0.2)
    st, _, _, _ = exchange_from(srv, '127.0.0.3', b'GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n')
    assert st == 404, "two clients at their caps leave room for a third"
    for s in held + more:
        s.close()
    srv.stop()


# ---- malformed and hostile requests ----------------------------------------------------------

BAD_400 = [
    b'GARBAGE\r\n\r\n',
    b'GET\r\n\r\n',
    b'GET / HTTP/1.1 extra\r\nHost: localhost\r\n\r\n',
    b'GET / HTTX/1.1\r\nHost: localhost\r\n\r\n',
    b'G@T / HTTP/1.1\r\nHost: localhost\r\n\r\n',
    b'GET /a b HTTP/1.1\r\nHost: localhost\r\n\r\n',
    b'GET / HTTP/1.1\r\n\r\n',                                   # no Host
    b'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    b'GET / HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n',
    b'GET / HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n',
    b'GET / HTTP/1.1\r\nHost: localhost\r\nX: a\x00b\r\n\r\n',
    b'GET / HTTP/1.1\r\nHost: localhost\r\nX: a\rb\r\n\r\n',
    b'GET /%00/x HTTP/1.1\r\nHost: localhost\r\n\r\n',
    b'GET /health?a=%00 HTTP/1.1\r\nHost: localhost\r\n\r\n',
    b'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n',
    b'POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n',
    b'POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n',
]

BAD_CHUNKED = [
    b'zz\r\nhello\r\n0\r\n\r\n',                 # not hex
    b'5\r\nhelloXX0\r\n\r\n',                    # no CRLF after the data
    b'ffffffffffffffffff\r\n',                   # size overflow
    b'5\r\nhel',                                 # ... then the client stops: timeout, not 400
]

SMUGGLING = [
    # both Content-Length and Transfer-Encoding
    (b'POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n', 400),
    # two Content-Lengths
    (b'POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 400),
    # codings other than chunked
    (b'POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 501),
    (b'POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n', 501),
    (b'POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400),
]


def test_malformed_requests_400(serve):
    srv = serve()
    for raw in BAD_400:
        with srv.connect() as s:
            s.sendall(raw)
            r = Reader(s)
            res = r.response()
            assert res[0] == 400, (raw, res)
            assert_json_error(res, 400)
            assert res[1]['connection'] == 'close'
            assert r.closed(), raw
        assert_healthy(srv)
    assert_json_error(exchange(srv, b'GET / HTTP/2.0\r\nHost: localhost\r\n\r\n'), 505)
    assert_healthy(srv)
    srv.stop()   # every access-log line is in once serve has exited (a line may trail its close)
    logs = srv.access_logs()
    assert sum(1 for d in logs if d['httpRequest']['status'] == 400) >= len(BAD_400)


def test_bad_chunked_400(serve):
    srv = serve({'CCR_HTTP_READ_TIMEOUT_MS': '800'})
    for body in BAD_CHUNKED:
        raw = b'POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n' + body
        want = 408 if body == b'5\r\nhel' else 400
        assert_json_error(exchange(srv, raw), want)
        assert_healthy(srv)
    srv.stop()


def test_request_smuggling_refused(serve):
    srv = serve()
    for raw, status in SMUGGLING:
        with srv.connect() as s:
            # a smuggled second request after the first must never be answered
            s.sendall(raw + b'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n')
            r = Reader(s)
            res = r.response()
            assert res[0] == status, (raw, res)
            assert_json_error(res, status)
            assert r.closed(), raw
            assert b'HTTP/1.1' not in r.buf
        assert_healthy(srv)
    srv.stop()


# ---- logging, addresses, shutdown ----------------------------------------------------------


def test_access_log_fields(serve):
    srv = serve({'PROJECT_ID': 'proj-1'})
    trace = '0123456789abcdef0123456789abcdef/123;o=1'
    get(srv, '/health?x=1', 'User-Agent: tester/1.0\r\nX-Cloud-Trace-Context: %s\r\n' % trace)
    deadline = time.monotonic() + 5
    while not srv.access_logs() and time.monotonic() < deadline:
        time.sleep(0.02)
    d = srv.access_logs()[0]
    assert d['severity'] == 'INFO' and d['message'] == 'GET /health?x=1 200'
    assert d['time'].endswith('Z')
    hr = d['httpRequest']
    assert hr['requestMethod'] == 'GET' and hr['requestUrl'] == '/health?x=1'
    assert hr['status'] == 200 and hr['responseSize'] == '2'
    assert hr['userAgent'] == 'tester/1.0' and hr['remoteIp'] == '127.0.0.1'
    assert hr['latency'].endswith('s') and float(hr['latency'][:-1]) < 5
    assert d['logging.googleapis.com/trace'] == 'projects/proj-1/traces/0123456789abcdef0123456789abcdef'
    srv.stop()
    srv = serve()
    get(srv, '/health', 'X-Cloud-Trace-Context: %s\r\n' % trace)
    srv.stop()
    assert 'logging.googleapis.com/trace' not in srv.access_logs()[0]


def test_ipv6(serve):
    if not socket.has_ipv6:
        pytest.skip('no IPv6')
    try:
        with socket.socket(socket.AF_INET6) as t:
            t.bind(('::1', 0))
    except OSError:
        pytest.skip('no IPv6 loopback')
    srv = serve(bind='::1')
    assert_healthy(srv)
    srv.stop()
    assert srv.access_logs()[0]['httpRequest']['remoteIp'] == '::1'


def test_sigterm_drains_with_open_keepalive(serve):
    srv = serve()
    s = srv.connect()
    r = Reader(s)
    s.sendall(b'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n')
    assert r.response()[2] == b'ok'
    idle = srv.connect()                # connected, never sent a byte
    t0 = time.monotonic()
    assert srv.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 10
    assert r.closed(timeout=1)
    assert Reader(idle).closed(timeout=1)
    msgs = [d['message'] for d in srv.lines]
    assert any(m.startswith('received SIGTERM') for m in msgs)
    with pytest.raises(OSError):
        srv.connect(timeout=2)


def test_sigint_and_bad_settings(serve, ccr_bin):
    srv = serve()
    assert srv.stop(signal.SIGINT) == 0
    p = subprocess.run([str(ccr_bin), 'serve'], env=dict(os.environ, PORT='99999'), capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2 and 'PORT=99999' in p.stderr
    p = subprocess.run([str(ccr_bin), 'serve', '--help'], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and 'CCR_BIND' in p.stdout
    p = subprocess.run([str(ccr_bin), 'serve', '--bogus'], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
