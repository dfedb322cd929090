"""Start and drive tests/fakes/fake_gcp.py from Python tests.

    from fakes.gcp_client import FakeGCP, make_fake_gcp_fixture

    with FakeGCP(job_command="sh -c 'echo $TASK_ID'") as fake:
        fake.url, fake.sa_path, fake.requests(), fake.faults(status=503, probability=0.3)

    fake_gcp = make_fake_gcp_fixture(scope="module", job_command="...")  # in a test module

Only the standard library is used here (the fake itself needs python3-cryptography).
"""

import base64
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from fakes import testenv

FAKE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fake_gcp.py')
PYTHON = '/usr/bin/python3'
CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform'


class FakeGCPError(RuntimeError):
    pass


class FakeGCP:
    """One fake server process on an ephemeral loopback port with its own state dir."""

    def __init__(self, job_command=None, args=(), state_dir=None, env=None, python=PYTHON,
                 startup_timeout=30.0, buckets=None):
        self.job_command = job_command
        self.extra_args = list(args)
        self._own_dir = state_dir is None
        self.state_dir = state_dir
        self.env = env
        self.python = python
        self.startup_timeout = startup_timeout
        self.buckets = list(buckets or [])
        self.proc = None
        self.port = None
        self.info = {}

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self):
        if self.state_dir is None:
            self.state_dir = tempfile.mkdtemp(prefix='fake-gcp-')
        os.makedirs(self.state_dir, exist_ok=True)
        cmd = [self.python, FAKE_PATH, '--port', '0', '--state-dir', self.state_dir]
        if self.job_command:
            cmd += ['--job-command', self.job_command]
        for b in self.buckets:
            cmd += ['--bucket', b]
        cmd += self.extra_args
        try:
            self.server = testenv.start_server(cmd, env=self.env, timeout=self.startup_timeout,
                                               stderr=os.path.join(self.state_dir, 'fake.stderr'))
        except testenv.ServerError as e:
            raise FakeGCPError(f'fake_gcp did not start: {e}') from None
        self.proc, self.port = self.server.proc, self.server.port
        self.info = self.control('GET', '/_fake/info')
        return self

    def stop(self, timeout=15.0):
        if self.proc is None:
            return
        self.server.stop(timeout=timeout)
        self.proc = None
        if self._own_dir and self.state_dir and os.environ.get('FAKE_GCP_KEEP_STATE') != '1':
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def stderr_text(self):
        try:
            with open(os.path.join(self.state_dir, 'fake.stderr'), 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    # ---- addresses -------------------------------------------------------------------------
    @property
    def url(self):
        return f'http://127.0.0.1:{self.port}'

    @property
    def token_uri(self):
        return self.url + '/token'

    @property
    def metadata_host(self):
        """Value for GCE_METADATA_HOST (host:port, no scheme)."""
        return f'127.0.0.1:{self.port}'

    @property
    def sa_path(self):
        return os.path.join(self.state_dir, 'sa.json')

    @property
    def authorized_user_path(self):
        return os.path.join(self.state_dir, 'authorized_user.json')

    @property
    def project(self):
        return self.info.get('project')

    @property
    def project_number(self):
        return self.info.get('project_number')

    @property
    def region(self):
        return self.info.get('region')

    @property
    def bucket(self):
        """The first bucket the fake created at start."""
        return (self.info.get('buckets') or [None])[0]

    def sa_info(self):
        with open(self.sa_path) as f:
            return json.load(f)

    def env_vars(self):
        """Standard variables pointing Google clients at the fake (all services share one URL)."""
        return {'GOOGLE_APPLICATION_CREDENTIALS': self.sa_path,
                'GCE_METADATA_HOST': self.metadata_host,
                'GOOGLE_CLOUD_PROJECT': self.project}

    # ---- control API -----------------------------------------------------------------------
    def control(self, method, path, body=None, raw=None, headers=None, timeout=30):
        data = raw
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs['Content-Type'] = 'application/json'
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                payload = r.read()
                ctype = r.headers.get('Content-Type', '')
        except urllib.error.HTTPError as e:
            payload = e.read()
            raise FakeGCPError(f'{method} {path} -> {e.code}: {payload[:500]!r}')
        if 'json' in ctype:
            return json.loads(payload or b'null')
        return payload

    def requests(self, service=None, since=0, path_prefix=None):
        q = {'since': since}
        if service:
            q['service'] = service
        if path_prefix:
            q['path_prefix'] = path_prefix
        return self.control('GET', '/_fake/requests?' + urllib.parse.urlencode(q))['requests']

    def clear_requests(self):
        self.control('DELETE', '/_fake/requests')

    def faults(self, rules=None, seed=None, append=False, **rule):
        """faults([{...}, ...], seed=1) or faults(status=503, probability=0.3, service='storage')."""
        if rules is None:
            rules = [rule] if rule else []
        body = {'rules': rules, 'append': append}
        if seed is not None:
            body['seed'] = seed
        return self.control('POST', '/_fake/faults', body)

    def fault_state(self):
        return self.control('GET', '/_fake/faults')

    def violations(self, clear=True):
        """Requests and answers that broke Google's discovery documents since the last call
        (each {method, path, where: request|response, violation}); clears them by default."""
        return self.control('DELETE' if clear else 'GET', '/_fake/violations')['violations']

    def assert_wire_exact(self):
        """Fails (AssertionError) when any request or answer broke the discovery documents."""
        bad = self.violations()
        assert not bad, 'not wire-exact with the discovery documents:\n' + '\n'.join(
            f"{v['where']}: {v['method']} {v['path']}: {v['violation']}" for v in bad[:20])

    def clear_faults(self):
        return self.control('DELETE', '/_fake/faults')

    def reset(self):
        return self.control('POST', '/_fake/reset', {})

    def config(self, **kw):
        return self.control('POST', '/_fake/config', kw)

    def expire_tokens(self, token=None):
        return self.control('POST', '/_fake/tokens/expire', {'token': token} if token else {})['expired']

    def set_secret(self, secret, data, project=None, state='ENABLED'):
        """Adds a version; returns its number. `secret` is a short id or projects/P/secrets/S."""
        body = {'state': state}
        if secret.startswith('projects/'):
            body['name'] = secret
        else:
            body['secret'] = secret
            body['project'] = project or self.project
        if isinstance(data, bytes):
            body['data_b64'] = base64.b64encode(data).decode()
        else:
            body['data'] = data
        return self.control('POST', '/_fake/secrets', body)['version']

    def set_secret_state(self, secret, version, state, project=None):
        name = secret if secret.startswith('projects/') else \
            f'projects/{project or self.project}/secrets/{secret}'
        return self.control('POST', '/_fake/secrets', {'name': name, 'version': version,
                                                       'state': state})

    def register_job(self, name, command=None, **kw):
        body = dict(kw, name=name)
        if command is not None:
            body['command'] = command
        return self.control('POST', '/_fake/jobs', body)

    def executions(self):
        return self.control('GET', '/_fake/executions')['executions']

    def execution(self, exec_id):
        return self.control('GET', f'/_fake/executions/{exec_id.rsplit("/", 1)[-1]}')

    def create_bucket(self, name):
        return self.control('POST', '/_fake/buckets', {'name': name})

    def put_object(self, bucket, name, data, content_type='application/octet-stream'):
        return self.control('PUT', f'/_fake/objects/{urllib.parse.quote(bucket, safe="")}/'
                            f'{urllib.parse.quote(name, safe="")}', raw=bytes(data),
                            headers={'Content-Type': content_type})

    def get_object(self, bucket, name):
        """Raw bytes, or None when absent. No auth, no faults, not logged."""
        try:
            return self.control('GET', f'/_fake/objects/{urllib.parse.quote(bucket, safe="")}/'
                                f'{urllib.parse.quote(name, safe="")}')
        except FakeGCPError as e:
            if '-> 404' in str(e):
                return None
            raise

    def list_objects(self, bucket):
        return self.control('GET', '/_fake/objects?' + urllib.parse.urlencode({'bucket': bucket}))['objects']

    def add_service_account(self, client_email=None):
        """Generates a new key (new account unless client_email exists); returns key-file dict."""
        body = {'generate': True}
        if client_email:
            body['client_email'] = client_email
        return self.control('POST', '/_fake/service-accounts', body)

    def access_token(self, scope=CLOUD_PLATFORM):
        """A token from the fake's /token endpoint via the metadata server route (no JWT
        library needed). The request goes through fault injection like any other."""
        req = urllib.request.Request(
            self.url + '/computeMetadata/v1/instance/service-accounts/default/token?'
            + urllib.parse.urlencode({'scopes': scope}), headers={'Metadata-Flavor': 'Google'})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())['access_token']


def make_fake_gcp_fixture(scope='module', **kwargs):
    """Returns a pytest fixture yielding a started FakeGCP. Assign it to a module-level name
    (in a test module or a conftest):

        fake_gcp = make_fake_gcp_fixture(scope='session', job_command='...')

    Call fake.reset() between tests that need a clean state."""
    import pytest

    @pytest.fixture(scope=scope)
    def _fixture():
        fake = FakeGCP(**kwargs).start()
        try:
            yield fake
        finally:
            fake.stop()
    return _fixture
