"""Real git servers for tests/test_git.py, started in-process by the tests.

- GitHttps: `git http-backend` (the real smart-HTTP server of git) behind
  TLS, with a certificate from a throwaway CA made with openssl, and Basic
  authentication by token (any user name, the token as password).
- StallServer: accepts TCP connections and never answers (a stalled remote).
- Sshd: OpenSSH's sshd on 127.0.0.1 with a throwaway host key and an
  authorized_keys file whose entries force `git-shell` (or a stalling
  command), run with a config that works as root in CI.
- FakeGitHubApi: POST /repos/<owner>/<repo>/pulls, recording requests.
"""
import base64
import getpass
import http.server
import json
import os
import pathlib
import shutil
import subprocess

from fakes.testenv import accepting, free_port, serve_http, serve_tcp, start_server, ServerError


def run(argv, **kw):
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run([str(a) for a in argv], **kw)


# ---- TLS material -----------------------------------------------------------

def make_ca(dirpath):
    """A test CA and a server certificate for 127.0.0.1/localhost.
    Returns (ca_pem, cert_pem, key_pem) paths."""
    d = pathlib.Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = d / "ca.key", d / "ca.pem"
    key, csr, cert, ext = d / "srv.key", d / "srv.csr", d / "srv.pem", d / "srv.ext"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_pem, "-days", "2",
         "-subj", "/CN=ccr test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"])
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext])
    return ca_pem, cert, key


# ---- git http-backend behind TLS ----------------------------------------------

class _GitHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                line = self.rfile.readline().strip()
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code, headers, body):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self):
        tok = self.server.token
        if tok is None:
            return True
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except Exception:
            return False
        return pw == tok

    def _git(self):
        body = self._body()
        self.server.requests.append((self.command, self.path, dict(self.headers)))
        if not self._authorized():
            self._send(401, [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Type", "text/plain")],
                       b"authentication required\n")
            return
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "ccr-test",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.server.root),
        }
        p = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60)
        out = p.stdout
        sep = out.find(b"\r\n\r\n")
        sep_len = 4
        if sep < 0:
            sep, sep_len = out.find(b"\n\n"), 2
        head, payload = out[:sep].decode("latin-1"), out[sep + sep_len:]
        code, headers = 200, []
        for line in head.splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                code = int(v.strip().split()[0])
            elif k:
                headers.append((k.strip(), v.strip()))
        self._send(code, headers, payload)

    do_GET = _git
    do_POST = _git


class GitHttps:
    """`git http-backend` over TLS serving the bare repositories under root."""

    def __init__(self, root, cert, key, token=None):
        self.root = pathlib.Path(root)
        self.server = serve_http(_GitHandler, tls=(cert, key))
        self.httpd = self.server.httpd
        self.httpd.root = self.root
        self.httpd.token = token
        self.httpd.requests = []
        self.port = self.server.port

    @property
    def requests(self):
        return self.httpd.requests

    def url(self, rel):
        return f"https://127.0.0.1:{self.port}/{rel}"

    def close(self):
        self.server.stop()


class StallServer:
    """Accepts connections and never sends a byte (each socket stays open,
    unread, until close())."""

    def __init__(self):
        self.server = serve_tcp(lambda conn: self.server.stopping.wait())
        self.port = self.server.port

    def close(self):
        self.server.stop()


# ---- OpenSSH ----------------------------------------------------------------------

SSHD = "/usr/sbin/sshd"


def ensure_sshd():
    """Path of sshd, installing openssh-server as root when missing; None
    when it cannot be had."""
    if os.path.exists(SSHD):
        return SSHD
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    p = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server"],
                       env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server"],
                       env=env, capture_output=True, text=True, timeout=600)
    return SSHD if os.path.exists(SSHD) else None


def sshd_for_tests(workdir, keys):
    """A started Sshd(workdir, keys) for a pytest fixture, or pytest.skip
    saying what is missing."""
    import pytest
    if not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip("needs the OpenSSH client (openssh-client)")
    if not ensure_sshd():
        pytest.skip("needs sshd (openssh-server); as root it is installed, otherwise: apt-get install openssh-server")
    return Sshd(workdir, keys)


def keygen(path, kind):
    args = ["ssh-keygen", "-q", "-N", "", "-C", f"ccr-test-{kind}", "-f", path, "-t", kind]
    if kind == "rsa":
        args += ["-b", "2048"]
    run(args)
    os.chmod(path, 0o600)
    return pathlib.Path(str(path) + ".pub").read_text().strip()


class Sshd:
    """sshd -D on 127.0.0.1:<port>; keys: {name: (kind, forced command)}."""

    def __init__(self, workdir, keys):
        self.dir = pathlib.Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = free_port()
        host_key = self.dir / "host_ed25519"
        self.host_pub = keygen(host_key, "ed25519")
        self.keys = {}
        lines = []
        for name, (kind, command) in keys.items():
            kp = self.dir / f"user_{name}"
            pub = keygen(kp, kind)
            self.keys[name] = kp
            cmd = command.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'command="{cmd}",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty {pub}')
        auth = self.dir / "authorized_keys"
        auth.write_text("\n".join(lines) + "\n")
        os.chmod(auth, 0o600)
        cfg = self.dir / "sshd_config"
        cfg.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\nAuthorizedKeysFile {auth}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowTcpForwarding no\n"
            "X11Forwarding no\nPrintMotd no\nLogLevel ERROR\n"
            # bash skips ~/.bashrc for ssh commands when SHLVL >= 2 (a
            # developer's rc file can cost a second per connection)
            "SetEnv SHLVL=2\n"
            f"AllowUsers {self.user}\n")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.log = open(self.dir / "sshd.log", "w")
        try:
            self.server = start_server([SSHD, "-D", "-e", "-f", cfg], accepting, port=self.port, timeout=10,
                                       grace=5, stdout=self.log, stderr=subprocess.STDOUT)
        except ServerError as e:
            self.log.close()
            raise RuntimeError(f"{e}; sshd's log: " + (self.dir / "sshd.log").read_text()) from None
        self.proc = self.server.proc

    def known_hosts_line(self):
        return f"[127.0.0.1]:{self.port} {self.host_pub}"

    def url(self, path):
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def close(self):
        self.server.stop()
        self.log.close()


# ---- GitHub's pull request API -----------------------------------------------------

class _ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        self.server.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status, answer = self.server.answer
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeGitHubApi:
    def __init__(self, answer=(201, {"html_url": "https://github.example/acme/e2e-tests/pull/7", "number": 7})):
        self.server = serve_http(_ApiHandler)
        self.httpd = self.server.httpd
        self.httpd.calls = []
        self.httpd.answer = answer
        self.port = self.server.port
        self.url = self.server.url()

    @property
    def calls(self):
        return self.httpd.calls

    def close(self):
        self.server.stop()
