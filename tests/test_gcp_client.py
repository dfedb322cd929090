"""ccr's Google Cloud client layer (src/http, src/gcp, the GCS/KMS/Cloud Run backends) against
the fake Google Cloud of tests/fakes/fake_gcp.py, driven through `ccr gcp`.

Run: /usr/bin/python3 -m pytest -q tests/test_gcp_client.py
"""

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakes.gcp_client import FakeGCP  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fakes'))
import discovery_extract  # noqa: E402  (METHODS: the Google methods ccr calls)

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

BUCKET = 'ccr-test-bucket'
MiB = 1 << 20
SEED_404 = ('Cloud Run Job "{job}" not found in {region}. Deploy it first with '
            'scripts/deploy-job.sh')
SEED_403 = ('Permission denied to run job "{job}". Grant service account roles/run.developer '
            'permission.')


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


# ---- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def job_out():
    d = tempfile.mkdtemp(prefix='ccr-gcp-jobs-')
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope='module')
def fake(job_out):
    env = dict(os.environ, JOB_OUT_DIR=job_out)
    f = FakeGCP(job_command="sh -c 'printf \"%s %s %s\" \"$TASK_ID\" \"$ENCRYPTED_PAYLOAD_PATH\" "
                            "\"$EXTRA\" > \"$JOB_OUT_DIR/$TASK_ID.out\"'", env=env).start()
    yield f
    f.stop()


@pytest.fixture(autouse=True)
def _reset(fake):
    fake.reset()
    yield
    # every request ccr sent, and every answer the fake gave, is as Google's discovery
    # documents describe (a violation fails the test that caused it)
    fake.assert_wire_exact()


@pytest.fixture(scope='module')
def gcloud_dir():
    d = tempfile.mkdtemp(prefix='ccr-gcloud-')
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ccr_env(fake, gcloud_dir, **extra):
    """Every endpoint pointed at the fake; fast retries; no developer gcloud file."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('GOOGLE_', 'GCE_', 'CLOUDSDK_', 'CCR_', 'KMS_'))
           and k not in ('STORAGE_EMULATOR_HOST', 'PROJECT_ID', 'GCS_PROJECT_ID', 'REGION')}
    env.update({
        'GOOGLE_APPLICATION_CREDENTIALS': fake.sa_path,
        'CLOUDSDK_CONFIG': gcloud_dir,
        'STORAGE_EMULATOR_HOST': fake.url,
        'CCR_KMS_ENDPOINT': fake.url,
        'CCR_RUN_ENDPOINT': fake.url,
        'CCR_SECRETMANAGER_ENDPOINT': fake.url,
        'GCE_METADATA_HOST': fake.metadata_host,
        'CCR_RETRY_BASE_MS': '5',
    })
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


@pytest.fixture()
def gcp(ccr_bin, fake, gcloud_dir):
    """gcp(*args, input=b'', check=True, **env) -> CompletedProcess (bytes)."""
    stderrs = []

    def run(*args, input=b'', check=True, timeout=60, **env):
        p = subprocess.run([str(ccr_bin), 'gcp', *map(str, args)], input=input,
                           capture_output=True, timeout=timeout, env=ccr_env(fake, gcloud_dir, **env))
        stderrs.append(p.stderr)
        if check and p.returncode != 0:
            raise AssertionError(f'ccr gcp {" ".join(map(str, args))} -> {p.returncode}: '
                                 f'{p.stderr.decode(errors="replace")}')
        return p
    run.stderrs = stderrs
    yield run
    # No secret ever reaches stderr (tokens, the private key, the refresh token).
    sa = fake.sa_info()
    user = json.load(open(fake.authorized_user_path))
    key_lines = [ln for ln in sa['private_key'].splitlines() if ln and not ln.startswith('-----')]
    for err in stderrs:
        text = err.decode(errors='replace')
        assert 'ya29.' not in text and 'Bearer' not in text and 'assertion' not in text
        assert user['refresh_token'] not in text and user['client_secret'] not in text
        assert not any(ln in text for ln in key_lines)
        assert text.count('\n') <= 1, text


def kms_key(fake):
    return (f'projects/{fake.project}/locations/europe-west3/keyRings/cloudrun-claude-code-keys/'
            'cryptoKeys/async-task-payload-key')


def api(fake, method, path, body=None):
    """A direct call to the fake's Google surface with a token from its metadata route."""
    tok = fake.access_token()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(fake.url + path, data=data, method=method,
                                 headers={'Authorization': 'Bearer ' + tok,
                                          'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def stored(fake, name, bucket=BUCKET):
    """An object's raw bytes from the fake's control API, or None.  (FakeGCP.get_object decodes
    JSON-typed objects, so it is not used for byte comparisons.)"""
    url = (f'{fake.url}/_fake/objects/{urllib.parse.quote(bucket, safe="")}/'
           f'{urllib.parse.quote(name, safe="")}')
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def script_result(out):
    """Parse `ccr gcp script` output: ({line: text}, summary dict)."""
    lines = out.decode().splitlines()
    summary = dict(kv.split('=') for kv in lines[-1].lstrip('# ').split())
    res = {}
    for ln in lines[:-1]:
        n, _, text = ln.partition('\t')
        res[int(n)] = text
    return res, {k: int(v) for k, v in summary.items()}


# ---- Cloud Storage ---------------------------------------------------------------------------

def test_gcs_media_multipart_stat_get_and_names(gcp, fake):
    name = 'sessions/t 1/ä+b?#[x]%.jsonl'
    r = gcp('gcs', 'put', BUCKET, name, '-', '--content-type', 'application/x-ndjson',
            input=b'{"a":1}\n')
    assert re.match(rf'gs://{BUCKET}/.* generation=\d+ size=8 crc32c=\S+', r.stdout.decode())
    assert stored(fake, name) == b'{"a":1}\n'
    # the object name is one percent-encoded path segment / query value
    log = fake.requests(service='storage')
    up = [e for e in log if e['method'] == 'POST'][-1]
    assert up['query'] == {'uploadType': 'media', 'name': name}
    assert up['headers']['content-type'] == 'application/x-ndjson'
    assert gcp('gcs', 'get', BUCKET, name).stdout == b'{"a":1}\n'
    get = fake.requests(service='storage')[-1]
    assert get['raw_path'] == f'/storage/v1/b/{BUCKET}/o/' + urllib.parse.quote(name, safe='~')
    assert '%2F' in get['raw_path'] and get['query'] == {'alt': 'media'}
    st = json.loads(gcp('gcs', 'stat', BUCKET, name).stdout)
    assert st['name'] == name and st['size'] == '8' and st['contentType'] == 'application/x-ndjson'
    # multipart with custom metadata and a content type (the payload.enc shape of the seed)
    r = gcp('gcs', 'put', BUCKET, 'tasks/t1/payload.enc', '--data', 'sealed',
            '--meta', 'taskId=t1', '--meta', 'encrypted=true', '--content-type', 'application/octet-stream')
    up = fake.requests(service='storage')[-1]
    assert up['query']['uploadType'] == 'multipart'
    obj = [o for o in fake.list_objects(BUCKET) if o['name'] == 'tasks/t1/payload.enc'][0]
    assert obj['metadata'] == {'taskId': 't1', 'encrypted': 'true'}
    assert obj['contentType'] == 'application/octet-stream'
    st = json.loads(gcp('gcs', 'stat', BUCKET, 'tasks/t1/payload.enc').stdout)
    assert st['metadata'] == {'taskId': 't1', 'encrypted': 'true'}
    # ranged download: Range: bytes=N-
    assert gcp('gcs', 'get', BUCKET, 'tasks/t1/payload.enc', '--offset', '2').stdout == b'aled'
    assert fake.requests(service='storage')[-1]['headers']['range'] == 'bytes=2-'
    assert gcp('gcs', 'get', BUCKET, 'tasks/t1/payload.enc', '--offset', '6').stdout == b''
    # STORAGE_EMULATOR_HOST without a scheme means http://
    r = gcp('gcs', 'get', BUCKET, 'tasks/t1/payload.enc', STORAGE_EMULATOR_HOST=fake.metadata_host)
    assert r.stdout == b'sealed'


def test_gcs_preconditions_delete_and_compose(gcp, fake):
    r = gcp('gcs', 'put', BUCKET, 'log', '--data', 'one\n', '--if-generation-match', '0')
    gen = int(re.search(r'generation=(\d+)', r.stdout.decode()).group(1))
    # ifGenerationMatch=0 on an existing object: 412, told apart from other failures
    r = gcp('gcs', 'put', BUCKET, 'log', '--data', 'two\n', '--if-generation-match', '0', check=False)
    assert r.returncode == 1 and 'HTTP 412' in r.stderr.decode() and 'gs://ccr-test-bucket/log' in r.stderr.decode()
    assert [q for q in fake.requests(service='storage') if q['method'] == 'POST'][-1]['query']['ifGenerationMatch'] == '0'
    # append with compose guarded by the generation
    gcp('gcs', 'put', BUCKET, 'log.part', '--data', 'two\n', '--if-generation-match', '0')
    r = gcp('gcs', 'compose', BUCKET, 'log', 'log', 'log.part', '--content-type', 'text/plain',
            '--if-generation-match', gen)
    assert stored(fake, 'log') == b'one\ntwo\n'
    st = json.loads(gcp('gcs', 'stat', BUCKET, 'log').stdout)
    assert st['componentCount'] == 2 and st['contentType'] == 'text/plain'
    r = gcp('gcs', 'compose', BUCKET, 'log', 'log', 'log.part', '--if-generation-match', gen, check=False)
    assert r.returncode == 1 and 'HTTP 412' in r.stderr.decode()
    # delete; a missing object is a 404 that callers can tell apart
    gcp('gcs', 'rm', BUCKET, 'log.part')
    assert stored(fake, 'log.part') is None
    r = gcp('gcs', 'rm', BUCKET, 'log.part', check=False)
    assert r.returncode == 1 and 'HTTP 404' in r.stderr.decode() and 'no such object' in r.stderr.decode()
    r = gcp('gcs', 'get', BUCKET, 'nothing-here', check=False)
    assert r.returncode == 1 and 'HTTP 404' in r.stderr.decode()
    r = gcp('gcs', 'rm', BUCKET, 'log', '--if-generation-match', '1', check=False)
    assert 'HTTP 412' in r.stderr.decode()


def test_gcs_create_whose_answer_was_lost_is_not_a_conflict(gcp, fake):
    """ifGenerationMatch=0, the object created, the answer lost: the retry's 412 is the
    client's own object (same bytes), so the create succeeded.  Different bytes stay a 412."""
    fake.faults(service='storage', method='POST', query={'ifGenerationMatch': '0'}, drop='after_body', count=1)
    r = gcp('gcs', 'put', BUCKET, 'created-once', '--data', '{"status":"pending"}', '--if-generation-match', '0')
    assert stored(fake, 'created-once') == b'{"status":"pending"}'
    posts = [q for q in fake.requests(service='storage') if q['method'] == 'POST']
    assert [q['status'] for q in posts[-2:]] == [200, 412] and posts[-2]['dropped'], posts[-2:]
    assert re.search(r'generation=\d+', r.stdout.decode()), r.stdout
    # the same with custom metadata (a multipart upload)
    fake.faults(service='storage', method='POST', query={'ifGenerationMatch': '0'}, drop='after_body', count=1)
    gcp('gcs', 'put', BUCKET, 'created-mp', '--data', 'x', '--meta', 'k=v', '--if-generation-match', '0')
    assert stored(fake, 'created-mp') == b'x'
    # an object somebody else created is a conflict, retried or not
    fake.put_object(BUCKET, 'taken', b'theirs')
    fake.faults(service='storage', method='POST', query={'ifGenerationMatch': '0'}, drop='before_body', count=1)
    r = gcp('gcs', 'put', BUCKET, 'taken', '--data', 'mine', '--if-generation-match', '0', check=False)
    assert r.returncode == 1 and 'HTTP 412' in r.stderr.decode()
    assert stored(fake, 'taken') == b'theirs'


def test_gcs_list_paging_prefix_delimiter_start_offset(gcp, fake):
    names = [f'sessions/t/{i:03d}.jsonl' for i in range(7)] + ['sessions/u/x', 'tasks/t/payload.enc']
    for n in names:
        fake.put_object(BUCKET, n, n.encode())
    fake.clear_requests()
    r = gcp('gcs', 'ls', BUCKET, '--prefix', 'sessions/t/', '--page-size', '2')
    got = [ln.split('\t')[0] for ln in r.stdout.decode().splitlines()]
    assert got == names[:7]
    pages = fake.requests(service='storage')
    assert len(pages) == 4 and all(p['query']['maxResults'] == '2' for p in pages)
    assert 'pageToken' not in pages[0]['query'] and all('pageToken' in p['query'] for p in pages[1:])
    r = gcp('gcs', 'ls', BUCKET, '--prefix', 'sessions/t/', '--start-offset', 'sessions/t/004.jsonl')
    assert [ln.split('\t')[0] for ln in r.stdout.decode().splitlines()] == names[4:7]
    r = gcp('gcs', 'ls', BUCKET, '--delimiter', '/')
    assert r.stdout.decode().splitlines() == ['sessions/', 'tasks/']
    # the storage seam over GCS: list after a key, create-only, delete of a missing key
    r = gcp('store', 'ls', BUCKET, 'sessions/t/', '--after', 'sessions/t/002.jsonl')
    assert [ln.split('\t')[0] for ln in r.stdout.decode().splitlines()] == names[3:7]
    gcp('store', 'put', BUCKET, 'sessions/t/metadata.json', '--data', '{}', '--if-absent',
        '--content-type', 'application/json')
    r = gcp('store', 'put', BUCKET, 'sessions/t/metadata.json', '--data', '{}', '--if-absent', check=False)
    assert r.returncode == 1 and 'HTTP 412' in r.stderr.decode()
    assert gcp('store', 'get', BUCKET, 'sessions/t/000.jsonl', '--offset', '11').stdout == b'000.jsonl'
    gcp('store', 'rm', BUCKET, 'sessions/t/metadata.json')
    gcp('store', 'rm', BUCKET, 'sessions/t/metadata.json')


def test_resumable_20mib_survives_dropped_connection(gcp, fake, tmp_path):
    data = os.urandom(20 * MiB)
    src = tmp_path / 'big.bin'
    src.write_bytes(data)
    # the third chunk PUT loses its connection half-way through the body
    fake.faults([{'service': 'storage', 'method': 'PUT', 'query': {'upload_id': True},
                  'skip': 2, 'count': 1, 'drop': 'mid_body'}])
    fake.clear_requests()
    r = gcp('gcs', 'put', BUCKET, 'big.bin', src, '--resumable', '--chunk-size', 4 * MiB)
    assert 'size=20971520' in r.stdout.decode()
    got = stored(fake, 'big.bin')
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    puts = [e for e in fake.requests(service='storage') if e['method'] == 'PUT']
    ranges = [p['headers'].get('content-range') for p in puts]
    dropped = [i for i, p in enumerate(puts) if p['dropped']]
    assert len(dropped) == 1
    # after the broken connection: a status query, then the rest from what the session holds
    i = dropped[0]
    assert ranges[i + 1] == 'bytes */20971520' and puts[i + 1]['status'] == 308
    start = int(re.match(r'bytes (\d+)-', ranges[i + 2]).group(1))
    assert start > int(re.match(r'bytes (\d+)-', ranges[i]).group(1))   # kept what was stored
    # chunks move strictly forward, every non-final one a multiple of 256 KiB; with the hash
    # above and the session's byte count below, nothing was appended twice or skipped
    last = -1
    for rg in ranges:
        m = re.match(r'bytes (\d+)-(\d+)/', rg or '')
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            assert a > last
            if b + 1 < len(data):
                assert (b - a + 1) % 262144 == 0
            last = a
    assert puts[-1]['status'] == 200 and puts[-1]['headers']['x-goog-hash'].startswith('crc32c=')
    assert [u for u in fake.control('GET', '/_fake/uploads')['uploads']][0]['persisted'] == len(data)
    # a stream of unknown length (stdin) goes the same way
    fake.clear_faults()
    r = gcp('gcs', 'put', BUCKET, 'stream.bin', '-', '--resumable', '--chunk-size', 1 * MiB,
            input=data[:3 * MiB + 5])
    assert stored(fake, 'stream.bin') == data[:3 * MiB + 5]
    ranges = [e['headers'].get('content-range') for e in fake.requests(service='storage')
              if e['method'] == 'PUT']
    assert ranges[-4:] == ['bytes 0-1048575/*', 'bytes 1048576-2097151/*', 'bytes 2097152-3145727/*',
                           'bytes 3145728-3145732/3145733']


def test_resumable_under_503s_and_automatic_above_8mib(gcp, fake, tmp_path):
    data = os.urandom(9 * MiB + 3)
    src = tmp_path / 'nine.bin'
    src.write_bytes(data)
    # the storage seam switches to the resumable protocol above 8 MiB (default 8 MiB chunks)
    gcp('store', 'put', BUCKET, 'sessions/x/big', src)
    assert stored(fake, 'sessions/x/big') == data
    log = fake.requests(service='storage')
    assert log[0]['query']['uploadType'] == 'resumable'
    assert [e['headers'].get('content-range') for e in log[1:]] == [
        'bytes 0-8388607/9437187', 'bytes 8388608-9437186/9437187']
    # a third of all storage calls answered 503: every chunk still lands exactly once
    fake.faults(service='storage', status=503, probability=0.33, seed=3)
    fake.clear_requests()
    r = gcp('gcs', 'put', BUCKET, 'nine.bin', src, '--resumable', '--chunk-size', 1 * MiB)
    assert 'size=9437187' in r.stdout.decode()
    assert hashlib.sha256(stored(fake, 'nine.bin')).digest() == hashlib.sha256(data).digest()
    assert any(e['fault'] for e in fake.requests(service='storage'))


# ---- Cloud KMS and the payload envelope ------------------------------------------------------

def test_kms_encrypt_decrypt_and_crc32c_checks(gcp, fake):
    ct = gcp('kms', 'encrypt', input=b'a DEK, say').stdout
    assert ct and b'a DEK' not in ct
    assert gcp('kms', 'decrypt', input=ct).stdout == b'a DEK, say'
    enc = [e for e in fake.requests(service='kms')][0]
    assert enc['path'] == f'/v1/{kms_key(fake)}:encrypt'
    # the key name follows CCR_KMS_LOCATION > REGION > europe-west3, KMS_KEY_RING, KMS_KEY_NAME
    gcp('kms', 'encrypt', '--data', 'x', CCR_KMS_LOCATION='us-east1', REGION='asia-east1',
        KMS_KEY_RING='ring', KMS_KEY_NAME='key')
    assert fake.requests(service='kms')[-1]['path'] == \
        f'/v1/projects/{fake.project}/locations/us-east1/keyRings/ring/cryptoKeys/key:encrypt'
    # the seed's documented KMS_LOCATION was never read by it, nor by ccr
    gcp('kms', 'encrypt', '--data', 'x', KMS_LOCATION='global', REGION='asia-east1', PROJECT_ID='other-proj')
    assert fake.requests(service='kms')[-1]['path'].startswith(
        '/v1/projects/other-proj/locations/asia-east1/keyRings/cloudrun-claude-code-keys/')
    # an answer whose checksums do not hold is discarded and the call repeated
    for merge in ({'verifiedPlaintextCrc32c': False}, {'ciphertextCrc32c': '1'}):
        fake.faults(service='kms', path_contains=':encrypt', json_merge=merge, count=1)
        assert gcp('kms', 'decrypt', input=gcp('kms', 'encrypt', '--data', 'ok').stdout).stdout == b'ok'
        fake.faults(service='kms', path_contains=':encrypt', json_merge=merge)
        r = gcp('kms', 'encrypt', '--data', 'no', check=False)
        assert r.returncode == 1 and 'Cloud KMS encrypt' in r.stderr.decode()
    fake.faults(service='kms', path_contains=':decrypt', json_merge={'plaintextCrc32c': '7'})
    r = gcp('kms', 'decrypt', input=ct, check=False)
    assert r.returncode == 1 and 'plaintextCrc32c' in r.stderr.decode()
    fake.faults(service='kms', status=403)
    r = gcp('kms', 'encrypt', '--data', 'x', check=False)
    assert r.returncode == 1 and 'HTTP 403' in r.stderr.decode()
    assert f'credentials: GOOGLE_APPLICATION_CREDENTIALS={fake.sa_path}' in r.stderr.decode()
    fake.clear_faults()
    r = gcp('kms', 'decrypt', input=b'not a ciphertext', check=False)
    assert r.returncode == 1 and 'HTTP 400' in r.stderr.decode()


def test_envelope_opens_with_independent_aes_gcm_and_vice_versa(gcp, fake):
    payload = json.dumps({'prompt': 'hello', 'anthropicApiKey': 'sk-ant-secret'}).encode()
    blob = gcp('kms', 'seal', input=payload).stdout
    env = json.loads(blob)
    assert list(env) == ['version', 'encryptedDek', 'iv', 'authTag', 'encryptedData']
    assert env['version'] == 'v2-envelope' and b'sk-ant' not in blob
    dek = base64.b64decode(api(fake, 'POST', f'/v1/{kms_key(fake)}:decrypt',
                               {'ciphertext': env['encryptedDek']})['plaintext'])
    iv, tag = base64.b64decode(env['iv']), base64.b64decode(env['authTag'])
    assert len(dek) == 32 and len(iv) == 12 and len(tag) == 16
    plain = AESGCM(dek).decrypt(iv, base64.b64decode(env['encryptedData']) + tag, None)
    assert plain == payload
    # a blob in the seed's format, built here with python3-cryptography, opens in ccr
    dek, iv = os.urandom(32), os.urandom(12)
    sealed = AESGCM(dek).encrypt(iv, payload, None)
    wrapped = api(fake, 'POST', f'/v1/{kms_key(fake)}:encrypt',
                  {'plaintext': base64.b64encode(dek).decode()})['ciphertext']
    seed_blob = json.dumps({'version': 'v2-envelope', 'encryptedDek': wrapped,
                            'iv': base64.b64encode(iv).decode(),
                            'authTag': base64.b64encode(sealed[-16:]).decode(),
                            'encryptedData': base64.b64encode(sealed[:-16]).decode()},
                           separators=(',', ':')).encode()
    assert gcp('kms', 'open', input=seed_blob).stdout == payload
    # the seed's legacy format: the whole payload encrypted by KMS directly
    legacy = base64.b64decode(api(fake, 'POST', f'/v1/{kms_key(fake)}:encrypt',
                                  {'plaintext': base64.b64encode(payload).decode()})['ciphertext'])
    assert gcp('kms', 'open', input=legacy).stdout == payload
    # a damaged envelope fails closed
    bad = dict(json.loads(seed_blob), authTag=base64.b64encode(b'\0' * 16).decode())
    r = gcp('kms', 'open', input=json.dumps(bad).encode(), check=False)
    assert r.returncode == 1 and b'sk-ant' not in r.stdout


# ---- Secret Manager --------------------------------------------------------------------------

def test_secret_manager_versions_and_crc(gcp, fake):
    fake.set_secret('system-prompt', 'v1 prompt')
    fake.set_secret('system-prompt', b'v2 \x00 prompt')
    assert gcp('secret', 'get', 'system-prompt').stdout == b'v2 \x00 prompt'
    assert gcp('secret', 'get', 'system-prompt', '--version', '1').stdout == b'v1 prompt'
    full = f'projects/{fake.project}/secrets/system-prompt/versions/1'
    assert gcp('secret', 'get', full).stdout == b'v1 prompt'
    assert fake.requests(service='secretmanager')[0]['path'] == \
        f'/v1/projects/{fake.project}/secrets/system-prompt/versions/latest:access'
    r = gcp('secret', 'get', 'missing', check=False)
    assert r.returncode == 1 and 'HTTP 404' in r.stderr.decode()
    fake.faults(service='secretmanager', json_merge={'payload': {'data': base64.b64encode(b'evil').decode(),
                                                                 'dataCrc32c': '12345'}})
    r = gcp('secret', 'get', 'system-prompt', check=False)
    assert r.returncode == 1 and 'dataCrc32c' in r.stderr.decode() and r.stdout == b''


def test_secret_cache_refresh_and_stale_on_error(ccr_bin, fake, gcloud_dir, tmp_path):
    """A long-lived client (one script) sees a new "latest" after the refresh interval, and keeps
    serving the last value while Secret Manager fails."""
    fake.set_secret('prompt', 'v1')
    (tmp_path / 's').write_text('secret get prompt --cache 1\n'      # fetch
                                'sleep 500\n'
                                'secret get prompt --cache 1\n'      # cached: v1, no request
                                'sleep 1000\n'
                                'secret get prompt --cache 1\n'      # refreshed: v2
                                'sleep 1500\n'
                                'secret get prompt --cache 1\n')     # refresh fails: stale v2
    p = subprocess.Popen([str(ccr_bin), 'gcp', 'script', str(tmp_path / 's')], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=ccr_env(fake, gcloud_dir))
    deadline = time.time() + 10
    while not fake.requests(service='secretmanager') and time.time() < deadline:
        time.sleep(0.02)
    fake.set_secret('prompt', 'v2')
    time.sleep(2.2)
    fake.faults(service='secretmanager', status=503)
    out, err = p.communicate(timeout=30)
    res, summary = script_result(out)
    assert summary['failed'] == 0, out
    assert [res[1], res[3], res[5], res[7]] == ['v1', 'v1', 'v2', 'v2']
    st = [e['status'] for e in fake.requests(service='secretmanager')]
    assert st[:2] == [200, 200] and set(st[2:]) == {503}
    assert b'v1' not in err and b'v2' not in err


def test_usage_errors(ccr_bin):
    for args in (['gcs', 'put', BUCKET], ['kms', 'frobnicate'], ['nope'], ['gcs', 'ls', BUCKET, '--bogus'],
                 ['run', 'start', 'job'], []):
        p = subprocess.run([str(ccr_bin), 'gcp', *args], capture_output=True, timeout=30)
        assert p.returncode == 2, args
        assert p.stderr.decode().count('\n') == 1 and p.stderr.startswith(b'ccr gcp: '), p.stderr
    p = subprocess.run([str(ccr_bin), 'gcp', '--help'], capture_output=True, timeout=30)
    assert p.returncode == 0 and b'ccr gcp script FILE' in p.stdout


# ---- Cloud Run jobs ----------------------------------------------------------------------------

def wait_state(gcp, name, want, timeout=15):
    deadline = time.time() + timeout
    while True:
        out = gcp('run', 'status', name).stdout.decode()
        if out.split()[0] in want or time.time() > deadline:
            return out
        time.sleep(0.1)


def test_run_job_status_cancel_and_seed_errors(gcp, fake, job_out):
    payload = f'gs://{BUCKET}/tasks/task-1/payload.enc'
    name = gcp('run', 'start', 'claude-code-async-worker', 'task-1', payload, 'EXTRA=x=y').stdout.decode().strip()
    # the execution, not the long-running operation (seed bug B4)
    assert re.fullmatch(rf'projects/{fake.project}/locations/europe-west3/jobs/claude-code-async-worker/'
                        r'executions/claude-code-async-worker-[a-z0-9]{5}', name)
    assert wait_state(gcp, name, ('SUCCEEDED',)).startswith('SUCCEEDED done=1 tasks=1')
    with open(os.path.join(job_out, 'task-1.out')) as f:
        assert f.read() == f'task-1 {payload} x=y'
    ex = fake.execution(name)
    assert ex['env_overrides'] == [{'name': 'TASK_ID', 'value': 'task-1'},
                                   {'name': 'ENCRYPTED_PAYLOAD_PATH', 'value': payload},
                                   {'name': 'EXTRA', 'value': 'x=y'}]
    # a name stored by the seed (the operation's) still resolves to its execution
    assert gcp('run', 'status', ex['operation']).stdout.decode().startswith('SUCCEEDED')
    # cancel: SIGTERM to the running job, state CANCELLED
    fake.register_job('sleeper', command=['sh', '-c', 'sleep 60'])
    name = gcp('run', 'start', 'sleeper', 'task-2', payload).stdout.decode().strip()
    assert wait_state(gcp, name, ('RUNNING',)).startswith('RUNNING')
    gcp('run', 'cancel', name)
    assert wait_state(gcp, name, ('CANCELLED',)).startswith('CANCELLED')
    r = gcp('run', 'cancel', name, check=False)
    assert r.returncode == 1 and 'HTTP 400' in r.stderr.decode()
    r = gcp('run', 'status', name.rsplit('-', 1)[0] + '-zzzzz', check=False)
    assert r.returncode == 1 and 'HTTP 404' in r.stderr.decode()
    # the seed's error texts for 404 and 403
    fake.config(restrict_jobs=True)
    r = gcp('run', 'start', 'nojob', 't', payload, check=False)
    assert r.returncode == 1
    assert r.stderr.decode().strip() == 'ccr gcp: ' + SEED_404.format(job='nojob', region='europe-west3')
    fake.config(restrict_jobs=False)
    fake.faults(service='run', method='POST', status=403)
    r = gcp('run', 'start', 'worker', 't', payload, check=False)
    assert r.stderr.decode().strip() == 'ccr gcp: ' + SEED_403.format(job='worker')
    fake.faults(service='run', method='POST', status=400, message='bad override')
    r = gcp('run', 'start', 'worker', 't', payload, check=False)
    assert r.stderr.decode().startswith('ccr gcp: Job trigger failed (HTTP 400): {')
    # jobs.run is not idempotent.  After a 503 (which may or may not have started the job) the
    # client looks for an execution carrying its TASK_ID before it runs the job again ...
    fake.faults(service='run', method='POST', status=503, count=1)
    name = gcp('run', 'start', 'worker', 't-503', payload).stdout.decode().strip()
    mine = [e for e in fake.executions() if {'name': 'TASK_ID', 'value': 't-503'} in e['env_overrides']]
    assert [e['name'] for e in mine] == [name]
    calls = [(e['method'], e['status']) for e in fake.requests(service='run')][-3:]
    assert calls == [('POST', 503), ('GET', 200), ('POST', 200)], calls
    # ... and when the job did start but the answer was lost, it takes that execution
    fake.faults(service='run', method='POST', path_contains=':run', drop='after_body', count=1)
    name = gcp('run', 'start', 'worker', 't-lost', payload).stdout.decode().strip()
    mine = [e for e in fake.executions() if {'name': 'TASK_ID', 'value': 't-lost'} in e['env_overrides']]
    assert [e['name'] for e in mine] == [name], 'a lost answer must not start the job twice'
    posts = [e for e in fake.requests(service='run') if e['method'] == 'POST']
    assert posts[-1]['dropped'], posts[-1]
    # a 4xx is final
    fake.faults(service='run', method='POST', status=409, count=1)
    r = gcp('run', 'start', 'worker', 't-409', payload, check=False)
    assert r.returncode == 1 and 'HTTP 409' in r.stderr.decode()
    assert not [e for e in fake.executions() if {'name': 'TASK_ID', 'value': 't-409'} in e['env_overrides']]
    # ... but a 429 (refused before doing anything) is
    fake.faults(service='run', method='POST', status=429, count=2)
    gcp('run', 'start', 'worker', 't', payload)
    runs = [e for e in fake.requests(service='run') if e['method'] == 'POST']
    assert [e['status'] for e in runs[-3:]] == [429, 429, 200]



def executions_for(fake, task_id):
    return [e for e in fake.executions() if {'name': 'TASK_ID', 'value': task_id} in e['env_overrides']]


def start_after_lost_answer(ccr_bin, fake, gcloud_dir, task_id, newer):
    """`ccr gcp run start worker TASK_ID` whose jobs.run answer is lost after the execution
    started; while ccr's first executions.list call waits in the fake, `newer` other
    executions are started, so the task's own execution is pushed back in the newest-first
    list.  Returns the CompletedProcess-like (returncode, stdout, stderr)."""
    fake.faults(rules=[
        {'name': 'run-lost', 'service': 'run', 'method': 'POST', 'path_contains': ':run',
         'drop': 'after_body', 'count': 1},
        {'name': 'slow-list', 'service': 'run', 'method': 'GET', 'path_contains': '/executions',
         'latency_ms': 2500, 'count': 1}])
    fake.access_token()   # warm the token cache before the race below
    proc = subprocess.Popen([str(ccr_bin), 'gcp', 'run', 'start', 'worker', task_id,
                             f'gs://{BUCKET}/tasks/{task_id}/payload.enc'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ccr_env(fake, gcloud_dir))
    deadline = time.time() + 30
    while not any(e['dropped'] for e in fake.requests(service='run') if e['method'] == 'POST'):
        assert time.time() < deadline and proc.poll() is None, 'jobs.run was not sent'
        time.sleep(0.01)
    for i in range(newer):
        api(fake, 'POST', f'/v2/projects/{fake.project}/locations/europe-west3/jobs/worker:run',
            {'overrides': {'containerOverrides': [{'env': [{'name': 'TASK_ID',
                                                            'value': f'{task_id}-other-{i}'}]}]}})
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out.decode(), err.decode()


def test_run_lost_answer_execution_on_second_page_runs_once(ccr_bin, fake, gcloud_dir):
    """jobs.run starts the execution, its answer is lost; the execution is on the second page
    of executions.list (page size 2, two newer executions): ccr follows nextPageToken, takes
    it, and the task runs exactly once."""
    fake.config(max_page_size=2)
    rc, out, err = start_after_lost_answer(ccr_bin, fake, gcloud_dir, 't-page2', 2)
    assert rc == 0, err
    mine = executions_for(fake, 't-page2')
    assert [e['name'] for e in mine] == [out.strip()], 'exactly one execution of the task'
    calls = [(e['method'], 'pageToken' in e['query'], e['dropped'])
             for e in fake.requests(service='run') if e['method'] == 'GET' or e['dropped']]
    assert calls == [('POST', False, True), ('GET', False, False), ('GET', True, False)], calls
    assert len([e for e in fake.requests(service='run') if e['method'] == 'POST']) == 3


def test_run_lost_answer_with_the_list_exhausted_is_not_run_again(ccr_bin, fake, gcloud_dir):
    """When the execution is not within the pages ccr searches (10), jobs.run is not sent again
    (the task may have started) and the error says where to look."""
    fake.config(max_page_size=1)
    rc, out, err = start_after_lost_answer(ccr_bin, fake, gcloud_dir, 't-deep', 10)
    assert rc == 1 and out == ''
    assert err.startswith('ccr gcp: Cloud Run: jobs.run for task t-deep failed without an answer, '
                          'and its execution is not among the newest 10 executions of '
                          f'projects/{fake.project}/locations/europe-west3/jobs/worker (10 pages '
                          'searched, the list goes on); not running the job again'), err
    assert 'TASK_ID=t-deep' in err
    assert len(executions_for(fake, 't-deep')) == 1
    gets = [e for e in fake.requests(service='run') if e['method'] == 'GET']
    assert len(gets) == 10


def test_kms_lost_answers_are_retried(gcp, fake):
    """encrypt and decrypt are safe to repeat: a lost answer costs one retry, nothing else."""
    fake.faults(service='kms', path_contains=':encrypt', drop='after_body', count=1)
    ct = gcp('kms', 'encrypt', '--data', 'dek').stdout
    fake.faults(service='kms', path_contains=':decrypt', drop='after_body', count=1)
    assert gcp('kms', 'decrypt', input=ct).stdout == b'dek'
    log = fake.requests(service='kms')
    assert [(e['path'].rsplit(':', 1)[1], e['dropped']) for e in log] == [
        ('encrypt', True), ('encrypt', False), ('decrypt', True), ('decrypt', False)]


@pytest.mark.parametrize('mode', ['full', 'minimal'])
def test_ccr_reads_answers_with_every_optional_field_present_or_absent(gcp, fake, mode, tmp_path):
    """The fake's answers generated from the response schemas: "full" has every field of the
    schema (realistic, type-correct values under the scenario's own), "minimal" no field
    holding a default value and none of the informational ones.  Every client operation
    still behaves as with the fake's usual answers."""
    fake.config(response_mode=mode)
    # Cloud Storage: media, multipart, resumable uploads; stat, get, ls, compose, rm
    r = gcp('gcs', 'put', BUCKET, 'modes/a', '--data', 'alpha\n', '--if-generation-match', '0')
    assert re.match(rf'gs://{BUCKET}/modes/a generation=\d+ size=6 crc32c=\S+', r.stdout.decode())
    gen = re.search(r'generation=(\d+)', r.stdout.decode()).group(1)
    gcp('gcs', 'put', BUCKET, 'modes/m', '--data', 'beta\n', '--meta', 'taskId=t')
    big = os.urandom(600 * 1024)
    (tmp_path / 'big').write_bytes(big)
    gcp('gcs', 'put', BUCKET, 'modes/r', tmp_path / 'big', '--resumable', '--chunk-size', '262144')
    assert stored(fake, 'modes/r') == big
    st = json.loads(gcp('gcs', 'stat', BUCKET, 'modes/m').stdout)
    assert st['name'] == 'modes/m' and st['size'] == '5' and st['metadata'] == {'taskId': 't'}
    assert gcp('gcs', 'get', BUCKET, 'modes/a').stdout == b'alpha\n'
    assert gcp('gcs', 'get', BUCKET, 'modes/a', '--offset', '2').stdout == b'pha\n'
    r = gcp('gcs', 'ls', BUCKET, '--prefix', 'modes/', '--page-size', '1')
    assert [ln.split('\t')[0] for ln in r.stdout.decode().splitlines()] == \
        ['modes/a', 'modes/m', 'modes/r']
    gcp('gcs', 'compose', BUCKET, 'modes/a', 'modes/a', 'modes/m', '--if-generation-match', gen)
    assert stored(fake, 'modes/a') == b'alpha\nbeta\n'
    gcp('gcs', 'rm', BUCKET, 'modes/m')
    assert stored(fake, 'modes/m') is None
    # the storage seam: create-only, a lost create answer is still the client's own object
    fake.faults(service='storage', method='POST', query={'ifGenerationMatch': '0'},
                drop='after_body', count=1)
    gcp('store', 'put', BUCKET, 'modes/meta.json', '--data', '{}', '--if-absent')
    assert stored(fake, 'modes/meta.json') == b'{}'
    # Cloud KMS and the envelope
    ct = gcp('kms', 'encrypt', '--data', 'dek').stdout
    assert gcp('kms', 'decrypt', input=ct).stdout == b'dek'
    assert gcp('kms', 'open', input=gcp('kms', 'seal', '--data', 'payload').stdout).stdout == b'payload'
    # Secret Manager
    fake.set_secret('modes-secret', 'value')
    assert gcp('secret', 'get', 'modes-secret').stdout == b'value'
    # Cloud Run: start (also after a lost answer: the executions.list is parsed), status, cancel
    payload = f'gs://{BUCKET}/tasks/t/payload.enc'
    name = gcp('run', 'start', 'claude-code-async-worker', 'm-1', payload).stdout.decode().strip()
    assert wait_state(gcp, name, ('SUCCEEDED',)).startswith('SUCCEEDED done=1 tasks=1')
    fake.faults(service='run', method='POST', path_contains=':run', drop='after_body', count=1)
    name = gcp('run', 'start', 'claude-code-async-worker', 'm-lost', payload).stdout.decode().strip()
    assert [e['name'] for e in executions_for(fake, 'm-lost')] == [name]
    assert wait_state(gcp, name, ('SUCCEEDED',)).startswith('SUCCEEDED')
    op = fake.execution(name)['operation']
    assert gcp('run', 'status', op).stdout.decode().startswith('SUCCEEDED')
    fake.register_job('sleeper', command=['sh', '-c', 'sleep 60'])
    name = gcp('run', 'start', 'sleeper', 'm-2', payload).stdout.decode().strip()
    assert wait_state(gcp, name, ('RUNNING',)).startswith('RUNNING')
    gcp('run', 'cancel', name)
    assert wait_state(gcp, name, ('CANCELLED',)).startswith('CANCELLED')
    # every Google method ccr calls was called here, each matched to its discovery method
    google = [e for e in fake.requests() if e['service'] in ('storage', 'kms', 'secretmanager', 'run')]
    assert all(e['google_method'] for e in google)
    assert {e['google_method'] for e in google} == set(discovery_extract.ccr_methods())


# ---- credentials -------------------------------------------------------------------------------

def test_credential_sources(gcp, fake, gcloud_dir, tmp_path):
    # service account key file (the JWT the fake verifies), token cached for the whole process
    assert gcp('token').stdout.startswith(b'ya29.')
    # authorized_user refresh-token flow
    gcp('gcs', 'ls', BUCKET, GOOGLE_APPLICATION_CREDENTIALS=fake.authorized_user_path)
    tok = [e for e in fake.requests(service='oauth') if e['path'] == '/token'][-1]
    assert tok['status'] == 200
    # gcloud's ADC file under CLOUDSDK_CONFIG
    adc = tmp_path / 'gcloud'
    adc.mkdir()
    shutil.copy(fake.authorized_user_path, adc / 'application_default_credentials.json')
    r = gcp('whoami', GOOGLE_APPLICATION_CREDENTIALS=None, CLOUDSDK_CONFIG=str(adc))
    assert 'gcloud ADC file' in r.stdout.decode()
    gcp('secret', 'get', 'x', GOOGLE_APPLICATION_CREDENTIALS=None, CLOUDSDK_CONFIG=str(adc), check=False)
    assert fake.requests(service='oauth')[-1]['status'] == 200
    # the metadata server: token, project, region, identity token
    fake.clear_requests()
    r = gcp('whoami', GOOGLE_APPLICATION_CREDENTIALS=None)
    out = r.stdout.decode()
    assert 'metadata server at http://' + fake.metadata_host in out
    assert f'project: {fake.project}' in out and 'region: europe-west3' in out
    gcp('kms', 'encrypt', '--data', 'x', GOOGLE_APPLICATION_CREDENTIALS=None)
    md = [e for e in fake.requests(service='metadata')]
    assert any(e['path'].endswith('/service-accounts/default/token') for e in md)
    assert all(e['headers'].get('metadata-flavor') == 'Google' for e in md)
    idt = gcp('token', '--id-token', 'https://svc.example', GOOGLE_APPLICATION_CREDENTIALS=None).stdout
    claims = json.loads(base64.urlsafe_b64decode(idt.split(b'.')[1] + b'=='))
    assert claims['aud'] == 'https://svc.example'
    idt = gcp('token', '--id-token', 'https://svc.example').stdout
    assert json.loads(base64.urlsafe_b64decode(idt.split(b'.')[1] + b'=='))['aud'] == 'https://svc.example'


def test_rejected_jwt_names_the_credential_source(gcp, fake, tmp_path):
    info = fake.sa_info()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info['private_key'] = other.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()
    bad = tmp_path / 'wrong-key.json'
    bad.write_text(json.dumps(info))
    r = gcp('gcs', 'ls', BUCKET, GOOGLE_APPLICATION_CREDENTIALS=str(bad), check=False)
    err = r.stderr.decode()
    assert r.returncode == 1
    assert f'GOOGLE_APPLICATION_CREDENTIALS={bad}' in err and info['client_email'] in err
    assert 'invalid_grant' in err and 'Invalid JWT Signature' in err
    key_lines = [ln for ln in info['private_key'].splitlines() if not ln.startswith('-----')]
    assert not any(ln in err for ln in key_lines)
    # unusable files fail before any request, naming the variable
    (tmp_path / 'x.json').write_text('{"type":"external_account"}')
    r = gcp('gcs', 'ls', BUCKET, GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / 'x.json'), check=False)
    assert 'GOOGLE_APPLICATION_CREDENTIALS=' in r.stderr.decode() and 'external_account' in r.stderr.decode()
    r = gcp('gcs', 'ls', BUCKET, GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / 'none.json'), check=False)
    assert 'GOOGLE_APPLICATION_CREDENTIALS=' in r.stderr.decode() and 'No such file' in r.stderr.decode()
    # an unreachable metadata server is named too
    r = gcp('kms', 'encrypt', '--data', 'x', GOOGLE_APPLICATION_CREDENTIALS=None,
            GCE_METADATA_HOST='127.0.0.1:9', CCR_RETRY_BASE_MS='1', check=False)
    assert 'metadata server at http://127.0.0.1:9' in r.stderr.decode()
    # revoked refresh token
    user = json.load(open(fake.authorized_user_path))
    user['refresh_token'] = '1//revoked'
    (tmp_path / 'u.json').write_text(json.dumps(user))
    r = gcp('secret', 'get', 's', GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / 'u.json'), check=False)
    assert 'authorized user' in r.stderr.decode() and 'invalid_grant' in r.stderr.decode()
    assert '1//revoked' not in r.stderr.decode()


def test_token_expiring_mid_run_is_refreshed(gcp, fake, tmp_path):
    fake.set_secret('p', 'prompt')
    ops = [f'gcs put {BUCKET} obj-{i} --data v{i}' if i % 2 == 0 else 'secret get p' for i in range(12)]
    (tmp_path / 's').write_text('\n'.join(ops) + '\n')
    # the token is revoked under the client (the 6th API call answers 401 with it expired)
    fake.faults(service=['storage', 'secretmanager'], expire_token=True, skip=5, count=1)
    r = gcp('script', tmp_path / 's')
    res, summary = script_result(r.stdout)
    assert summary['failed'] == 0 and summary['ops'] == 12
    log = [e for e in fake.requests() if e['service'] in ('oauth', 'storage', 'secretmanager')]
    statuses = [(e['service'], e['status']) for e in log]
    assert statuses.count(('oauth', 200)) == 2          # the first token, and one refresh
    i = statuses.index(('storage', 401)) if ('storage', 401) in statuses else statuses.index(
        ('secretmanager', 401))
    assert statuses[i + 1] == ('oauth', 200) and statuses[i + 2][1] == 200
    # tokens are refreshed 225 s before they expire: a 200 s token is never reused
    fake.config(token_ttl=200)
    fake.clear_requests()
    gcp('script', tmp_path / 's')
    assert len([e for e in fake.requests(service='oauth')]) == 12
    fake.config(token_ttl=300)
    fake.clear_requests()
    gcp('script', tmp_path / 's')
    assert len([e for e in fake.requests(service='oauth')]) == 1


def test_threads_share_one_token_and_refresh_once(gcp, fake, tmp_path):
    """8 threads in one process: one token fetch for all of them; when the token is revoked
    mid-run, every thread that hits the 401 waits for the same single refresh."""
    fake.set_secret('p', 'prompt')
    for i in range(8):
        fake.put_object(BUCKET, f'pre/{i}', b'x')
    ops = [[f'gcs put {BUCKET} t/{i} --data v{i}', f'kms roundtrip r{i}', 'secret get p',
            f'gcs stat {BUCKET} pre/{i % 8}'][i % 4] for i in range(96)]
    (tmp_path / 's').write_text('\n'.join(ops) + '\n')
    fake.faults(service=['storage', 'kms', 'secretmanager'], expire_token=True, skip=40, count=1)
    r = gcp('script', tmp_path / 's', '--threads', 8)
    res, summary = script_result(r.stdout)
    assert summary['failed'] == 0 and summary['ops'] == 96
    assert all(res[i + 1] == f'r{i}' for i in range(96) if i % 4 == 1)
    assert all(stored(fake, f't/{i}') == f'v{i}'.encode() for i in range(0, 96, 4))
    tokens = [e for e in fake.requests(service='oauth') if e['path'] == '/token']
    assert [e['status'] for e in tokens] == [200, 200]
    assert len([e for e in fake.requests() if e['status'] == 401]) >= 1


def test_retry_after_is_honoured(gcp, fake):
    fake.faults(service='storage', status=503, retry_after=1, count=1)
    t0 = time.time()
    gcp('gcs', 'ls', BUCKET, CCR_RETRY_BASE_MS='400')     # 1 s scaled by 400/1000
    assert time.time() - t0 >= 0.4
    st = [e['status'] for e in fake.requests(service='storage')]
    assert st == [503, 200]


def test_200_mixed_operations_with_30_percent_faults(gcp, fake, tmp_path):
    fake.set_secret('prompt', 'be brief')
    ops, expect = [], {}
    state = {}
    for i in range(200):
        k = i % 10
        name = f'mix/obj-{i % 23:02d}'
        if k in (0, 3, 7):
            val = f'value-{i}'
            ops.append(f'gcs put {BUCKET} {name} --data {val} --content-type text/plain')
            state[name] = val
            expect[len(ops)] = re.compile(rf'gs://{BUCKET}/{name} generation=\d+ size={len(val)} ')
        elif k in (1, 4) and state:
            n = sorted(state)[i % len(state)]
            ops.append(f'gcs get {BUCKET} {n}')
            expect[len(ops)] = state[n]
        elif k == 2:
            ops.append(f'kms roundtrip secret-{i}')
            expect[len(ops)] = f'secret-{i}'
        elif k == 5:
            ops.append('secret get prompt')
            expect[len(ops)] = 'be brief'
        elif k == 6 and state:
            ops.append(f'gcs ls {BUCKET} --prefix mix/ --page-size 5')
            expect[len(ops)] = None   # checked after the run against the final listing
        elif k == 8:
            ops.append(f'run start worker task-{i} gs://{BUCKET}/tasks/task-{i}/payload.enc')
            expect[len(ops)] = re.compile(r'projects/.*/jobs/worker/executions/worker-[a-z0-9]{5}')
        else:
            n = sorted(state)[0] if state else 'mix/none'
            ops.append(f'gcs stat {BUCKET} {n}')
            expect[len(ops)] = re.compile(r'\{"bucket":')
    assert len(ops) == 200
    (tmp_path / 'mixed').write_text('\n'.join(ops) + '\n')
    # 30% of all calls answered 503 or 429 (15% each); jobs.run, which must not run twice, gets
    # only 429s (refused before acting), which are safe to retry
    every = ['oauth', 'storage', 'kms', 'secretmanager']
    fake.faults([
        {'name': 'r503', 'service': every, 'status': 503, 'probability': 0.15},
        {'name': 'r429', 'service': every, 'status': 429, 'probability': 0.15 / 0.85},
        {'name': 'run503', 'service': 'run', 'method': 'GET', 'status': 503, 'probability': 0.15},
        {'name': 'run429', 'service': 'run', 'status': 429, 'probability': 0.3},
    ], seed=7)
    fake.clear_requests()
    t0 = time.time()
    r = gcp('script', tmp_path / 'mixed', timeout=120)
    elapsed = time.time() - t0
    res, summary = script_result(r.stdout)
    assert summary['ops'] == 200 and summary['failed'] == 0
    for n, want in expect.items():
        got = res[n]
        if want is None:
            continue
        if isinstance(want, str):
            assert got == want, (n, ops[n - 1], got)
        else:
            assert want.match(got), (n, ops[n - 1], got)
    for name, val in state.items():
        assert stored(fake, name) == val.encode()
    log = fake.requests()
    faulted = [e for e in log if e['fault']]
    calls = [e for e in log if e['service'] != 'control']
    share = len(faulted) / len(calls)
    assert 0.2 < share < 0.4, share
    # every injected fault cost exactly one retry, and nothing else did
    assert summary['retries'] == len(faulted)
    runs = [e for e in log if e['service'] == 'run' and e['method'] == 'POST' and e['status'] == 200]
    assert len(runs) == 20 and len(fake.executions()) == 20      # no job started twice
    print(f'\n200 mixed operations, {len(calls)} HTTP calls, {len(faulted)} answered 503/429 '
          f'({share:.0%}), {summary["retries"]} retries, {elapsed:.1f} s')
