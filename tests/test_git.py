"""Integration tests of the job's git operations (src/git/git*.c) through
`ccr git`, against real servers the tests start themselves:

- `git http-backend` behind TLS with a throwaway CA (ccr runs with
  SSL_CERT_FILE pointing at it, which also proves the override reaches
  libgit2), token authentication by Basic auth;
- OpenSSH's sshd on 127.0.0.1 with ed25519 and RSA user keys whose
  authorized_keys entries force git-shell, and one key that stalls;
- a fake GitHub pull-request API for the external test repo flow.

Needs git, openssl, ssh-keygen, ssh and sshd (openssh-client,
openssh-server; as root a missing sshd is installed).
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakes.git_servers import (FakeGitHubApi, GitHttps, StallServer, sshd_for_tests,  # noqa: E402
                               make_ca)

TOKEN = "ghp_ccrTestToken_0123456789abcdef"
TESTS_TOKEN = "ghs_ccrInstallationToken_9876543210"
REJECTED = ('Push rejected. Remote has changes that are not in local branch. '
            'Use conflictStrategy: "auto" to enable automatic recovery.')

pytestmark = pytest.mark.skipif(not shutil.which("git") or not shutil.which("openssl"),
                                reason="needs git and openssl (scripts/install-deps test)")

GIT_ENV = {"GIT_AUTHOR_NAME": "Upstream", "GIT_AUTHOR_EMAIL": "up@example.com",
           "GIT_COMMITTER_NAME": "Upstream", "GIT_COMMITTER_EMAIL": "up@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def git(*args, cwd=None, check=True):
    env = dict(os.environ, **GIT_ENV)
    p = subprocess.run(["git", *[str(a) for a in args]], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"git {' '.join(map(str, args))}: {p.stderr}")
    return p.stdout.strip()


def make_origin(root, rel="origin.git"):
    """A bare repo with three commits on main (app.txt has three lines)."""
    bare = pathlib.Path(root) / rel
    bare.parent.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "--bare", "-b", "main", bare)
    git("config", "http.receivepack", "true", cwd=bare)
    work = pathlib.Path(root) / ("seed-" + rel.replace("/", "_"))
    git("clone", "-q", bare, work)
    git("checkout", "-q", "-b", "main", cwd=work)
    for i, text in enumerate(["v1", "v2", "line one\nline two\nline three"]):
        (work / "app.txt").write_text(text + "\n")
        (work / "README.md").write_text(f"readme {i}\n")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"commit {i}", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    shutil.rmtree(work)
    return bare


def upstream_change(bare, tmp, app_text, name="up"):
    """Someone else pushes a commit changing app.txt (and adding up.txt)."""
    work = pathlib.Path(tmp) / f"upstream-{name}"
    git("clone", "-q", bare, work)
    (work / "app.txt").write_text(app_text)
    (work / "up.txt").write_text("from upstream\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "upstream change", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return git("rev-parse", "main", cwd=bare)


class Ccr:
    def __init__(self, binary, env):
        self.binary = binary
        self.env = env

    def __call__(self, *args, env=None, timeout=120):
        e = dict(self.env)
        e.update(env or {})
        t0 = time.time()
        p = subprocess.run([str(self.binary), "git", *[str(a) for a in args]], env=e, capture_output=True,
                           text=True, timeout=timeout)
        p.elapsed = time.time() - t0
        for secret in (TOKEN, TESTS_TOKEN):
            assert secret not in p.stdout and secret not in p.stderr, "a token leaked into ccr's output"
        return p

    def ok(self, *args, env=None):
        p = self(*args, env=env)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)


def base_env(tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCR_", "GIT_", "SSL_CERT"))}
    env["TMPDIR"] = str(tmp)
    env["HOME"] = str(tmp / "home")
    (tmp / "home").mkdir(exist_ok=True)
    return env


# ---- HTTPS -----------------------------------------------------------------------------

@pytest.fixture
def https(tmp_path):
    ca, cert, key = make_ca(tmp_path / "tls")
    root = tmp_path / "srv"
    bare = make_origin(root)
    srv = GitHttps(root, cert, key, token=TOKEN)
    yield {"srv": srv, "ca": ca, "bare": bare, "url": srv.url("origin.git"), "root": root}
    srv.close()


@pytest.fixture
def ccr(ccr_bin, tmp_path):
    return Ccr(ccr_bin, base_env(tmp_path))


def test_https_shallow_clone_commit_push(ccr, https, tmp_path):
    env = {"SSL_CERT_FILE": str(https["ca"]), "CCR_GIT_TOKEN": TOKEN}
    dest = tmp_path / "repo"
    out = ccr.ok("clone", https["url"], dest, "--depth", "1", env=env)
    assert out["shallow"] is True
    assert (dest / ".git" / "shallow").exists()
    assert git("rev-list", "--count", "HEAD", cwd=dest) == "1"
    assert "ccrTestToken" not in (dest / ".git" / "config").read_text()
    # the token went through the credentials callback, as Basic auth
    assert any("Authorization" in h for _, _, h in https["srv"].requests)

    (dest / "feature.txt").write_text("agent work\n")
    (dest / ".env").write_text("SECRET=x\n")
    (dest / "prompt.txt").write_text("prompt\n")
    c = ccr.ok("commit", dest, "--message", "Task execution t1", env=env)
    assert c["committed"] and len(c["sha"]) == 40
    p = ccr.ok("push", dest, "--branch", "main", env=env)
    assert p["pushed"] and p["sha"] == c["sha"] == git("rev-parse", "main", cwd=https["bare"])
    files = git("ls-tree", "--name-only", "main", cwd=https["bare"]).split()
    assert "feature.txt" in files and ".env" not in files and "prompt.txt" not in files
    # B13: push the clone's branch to another remote branch
    p = ccr.ok("push", dest, "--branch", "ccr/feature", env=env)
    assert git("rev-parse", "ccr/feature", cwd=https["bare"]) == c["sha"]


def test_https_needs_the_test_ca(ccr, https, tmp_path):
    """Without SSL_CERT_FILE the compiled-in roots are used, which do not
    know the test CA: the TLS check really happens."""
    p = ccr("clone", https["url"], tmp_path / "x", env={"CCR_GIT_TOKEN": TOKEN})
    assert p.returncode == 1
    assert p.stderr.startswith("ccr git clone: Failed to clone repository:")
    assert "certificate" in p.stderr.lower() or "tls" in p.stderr.lower() or "ssl" in p.stderr.lower()
    assert len(p.stderr.strip().splitlines()) == 1


def test_https_bad_token(ccr, https, tmp_path):
    p = ccr("clone", https["url"], tmp_path / "x",
            env={"SSL_CERT_FILE": str(https["ca"]), "CCR_GIT_TOKEN": "ghp_wrong_token_0000000000"})
    assert p.returncode == 1
    assert "Failed to clone repository: Authentication failed" in p.stderr
    assert "ghp_wrong_token" not in p.stderr


def test_https_token_in_url_is_moved_out(ccr, https, tmp_path):
    url = https["url"].replace("https://", f"https://x-access-token:{TOKEN}@")
    dest = tmp_path / "repo"
    ccr.ok("clone", url, dest, env={"SSL_CERT_FILE": str(https["ca"])})
    cfg = (dest / ".git" / "config").read_text()
    assert TOKEN not in cfg and https["url"] in cfg


def test_https_conflict_strategies(ccr, https, tmp_path):
    env = {"SSL_CERT_FILE": str(https["ca"]), "CCR_GIT_TOKEN": TOKEN}
    dest = tmp_path / "repo"
    ccr.ok("clone", https["url"], dest, "--depth", "1", env=env)
    up = upstream_change(https["bare"], tmp_path, "line one\nUPSTREAM\nline three\n")
    (dest / "app.txt").write_text("line one\nAGENT\nline three\n")
    mine = ccr.ok("commit", dest, "--message", "agent", env=env)["sha"]

    p = ccr("push", dest, "--strategy", "fail", env=env)
    assert p.returncode == 1 and p.stderr.startswith("ccr git push: " + REJECTED)
    assert git("rev-parse", "main", cwd=https["bare"]) == up

    out = ccr.ok("push", dest, "--strategy", "auto", env=env)
    head = git("rev-parse", "main", cwd=https["bare"])
    assert out["pushed"] and out["sha"] == head != mine
    assert out["recovery"]["method"] == "rebase" and out["recovery"]["remoteSha"] == up
    assert out["recovery"]["conflictFiles"] == ["app.txt"]
    assert git("rev-parse", "main^", cwd=https["bare"]) == up
    assert git("show", "main:app.txt", cwd=https["bare"]) == "line one\nAGENT\nline three"
    assert git("show", "main:up.txt", cwd=https["bare"]) == "from upstream"


def test_https_force_with_lease_when_rebase_cannot_finish(ccr, https, tmp_path):
    env = {"SSL_CERT_FILE": str(https["ca"]), "CCR_GIT_TOKEN": TOKEN}
    dest = tmp_path / "repo"
    ccr.ok("clone", https["url"], dest, env=env)
    work = tmp_path / "deleter"
    git("clone", "-q", https["bare"], work)
    git("rm", "-q", "app.txt", cwd=work)
    git("commit", "-q", "-m", "delete app.txt", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    up = git("rev-parse", "main", cwd=https["bare"])
    (dest / "app.txt").write_text("agent keeps it\n")
    mine = ccr.ok("commit", dest, "--message", "agent", env=env)["sha"]
    out = ccr.ok("push", dest, env=env)
    assert out["recovery"] == {"method": "force-with-lease", "remoteSha": up, "conflictFiles": ["app.txt"]}
    assert out["sha"] == mine == git("rev-parse", "main", cwd=https["bare"])


def test_https_stalled_server_times_out(ccr, tmp_path):
    stall = StallServer()
    try:
        p = ccr("clone", f"https://127.0.0.1:{stall.port}/x.git", tmp_path / "x", "--timeout", "2")
    finally:
        stall.close()
    assert p.returncode == 1
    assert "Git clone operation timed out" in p.stderr
    assert p.elapsed < 10


# ---- SSH ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    git_shell = 'git-shell -c "$SSH_ORIGINAL_COMMAND"'
    s = sshd_for_tests(tmp_path_factory.mktemp("sshd"), {"ed25519": ("ed25519", git_shell),
                                                        "rsa": ("rsa", git_shell), "stall": ("ed25519", "sleep 10")})
    yield s
    s.close()


@pytest.fixture
def ssh_env(sshd, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(sshd.known_hosts_line() + "\n")
    bare = make_origin(tmp_path)
    return {"kh": kh, "bare": bare, "url": sshd.url(str(bare))}


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_ssh_shallow_clone_commit_push(ccr, sshd, ssh_env, tmp_path, kind):
    key = sshd.keys[kind]
    dest = tmp_path / "repo"
    out = ccr.ok("clone", ssh_env["url"], dest, "--depth", "1", "--key", key, "--known-hosts", ssh_env["kh"])
    assert out["shallow"] is True and out["sshStarted"] >= 1 and out["sshKilled"] == 0
    assert git("rev-list", "--count", "HEAD", cwd=dest) == "1"
    (dest / f"{kind}.txt").write_text("over ssh\n")
    sha = ccr.ok("commit", dest, "--message", f"via {kind}")["sha"]
    p = ccr.ok("push", dest, "--key", key, "--known-hosts", ssh_env["kh"])
    assert p["sha"] == sha == git("rev-parse", "main", cwd=ssh_env["bare"])
    assert p["sshKilled"] == 0


def test_ssh_conflict_strategies(ccr, sshd, ssh_env, tmp_path):
    opts = ["--key", sshd.keys["ed25519"], "--known-hosts", ssh_env["kh"]]
    dest = tmp_path / "repo"
    ccr.ok("clone", ssh_env["url"], dest, "--depth", "1", *opts)
    up = upstream_change(ssh_env["bare"], tmp_path, "line one\nUPSTREAM\nline three\n")
    (dest / "app.txt").write_text("line one\nAGENT\nline three\n")
    ccr.ok("commit", dest, "--message", "agent")
    p = ccr("push", dest, "--strategy", "fail", *opts)
    assert p.returncode == 1 and REJECTED in p.stderr
    out = ccr.ok("push", dest, "--strategy", "auto", *opts)
    assert out["recovery"]["method"] == "rebase" and out["recovery"]["remoteSha"] == up
    assert out["sha"] == git("rev-parse", "main", cwd=ssh_env["bare"])
    assert git("show", "main:app.txt", cwd=ssh_env["bare"]) == "line one\nAGENT\nline three"


def test_ssh_host_key_checking(ccr, sshd, ssh_env, tmp_path):
    key = sshd.keys["ed25519"]
    # on by default: an unknown host key fails, with a clear message
    p = ccr("clone", ssh_env["url"], tmp_path / "a", "--key", key)
    assert p.returncode == 1
    assert "SSH host key verification failed" in p.stderr and "sshKnownHosts" in p.stderr
    assert not (tmp_path / "a").exists()
    # a wrong key for the host fails too
    bad = tmp_path / "bad_known_hosts"
    other = (pathlib.Path(str(sshd.keys["rsa"]) + ".pub")).read_text().split()
    bad.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    p = ccr("clone", ssh_env["url"], tmp_path / "b", "--key", key, "--known-hosts", bad)
    assert p.returncode == 1 and "SSH host key verification failed" in p.stderr
    # known hosts through the environment
    ccr.ok("clone", ssh_env["url"], tmp_path / "c", "--key", key, env={"CCR_SSH_KNOWN_HOSTS": str(ssh_env["kh"])})
    # the explicit opt-outs
    ccr.ok("clone", ssh_env["url"], tmp_path / "d", "--key", key, "--insecure")
    ccr.ok("clone", ssh_env["url"], tmp_path / "e", "--key", key, env={"CCR_SSH_INSECURE": "1"})


@pytest.mark.parametrize("policy", ["known-hosts", "environment", "unknown", "wrong-key", "insecure"])
def test_agent_ssh_command_follows_the_clone_policy(ccr, sshd, ssh_env, tmp_path, policy):
    """The GIT_SSH_COMMAND ccr gives the agent (`ccr git ssh-command`) applies
    the same host-key policy as ccr's own clone: the system git with that
    command accepts exactly the hosts the clone accepts."""
    key = sshd.keys["ed25519"]
    bad = tmp_path / "bad_known_hosts"
    other = (pathlib.Path(str(sshd.keys["rsa"]) + ".pub")).read_text().split()
    bad.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    opts, env = {
        "known-hosts": (["--known-hosts", ssh_env["kh"]], {}),
        "environment": ([], {"CCR_SSH_KNOWN_HOSTS": str(ssh_env["kh"])}),
        "unknown": ([], {}),
        "wrong-key": (["--known-hosts", bad], {}),
        "insecure": (["--insecure"], {}),
    }[policy]
    clone = ccr("clone", ssh_env["url"], tmp_path / "clone", "--key", key, *opts, env=env)
    ws = tmp_path / "ws"
    ws.mkdir()
    cmd = ccr.ok("ssh-command", "--workspace", ws, "--key", key, *opts, env=env)["command"]
    assert ("StrictHostKeyChecking=no" in cmd) == (policy == "insecure"), cmd
    agent = subprocess.run(["git", "ls-remote", ssh_env["url"]], capture_output=True, text=True, timeout=60,
                           env=dict(ccr.env, GIT_SSH_COMMAND=cmd))
    want = policy in ("known-hosts", "environment", "insecure")
    assert (clone.returncode == 0) == want, clone.stderr
    assert (agent.returncode == 0) == want, agent.stderr
    if want:
        assert git("rev-parse", "main", cwd=ssh_env["bare"]) in agent.stdout
    else:
        assert "SSH host key verification failed" in clone.stderr
        assert "Host key verification failed" in agent.stderr, agent.stderr


def test_ssh_command_needs_a_workspace(ccr):
    p = ccr("ssh-command")
    assert p.returncode == 2 and "--workspace" in p.stderr


def test_ssh_wrong_key_is_refused(ccr, sshd, ssh_env, tmp_path):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(stranger)], check=True)
    p = ccr("clone", ssh_env["url"], tmp_path / "x", "--key", stranger, "--known-hosts", ssh_env["kh"])
    assert p.returncode == 1
    assert "Failed to clone repository: SSH key authentication failed" in p.stderr


def ssh_processes(marker):
    found = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and "ssh" in cmd:
            found.append((d.name, cmd))
    return found


def test_ssh_clone_timeout_kills_ssh(ccr, sshd, ssh_env, tmp_path):
    key = sshd.keys["stall"]
    p = ccr("clone", ssh_env["url"], tmp_path / "x", "--key", key, "--known-hosts", ssh_env["kh"],
            "--timeout", "2")
    assert p.returncode == 1, p.stdout
    assert "Failed to clone repository: Git clone operation timed out." in p.stderr
    assert p.elapsed < 10
    assert not (tmp_path / "x").exists()
    # no ssh client with that key outlives the call
    time.sleep(0.2)
    assert ssh_processes(str(key)) == []


# ---- the external test repo (BYOT) ---------------------------------------------------

def test_external_test_repo_flow(ccr, https, tmp_path):
    tests_bare = make_origin(https["root"], "acme/e2e-tests.git")
    api = FakeGitHubApi()
    env = {"SSL_CERT_FILE": str(https["ca"]), "CCR_GIT_TOKEN": TOKEN, "CCR_TESTS_TOKEN": TESTS_TOKEN,
           "CCR_GITHUB_URL": f"https://127.0.0.1:{https['srv'].port}", "CCR_GITHUB_API": api.url}
    # the test repo needs the installation token: give the server both
    https["srv"].httpd.token = None
    dest = tmp_path / "repo"
    try:
        ccr.ok("clone", https["url"], dest, env=env)
        https["srv"].httpd.token = TESTS_TOKEN
        ccr.ok("tests-setup", dest, "--tests-url", "https://github.com/acme/e2e-tests", "--tests-branch", "main",
               "--depth", "1", env=env)
        gm = (dest / ".gitmodules").read_text()
        assert f"https://127.0.0.1:{https['srv'].port}/acme/e2e-tests.git" in gm and TESTS_TOKEN not in gm
        assert (dest / "tests" / "app.txt").exists()
        (dest / "tests" / "new_test.spec").write_text("test('x')\n")
        out = ccr.ok("tests-publish", dest, "--tests-url", "https://github.com/acme/e2e-tests",
                     "--tests-branch", "main", "--task-id", "0123456789abcdef", "--task-slug", "login",
                     "--task-name", "Login flow", env=env)
        assert out["externalRepoPR"] == {"url": "https://github.example/acme/e2e-tests/pull/7", "number": 7,
                                         "repo": "acme/e2e-tests", "branch": "bugzy/login-01234567"}
        assert git("show", "bugzy/login-01234567:new_test.spec", cwd=tests_bare) == "test('x')"
        msg = git("log", "-1", "--format=%B", "bugzy/login-01234567", cwd=tests_bare)
        assert msg == "Login flow\n\n🤖 Generated by Bugzy AI\nExecution: 0123456789abcdef"
        (call,) = api.calls
        assert call["path"] == "/repos/acme/e2e-tests/pulls"
        h = {k.lower(): v for k, v in call["headers"].items()}
        assert h["authorization"] == f"Bearer {TESTS_TOKEN}"
        assert h["accept"] == "application/vnd.github+json"
        assert h["x-github-api-version"] == "2022-11-28"
        assert h["user-agent"] == "bugzy-cloudrun-claude-code"
        body = json.loads(call["body"])
        assert body == {"title": "[Bugzy] Login flow - 01234567",
                        "body": "## Summary\n\nAuto-generated by Bugzy AI task execution.\n\n"
                                "**Task:** Login flow\n**Execution ID:** 0123456789abcdef\n\n---\n"
                                "🤖 Generated with [Bugzy](https://bugzy.dev)",
                        "head": "bugzy/login-01234567", "base": "main"}
        # the parent's commit records .gitmodules with the plain URL only
        https["srv"].httpd.token = TOKEN
        (dest / "work.txt").write_text("x\n")
        ccr.ok("commit", dest, "--message", "parent", env=env)
        ccr.ok("push", dest, env=env)
        assert TESTS_TOKEN not in git("show", "main:.gitmodules", cwd=https["bare"])
        # a later task: the submodule is registered now; resume the PR branch
        again = tmp_path / "again"
        ccr.ok("clone", https["url"], again, env=env)
        https["srv"].httpd.token = TESTS_TOKEN
        ccr.ok("tests-setup", again, "--tests-url", "https://github.com/acme/e2e-tests.git", "--tests-branch",
               "main", "--existing-pr-branch", "bugzy/login-01234567", "--depth", "1", env=env)
        assert (again / "tests" / "new_test.spec").read_text() == "test('x')\n"
        assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=again / "tests") == "bugzy/login-01234567"
        (again / "tests" / "second.spec").write_text("more\n")
        out = ccr.ok("tests-publish", again, "--tests-url", "https://github.com/acme/e2e-tests",
                     "--existing-pr-branch", "bugzy/login-01234567", "--task-id", "fedcba9876543210", env=env)
        assert out["published"] and "externalRepoPR" not in out and len(api.calls) == 1
        assert git("show", "bugzy/login-01234567:second.spec", cwd=tests_bare) == "more"
        # the token is nowhere on disk
        for p in tmp_path.rglob("*"):
            if p.is_file() and not p.is_symlink():
                assert TESTS_TOKEN.encode() not in p.read_bytes(), p
    finally:
        api.close()


def test_pull_request_error_text(ccr, https, tmp_path):
    tests_bare = make_origin(https["root"], "acme/e2e-tests.git")
    api = FakeGitHubApi(answer=(422, {"message": "Validation Failed"}))
    https["srv"].httpd.token = None
    env = {"SSL_CERT_FILE": str(https["ca"]), "CCR_TESTS_TOKEN": TESTS_TOKEN,
           "CCR_GITHUB_URL": f"https://127.0.0.1:{https['srv'].port}", "CCR_GITHUB_API": api.url}
    dest = tmp_path / "repo"
    try:
        ccr.ok("clone", https["url"], dest, env=env)
        ccr.ok("tests-setup", dest, "--tests-url", "https://github.com/acme/e2e-tests", env=env)
        (dest / "tests" / "t.spec").write_text("x\n")
        p = ccr("tests-publish", dest, "--tests-url", "https://github.com/acme/e2e-tests", "--task-id", "abcdef0123",
                env=env)
        assert p.returncode == 1
        assert ('Failed to create pull request: GitHub API returned 422: {"message": "Validation Failed"}'
                in p.stderr)
        assert git("rev-parse", "bugzy/task-abcdef01", cwd=tests_bare)
    finally:
        api.close()


def test_usage_errors(ccr):
    for args in (["nope"], ["clone", "only-url"], ["push", "r", "--strategy", "maybe"], ["clone", "--depth", "x"]):
        p = ccr(*args)
        assert p.returncode == 2, args
        assert len(p.stderr.strip().splitlines()) == 1


def test_invalid_url(ccr, tmp_path):
    p = ccr("clone", "ftp://example.com/repo.git", tmp_path / "x")
    assert p.returncode == 1
    assert p.stderr.strip() == ("ccr git clone: Invalid git repository URL format. "
                                "Use SSH (git@...) or HTTPS format.")


def test_https_repository_not_found(ccr, https, tmp_path):
    p = ccr("clone", https["url"].replace("origin.git", "nope.git"), tmp_path / "x",
            env={"SSL_CERT_FILE": str(https["ca"]), "CCR_GIT_TOKEN": TOKEN})
    assert p.returncode == 1
    assert p.stderr.startswith("ccr git clone: Failed to clone repository: Repository not found. "
                               "Check the repository URL and access permissions.")


def test_ssh_client_missing_or_unreachable(ccr, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    p = ccr("clone", "ssh://git@127.0.0.1:1/x.git", tmp_path / "x", "--insecure", env={"PATH": str(empty)})
    assert p.returncode == 1 and "the ssh client is not installed" in p.stderr
    if shutil.which("ssh"):
        p = ccr("clone", "ssh://git@127.0.0.1:1/x.git", tmp_path / "y", "--insecure")
        assert p.returncode == 1 and "Connection refused" in p.stderr
