"""The images of scripts/build-image, and a task run by the real CLI inside the job image.

scripts/build-image writes the serve and job images as OCI layouts (zig-out/image/); it
rebuilds only what changed (the Debian root filesystem is cached by the lock's hash), so a
second run of this module reuses them.  Each image's root filesystem is exported the way a
runtime unpacks it (its layers, in order) and checked:

  serve  exactly one file, /ccr, the binary under test; `ccr selftest` passes inside;
  job    the config (entrypoint `ccr job`, user agent, env), the Debian packages installed
         are exactly vendor/image.lock's, ccr and the pinned CLI in /usr/local/bin, the
         user agent (1001) and /tmp/workspaces (0700, agent's), no apt;

then, in cloud mode against the fake Google Cloud, `ccr serve` on the host starts a Cloud
Run execution whose container is the exported job image: the fake runs
tests/fakes/rootfs_run.py, which enters the root filesystem with a mount namespace and
pivot_root (not chroot, so ccr job's sandbox can still create user namespaces) and runs the
image's entrypoint as agent with the image's environment plus the job's.  The real CLI
(/usr/local/bin/claude from the image) talks to the fake Anthropic API through ccr's token
proxy over loopback, runs a Bash tool with the image's git, ripgrep and ssh, and the task's
output and files come back through the fake's Cloud Storage.

Prints the build time, the image digests and sizes (compressed layers, unpacked) and the
scenario's wall time.  Skipped when not root (mmdebstrap, buildah and mount namespaces need
it), under CCR_SANITIZED=1 (the image holds the static release binary), and when the npm
registry cannot be reached to install the pinned CLI.
"""
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import time

import pytest

from conftest import ROOT, SANITIZED, is_root, run
from fakes.fake_anthropic import FakeAnthropic
from test_cloud import CLOUD_NAMES, CLOUD_VARS, JOB, Cloud
from test_e2e import CLI_ENV, REAL_KEY, SSE, lines_of, terminal

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="mmdebstrap, buildah and the mount namespace of the "
                       "exported image need root"),
    pytest.mark.skipif(SANITIZED, reason="the images hold the static release binary (zig-out/bin/ccr); "
                       "CCR_SANITIZED=1 runs the dynamically linked sanitizer build"),
]

BUILD_IMAGE = ROOT / "scripts" / "build-image"
INSTALL_CLAUDE = ROOT / "tests" / "fakes" / "install-claude"
RUNNER = ROOT / "tests" / "fakes" / "rootfs_run.py"
LOCK = ROOT / "vendor" / "image.lock"
PYTHON = "/usr/bin/python3"


# --------------------------------------------------------------------------
# building and exporting


@pytest.fixture(scope="module")
def claude_bin():
    r = subprocess.run([str(INSTALL_CLAUDE)], capture_output=True, text=True, timeout=1800)
    if r.returncode == 3:
        pytest.skip("the pinned Claude Code CLI cannot be installed, the npm registry is unreachable: "
                    + r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0, "install-claude failed (%d): %s" % (r.returncode, r.stderr)
    return os.path.realpath(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def images(ccr_bin, claude_bin):
    """scripts/build-image's summary: {name: {"manifest", "layers", "compressed", "unpacked"}}."""
    t0 = time.monotonic()
    r = subprocess.run([str(BUILD_IMAGE)], capture_output=True, text=True, timeout=3600,
                       env=dict(os.environ, CCR_BIN=str(ccr_bin)))
    assert r.returncode == 0, "scripts/build-image failed:\n" + r.stderr[-4000:]
    print("scripts/build-image: %.1f s\n%s%s" % (time.monotonic() - t0, r.stderr, r.stdout))
    out = {}
    for line in r.stdout.splitlines():
        f = line.split()
        if line.startswith("#") or len(f) != 9:
            continue
        out[f[0]] = {"manifest": f[2], "layers": int(f[4]), "compressed": int(f[6]), "unpacked": int(f[8])}
    assert set(out) == {"serve", "job"}, r.stdout
    return out


def blob(layout, digest):
    return layout / "blobs" / digest.replace(":", "/", 1)


def read_image(layout):
    """(manifest, config) of the one image in an OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    assert len(index["manifests"]) == 1, index
    manifest = json.loads(blob(layout, index["manifests"][0]["digest"]).read_bytes())
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_bytes())
    return manifest, config


def export_rootfs(layout, dest):
    """Unpack the image's layers in order, owners and modes as stored (a runtime's view).
    Images built FROM scratch with fresh layers have no whiteouts; one would be a bug here."""
    manifest, config = read_image(layout)
    dest.mkdir()
    for layer in manifest["layers"]:
        assert layer["mediaType"].endswith("tar+gzip"), layer
        with tarfile.open(blob(layout, layer["digest"])) as t:
            names = t.getnames()
        assert not [n for n in names if os.path.basename(n).startswith(".wh.")], "a whiteout in a layer"
        r = run(["tar", "-xzpf", str(blob(layout, layer["digest"])), "-C", str(dest), "--numeric-owner"])
        assert r.returncode == 0, r.stderr
    return manifest, config


@pytest.fixture(scope="module")
def job(images, tmp_path_factory):
    root = tmp_path_factory.mktemp("job-image") / "rootfs"
    manifest, config = export_rootfs(ROOT / "zig-out" / "image" / "job-oci", root)
    yield root, manifest, config
    shutil.rmtree(root.parent, ignore_errors=True)  # 600 MB


def lock_packages():
    return sorted(tuple(line.split()[1:4]) for line in LOCK.read_text().splitlines() if line.startswith("deb "))


def installed_packages(root):
    """(package, version, architecture) of every installed package, from dpkg's status file."""
    out, cur = [], {}
    for line in (root / "var/lib/dpkg/status").read_text().splitlines() + [""]:
        if not line:
            if cur.get("Status", "").endswith(" installed"):
                out.append((cur["Package"], cur["Version"], cur["Architecture"]))
            cur = {}
        elif not line.startswith(" ") and ":" in line:
            k, v = line.split(":", 1)
            cur[k] = v.strip()
    return sorted(out)


def in_image(root, *cmd, user="1001:1001", env=("PATH=/usr/local/bin:/usr/bin:/bin",), timeout=60):
    args = [PYTHON, str(RUNNER), "--user", user] + ["--env=" + e for e in env] + [str(root), "--", *cmd]
    return run(args, timeout=timeout)


# --------------------------------------------------------------------------
# the images


def test_serve_image_is_only_ccr_and_its_selftest_passes(images, ccr_bin, tmp_path):
    root = tmp_path / "serve"
    manifest, config = export_rootfs(ROOT / "zig-out" / "image" / "serve-oci", root)
    assert sorted(os.listdir(root)) == ["ccr"]
    assert (root / "ccr").read_bytes() == pathlib.Path(ccr_bin).read_bytes()
    assert config["config"]["Entrypoint"] == ["/ccr", "serve"]
    assert len(manifest["layers"]) == 1
    # the runtime provides /tmp, /proc and /dev; so does the runner
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    r = in_image(root, "/ccr", "selftest", user="65534:65534", env=("PATH=/",), timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "0 failed" in r.stdout.splitlines()[-1]
    s = images["serve"]
    print("serve image: %s, %d layer, %d bytes compressed, %d unpacked"
          % (s["manifest"], s["layers"], s["compressed"], s["unpacked"]))


def test_job_image_holds_exactly_the_locked_packages_ccr_and_the_cli(images, job, ccr_bin, claude_bin):
    root, manifest, config = job
    c = config["config"]
    assert c["Entrypoint"] == ["/usr/local/bin/ccr", "job"]
    assert c["User"] == "agent"
    env = dict(e.split("=", 1) for e in c["Env"])
    assert env["DISABLE_AUTOUPDATER"] == "1" and env["HOME"] == "/home/agent"
    assert len(manifest["layers"]) == 3, "Debian, the CLI, ccr"

    assert installed_packages(root) == lock_packages()
    assert not (root / "usr/bin/apt-get").exists(), "apt is not part of the image"
    assert (root / "usr/local/bin/ccr").read_bytes() == pathlib.Path(ccr_bin).read_bytes()
    assert os.path.getsize(root / "usr/local/bin/claude") == os.path.getsize(claude_bin)
    for tool in ("bash", "git", "ssh", "rg"):
        assert os.access(root / "usr/bin" / tool, os.X_OK), tool

    agent = [ln.split(":") for ln in (root / "etc/passwd").read_text().splitlines() if ln.startswith("agent:")]
    assert agent == [["agent", "x", "1001", "1001", "ccr job agent", "/home/agent", "/bin/bash"]]
    st = os.stat(root / "tmp/workspaces")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1001, 1001, 0o700)
    assert os.stat(root / "home/agent").st_uid == 1001
    assert not (root / "etc/resolv.conf").exists() and not (root / "etc/hostname").exists()
    j = images["job"]
    print("job image: %s, %d layers, %d bytes compressed, %d unpacked"
          % (j["manifest"], j["layers"], j["compressed"], j["unpacked"]))


def test_build_refuses_a_package_whose_hash_is_not_the_locked_one(images, ccr_bin, tmp_path):
    # a lock whose ripgrep hash is not the file's: the build stops before mmdebstrap, in one line
    lines = LOCK.read_text().splitlines()
    (i, rg), = [(i, ln) for i, ln in enumerate(lines) if ln.startswith("deb ripgrep ")]
    f, real = rg.split()[4:6]
    lines[i] = rg.replace(real, "0" * 64)
    lock = tmp_path / "image.lock"
    lock.write_text("\n".join(lines) + "\n")
    r = subprocess.run([str(BUILD_IMAGE)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, CCR_BIN=str(ccr_bin), CCR_IMAGE_LOCK=str(lock),
                                CCR_IMAGE_BUILD=str(tmp_path / "build"), CCR_IMAGE_OUT=str(tmp_path / "out")))
    assert r.returncode == 1, r.stdout + r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("build-image: checksum mismatch for %s: lock says %s, file has %s (remove "
                           % (f, "0" * 64, real)), line
    assert line.endswith("/image-debs/%s to fetch it again)" % f), line
    assert not (tmp_path / "out" / "job-oci").exists()


def test_the_agent_can_create_a_user_namespace_inside_the_image(job):
    # what ccr job's sandbox needs: the runner's pivot_root (chroot would make this EPERM)
    root, _, _ = job
    r = in_image(root, "/usr/bin/unshare", "--user", "--map-root-user", "/usr/bin/id", "-u")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
    r = in_image(root, "/usr/bin/id", "-u")
    assert r.stdout.strip() == "1001"


# --------------------------------------------------------------------------
# a task in cloud mode, with the real CLI inside the job image


TOOLS = ("id -u; git --version; rg --version | head -n 1; ssh -V 2>&1; "
         "command -v claude ccr")


@pytest.fixture
def cloud_with_image_job(job, ccr_bin, tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith(CLOUD_VARS) or k in CLOUD_NAMES:
            monkeypatch.delenv(k)
    root, _, config = job
    made = []

    def start(fake):
        cloud = Cloud(ccr_bin, tmp_path / "cloud")
        made.append(cloud)
        job_env = {k: cloud.env[k] for k in (
            "GCS_LOGS_BUCKET", "STORAGE_EMULATOR_HOST", "CCR_KMS_ENDPOINT", "CCR_RUN_ENDPOINT",
            "CCR_SECRETMANAGER_ENDPOINT", "REGION", "CLOUDRUN_JOB_NAME", "CCR_RETRY_BASE_MS",
            "CCR_ALLOW_PRIVATE_CALLBACKS")}
        # the fake's service-account key as a file in the container, as a secret volume would
        # mount it (with STORAGE_EMULATOR_HOST and no key file, ccr talks to storage
        # anonymously, as Google's clients do with an emulator); the CLI and the workspace
        # root are the image's defaults
        secrets_dir = root / "run" / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cloud.fake.sa_path, secrets_dir / "sa.json")
        os.chmod(secrets_dir / "sa.json", 0o644)
        job_env.update(GOOGLE_APPLICATION_CREDENTIALS="/run/secrets/sa.json", CCR_ANTHROPIC_UPSTREAM=fake.url,
                       DANGEROUSLY_SKIP_PERMISSIONS="true", CCR_KILL_GRACE_MS="1000",
                       CCR_SANDBOX="required")
        keep = sorted(job_env) + ["TASK_ID", "ENCRYPTED_PAYLOAD_PATH"]
        command = ([PYTHON, str(RUNNER), "--user", "1001:1001", "--keep-prefix", "CLOUD_RUN_"]
                   + ["--env=" + e for e in config["config"]["Env"]] + ["--keep=" + k for k in keep]
                   + [str(root), "--", *config["config"]["Entrypoint"]])
        cloud.fake.register_job(JOB, command=command, env=job_env)
        return cloud
    yield start
    bad = []
    for c in made:
        try:
            bad += c.fake.violations()
        finally:
            c.close()
    assert not bad, "not wire-exact with the discovery documents:\n" + "\n".join(
        f"{v['where']}: {v['method']} {v['path']}: {v['violation']}" for v in bad[:20])


def job_output(cloud):
    """What the containers of every execution wrote (for failure messages)."""
    out = ""
    for ex in cloud.fake.executions():
        for att in (a for t in cloud.fake.execution(ex["exec_id"])["tasks"] for a in t["attempts"]):
            for p in (att["stdout"], att["stderr"]):
                with open(p, errors="replace") as f:
                    out += f.read()[-3000:]
    return out


def test_real_cli_runs_a_task_inside_the_job_image_in_cloud_mode(job, cloud_with_image_job):
    root, _, _ = job
    with FakeAnthropic(expected_key=REAL_KEY) as fake:
        cloud = cloud_with_image_job(fake)
        srv = cloud.serve()
        fake.load_script([
            {"tool_use": {"name": "Bash", "input": {"command": "(%s) > tools.txt 2>&1; cat tools.txt" % TOOLS,
                                                     "description": "the image's tools"}}},
            {"tool_use": {"name": "Write", "input": {"file_path": "hello.txt",
                                                      "content": "hello from inside the image\n"}}},
            {"text": "All done."}])
        b = {"prompt": "Do the task.", "anthropicApiKey": REAL_KEY, "environmentSecrets": dict(CLI_ENV),
             "postExecutionActions": {"uploadFiles": {"globPatterns": ["hello.txt", "tools.txt"]}}}
        t0 = time.monotonic()
        frames = SSE(srv, "POST", "/run", b, timeout=300).read_all()
        elapsed = time.monotonic() - t0
        reqs = fake.requests()
    lines = lines_of(frames)
    done = terminal(frames)[-1][1]
    assert done["status"] == "completed" and done["exitCode"] == 0, (done, lines[-3:], job_output(cloud))
    assert lines[-1]["type"] == "result" and lines[-1]["result"] == "All done."

    (task,) = sorted(n.split("/")[1] for n in cloud.names("sessions/") if n.endswith("/metadata.json"))
    assert cloud.raw(f"files/{task}/hello.txt") == b"hello from inside the image\n"
    tools = cloud.raw(f"files/{task}/tools.txt").decode()
    versions = {p: v for p, v, _ in lock_packages()}
    out = tools.splitlines()
    assert out[0] == "1001", tools
    assert out[1] == "git version " + versions["git"].split(":")[-1].split("-")[0], tools
    assert out[2].startswith("ripgrep " + versions["ripgrep"].split("-")[0]), tools
    # OpenSSH names Debian's revision, not the upstream version Debian packaged (10.0p1 says 10.0p2)
    assert out[3].startswith("OpenSSH_") and " Debian-%s," % versions["openssh-client"].rsplit("-", 1)[1] in out[3], tools
    assert out[4:] == ["/usr/local/bin/claude", "/usr/local/bin/ccr"], tools

    # the real key went only to the API, the CLI used the proxy's dummy
    assert reqs and all(q["credential"]["value"] == REAL_KEY for q in reqs)
    meta = cloud.meta(task)
    assert meta["status"] == "completed"
    # the agent ran boxed: user, pid, mount and network namespaces built inside the image
    assert meta["sandbox"] == "namespaces+landlock", meta.get("sandbox")
    # the workspace inside the image is wiped, and the key is nowhere in its files
    deadline = time.monotonic() + 15
    while os.listdir(root / "tmp/workspaces") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.listdir(root / "tmp/workspaces") == []
    for d in ("home/agent", "tmp"):
        for p in (root / d).rglob("*"):
            if p.is_file() and not p.is_symlink():
                assert REAL_KEY.encode() not in p.read_bytes(), p
    print("task in the job image (real CLI, cloud mode): %.2f s" % elapsed)
