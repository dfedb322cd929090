"""`ccr deploy` against the fake Google Cloud, and its image push against a real OCI registry.

Deploy: a first run creates every resource (counted calls and writes, timed), a task then runs
through the deployed names (serve started with the deployed service's env, secrets resolved from
the fake Secret Manager; the fake's Cloud Run runs the deployed job's template env with `ccr job`),
and a second run makes no write call.  --dry-run writes nothing; a changed setting updates only
what changed; an existing deployment is taken over without losing its other IAM grants.  Every
request and answer is checked against Google's discovery documents (the fixture fails on a
violation).

Push: Debian's docker-registry (installed when root and missing), started on 127.0.0.1 with TLS
from a test CA and htpasswd basic auth; ccr pushes a small OCI layout made here (monolithic and
chunked uploads), the test pulls the manifest and blobs back with a plain HTTP client and compares
digests.

Run: /usr/bin/python3 -m pytest -q tests/test_deploy.py
"""
import base64
import datetime
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import random
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
import warnings

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import ROOT  # noqa: E402
from fakes.gcp_client import FakeGCP  # noqa: E402
from fakes.git_servers import make_ca  # noqa: E402
from fakes import discovery_extract, testenv  # noqa: E402
from test_cloud import CANARY, FAKE_CLAUDE, Stream, body, clean_environ  # noqa: E402
from test_http_server import Serve  # noqa: E402

BUCKET = "ccr-deploy-logs"
JOB = "claude-code-async-worker"
SERVICE = "cloudrun-claude-code"
WRITE_VERBS = (".create", ".insert", ".patch", ".setIamPolicy", ".addVersion", ".update", ".delete")


def is_write(entry):
    m = entry.get("google_method") or ""
    return m.endswith(WRITE_VERBS)


class Deployment:
    """One fake Google Cloud (jobs must be created before they exist, keys too) and the
    environment ccr deploy needs to reach it."""

    def __init__(self, ccr_bin, tmp_path):
        self.bin = str(ccr_bin)
        self.tmp = tmp_path
        for d in ("home", "gcloud", "ws"):
            (tmp_path / d).mkdir(parents=True, exist_ok=True)
        fenv = clean_environ()
        fenv["HOME"] = str(tmp_path / "home")
        self.fake = FakeGCP(state_dir=str(tmp_path / "fake"), job_command=f"{self.bin} job",
                            env=fenv).start()
        self.fake.config(restrict_jobs=True, kms_auto_create=False)
        self.env = dict(clean_environ(), HOME=str(tmp_path / "home"),
                        GOOGLE_APPLICATION_CREDENTIALS=self.fake.sa_path,
                        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), CCR_RETRY_BASE_MS="5")
        for var in ("STORAGE_EMULATOR_HOST", "CCR_KMS_ENDPOINT", "CCR_RUN_ENDPOINT",
                    "CCR_SECRETMANAGER_ENDPOINT", "CCR_IAM_ENDPOINT", "CCR_ARTIFACTREGISTRY_ENDPOINT"):
            self.env[var] = self.fake.url
        # What Cloud Run's runtime gives a job (credentials, endpoints), not the deployment's
        # settings: those come from the deployed template (bucket, key, secrets).
        self.fake.register_job(JOB, command=[self.bin, "job"], env=dict(
            {k: v for k, v in self.env.items() if k.startswith(("CCR_", "GOOGLE_", "STORAGE_"))},
            CLAUDE_BIN=FAKE_CLAUDE, CCR_WORKSPACE_ROOT=str(tmp_path / "ws"), CCR_KILL_GRACE_MS="500"),
            runtime_only=True)
        self.fake.config(restrict_jobs=True)
        self.serves = []

    def deploy(self, *args, check=True):
        t0 = time.monotonic()
        since = self.fake.requests()[-1]["id"] if self.fake.requests() else 0
        p = subprocess.run([self.bin, "deploy", "--project", self.fake.project, "--region", self.fake.region,
                            "--bucket", BUCKET, *args], env=self.env, capture_output=True, text=True,
                           timeout=180)
        p.seconds = time.monotonic() - t0
        p.calls = [e for e in self.fake.requests(since=since) if e["service"] != "oauth"]
        p.writes = [e for e in p.calls if is_write(e)]
        if check:
            assert p.returncode == 0, p.stdout + p.stderr
        return p

    def secret(self, name):
        tok = self.fake.access_token()
        req = urllib.request.Request(
            f"{self.fake.url}/v1/projects/{self.fake.project}/secrets/{name}/versions/latest:access",
            headers={"Authorization": f"Bearer {tok}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return base64.b64decode(json.load(r)["payload"]["data"]).decode()

    def get(self, path):
        tok = self.fake.access_token()
        req = urllib.request.Request(f"{self.fake.url}{path}", headers={"Authorization": f"Bearer {tok}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def service_env(self):
        """The deployed service's env as Cloud Run would give it (secrets resolved)."""
        svc = self.get(f"/v2/projects/{self.fake.project}/locations/{self.fake.region}/services/{SERVICE}")
        env = {}
        for e in svc["template"]["containers"][0]["env"]:
            ref = (e.get("valueSource") or {}).get("secretKeyRef")
            env[e["name"]] = self.secret(ref["secret"]) if ref else e["value"]
        return svc, env

    def close(self):
        for s in self.serves:
            s.kill()
        self.fake.stop()


@pytest.fixture
def deployment(ccr_bin, tmp_path, monkeypatch):
    made = []

    def start():
        d = Deployment(ccr_bin, tmp_path / f"d{len(made)}")
        made.append(d)
        return d
    yield start
    bad = []
    for d in made:
        try:
            bad += d.fake.violations()
        finally:
            d.close()
    assert not bad, "not wire-exact with the discovery documents:\n" + "\n".join(
        f"{v['where']}: {v['method']} {v['path']}: {v['violation']}" for v in bad[:20])


def test_deploy_then_a_task_runs_through_the_deployed_names_then_nothing_to_write(deployment):
    d = deployment()
    first = d.deploy()
    print(f"\nfull deploy against the fake: {len(first.calls)} calls ({len(first.writes)} writes) "
          f"in {first.seconds:.2f} s")
    assert re.search(r"deploy done: \d+ calls, \d+ writes", first.stdout)
    made = sorted({e["google_method"] for e in first.writes})
    assert made == sorted([
        "artifactregistry.projects.locations.repositories.create",
        "iam.projects.serviceAccounts.create", "storage.buckets.insert",
        "storage.buckets.setIamPolicy", "cloudkms.projects.locations.keyRings.create",
        "cloudkms.projects.locations.keyRings.cryptoKeys.create",
        "cloudkms.projects.locations.keyRings.cryptoKeys.setIamPolicy",
        "secretmanager.projects.secrets.create", "secretmanager.projects.secrets.addVersion",
        "secretmanager.projects.secrets.setIamPolicy", "run.projects.locations.jobs.create",
        "run.projects.locations.jobs.setIamPolicy", "run.projects.locations.services.create"])
    # every binding is explained, and the service's address is given
    assert first.stdout.count("why: ") == 8
    assert re.search(r"^    url: https://cloudrun-claude-code-\S+\.a\.run\.app$", first.stdout, re.M), first.stdout

    # the resources as deployed
    pr, rg = d.fake.project, d.fake.region
    bucket = d.get(f"/storage/v1/b/{BUCKET}")
    assert bucket["lifecycle"] == {"rule": [
        {"action": {"type": "Delete"}, "condition": {"age": 30, "matchesPrefix": ["sessions/"]}},
        {"action": {"type": "Delete"}, "condition": {"age": 1, "matchesPrefix": ["tasks/"]}}]}
    job = d.get(f"/v2/projects/{pr}/locations/{rg}/jobs/{JOB}")
    tt = job["template"]["template"]
    assert tt["maxRetries"] == 1 and tt["timeout"] == "86400s"
    assert tt["serviceAccount"] == f"ccr-job@{pr}.iam.gserviceaccount.com"
    assert tt["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "4Gi"}
    pol = d.get(f"/v2/projects/{pr}/locations/{rg}/jobs/{JOB}:getIamPolicy")
    assert pol["bindings"] == [{"role": "roles/run.jobsExecutorWithOverrides",
                                "members": [f"serviceAccount:ccr-serve@{pr}.iam.gserviceaccount.com"]}]
    key = f"/v1/projects/{pr}/locations/{rg}/keyRings/cloudrun-claude-code-keys/cryptoKeys/async-task-payload-key"
    roles = {b["role"]: b["members"] for b in d.get(key + ":getIamPolicy")["bindings"]}
    assert roles == {"roles/cloudkms.cryptoKeyEncrypter": [f"serviceAccount:ccr-serve@{pr}.iam.gserviceaccount.com"],
                     "roles/cloudkms.cryptoKeyDecrypter": [f"serviceAccount:ccr-job@{pr}.iam.gserviceaccount.com"]}
    hook_secret = d.secret("cloudrun-callback-secret")
    assert hook_secret.startswith("whsec_") and len(base64.b64decode(hook_secret[6:])) == 32
    assert hook_secret not in first.stdout + first.stderr

    # a task through the deployed names: serve gets the service's env, the job its template's
    svc, env = d.service_env()
    assert svc["ingress"] == "INGRESS_TRAFFIC_ALL"
    assert svc["template"]["scaling"] == {"minInstanceCount": 0, "maxInstanceCount": 10}
    assert env["GCS_LOGS_BUCKET"] == BUCKET and env["CLOUDRUN_JOB_NAME"] == JOB
    api_key = env["CCR_API_KEYS"]
    srv = Serve(d.bin, dict(d.env, **env))
    d.serves.append(srv)
    s = Stream(srv, "POST", "/run", body({"lines": [{"type": "result", "subtype": "success"}]}),
               headers={"Authorization": f"Bearer {api_key}"})
    assert s.status == 200, s.text
    assert s.done()["status"] == "completed", s.frames[-3:]
    deadline = time.time() + 30        # the job exits just after its last cleanup
    while d.fake.executions()[0]["state"] == "RUNNING" and time.time() < deadline:
        time.sleep(0.05)
    [ex] = d.fake.executions()
    assert ex["job"] == JOB and ex["state"] == "SUCCEEDED" and ex["max_retries"] == 1
    assert ex["timeout"] == 86400

    # the second run: reads only
    second = d.deploy()
    print(f"second deploy: {len(second.calls)} calls, {len(second.writes)} writes")
    assert second.writes == [], [e["google_method"] for e in second.writes]
    assert "0 writes" in second.stdout and " create" not in second.stdout and "    url: https://" in second.stdout
    assert "update" not in second.stdout


def test_dry_run_writes_nothing_and_names_what_would_change(deployment):
    d = deployment()
    d.fake.create_bucket(BUCKET)   # the original's bucket, made without the lifecycle rules
    p = d.deploy("--dry-run")
    assert p.writes == [] and "0 writes" in p.stdout
    assert p.stdout.count("would create") == 9, p.stdout
    assert f"bucket                 {BUCKET}: would update (changed: lifecycle)" in p.stdout
    p = d.deploy()
    assert "storage.buckets.patch" in [e["google_method"] for e in p.writes]
    p = d.deploy("--dry-run", "--job-memory", "8Gi", "--max-instances", "3", "--allow-unauthenticated")
    assert p.writes == []
    assert re.search(r"cloud run job .*: would update .*template\.template\.containers\[0\]\.resources\.limits\.memory",
                     p.stdout), p.stdout
    assert re.search(r"cloud run service .*: would update .*template\.scaling\.maxInstanceCount", p.stdout)
    assert "+ roles/run.invoker -> allUsers" in p.stdout
    # and for real: exactly those writes
    p = d.deploy("--job-memory", "8Gi", "--max-instances", "3", "--allow-unauthenticated")
    assert sorted(e["google_method"] for e in p.writes) == [
        "run.projects.locations.jobs.patch", "run.projects.locations.services.patch",
        "run.projects.locations.services.setIamPolicy"]
    job = d.get(f"/v2/projects/{d.fake.project}/locations/{d.fake.region}/jobs/{JOB}")
    assert job["template"]["template"]["containers"][0]["resources"]["limits"]["memory"] == "8Gi"
    # every method marked as `ccr deploy`'s in the discovery extract was called (but the bucket's
    # insert: it existed here; the first test makes one)
    called = {e["google_method"] for e in d.fake.requests()} | {"storage.buckets.insert"}
    assert set(discovery_extract.deploy_methods()) <= called, set(discovery_extract.deploy_methods()) - called


def test_takeover_keeps_values_and_grants_and_file_values_add_versions(deployment, tmp_path):
    d = deployment()
    # the original's deployment: its secret (a value of its own) and a grant someone made
    d.fake.set_secret("cloudrun-callback-secret", "the-original-hex-secret")
    tok = d.fake.access_token()
    url = f"{d.fake.url}/v1/projects/{d.fake.project}/secrets/cloudrun-callback-secret"
    with urllib.request.urlopen(urllib.request.Request(url + ":getIamPolicy",
                                headers={"Authorization": f"Bearer {tok}"}), timeout=30) as r:
        pol = json.load(r)
    pol["bindings"] = [{"role": "roles/secretmanager.secretAccessor", "members": ["user:ops@example.com"]}]
    req = urllib.request.Request(url + ":setIamPolicy", data=json.dumps({"policy": pol}).encode(),
                                 headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()
    # someone else changes the policy between ccr's read and write: its etag no longer matches
    d.fake.faults(name="concurrent", service="secretmanager", method="POST", path_contains=":setIamPolicy",
                  status=409, reason="ABORTED", count=1)
    p = d.deploy()
    assert "the policy changed meanwhile: reading it again" in p.stdout
    sets = [e["status"] for e in p.calls if e["path"].endswith("/cloudrun-callback-secret:setIamPolicy")]
    assert sets == [409, 200], sets
    assert d.secret("cloudrun-callback-secret") == "the-original-hex-secret"
    members = d.get(f"/v1/projects/{d.fake.project}/secrets/cloudrun-callback-secret:getIamPolicy")["bindings"][0]["members"]
    assert members[0] == "user:ops@example.com" and len(members) == 3
    # a value from a file: one new version, then nothing
    f = tmp_path / "keys.txt"
    f.write_text("key-one,key-two\n")
    p = d.deploy("--api-keys-file", str(f))
    assert [e["google_method"] for e in p.writes] == ["secretmanager.projects.secrets.addVersion"]
    assert d.secret("ccr-api-keys") == "key-one,key-two"
    assert d.deploy("--api-keys-file", str(f)).writes == []
    assert "key-one" not in p.stdout + p.stderr


@pytest.mark.parametrize("args,msg", [
    (["--bogus"], "unknown option --bogus"),
    (["--job-timeout", "forever"], "--job-timeout forever: give a duration"),
    (["--ingress", "public"], "--ingress public"),
    (["--bucket", "Bad/Name"], "--bucket \"Bad/Name\" is not a valid name"),
    (["--env", "NOVALUE"], "--env NOVALUE: give NAME=VALUE"),
    (["--min-instances", "5", "--max-instances", "2"], "--min-instances 5 is above --max-instances 2"),
])
def test_bad_options_are_usage_errors(ccr_bin, args, msg):
    p = subprocess.run([str(ccr_bin), "deploy", "--project", "p", *args], capture_output=True, text=True,
                       env=clean_environ(), timeout=30)
    assert p.returncode == 2 and msg in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_config_file_and_its_errors(deployment, tmp_path):
    d = deployment()
    cfg = tmp_path / "deploy.conf"
    cfg.write_text("# ccr deploy settings\njob-memory = 2Gi\nenv = FEATURE_X=on\nallow-unauthenticated = true\n")
    p = d.deploy("--config", str(cfg), "--dry-run")
    assert "+ roles/run.invoker -> allUsers" in p.stdout
    d.deploy("--config", str(cfg))
    job = d.get(f"/v2/projects/{d.fake.project}/locations/{d.fake.region}/jobs/{JOB}")
    c = job["template"]["template"]["containers"][0]
    assert c["resources"]["limits"]["memory"] == "2Gi"
    assert {"name": "FEATURE_X", "value": "on"} in c["env"]
    cfg.write_text("job-memory\n")
    p = d.deploy("--config", str(cfg), check=False)
    assert p.returncode == 2 and "deploy.conf:1: give `name = value`" in p.stderr


# ---- image push: a real OCI registry (Debian's docker-registry) ----------------------------

REG_USER = "ccr-pusher"
REG_PASSWORD = "registry-test-password-7c1e"


def ensure_docker_registry():
    if shutil.which("docker-registry"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("needs Debian's docker-registry; as root the test installs it, otherwise run: "
                    "apt-get install docker-registry")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker-registry"]
    if subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=900)
        subprocess.run(cmd, env=env, capture_output=True, timeout=900)
    if not shutil.which("docker-registry"):
        pytest.skip("apt-get install docker-registry failed")


class TokenServer:
    """The registry's token service (distribution's "token" auth): HTTPS, checks basic credentials,
    answers a JWT (ES256, x5c = its certificate, which the registry trusts) granting the asked
    repository scope.  .requests: (user, service, scope) of each token request."""

    def __init__(self, tmp, cert, key, service):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ccr test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.bundle = tmp / "token-issuer.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.service, self.requests = service, []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                auth = self.headers.get("Authorization", "")
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":") if auth.startswith("Basic ") \
                    else ("", "", "")
                outer.requests.append((user, q.get("service"), q.get("scope")))
                if (user, pw) != (REG_USER, REG_PASSWORD):
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"token": outer.token(q.get("scope", ""))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = testenv.serve_http(H, tls=(cert, key))
        self.url = self.server.url("/token")

    def token(self, scope):
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64u(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        access = []
        if scope.startswith("repository:"):
            name, _, actions = scope[len("repository:"):].rpartition(":")
            access = [{"type": "repository", "name": name, "actions": actions.split(",")}]
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": "ccr-test-issuer", "sub": REG_USER, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
        return signing + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def close(self):
        self.server.stop()


class Registry:
    """docker-registry on 127.0.0.1 with TLS (test CA) and htpasswd basic auth, or token auth
    through a TokenServer."""

    def __init__(self, tmp, auth="basic"):
        tmp.mkdir(parents=True, exist_ok=True)
        self.ca, cert, key = make_ca(tmp / "tls")
        self.port = testenv.free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.tokens = None
        if auth == "basic":
            with warnings.catch_warnings():   # crypt is deprecated, but it makes bcrypt without tools
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt
                line = crypt.crypt(REG_PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))
            (tmp / "htpasswd").write_text(f"{REG_USER}:{line}\n")
            auth_yml = f"  htpasswd:\n    realm: ccr-test\n    path: {tmp / 'htpasswd'}\n"
        else:
            self.tokens = TokenServer(tmp, cert, key, "ccr-test-registry")
            auth_yml = (f"  token:\n    realm: {self.tokens.url}\n    service: ccr-test-registry\n"
                        f"    issuer: ccr-test-issuer\n    rootcertbundle: {self.tokens.bundle}\n")
        (tmp / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {tmp / 'data'}\nhttp:\n  addr: {self.host}\n  tls:\n"
            f"    certificate: {cert}\n    key: {key}\nauth:\n" + auth_yml)
        self.log_path = tmp / "registry.log"
        self.log = open(self.log_path, "wb")
        self.ctx = ssl.create_default_context(cafile=str(self.ca))
        try:
            self.server = testenv.start_server(["docker-registry", "serve", tmp / "config.yml"], self._answers,
                                               port=self.port, timeout=30, grace=10, stdout=self.log,
                                               stderr=subprocess.STDOUT)
        except testenv.ServerError as e:
            raise AssertionError(f"{e}; the registry's log: {self.log_path.read_text()}") from None
        self.proc = self.server.proc

    def _answers(self, _):
        try:
            return self.get("/v2/")[0] in (200, 401)
        except OSError:
            return False

    def get(self, path, accept=None, auth=True):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        h = {}
        if auth and self.tokens:
            repo = path.split("/")[2:-2]
            h["Authorization"] = "Bearer " + self.tokens.token(f"repository:{'/'.join(repo)}:pull")
        elif auth:
            h["Authorization"] = "Basic " + base64.b64encode(f"{REG_USER}:{REG_PASSWORD}".encode()).decode()
        if accept:
            h["Accept"] = accept
        c.request("GET", path, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def close(self):
        self.server.stop()
        self.log.close()
        if self.tokens:
            self.tokens.close()


@pytest.fixture
def registry(tmp_path):
    ensure_docker_registry()
    made = []

    def start(auth="basic"):
        r = Registry(tmp_path / f"registry-{len(made)}", auth)
        made.append(r)
        return r
    yield start
    for r in made:
        r.close()


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def make_layout(d, files, seed):
    """A small OCI image layout: one gzip'd tar layer per {name: bytes} in files."""
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data):
        dg = sha256(data)
        (blobs / dg[7:]).write_bytes(data)
        return dg

    layers, diff_ids = [], []
    for i, (name, data) in enumerate(sorted(files.items())):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o755
            t.addfile(info, io.BytesIO(data))
        tar = raw.getvalue()
        gz = gzip.compress(tar, mtime=0)
        diff_ids.append(sha256(tar))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz),
                       "size": len(gz)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/ccr"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"ccr test {seed}"}]}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(config), "size": len(config)},
                           "layers": layers}).encode()
    mdg = put(manifest)
    (d / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (d / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdg, "size": len(manifest)}]}))
    return mdg, [json.loads(manifest)["config"]["digest"]] + [x["digest"] for x in layers]


def test_images_are_pushed_over_the_oci_protocol_and_pulled_back_identical(deployment, registry, tmp_path):
    registry = registry("basic")
    d = deployment()
    rnd = random.Random(7)
    job_dig, job_blobs = make_layout(tmp_path / "job-oci", {
        "usr/local/bin/ccr": bytes(rnd.getrandbits(8) for _ in range(200_000)),   # chunked (> 64 KiB)
        "etc/ccr-job": b"job image\n"}, "job")
    srv_dig, srv_blobs = make_layout(tmp_path / "serve-oci", {"ccr": b"serve image\n" * 10}, "serve")
    pw = tmp_path / "registry-password"
    pw.write_text(REG_PASSWORD + "\n")
    d.env.update(SSL_CERT_FILE=str(registry.ca), CCR_PUSH_CHUNK_BYTES="65536")
    push = ("--registry", registry.host, "--registry-user", REG_USER, "--registry-password-file", str(pw),
            "--job-image-dir", str(tmp_path / "job-oci"), "--serve-image-dir", str(tmp_path / "serve-oci"),
            "--tag", "v1")
    p = d.deploy(*push)
    assert REG_PASSWORD not in p.stdout + p.stderr
    assert "1 images pushed" not in p.stdout and "2 images pushed" in p.stdout, p.stdout
    repo = f"{d.fake.project}/cloudrun-claude-code"
    print(f"\npushed: ccr-job {job_dig}, ccr-serve {srv_dig}")
    for name, dig, blobs in (("ccr-job", job_dig, job_blobs), ("ccr-serve", srv_dig, srv_blobs)):
        assert f"pushed {registry.host}/{repo}/{name}:v1 {dig}" in p.stdout
        status, hdrs, man = registry.get(f"/v2/{repo}/{name}/manifests/v1",
                                         accept="application/vnd.oci.image.manifest.v1+json")
        assert status == 200 and sha256(man) == dig and hdrs.get("Docker-Content-Digest") == dig
        pulled = [json.loads(man)["config"]["digest"]] + [x["digest"] for x in json.loads(man)["layers"]]
        assert pulled == blobs
        for b in blobs:
            status, _, data = registry.get(f"/v2/{repo}/{name}/blobs/{b}")
            assert status == 200 and sha256(data) == b
        print(f"pulled back: {name} manifest {sha256(man)}, blobs {', '.join(x[7:19] for x in pulled)}")
    assert registry.get(f"/v2/{repo}/ccr-job/manifests/v1", auth=False)[0] == 401
    log = registry.log_path.read_text()   # the big layer went up in chunks, the rest whole
    assert re.search(r'http\.request\.method="?PATCH', log) and re.search(r'http\.request\.method="?PUT', log)
    # the job and the service run the pushed images, by digest
    job = d.get(f"/v2/projects/{d.fake.project}/locations/{d.fake.region}/jobs/{JOB}")
    assert job["template"]["template"]["containers"][0]["image"] == f"{registry.host}/{repo}/ccr-job@{job_dig}"
    svc, _ = d.service_env()
    assert svc["template"]["containers"][0]["image"] == f"{registry.host}/{repo}/ccr-serve@{srv_dig}"
    # again: nothing to push, nothing to write
    p = d.deploy(*push)
    assert "0 images pushed" in p.stdout and p.writes == [], p.stdout
    assert "the tag already names this manifest" in p.stdout
    # a damaged layout is refused before anything is sent
    victim = tmp_path / "job-oci" / "blobs" / "sha256" / job_blobs[1][7:]
    victim.write_bytes(victim.read_bytes()[:-1])
    p = d.deploy(*push, check=False)
    assert p.returncode == 1 and "does not match its descriptor" in p.stderr
    # wrong credentials: one clear line
    pw.write_text("wrong")
    (tmp_path / "job-oci").rename(tmp_path / "gone")
    p = d.deploy("--registry", registry.host, "--registry-user", REG_USER, "--registry-password-file", str(pw),
                 "--serve-image-dir", str(tmp_path / "serve-oci"), "--tag", "v2", check=False)
    assert p.returncode == 1 and "refused the basic credentials" in p.stderr, p.stderr


def test_push_with_the_registry_token_service(deployment, registry, tmp_path):
    """Bearer challenge -> token request to the realm with basic credentials and the repository
    scope -> pushes with the token; a new token for the second repository."""
    reg = registry("token")
    d = deployment()
    job_dig, job_blobs = make_layout(tmp_path / "job-oci", {"ccr": b"job with a token\n" * 50}, "tj")
    srv_dig, _ = make_layout(tmp_path / "serve-oci", {"ccr": b"serve with a token\n"}, "ts")
    pw = tmp_path / "pw"
    pw.write_text(REG_PASSWORD)
    d.env.update(SSL_CERT_FILE=str(reg.ca))
    p = d.deploy("--registry", reg.host, "--registry-user", REG_USER, "--registry-password-file", str(pw),
                 "--job-image-dir", str(tmp_path / "job-oci"), "--serve-image-dir", str(tmp_path / "serve-oci"))
    assert "2 images pushed" in p.stdout, p.stdout
    repo = f"{d.fake.project}/cloudrun-claude-code"
    assert [r for r in reg.tokens.requests if r[2] and r[2].endswith("pull,push")] == [
        (REG_USER, "ccr-test-registry", f"repository:{repo}/ccr-job:pull,push"),
        (REG_USER, "ccr-test-registry", f"repository:{repo}/ccr-serve:pull,push")]
    status, hdrs, man = reg.get(f"/v2/{repo}/ccr-job/manifests/latest",
                                accept="application/vnd.oci.image.manifest.v1+json")
    assert status == 200 and sha256(man) == job_dig
    for b in job_blobs:
        status, _, data = reg.get(f"/v2/{repo}/ccr-job/blobs/{b}")
        assert status == 200 and sha256(data) == b
    assert reg.get(f"/v2/{repo}/ccr-serve/manifests/latest",
                   accept="application/vnd.oci.image.manifest.v1+json")[1].get("Docker-Content-Digest") == srv_dig
    pw.write_text("not-the-password")
    p = d.deploy("--registry", reg.host, "--registry-user", REG_USER, "--registry-password-file", str(pw),
                 "--serve-image-dir", str(tmp_path / "serve-oci"), "--tag", "v2", check=False)
    assert p.returncode == 1 and "token request" in p.stderr and "HTTP 401" in p.stderr, p.stderr
