"""testenv: the one place where the tests start servers and get ports.

Every server a test needs (a fake of tests/fakes, `ccr serve`, sshd, a
registry, a small handler in the test's own process) is started through
here, so that each one is started, waited for and stopped the same way:

    port = free_port()                     # a loopback port nothing listens on

    srv = start_server(argv, ready=listening_line, env=...)
        # a process: its stdout is read by a thread (srv.lines, on_line=...),
        # start_server returns once `ready(srv)` is true (here: it printed
        # "LISTENING <port>", which sets srv.port), and raises with the
        # server's stderr when the server exits first or the wait times out.
    srv = start_server(argv, port=free_port(), ready=accepting)   # polls connect()

    srv = serve_http(Handler)              # a ThreadingHTTPServer on a thread
    srv = serve_http(Handler, tls=(cert, key), host="::1")
    srv = serve_http(Handler, server_class=MyServer, attrs={"state": st})
                                           # attributes set before it serves
    srv = serve_tcp(on_conn, host="127.0.0.2")
                                           # raw TCP: on_conn(sock) per connection

Both return objects with .port, .url(path), .stop() and context-manager
support.  Nothing outlives the tests: each server is stopped by stop(), by
the `with` block, by the conftest fixture (`servers`) that started it, and,
as a last resort, at interpreter exit.  A process server gets SIGTERM, then
SIGKILL after its grace period; it runs in its own session, so a fake's
children (fake_gcp's Cloud Run executions) go with it, unless it was
started with new_session=False (`ccr serve`, whose process tree the tests
inspect as a user's shell would start it).
"""

import atexit
import http.server
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

_live = set()
_live_lock = threading.Lock()


def free_port(host="127.0.0.1"):
    """A port on host that nothing listens on now (the kernel's choice)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _track(srv):
    with _live_lock:
        _live.add(srv)


def _untrack(srv):
    with _live_lock:
        _live.discard(srv)


def stop_all():
    """Stop every server still running (the interpreter-exit guard)."""
    with _live_lock:
        left = list(_live)
    for srv in left:
        srv.stop()


atexit.register(stop_all)


class _Base:
    host = "127.0.0.1"
    port = None
    scheme = "http"

    def url(self, path=""):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---- readiness checks for start_server ------------------------------------------------

_LISTENING = re.compile(r"^LISTENING (\d+)\s*$")


def listening_line(srv):
    """Ready once the server printed "LISTENING <port>" (the fakes' convention)."""
    for line in list(srv.lines):
        m = _LISTENING.match(line)
        if m:
            srv.port = int(m.group(1))
            return True
    return False


def accepting(srv):
    """Ready once srv.port accepts a TCP connection."""
    try:
        with socket.create_connection((srv.host, srv.port), timeout=0.5):
            return True
    except OSError:
        return False


# ---- processes --------------------------------------------------------------------------

class ServerProcess(_Base):
    """A server process started by start_server()."""

    def __init__(self, argv, env, host, port, on_line, grace, stdout, stderr, new_session, popen_kw):
        self.argv = [str(a) for a in argv]
        self.host, self.port, self.grace, self.new_session = host, port, grace, new_session
        self.lines = []
        self._on_line = on_line
        self._stderr_path = stderr if isinstance(stderr, (str, os.PathLike)) else None
        err = open(stderr, "wb") if self._stderr_path else (stderr if stderr is not None else subprocess.PIPE)
        self.proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if stdout is None else stdout, stderr=err,
                                     start_new_session=new_session, **popen_kw)
        if self._stderr_path:
            err.close()
        self._err_text = b""
        self._err_reader = None
        if self.proc.stderr is not None:
            self._err_reader = threading.Thread(target=self._drain_stderr, daemon=True)
            self._err_reader.start()
        self._reader = None
        if self.proc.stdout is not None:
            self._reader = threading.Thread(target=self._drain_stdout, daemon=True)
            self._reader.start()
        _track(self)

    def _drain_stdout(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if self._on_line:
                self._on_line(line)

    def _drain_stderr(self):
        for raw in self.proc.stderr:
            self._err_text += raw

    @property
    def stderr_text(self):
        if self._stderr_path:
            try:
                with open(self._stderr_path, "rb") as f:
                    return f.read().decode("utf-8", "replace")
            except OSError:
                return ""
        return self._err_text.decode("utf-8", "replace")

    def _wait_ready(self, ready, timeout):
        deadline = time.monotonic() + timeout
        while not ready(self):
            if self.proc.poll() is not None:
                if self._reader:
                    self._reader.join(5)
                if ready(self):
                    return
                if self._err_reader:
                    self._err_reader.join(5)
                raise ServerError(f"{self.argv[0]} exited with {self.proc.returncode} before it was ready: "
                                  f"{self.stderr_text.strip()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"{self.argv[0]} was not ready after {timeout} s: {self.stderr_text.strip()[-2000:]}")
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signal the server (SIGTERM), wait, SIGKILL its session after the grace
        period; its exit status, or None when it had to be killed."""
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(self.grace if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self._kill_session()
                self.proc.wait()
        else:
            rc = self.proc.returncode
        for t in (self._reader, self._err_reader):
            if t:
                t.join(5)
        _untrack(self)
        return rc

    def _kill_session(self):
        try:
            if self.new_session:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
        except OSError:
            self.proc.kill()


class ServerError(AssertionError):
    """A server that did not come up (an AssertionError, so a test shows it as a failure)."""


def start_server(argv, ready=listening_line, *, env=None, host="127.0.0.1", port=None, timeout=30,
                 on_line=None, grace=15, stdout=None, stderr=None, new_session=True, **popen_kw):
    """Start argv and wait until ready(server) is true; see the module comment.

    stdout is read line by line into server.lines (and on_line) unless a file
    is given; stderr is kept for error messages (server.stderr_text), or
    written to the path given.  The server runs in its own session unless
    new_session=False (then stop() kills only the server itself)."""
    srv = ServerProcess(argv, env, host, port, on_line, grace, stdout, stderr, new_session, popen_kw)
    try:
        srv._wait_ready(ready, timeout)
    except BaseException:
        srv.stop(timeout=5)
        raise
    return srv


# ---- servers on a thread of the test process --------------------------------------------

class ThreadServer(_Base):
    """An http.server on a daemon thread, started by serve_http()."""

    def __init__(self, handler, host, port, tls, server_class, attrs):
        self.host = host
        cls = server_class
        if ":" in host:
            cls = type(cls.__name__ + "6", (cls,), {"address_family": socket.AF_INET6})
        self.httpd = cls((host, port), handler)
        for name, value in (attrs or {}).items():
            setattr(self.httpd, name, value)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        _track(self)

    def stop(self):
        if self._thread is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self._thread = None
        _untrack(self)


def serve_http(handler, host="127.0.0.1", port=0, tls=None, server_class=http.server.ThreadingHTTPServer,
               attrs=None):
    """Serve handler (a BaseHTTPRequestHandler class) on host:port (0: any free
    port) from a daemon thread; tls=(certfile, keyfile) makes it HTTPS; attrs
    are set on the server object before it serves (a fake's shared state)."""
    return ThreadServer(handler, host, port, tls, server_class, attrs)


class TcpServer(_Base):
    """A raw TCP listener on a daemon thread, started by serve_tcp(): each
    accepted socket goes to on_conn(sock) on a thread of its own and is
    closed when on_conn returns; stop() sets .stopping, closes the listener
    and shuts down every socket still open."""

    def __init__(self, on_conn, host, port):
        self.host = host
        self.accepted = 0
        self._conns = []
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._on_conn = on_conn
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        _track(self)

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return                        # stop() closed the listener
            with self._lock:
                self.accepted += 1
                self._conns.append(c)
            threading.Thread(target=self._serve_one, args=(c,), daemon=True).start()

    def _serve_one(self, c):
        try:
            self._on_conn(c)
        except OSError:
            pass                              # the peer went, or stop() shut it down
        finally:
            with self._lock:
                if c in self._conns:
                    self._conns.remove(c)
            c.close()

    def stop(self):
        self.stopping.set()
        if self._thread is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self._thread.join(2)
            self._thread = None
            with self._lock:
                conns, self._conns = self._conns, []
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        _untrack(self)


def serve_tcp(on_conn, host="127.0.0.1", port=0):
    """Accept raw TCP connections on host:port (0: any free port) from a daemon
    thread; on_conn(sock) handles each on its own thread (the socket is closed
    when it returns; wait on srv.stopping to hold it open until stop())."""
    return TcpServer(on_conn, host, port)


class Servers:
    """The servers one scope (a test, a module) started: all stopped by close().
    tests/conftest.py hands one to each test as the `servers` fixture."""

    def __init__(self):
        self._started = []

    def start(self, argv, ready=listening_line, **kw):
        srv = start_server(argv, ready, **kw)
        self._started.append(srv)
        return srv

    def http(self, handler, **kw):
        srv = serve_http(handler, **kw)
        self._started.append(srv)
        return srv

    def close(self):
        while self._started:
            self._started.pop().stop()
