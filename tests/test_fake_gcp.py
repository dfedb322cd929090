"""Tests of the fake Google Cloud server (tests/fakes/fake_gcp.py).

Run: /usr/bin/python3 -m pytest tests/test_fake_gcp.py -q
"""

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse

import pytest
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakes.gcp_client import FakeGCP  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fakes'))
import discovery  # noqa: E402  (the wire validator over Google's discovery documents)
import discovery_extract  # noqa: E402

import google.auth.crypt  # noqa: E402
import google.auth.exceptions  # noqa: E402
import google.auth.jwt  # noqa: E402
import google.auth.transport.requests  # noqa: E402
import google.oauth2.credentials  # noqa: E402
import google.oauth2.service_account  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

MiB = 1 << 20
CP = 'https://www.googleapis.com/auth/cloud-platform'
BUCKET = 'ccr-test-bucket'

# ---- an independent CRC32C (bytewise table), used to check the fake's values --------------
_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _T.append(_c)


def crc32c(data):
    try:
        import crcmod.predefined
        return crcmod.predefined.mkCrcFun('crc-32c')(data)
    except ImportError:
        crc = 0xFFFFFFFF
        for b in data:
            crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF


def crc32c_slow(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def gcs_crc(data):
    return base64.b64encode(crc32c(data).to_bytes(4, 'big')).decode()


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def enc(name):
    return urllib.parse.quote(name, safe='')


# ---- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def job_out():
    d = tempfile.mkdtemp(prefix='fake-gcp-jobs-')
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope='module')
def fake(job_out):
    env = dict(os.environ, JOB_OUT_DIR=job_out)
    f = FakeGCP(job_command="sh -c 'echo \"$TASK_ID\" > \"$JOB_OUT_DIR/$TASK_ID.out\"; "
                            "echo ran-$CLOUD_RUN_EXECUTION-$CLOUD_RUN_TASK_ATTEMPT'",
                env=env).start()
    f.initial_config = f.control('GET', '/_fake/config')
    yield f
    f.stop()


@pytest.fixture(autouse=True)
def _clean_faults(fake):
    fake.violations()
    yield
    fake.clear_faults()
    fake.config(**fake.initial_config)
    fake.assert_wire_exact()


@pytest.fixture(scope='module')
def token(fake):
    creds = google.oauth2.service_account.Credentials.from_service_account_file(
        fake.sa_path, scopes=[CP])
    creds.refresh(google.auth.transport.requests.Request())
    return creds.token


@pytest.fixture()
def sess(fake, token):
    s = requests.Session()
    s.headers['Authorization'] = 'Bearer ' + token
    yield s
    s.close()


def upload(sess, fake, name, data, ctype='application/octet-stream', **params):
    p = {'uploadType': 'media', 'name': name}
    p.update({k: str(v) for k, v in params.items()})
    return sess.post(f'{fake.url}/upload/storage/v1/b/{BUCKET}/o', params=p, data=data,
                     headers={'Content-Type': ctype})


def obj_url(fake, name, bucket=BUCKET):
    return f'{fake.url}/storage/v1/b/{bucket}/o/{enc(name)}'


def make_jwt(signer, claims):
    return google.auth.jwt.encode(signer, claims).decode()


def post_assertion(fake, assertion):
    return requests.post(fake.token_uri, data={
        'grant_type': 'urn:ietf:params:oauth:grant-type:jwt-bearer', 'assertion': assertion})


# ---- OAuth ---------------------------------------------------------------------------------

def test_crc32c_reference_vector():
    assert crc32c_slow(b'123456789') == 0xE3069283
    assert crc32c(b'123456789') == 0xE3069283


def test_service_account_flow_with_google_auth(fake, token):
    info = fake.sa_info()
    assert info['type'] == 'service_account'
    assert info['token_uri'] == f'{fake.url}/token'
    assert info['private_key'].startswith('-----BEGIN PRIVATE KEY-----')
    assert re.fullmatch(r'[0-9a-f]{40}', info['private_key_id'])
    assert token.startswith('ya29.')
    r = requests.get(f'{fake.url}/storage/v1/b/{BUCKET}/o',
                     headers={'Authorization': 'Bearer ' + token})
    assert r.status_code == 200, r.text
    log = fake.requests(service='oauth')
    assert any(e['path'] == '/token' and e['status'] == 200 for e in log)
    # neither the assertion nor the issued token is ever logged
    dump = json.dumps(fake.requests())
    assert token not in dump
    assert 'BEGIN PRIVATE KEY' not in dump


def test_jwt_rejections(fake):
    info = fake.sa_info()
    good = google.auth.crypt.RSASigner.from_service_account_info(info)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    bad = google.auth.crypt.RSASigner.from_string(other_pem, info['private_key_id'])
    now = int(time.time())
    base = {'iss': info['client_email'], 'aud': fake.token_uri, 'scope': CP,
            'iat': now, 'exp': now + 3600}

    ok = post_assertion(fake, make_jwt(good, base))
    assert ok.status_code == 200, ok.text
    assert ok.json()['token_type'] == 'Bearer'
    assert 0 < ok.json()['expires_in'] <= 3600

    cases = {
        'other key': (bad, base, 'invalid_grant', 'Invalid JWT Signature.'),
        'expired': (good, dict(base, iat=now - 7200, exp=now - 3600), 'invalid_grant', 'short-lived'),
        'too long': (good, dict(base, exp=now + 7200), 'invalid_grant', 'short-lived'),
        'future iat': (good, dict(base, iat=now + 900, exp=now + 1800), 'invalid_grant', 'short-lived'),
        'wrong aud': (good, dict(base, aud='https://example.invalid/token'), 'invalid_grant', 'audience'),
        'no scope': (good, {k: v for k, v in base.items() if k != 'scope'}, 'invalid_scope', 'scope'),
        'unknown iss': (good, dict(base, iss='nobody@x.iam.gserviceaccount.com'), 'invalid_grant',
                        'account not found'),
    }
    for label, (signer, claims, err, text) in cases.items():
        r = post_assertion(fake, make_jwt(signer, claims))
        assert r.status_code == 400, (label, r.status_code, r.text)
        body = r.json()
        assert body['error'] == err, (label, body)
        assert text in body['error_description'], (label, body)

    # a tampered payload with the original signature
    jwt = make_jwt(good, base)
    h, p, s = jwt.split('.')
    p2 = base64.urlsafe_b64encode(json.dumps(dict(base, scope=CP + ' x')).encode()).decode()
    r = post_assertion(fake, f'{h}.{p2}.{s}')
    assert r.status_code == 400 and r.json()['error'] == 'invalid_grant'

    # google-auth itself surfaces the rejection
    other_info = dict(info, private_key=other_pem)
    creds = google.oauth2.service_account.Credentials.from_service_account_info(other_info,
                                                                                scopes=[CP])
    with pytest.raises(google.auth.exceptions.RefreshError) as ei:
        creds.refresh(google.auth.transport.requests.Request())
    assert 'invalid_grant' in str(ei.value)

    r = requests.post(fake.token_uri, data={'grant_type': 'password'})
    assert r.status_code == 400 and r.json()['error'] == 'unsupported_grant_type'


def test_authorized_user_refresh(fake):
    with open(fake.authorized_user_path) as f:
        info = json.load(f)
    assert info['type'] == 'authorized_user'
    creds = google.oauth2.credentials.Credentials(
        None, refresh_token=info['refresh_token'], token_uri=info['token_uri'],
        client_id=info['client_id'], client_secret=info['client_secret'])
    creds.refresh(google.auth.transport.requests.Request())
    r = requests.get(f'{fake.url}/storage/v1/b/{BUCKET}/o',
                     headers={'Authorization': 'Bearer ' + creds.token})
    assert r.status_code == 200
    r = requests.post(fake.token_uri, data={'grant_type': 'refresh_token', 'client_id': info['client_id'],
                                            'client_secret': 'wrong', 'refresh_token': info['refresh_token']})
    assert r.status_code == 401 and r.json()['error'] == 'invalid_client'
    r = requests.post(fake.token_uri, data={'grant_type': 'refresh_token', 'client_id': info['client_id'],
                                            'client_secret': info['client_secret'],
                                            'refresh_token': '1//revoked'})
    assert r.status_code == 400 and r.json()['error'] == 'invalid_grant'


def test_bearer_required_expiry_and_forced_expiry(fake, token):
    r = requests.get(f'{fake.url}/storage/v1/b/{BUCKET}/o')
    assert r.status_code == 401
    assert r.json()['error']['errors'][0]['reason'] == 'required'
    r = requests.post(f'{fake.url}/v1/projects/p/locations/global/keyRings/r/cryptoKeys/k:encrypt',
                      json={'plaintext': 'AA=='}, headers={'Authorization': 'Bearer nope'})
    assert r.status_code == 401
    assert r.json()['error']['status'] == 'UNAUTHENTICATED'
    assert r.json()['error']['code'] == 401
    assert 'invalid_token' in r.headers['WWW-Authenticate']

    fake.config(token_ttl=1)
    short = fake.access_token()
    hdr = {'Authorization': 'Bearer ' + short}
    assert requests.get(f'{fake.url}/storage/v1/b/{BUCKET}/o', headers=hdr).status_code == 200
    time.sleep(1.2)
    r = requests.get(f'{fake.url}/storage/v1/b/{BUCKET}/o', headers=hdr)
    assert r.status_code == 401 and r.json()['error']['errors'][0]['reason'] == 'authError'
    r = requests.get(f'{fake.url}/v2/projects/p/locations/l/jobs/j/executions/j-aaaaa', headers=hdr)
    assert r.status_code == 401 and r.json()['error']['details'][0]['reason'] == 'ACCESS_TOKEN_EXPIRED'

    fake.config(token_ttl=3599)
    t2 = fake.access_token()
    assert requests.get(f'{fake.url}/storage/v1/b/{BUCKET}/o',
                        headers={'Authorization': 'Bearer ' + t2}).status_code == 200
    assert fake.expire_tokens(t2) == 1
    assert requests.get(f'{fake.url}/storage/v1/b/{BUCKET}/o',
                        headers={'Authorization': 'Bearer ' + t2}).status_code == 401
    # the module token is untouched by the targeted expiry
    assert requests.get(f'{fake.url}/storage/v1/b/{BUCKET}/o',
                        headers={'Authorization': 'Bearer ' + token}).status_code == 200
    log = [e for e in fake.requests(service='storage') if e['status'] == 401]
    assert log and all('authorization' not in e['headers'] for e in log)
    assert any(e['auth'] is False for e in log) and any(e['auth'] is True for e in log)


def test_metadata_server(fake):
    base = f'{fake.url}/computeMetadata/v1'
    mf = {'Metadata-Flavor': 'Google'}
    r = requests.get(f'{base}/project/project-id')
    assert r.status_code == 403 and r.headers['Metadata-Flavor'] == 'Google'
    r = requests.get(f'{base}/project/project-id', headers=dict(mf, **{'X-Forwarded-For': '1.2.3.4'}))
    assert r.status_code == 403
    r = requests.get(f'{base}/project/project-id', headers=mf)
    assert r.status_code == 200 and r.text == fake.project
    assert r.headers['Metadata-Flavor'] == 'Google'
    assert requests.get(f'{base}/project/numeric-project-id', headers=mf).text == fake.project_number
    region = requests.get(f'{base}/instance/region', headers=mf).text
    assert region == f'projects/{fake.project_number}/regions/{fake.region}'
    email = requests.get(f'{base}/instance/service-accounts/default/email', headers=mf).text
    assert email == fake.sa_info()['client_email']
    r = requests.get(f'{base}/instance/service-accounts/default/token', headers=mf)
    assert r.status_code == 200 and r.headers['Content-Type'].startswith('application/json')
    tok = r.json()
    assert tok['token_type'] == 'Bearer' and tok['expires_in'] > 0
    assert requests.get(f'{fake.url}/storage/v1/b/{BUCKET}/o',
                        headers={'Authorization': 'Bearer ' + tok['access_token']}).status_code == 200
    r = requests.get(f'{base}/instance/service-accounts/default/identity',
                     params={'audience': 'https://ccr.example/run'}, headers=mf)
    assert r.status_code == 200
    claims = json.loads(base64.urlsafe_b64decode(r.text.split('.')[1] + '=='))
    assert claims['aud'] == 'https://ccr.example/run' and claims['email'] == email
    certs = requests.get(f'{fake.url}/oauth2/v3/certs').json()
    assert google.auth.jwt.decode(r.text, certs=None, verify=False)['aud'] == claims['aud']
    assert certs['keys'][0]['kty'] == 'RSA'
    assert requests.get(f'{base}/instance/service-accounts/default/identity',
                        headers=mf).status_code == 400
    assert requests.get(f'{base}/nope', headers=mf).status_code == 404
    assert requests.get(f'{fake.url}/', headers=mf).status_code == 200


# ---- Cloud Storage -------------------------------------------------------------------------

def test_gcs_media_multipart_names_and_chunked(fake, sess):
    names = ['plain.txt', 'dir/sub/file.log', 'with space/and+plus', 'pct%41literal', 'ünïcødé/日本.txt']
    gens = {}
    for i, n in enumerate(names):
        data = f'data-{i}-{n}'.encode()
        r = upload(sess, fake, n, data, 'text/plain')
        assert r.status_code == 200, r.text
        j = r.json()
        assert j['name'] == n and j['size'] == str(len(data))
        assert j['md5Hash'] == md5_b64(data) and j['crc32c'] == gcs_crc(data)
        assert j['contentType'] == 'text/plain' and j['metageneration'] == '1'
        assert isinstance(j['generation'], str) and int(j['generation']) > 0
        gens[n] = j['generation']
        r = sess.get(obj_url(fake, n), params={'alt': 'media'})
        assert r.status_code == 200 and r.content == data
        r = sess.get(f'{fake.url}/download/storage/v1/b/{BUCKET}/o/{enc(n)}', params={'alt': 'media'})
        assert r.content == data and r.headers['X-Goog-Generation'] == gens[n]
        assert sess.get(obj_url(fake, n)).json()['generation'] == gens[n]
    # "pct%41literal" must not be double-decoded into "pctAliteral"
    assert sess.get(obj_url(fake, 'pctAliteral')).status_code == 404

    # multipart: metadata + media in one request, bytes exactly as python-storage builds them
    data = bytes(range(256)) * 10
    meta = {'name': 'mp/obj.bin', 'contentType': 'application/x-ccr', 'metadata': {'taskId': 't1', 'encrypted': 'true'}}
    boundary = '===============7330845974216740156=='
    body = (f'--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n'.encode()
            + json.dumps(meta).encode() + f'\r\n--{boundary}\r\ncontent-type: application/x-ccr\r\n\r\n'.encode()
            + data + f'\r\n--{boundary}--'.encode())
    r = sess.post(f'{fake.url}/upload/storage/v1/b/{BUCKET}/o', params={'uploadType': 'multipart'},
                  data=body, headers={'Content-Type': f'multipart/related; boundary="{boundary}"'})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j['metadata'] == {'taskId': 't1', 'encrypted': 'true'}
    assert j['contentType'] == 'application/x-ccr' and j['crc32c'] == gcs_crc(data)
    assert sess.get(obj_url(fake, 'mp/obj.bin'), params={'alt': 'media'}).content == data
    # declared md5Hash that does not match -> 400
    meta_bad = dict(meta, name='mp/bad.bin', md5Hash=md5_b64(b'other'))
    body_bad = body.replace(json.dumps(meta).encode(), json.dumps(meta_bad).encode())
    r = sess.post(f'{fake.url}/upload/storage/v1/b/{BUCKET}/o', params={'uploadType': 'multipart'},
                  data=body_bad, headers={'Content-Type': f'multipart/related; boundary={boundary}'})
    assert r.status_code == 400 and r.json()['error']['errors'][0]['reason'] == 'invalid'

    # Transfer-Encoding: chunked request body (generator => requests sends chunked)
    parts = [b'a' * 1000, b'b' * 70000, b'c']
    r = sess.post(f'{fake.url}/upload/storage/v1/b/{BUCKET}/o',
                  params={'uploadType': 'media', 'name': 'chunked.bin'}, data=iter(parts))
    assert r.status_code == 200, r.text
    assert r.json()['size'] == str(71001)
    last = fake.requests(path_prefix='/upload/')[-1]
    assert last['headers'].get('transfer-encoding') == 'chunked'
    # missing name, missing bucket
    assert sess.post(f'{fake.url}/upload/storage/v1/b/{BUCKET}/o', params={'uploadType': 'media'},
                     data=b'x').status_code == 400
    r = sess.post(f'{fake.url}/upload/storage/v1/b/no-such-bucket/o',
                  params={'uploadType': 'media', 'name': 'x'}, data=b'x')
    assert r.status_code == 404 and r.json()['error']['errors'][0]['reason'] == 'notFound'
    # keep-alive: a Session reuses one connection
    conns = {e['conn'] for e in fake.requests(path_prefix='/download/')}
    assert len(conns) == 1


def test_gcs_resumable_drop_status_query_and_resume(fake, sess):
    total = 20 * MiB
    data = os.urandom(total)
    r = sess.post(f'{fake.url}/upload/storage/v1/b/{BUCKET}/o', params={'uploadType': 'resumable'},
                  json={'name': 'big/blob.bin', 'contentType': 'application/octet-stream',
                        'metadata': {'k': 'v'}},
                  headers={'X-Upload-Content-Type': 'application/octet-stream',
                           'X-Upload-Content-Length': str(total)})
    assert r.status_code == 200, r.text
    loc = r.headers['Location']
    assert 'upload_id=' in loc and loc.startswith(fake.url + '/upload/storage/v1/b/')
    chunk = 8 * MiB
    fake.faults(rules=[{'name': 'cut-upload', 'method': 'PUT', 'path_prefix': '/upload/',
                        'query': {'upload_id': True}, 'skip': 1, 'count': 1, 'drop': 'mid_body',
                        'drop_after_bytes': 3 * MiB + 100}])

    def put(body, crange):
        return sess.put(loc, data=body, headers={'Content-Range': crange})

    r = put(data[:chunk], f'bytes 0-{chunk - 1}/{total}')
    assert r.status_code == 308 and r.headers['Range'] == f'bytes=0-{chunk - 1}'
    with pytest.raises(requests.exceptions.ConnectionError):
        put(data[chunk:2 * chunk], f'bytes {chunk}-{2 * chunk - 1}/{total}')
    # status queries (both documented forms); 3 MiB of the cut chunk were persisted (aligned)
    persisted = chunk + 3 * MiB
    for cr in (f'bytes */{total}', 'bytes */*'):
        r = sess.put(loc, data=b'', headers={'Content-Range': cr})
        assert r.status_code == 308, r.text
        assert r.headers['Range'] == f'bytes=0-{persisted - 1}'
    # re-sending bytes the server already has must not double-append
    r = put(data[:chunk], f'bytes 0-{chunk - 1}/{total}')
    assert r.status_code == 308 and r.headers['Range'] == f'bytes=0-{persisted - 1}'
    # a non-final chunk that is not a multiple of 256 KiB is refused
    r = put(data[persisted:persisted + 1000], f'bytes {persisted}-{persisted + 999}/{total}')
    assert r.status_code == 400
    # a gap is refused
    r = put(data[persisted + chunk:persisted + 2 * chunk],
            f'bytes {persisted + chunk}-{persisted + 2 * chunk - 1}/{total}')
    assert r.status_code == 400
    # resume from the client's last confirmed offset (8 MiB): the chunk overlaps the 3 MiB the
    # server already kept, and only the new tail may be appended
    r = put(data[chunk:2 * chunk], f'bytes {chunk}-{2 * chunk - 1}/{total}')
    assert r.status_code == 308 and r.headers['Range'] == f'bytes=0-{2 * chunk - 1}'
    off = 2 * chunk
    while off < total:
        end = min(off + chunk, total)
        r = put(data[off:end], f'bytes {off}-{end - 1}/{total}')
        if end < total:
            assert r.status_code == 308 and r.headers['Range'] == f'bytes=0-{end - 1}'
        off = end
    assert r.status_code == 200, r.text
    j = r.json()
    assert j['size'] == str(total) and j['metadata'] == {'k': 'v'}
    assert j['md5Hash'] == md5_b64(data)
    assert j['crc32c'] == gcs_crc(data)
    got = sess.get(obj_url(fake, 'big/blob.bin'), params={'alt': 'media'})
    assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    # a status query after completion returns the object
    r = sess.put(loc, data=b'', headers={'Content-Range': 'bytes */*'})
    assert r.status_code == 200 and r.json()['generation'] == j['generation']
    log = [e for e in fake.requests(path_prefix='/upload/') if e['method'] == 'PUT']
    cut = [e for e in log if e['fault'] == 'cut-upload']
    assert len(cut) == 1 and cut[0]['dropped'] and cut[0]['status'] is None
    assert cut[0]['req_bytes'] == 3 * MiB + 100
    assert cut[0]['headers']['content-range'] == f'bytes {chunk}-{2 * chunk - 1}/{total}'


def test_gcs_resumable_unknown_size_preconditions_and_cancel(fake, sess):
    up = f'{fake.url}/upload/storage/v1/b/{BUCKET}/o'
    RES = 256 * 1024 * 2 + 77
    data = os.urandom(RES)
    # streaming (total unknown until the end), created only if absent
    r = sess.post(up, params={'uploadType': 'resumable', 'name': 'stream/a.bin', 'ifGenerationMatch': '0'})
    loc = r.headers['Location']
    r = sess.put(loc, data=b'', headers={'Content-Range': 'bytes */*'})
    assert r.status_code == 308 and 'Range' not in r.headers
    r = sess.put(loc, data=data[:524288], headers={'Content-Range': 'bytes 0-524287/*'})
    assert r.status_code == 308 and r.headers['Range'] == 'bytes=0-524287'
    r = sess.put(loc, data=data[524288:], headers={'Content-Range': f'bytes 524288-{RES - 1}/{RES}'})
    assert r.status_code == 200 and r.json()['size'] == str(RES)
    # same name, ifGenerationMatch=0 again: evaluated at finalize -> 412
    r = sess.post(up, params={'uploadType': 'resumable', 'name': 'stream/a.bin', 'ifGenerationMatch': '0'})
    loc = r.headers['Location']
    r = sess.put(loc, data=b'xyz', headers={'Content-Range': 'bytes 0-2/3'})
    assert r.status_code == 412 and r.json()['error']['errors'][0]['reason'] == 'conditionNotMet'
    # finalizing an unknown-length stream with an empty "bytes */TOTAL"
    r = sess.post(up, params={'uploadType': 'resumable', 'name': 'stream/b.bin'})
    loc = r.headers['Location']
    assert sess.put(loc, data=data[:262144], headers={'Content-Range': 'bytes 0-262143/*'}).status_code == 308
    r = sess.put(loc, data=b'', headers={'Content-Range': 'bytes */262144'})
    assert r.status_code == 200 and r.json()['crc32c'] == gcs_crc(data[:262144])
    # cancel
    r = sess.post(up, params={'uploadType': 'resumable', 'name': 'stream/c.bin'})
    loc = r.headers['Location']
    assert sess.delete(loc).status_code == 499
    assert sess.put(loc, data=b'', headers={'Content-Range': 'bytes */*'}).status_code == 404
    # x-goog-hash mismatch on the final chunk
    r = sess.post(up, params={'uploadType': 'resumable', 'name': 'stream/d.bin'})
    loc = r.headers['Location']
    r = sess.put(loc, data=b'hello', headers={'Content-Range': 'bytes 0-4/5',
                                              'x-goog-hash': 'crc32c=' + gcs_crc(b'HELLO')})
    assert r.status_code == 400


def test_gcs_preconditions(fake, sess):
    n = 'pre/obj'
    r = upload(sess, fake, n, b'v1', ifGenerationMatch=0)
    assert r.status_code == 200
    g1 = r.json()['generation']
    r = upload(sess, fake, n, b'v1-again', ifGenerationMatch=0)
    assert r.status_code == 412
    err = r.json()['error']
    assert err['code'] == 412 and err['errors'][0]['reason'] == 'conditionNotMet'
    r = upload(sess, fake, n, b'v2', ifGenerationMatch=g1)
    assert r.status_code == 200
    g2 = r.json()['generation']
    assert int(g2) > int(g1)
    assert upload(sess, fake, n, b'v3', ifGenerationMatch=g1).status_code == 412
    assert upload(sess, fake, 'pre/absent', b'x', ifGenerationNotMatch=5).status_code == 412
    assert sess.get(obj_url(fake, n), params={'ifGenerationMatch': g1}).status_code == 412
    assert sess.get(obj_url(fake, n), params={'ifGenerationMatch': g2}).status_code == 200
    assert sess.get(obj_url(fake, n), params={'ifGenerationNotMatch': g2}).status_code == 304
    assert sess.get(obj_url(fake, n), params={'alt': 'media', 'ifGenerationMatch': g1}).status_code == 412
    # metageneration via patch
    r = sess.patch(obj_url(fake, n), params={'ifMetagenerationMatch': '1'}, json={'metadata': {'a': 'b'}})
    assert r.status_code == 200 and r.json()['metageneration'] == '2' and r.json()['metadata'] == {'a': 'b'}
    r = sess.patch(obj_url(fake, n), params={'ifMetagenerationMatch': '1'}, json={'metadata': {'a': 'c'}})
    assert r.status_code == 412
    assert sess.get(obj_url(fake, n), params={'generation': g1}).status_code == 404
    assert sess.delete(obj_url(fake, n), params={'ifGenerationMatch': g1}).status_code == 412
    r = sess.delete(obj_url(fake, n), params={'ifGenerationMatch': g2})
    assert r.status_code == 204 and r.content == b''
    assert sess.get(obj_url(fake, n)).status_code == 404
    assert sess.get(obj_url(fake, n), params={'ifGenerationMatch': 'abc'}).status_code in (400, 404)
    # the wire check caught it (int64 query parameter) and recorded it
    assert [v['violation'] for v in fake.violations()] == [
        "storage.objects.get: query ifGenerationMatch: int64 must be a string of digits, got 'abc'"]


def test_gcs_ranged_reads(fake, sess):
    data = bytes((i * 7) % 251 for i in range(10000))
    assert upload(sess, fake, 'range/obj', data).status_code == 200
    url = obj_url(fake, 'range/obj')
    r = sess.get(url, params={'alt': 'media'}, headers={'Range': 'bytes=9000-'})
    assert r.status_code == 206 and r.content == data[9000:]
    assert r.headers['Content-Range'] == 'bytes 9000-9999/10000'
    r = sess.get(url, params={'alt': 'media'}, headers={'Range': 'bytes=10-19'})
    assert r.status_code == 206 and r.content == data[10:20] and r.headers['Content-Length'] == '10'
    r = sess.get(url, params={'alt': 'media'}, headers={'Range': 'bytes=9990-20000'})
    assert r.status_code == 206 and r.content == data[9990:]
    r = sess.get(url, params={'alt': 'media'}, headers={'Range': 'bytes=-5'})
    assert r.status_code == 206 and r.content == data[-5:]
    r = sess.get(url, params={'alt': 'media'}, headers={'Range': 'bytes=10000-'})
    assert r.status_code == 416 and r.headers['Content-Range'] == 'bytes */10000'
    r = sess.head(url, params={'alt': 'media'})
    assert r.status_code == 200 and r.headers['Content-Length'] == '10000' and r.content == b''
    # download interrupted mid-body, then resumed with a Range request
    fake.faults(name='cut-download', method='GET', path_prefix='/storage/v1/b/', count=1,
                drop='mid_response', drop_after_bytes=4000)
    with pytest.raises(requests.exceptions.RequestException):
        sess.get(url, params={'alt': 'media'}).content
    r = sess.get(url, params={'alt': 'media'}, headers={'Range': 'bytes=4000-'})
    assert r.status_code == 206 and r.content == data[4000:]


def test_gcs_list_paging_offsets_delimiter(fake, sess):
    names = [f'ls/a/{i:02d}' for i in range(12)] + [f'ls/b/{i}' for i in range(3)] + \
            ['ls/c', 'ls/d.txt', 'ls/e/deep/x', 'ls/e/y']
    for n in names:
        assert upload(sess, fake, n, n.encode()).status_code == 200
    url = f'{fake.url}/storage/v1/b/{BUCKET}/o'

    def list_all(**params):
        items, prefixes, pages, token = [], [], 0, None
        while True:
            p = dict(params)
            if token:
                p['pageToken'] = token
            r = sess.get(url, params=p)
            assert r.status_code == 200, r.text
            j = r.json()
            assert j['kind'] == 'storage#objects'
            items += [i['name'] for i in j.get('items', [])]
            prefixes += j.get('prefixes', [])
            pages += 1
            token = j.get('nextPageToken')
            if not token:
                return items, prefixes, pages

    items, prefixes, pages = list_all(prefix='ls/', maxResults=4)
    assert items == sorted(names) and prefixes == [] and pages == 5
    items, _, _ = list_all(prefix='ls/', startOffset='ls/a/05', endOffset='ls/b/1')
    assert items == [f'ls/a/{i:02d}' for i in range(5, 12)] + ['ls/b/0']
    items, prefixes, pages = list_all(prefix='ls/', delimiter='/', maxResults=2)
    assert items == ['ls/c', 'ls/d.txt']
    assert prefixes == ['ls/a/', 'ls/b/', 'ls/e/']
    assert pages == 3  # 5 entries (items + prefixes) at 2 per page
    items, prefixes, _ = list_all(prefix='ls/e/', delimiter='/')
    assert items == ['ls/e/y'] and prefixes == ['ls/e/deep/']
    items, _, _ = list_all(prefix='ls/', matchGlob='ls/**/0*')
    assert items == ['ls/a/00', 'ls/a/01', 'ls/a/02', 'ls/a/03', 'ls/a/04', 'ls/a/05',
                     'ls/a/06', 'ls/a/07', 'ls/a/08', 'ls/a/09', 'ls/b/0']
    r = sess.get(url, params={'prefix': 'nothing-here/'})
    assert r.status_code == 200 and 'items' not in r.json()
    assert sess.get(f'{fake.url}/storage/v1/b/nope/o').status_code == 404


def test_gcs_compose_and_delete(fake, sess):
    parts = [b'first\n', b'second\n' * 100, b'third']
    gens = []
    for i, p in enumerate(parts):
        r = upload(sess, fake, f'cmp/part{i}', p)
        gens.append(r.json()['generation'])
    body = {'sourceObjects': [{'name': 'cmp/part0', 'generation': gens[0],
                               'objectPreconditions': {'ifGenerationMatch': gens[0]}},
                              {'name': 'cmp/part1'}, {'name': 'cmp/part2'}],
            'destination': {'contentType': 'text/plain'}}
    url = obj_url(fake, 'cmp/log') + '/compose'
    r = sess.post(url, params={'ifGenerationMatch': '0'}, json=body)
    assert r.status_code == 200, r.text
    j = r.json()
    whole = b''.join(parts)
    assert j['componentCount'] == 3 and 'md5Hash' not in j and j['crc32c'] == gcs_crc(whole)
    assert j['size'] == str(len(whole)) and j['contentType'] == 'text/plain'
    assert sess.get(obj_url(fake, 'cmp/log'), params={'alt': 'media'}).content == whole
    # append pattern: compose [log, piece] -> log with ifGenerationMatch=<log generation>
    upload(sess, fake, 'cmp/piece', b'+more')
    body2 = {'sourceObjects': [{'name': 'cmp/log'}, {'name': 'cmp/piece'}]}
    assert sess.post(url, params={'ifGenerationMatch': gens[0]}, json=body2).status_code == 412
    r = sess.post(url, params={'ifGenerationMatch': j['generation']}, json=body2)
    assert r.status_code == 200 and r.json()['componentCount'] == 4
    assert sess.get(obj_url(fake, 'cmp/log'), params={'alt': 'media'}).content == whole + b'+more'
    # per-source preconditions and missing sources
    bad = {'sourceObjects': [{'name': 'cmp/part0', 'objectPreconditions': {'ifGenerationMatch': '1'}}]}
    assert sess.post(obj_url(fake, 'cmp/x') + '/compose', json=bad).status_code == 412
    missing = {'sourceObjects': [{'name': 'cmp/none'}]}
    assert sess.post(obj_url(fake, 'cmp/x') + '/compose', json=missing).status_code == 404
    many = {'sourceObjects': [{'name': 'cmp/part0'}] * 33}
    assert sess.post(obj_url(fake, 'cmp/x') + '/compose', json=many).status_code == 400
    # delete: 204 then 404
    assert sess.delete(obj_url(fake, 'cmp/piece')).status_code == 204
    r = sess.delete(obj_url(fake, 'cmp/piece'))
    assert r.status_code == 404 and r.json()['error']['errors'][0]['reason'] == 'notFound'


# ---- KMS and Secret Manager ----------------------------------------------------------------

def test_kms_round_trip_and_crc32c(fake, sess):
    key = f'projects/{fake.project}/locations/europe-west3/keyRings/ring/cryptoKeys/async-task-payload-key'
    url = f'{fake.url}/v1/{key}'
    dek = os.urandom(32)
    aad = b'tasks/abc/payload.enc'
    req = {'plaintext': base64.b64encode(dek).decode(), 'plaintextCrc32c': str(crc32c(dek)),
           'additionalAuthenticatedData': base64.b64encode(aad).decode(),
           'additionalAuthenticatedDataCrc32c': str(crc32c(aad))}
    r = sess.post(url + ':encrypt', json=req)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j['name'] == key + '/cryptoKeyVersions/1'
    assert j['verifiedPlaintextCrc32c'] is True and j['verifiedAdditionalAuthenticatedDataCrc32c'] is True
    ct = base64.b64decode(j['ciphertext'])
    assert j['ciphertextCrc32c'] == str(crc32c(ct))
    assert dek not in ct and len(ct) >= len(dek) + 16
    # encrypting the same plaintext twice gives different ciphertexts
    assert sess.post(url + ':encrypt', json=req).json()['ciphertext'] != j['ciphertext']
    r = sess.post(url + ':decrypt', json={'ciphertext': j['ciphertext'],
                                          'ciphertextCrc32c': j['ciphertextCrc32c'],
                                          'additionalAuthenticatedData': req['additionalAuthenticatedData']})
    assert r.status_code == 200, r.text
    d = r.json()
    assert base64.b64decode(d['plaintext']) == dek and d['plaintextCrc32c'] == str(crc32c(dek))
    # without checksums the verified flags are false (omitted in proto3 JSON)
    r = sess.post(url + ':encrypt', json={'plaintext': base64.b64encode(b'x').decode()})
    assert r.status_code == 200 and not r.json().get('verifiedPlaintextCrc32c', False)
    # URL-safe unpadded base64 is accepted on input
    ct_urlsafe = base64.urlsafe_b64encode(ct).decode().rstrip('=')
    r = sess.post(url + ':decrypt', json={'ciphertext': ct_urlsafe,
                                          'additionalAuthenticatedData': req['additionalAuthenticatedData']})
    assert r.status_code == 200 and base64.b64decode(r.json()['plaintext']) == dek
    # checksum mismatches -> 400 INVALID_ARGUMENT
    r = sess.post(url + ':encrypt', json=dict(req, plaintextCrc32c=str((crc32c(dek) + 1) % 2 ** 32)))
    assert r.status_code == 400 and r.json()['error']['status'] == 'INVALID_ARGUMENT'
    assert 'plaintext_crc32c' in r.json()['error']['message']
    r = sess.post(url + ':encrypt', json=dict(req, additionalAuthenticatedDataCrc32c='1'))
    assert r.status_code == 400
    r = sess.post(url + ':decrypt', json={'ciphertext': j['ciphertext'], 'ciphertextCrc32c': '12345',
                                          'additionalAuthenticatedData': req['additionalAuthenticatedData']})
    assert r.status_code == 400 and r.json()['error']['status'] == 'INVALID_ARGUMENT'
    # wrong AAD, tampered ciphertext, other key: authenticated decryption fails
    r = sess.post(url + ':decrypt', json={'ciphertext': j['ciphertext']})
    assert r.status_code == 400
    tampered = bytearray(ct)
    tampered[-1] ^= 1
    r = sess.post(url + ':decrypt', json={'ciphertext': base64.b64encode(bytes(tampered)).decode(),
                                          'additionalAuthenticatedData': req['additionalAuthenticatedData']})
    assert r.status_code == 400
    r = sess.post(url.replace('async-task-payload-key', 'other-key') + ':decrypt',
                  json={'ciphertext': j['ciphertext'], 'additionalAuthenticatedData': req['additionalAuthenticatedData']})
    assert r.status_code == 400
    assert sess.post(url + ':encrypt', json={'plaintext': '***'}).status_code == 400
    assert [v['violation'] for v in fake.violations()] == [
        "cloudkms.projects.locations.keyRings.cryptoKeys.encrypt: body.plaintext: not base64: '***'"]
    # rotation: new primary version, old ciphertext still decrypts
    fake.control('POST', '/_fake/kms/keys', {'name': key, 'rotate': True})
    r = sess.post(url + ':encrypt', json={'plaintext': base64.b64encode(b'y').decode()})
    assert r.json()['name'].endswith('/cryptoKeyVersions/2')
    r = sess.post(url + ':decrypt', json={'ciphertext': j['ciphertext'],
                                          'additionalAuthenticatedData': req['additionalAuthenticatedData']})
    assert r.status_code == 200 and not r.json().get('usedPrimary', False)


def test_secret_manager_access(fake, sess):
    assert fake.set_secret('cb-secret', 'first') == 1
    assert fake.set_secret('cb-secret', b'\x00second\xff') == 2
    base = f'{fake.url}/v1/projects/{fake.project}/secrets/cb-secret/versions'
    r = sess.get(base + '/latest:access')
    assert r.status_code == 200, r.text
    j = r.json()
    assert j['name'] == f'projects/{fake.project_number}/secrets/cb-secret/versions/2'
    assert base64.b64decode(j['payload']['data']) == b'\x00second\xff'
    assert j['payload']['dataCrc32c'] == str(crc32c(b'\x00second\xff'))
    assert base64.b64decode(sess.get(base + '/1:access').json()['payload']['data']) == b'first'
    # project number works as well as the id
    r = sess.get(f'{fake.url}/v1/projects/{fake.project_number}/secrets/cb-secret/versions/1:access')
    assert r.status_code == 200
    fake.set_secret_state('cb-secret', 1, 'DISABLED')
    r = sess.get(base + '/1:access')
    assert r.status_code == 400 and r.json()['error']['status'] == 'FAILED_PRECONDITION'
    assert sess.get(base + '/9:access').status_code == 404
    r = sess.get(f'{fake.url}/v1/projects/{fake.project}/secrets/none/versions/latest:access')
    assert r.status_code == 404 and r.json()['error']['status'] == 'NOT_FOUND'
    assert 'second' not in json.dumps(fake.requests())


# ---- Cloud Run -----------------------------------------------------------------------------

def run_job(sess, fake, job, env=None, loc='europe-west3'):
    body = {'overrides': {'containerOverrides': [{'env': [{'name': k, 'value': v}
                                                          for k, v in (env or {}).items()]}]}}
    return sess.post(f'{fake.url}/v2/projects/{fake.project}/locations/{loc}/jobs/{job}:run', json=body)


def wait_execution(sess, fake, name, timeout=20, cond=lambda j: 'completionTime' in j):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = sess.get(f'{fake.url}/v2/{name}')
        assert r.status_code == 200, r.text
        j = r.json()
        if cond(j):
            return j
        time.sleep(0.05)
    raise AssertionError(f'execution {name} did not reach the expected state: {j}')


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_jobs_run_executes_command(fake, sess, job_out):
    task_id = 'task-' + os.urandom(4).hex()
    r = run_job(sess, fake, 'claude-code-async-worker',
                {'TASK_ID': task_id, 'ENCRYPTED_PAYLOAD_PATH': f'gs://{BUCKET}/tasks/{task_id}/payload.enc'})
    assert r.status_code == 200, r.text
    op = r.json()
    assert re.fullmatch(rf'projects/{fake.project}/locations/europe-west3/operations/[0-9a-f-]{{36}}', op['name'])
    md = op['metadata']
    assert md['@type'] == 'type.googleapis.com/google.cloud.run.v2.Execution'
    name = md['name']
    assert re.fullmatch(rf'projects/{fake.project}/locations/europe-west3/jobs/claude-code-async-worker/'
                        r'executions/claude-code-async-worker-[a-z0-9]{5}', name)
    j = wait_execution(sess, fake, name)
    assert j['succeededCount'] == 1 and j['taskCount'] == 1
    assert j.get('failedCount', 0) == 0 and j.get('cancelledCount', 0) == 0 and j.get('runningCount', 0) == 0
    done = [c for c in j['conditions'] if c['type'] == 'Completed'][0]
    assert done['state'] == 'CONDITION_SUCCEEDED'
    with open(os.path.join(job_out, task_id + '.out')) as f:
        assert f.read() == task_id + '\n'
    ex = fake.execution(name)
    att = ex['tasks'][0]['attempts'][0]
    assert att['exit_code'] == 0
    with open(att['stdout']) as f:
        assert f.read() == f'ran-{name.rsplit("/", 1)[-1]}-0\n'
    assert {'name': 'TASK_ID', 'value': task_id} in ex['env_overrides']
    r = sess.get(f'{fake.url}/v2/{op["name"]}')
    assert r.status_code == 200 and r.json()['done'] is True
    assert r.json()['response']['name'] == name
    r = sess.get(f'{fake.url}/v2/projects/{fake.project}/locations/europe-west3/jobs/'
                 'claude-code-async-worker/executions')
    assert name in [e['name'] for e in r.json()['executions']]


def test_jobs_cancel_kills_process_group(fake, sess):
    fake.register_job('sleeper', command=['sh', '-c', 'sleep 300 & sleep 300; wait'])
    r = run_job(sess, fake, 'sleeper')
    name = r.json()['metadata']['name']
    j = wait_execution(sess, fake, name, cond=lambda j: j.get('runningCount') == 1)
    assert 'completionTime' not in j
    pgid = fake.execution(name)['tasks'][0]['attempts'][0]['pgid']
    assert group_alive(pgid)
    t0 = time.time()
    r = sess.post(f'{fake.url}/v2/{name}:cancel', json={})
    assert r.status_code == 200, r.text
    assert r.json()['metadata']['name'] == name
    j = wait_execution(sess, fake, name)
    assert time.time() - t0 < 5
    assert j['cancelledCount'] == 1 and j.get('succeededCount', 0) == 0
    assert [c for c in j['conditions'] if c['type'] == 'Completed'][0]['executionReason'] == 'CANCELLED'
    assert not group_alive(pgid)
    # cancelling a finished execution is refused
    assert sess.post(f'{fake.url}/v2/{name}:cancel', json={}).status_code == 400


def test_jobs_cancel_escalates_to_sigkill(fake, sess):
    fake.config(cancel_grace_seconds=0.7)
    fake.register_job('stubborn', command=['sh', '-c', 'trap "" TERM; sleep 300 & wait; sleep 300'])
    name = run_job(sess, fake, 'stubborn').json()['metadata']['name']
    wait_execution(sess, fake, name, cond=lambda j: j.get('runningCount') == 1)
    pgid = fake.execution(name)['tasks'][0]['attempts'][0]['pgid']
    time.sleep(0.2)  # let the shell install its trap
    t0 = time.time()
    assert sess.post(f'{fake.url}/v2/{name}:cancel', json={}).status_code == 200
    time.sleep(0.3)
    assert group_alive(pgid)  # SIGTERM is ignored
    j = wait_execution(sess, fake, name)
    assert time.time() - t0 >= 0.7
    assert j['cancelledCount'] == 1 and not group_alive(pgid)
    att = fake.execution(name)['tasks'][0]['attempts'][0]
    assert att['signal'] == signal.SIGKILL


def test_jobs_failure_retry_and_errors(fake, sess):
    fake.register_job('failing', command=['sh', '-c', 'echo attempt $CLOUD_RUN_TASK_ATTEMPT >&2; exit 3'],
                      max_retries=1)
    name = run_job(sess, fake, 'failing').json()['metadata']['name']
    j = wait_execution(sess, fake, name)
    assert j['failedCount'] == 1 and j['retriedCount'] == 1 and j.get('succeededCount', 0) == 0
    cond = [c for c in j['conditions'] if c['type'] == 'Completed'][0]
    assert cond['state'] == 'CONDITION_FAILED' and cond['executionReason'] == 'NON_ZERO_EXIT_CODE'
    atts = fake.execution(name)['tasks'][0]['attempts']
    assert [a['exit_code'] for a in atts] == [3, 3]
    with open(atts[1]['stderr']) as f:
        assert f.read() == 'attempt 1\n'
    op = sess.get(f'{fake.url}/v2/{fake.execution(name)["operation"]}').json()
    assert op['done'] is True and 'error' in op

    r = run_job(sess, fake, 'sleeper', {'CLOUD_RUN_TASK_INDEX': '3'})
    assert r.status_code == 400 and r.json()['error']['status'] == 'INVALID_ARGUMENT'
    r = sess.get(f'{fake.url}/v2/projects/{fake.project}/locations/europe-west3/jobs/x/executions/x-zzzzz')
    assert r.status_code == 404 and r.json()['error']['status'] == 'NOT_FOUND'
    fake.config(restrict_jobs=True)
    r = run_job(sess, fake, 'not-deployed')
    assert r.status_code == 404
    assert r.json()['error'] == {'code': 404, 'status': 'NOT_FOUND', 'message': r.json()['error']['message']}
    assert "'not-deployed'" in r.json()['error']['message']
    fake.faults(name='deny-run', path_regex=r':run$', status=403,
                message="Permission 'run.jobs.runWithOverrides' denied on resource")
    r = run_job(sess, fake, 'sleeper')
    assert r.status_code == 403 and r.json()['error']['status'] == 'PERMISSION_DENIED'
    assert 'run.jobs.runWithOverrides' in r.json()['error']['message']


# ---- fault injection -----------------------------------------------------------------------

def with_retries(fn, attempts=15):
    for i in range(attempts):
        r = fn()
        if r.status_code not in (408, 429, 500, 502, 503, 504):
            return r, i
        time.sleep(min(0.005 * 2 ** i, 0.1))
    raise AssertionError('gave up')


def test_faults_503_with_retrying_client(fake, sess):
    fake.clear_requests()
    fake.faults(seed=1234, rules=[{'name': 'flaky', 'service': 'storage', 'status': 503,
                                   'probability': 0.3}])
    retries = 0
    for i in range(30):
        data = f'payload {i}'.encode()
        r, n = with_retries(lambda: upload(sess, fake, f'flaky/{i}', data, ifGenerationMatch=0))
        retries += n
        # injected 503s are answered before the request is processed, so a retried
        # create-if-absent still succeeds
        assert r.status_code == 200, r.text
        r, n = with_retries(lambda: sess.get(obj_url(fake, f'flaky/{i}'), params={'alt': 'media'}))
        retries += n
        assert r.content == data
    log = fake.requests(service='storage')
    faulted = [e for e in log if e['status'] == 503]
    assert retries == len(faulted) > 5
    assert all(e['fault'] == 'flaky' for e in faulted)
    assert all(e['fault'] is None for e in log if e['status'] == 200)
    rule = fake.fault_state()['rules'][0]
    assert rule['fired'] == len(faulted) and rule['seen'] == len(log)
    assert all(e['auth'] is True for e in faulted)
    # the injected error body has the service's format
    fake.faults(service='storage', status=503, count=1)
    r = sess.get(obj_url(fake, 'flaky/0'))
    assert r.status_code == 503 and r.json()['error']['errors'][0]['reason'] == 'backendError'
    assert sess.get(obj_url(fake, 'flaky/0')).status_code == 200

    # same seed, same requests -> same fault pattern
    def pattern():
        fake.faults(seed=99, rules=[{'service': 'storage', 'status': 503, 'probability': 0.3}])
        return [sess.get(obj_url(fake, 'flaky/0')).status_code for _ in range(40)]
    p1, p2 = pattern(), pattern()
    assert p1 == p2 and 503 in p1 and 200 in p1


def test_faults_429_latency_expiry_and_drops(fake, sess):
    fake.faults(service='kms', status=429, retry_after=2, count=1)
    url = f'{fake.url}/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:encrypt'
    r = sess.post(url, json={'plaintext': 'AA=='})
    assert r.status_code == 429 and r.headers['Retry-After'] == '2'
    assert r.json()['error']['status'] == 'RESOURCE_EXHAUSTED'
    assert sess.post(url, json={'plaintext': 'AA=='}).status_code == 200

    fake.faults(path_prefix='/storage/v1/b/', latency_ms=300, count=1)
    t0 = time.time()
    assert sess.get(f'{fake.url}/storage/v1/b/{BUCKET}/o').status_code == 200
    assert time.time() - t0 >= 0.3

    # token expiry forced mid-run: the next call is 401, a refreshed token works
    tok = fake.access_token()
    hdr = {'Authorization': 'Bearer ' + tok}
    fake.faults(name='expire', service='secretmanager', expire_token=True, count=1)
    fake.set_secret('s-exp', 'v')
    surl = f'{fake.url}/v1/projects/{fake.project}/secrets/s-exp/versions/latest:access'
    r = requests.get(surl, headers=hdr)
    assert r.status_code == 401 and r.json()['error']['status'] == 'UNAUTHENTICATED'
    assert requests.get(surl, headers=hdr).status_code == 401
    assert requests.get(surl, headers={'Authorization': 'Bearer ' + fake.access_token()}).status_code == 200

    # drop after the request was processed: the client sees an error, the write happened
    fake.faults(name='lost-response', path_prefix='/upload/', drop='after_body', count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        upload(sess, fake, 'drops/after', b'written')
    assert fake.get_object(BUCKET, 'drops/after') == b'written'
    r = upload(sess, fake, 'drops/after', b'again', ifGenerationMatch=0)
    assert r.status_code == 412  # the retry of a conditional create sees the earlier write
    # drop before the body is read: nothing written
    fake.faults(name='reset', path_prefix='/upload/', drop='before_body', count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        upload(sess, fake, 'drops/before', b'x' * 100000)
    assert fake.get_object(BUCKET, 'drops/before') is None
    log = fake.requests(path_prefix='/upload/')
    assert [e['fault'] for e in log if e['dropped']][-2:] == ['lost-response', 'reset']

    # metadata server faults use its own (text) error format
    fake.faults(service='metadata', status=503, count=1)
    r = requests.get(f'{fake.url}/computeMetadata/v1/project/project-id', headers={'Metadata-Flavor': 'Google'})
    assert r.status_code == 503 and r.headers['Metadata-Flavor'] == 'Google'
    fake.faults(service='oauth', status=503, count=1)
    r = requests.post(fake.token_uri, data={'grant_type': 'refresh_token'})
    assert r.status_code == 503 and r.json()['error'] == 'temporarily_unavailable'


def test_reset_and_control_api(fake, sess):
    assert upload(sess, fake, 'reset/me', b'x').status_code == 200
    fake.faults(status=503)
    fake.reset()
    assert fake.fault_state()['rules'] == []
    assert fake.requests() == []
    assert fake.get_object(BUCKET, 'reset/me') is None
    # tokens survive a reset
    assert sess.get(f'{fake.url}/storage/v1/b/{BUCKET}/o').status_code == 200
    fake.create_bucket('second-bucket')
    fake.put_object('second-bucket', 'a/b c', b'seeded', 'text/plain')
    r = sess.get(obj_url(fake, 'a/b c', 'second-bucket'), params={'alt': 'media'})
    assert r.content == b'seeded' and r.headers['Content-Type'] == 'text/plain'
    assert [o['name'] for o in fake.list_objects('second-bucket')] == ['a/b c']


# ---- the wire check: Google's discovery documents ------------------------------------------

LOC = 'europe-west3'


def test_discovery_extract_is_fresh_and_complete():
    """The committed extract equals a fresh extraction of the full documents (when present),
    names its source, and holds every method the fake serves."""
    if discovery.full_dir() is None:
        pytest.skip('full discovery documents absent (set CCR_GOOGLE_DISCOVERY)')
    assert discovery_extract.main(['--check']) == 0
    api = discovery.Discovery.load(discovery.EXTRACT_DIR)
    table = discovery_extract.readme_table(discovery.full_dir())
    for fname, did in discovery.FILES.items():
        with open(os.path.join(discovery.EXTRACT_DIR, fname), encoding='utf-8') as f:
            head = json.load(f)['x-ccr-extract']
        assert head['source'] == fname and head['commit'] == table[fname]['commit']
        assert re.fullmatch(r'[0-9a-f]{40}', head['commit']) and head['revision'] == api.docs[did]['revision']
        ids = {m['id'] for m in discovery.walk_methods(api.docs[did])}
        assert ids == set(discovery_extract.METHODS[fname])


def test_discovery_routes_and_values():
    api = discovery.Discovery.load()
    c = api.match('GET', f'/v2/projects/p/locations/{LOC}/jobs/j/executions', {'pageSize': '5'})
    assert c.id == 'run.projects.locations.jobs.executions.list'
    assert c.params == {'parent': f'projects/p/locations/{LOC}/jobs/j'}
    assert api.check_request(c, {'pageSize': '5', 'pageToken': 'x'}, None) == []
    assert api.check_request(c, {'pageSize': 'five'}, None) == [
        "run.projects.locations.jobs.executions.list: query pageSize: expected an integer (int32), got 'five'"]
    c = api.match('POST', '/upload/storage/v1/b/bk/o', {'uploadType': 'media'})
    assert (c.id, c.media) == ('storage.objects.insert', 'upload')
    assert api.match('GET', '/storage/v1/b/bk/o/a%2Fb', {'alt': 'media'}).params['object'] == 'a/b'
    with pytest.raises(discovery.NoMethod):
        api.match('DELETE', '/storage/v1/b/bk/o', {})
    with pytest.raises(discovery.NoMethod):
        api.match('GET', '/v3/nothing', {})
    # Execution.template is a TaskTemplate: containers sit right under it
    ex = {'name': 'n', 'template': {'containers': [{'env': [{'name': 'A', 'value': 'b'}]}]}}
    assert api.check_value({'$ref': 'GoogleCloudRunV2Execution'}, ex, 'x') == []
    wrong = {'name': 'n', 'template': {'taskCount': 1, 'template': {'containers': []}}}
    assert api.check_value({'$ref': 'GoogleCloudRunV2Execution'}, wrong, 'x') == [
        "x.template: unknown field 'taskCount' (not in GoogleCloudRunV2TaskTemplate)",
        "x.template: unknown field 'template' (not in GoogleCloudRunV2TaskTemplate)"]
    obj = {'generation': 5, 'size': '10', 'crc32c': 'AAAAAA==', 'timeCreated': 'yesterday'}
    assert api.check_value({'$ref': 'Object'}, obj, 'o') == [
        'o.generation: expected a string (int64), got 5',
        "o.timeCreated: not an RFC 3339 time: 'yesterday'"]
    assert api.check_value({'$ref': 'Object'}, {'metadata': {'k': 1}}, 'o') == [
        "o.metadata['k']: expected a string (string), got 1"]
    # an output-only field is fine in an answer, a violation in a request
    assert api.check_value({'$ref': 'GoogleCloudRunV2Execution'}, {'uid': 'u'}, 'x') == []
    assert api.check_value({'$ref': 'GoogleCloudRunV2Execution'}, {'uid': 'u'}, 'x', request=True) == [
        'x.uid: output only; the service ignores it in a request']
    full = api.generate('GoogleCloudRunV2Execution')
    assert api.check_value({'$ref': 'GoogleCloudRunV2Execution'}, full, 'x') == []
    assert {'uid', 'generation', 'createTime', 'launchStage', 'conditions', 'etag'} <= set(full)


def test_wire_check_rejects_and_records(fake, sess):
    """Each kind of violation is answered 400 (config validate=strict) and recorded."""
    base = f'{fake.url}/v2/projects/{fake.project}/locations/{LOC}/jobs/claude-code-async-worker'
    r = sess.post(base + ':run', json={'overrides': {'containerOverrides': [
        {'env': [{'name': 'TASK_ID', 'value': 't'}], 'environment': []}]}})
    assert r.status_code == 400 and 'environment' in r.json()['error']['message']
    r = sess.post(base + ':run', json={'overrides': {'taskCount': '2'}})
    assert r.status_code == 400
    r = sess.get(f'{fake.url}/storage/v1/b/{BUCKET}/o', params={'prefix': 'x', 'pageSize': '5'})
    assert r.status_code == 400 and r.json()['error']['errors'][0]['reason'] == 'invalid'
    r = sess.post(f'{fake.url}/upload/storage/v1/b/{BUCKET}/o', params={'uploadType': 'simple',
                                                                       'name': 'x'}, data=b'x')
    assert r.status_code == 400
    r = sess.post(f'{fake.url}/storage/v1/b/{BUCKET}/o/x/explode', json={})
    assert r.status_code == 400
    url = f'{fake.url}/v1/projects/{fake.project}/locations/global/keyRings/r/cryptoKeys/k:encrypt'
    r = sess.post(url, json={'plaintext': 'eA==', 'plaintextCrc32c': 12})
    assert r.status_code == 400
    got = [(v['where'], v['violation']) for v in fake.violations()]
    assert got == [
        ('request', "run.projects.locations.jobs.run: body.overrides.containerOverrides[0]: "
                    "unknown field 'environment' (not in GoogleCloudRunV2ContainerOverride)"),
        ('request', "run.projects.locations.jobs.run: body.overrides.taskCount: expected an "
                    "integer (int32), got '2'"),
        ('request', "storage.objects.list: unknown query parameter 'pageSize'"),
        ('request', "storage.objects.insert: an upload needs uploadType media|multipart|resumable, "
                    "not 'simple'"),
        ('request', f"POST /storage/v1/b/{BUCKET}/o/x/explode: no method of artifactregistry:v1, cloudkms:v1, cloudresourcemanager:v3, iam:v1, run:v2, "
                    "secretmanager:v1, storage:v1 has this path"),
        ('request', "cloudkms.projects.locations.keyRings.cryptoKeys.encrypt: "
                    "body.plaintextCrc32c: expected a string (int64), got 12")]
    # record mode: recorded, but answered as the service would
    fake.config(validate='record')
    r = sess.get(f'{fake.url}/storage/v1/b/{BUCKET}/o', params={'pageSize': '5'})
    assert r.status_code == 200
    assert len(fake.violations()) == 1


def exercise_every_method(fake, sess):
    """One successful call of every method the fake serves; returns {method id: answer JSON}."""
    out = {}
    b = f'{fake.url}/storage/v1/b'

    def keep(mid, r, code=200):
        assert r.status_code == code, (mid, r.status_code, r.text)
        out[mid] = r.json() if r.content else None
        return out[mid]

    p = {'project': fake.project}
    keep('storage.buckets.insert', sess.post(b, params=p, json={'name': 'every-method'}))
    keep('storage.buckets.get', sess.get(b + '/every-method'))
    keep('storage.buckets.list', sess.get(b, params=p))
    keep('storage.objects.insert', upload(sess, fake, 'em/a', b'alpha', 'text/plain',
                                          ifGenerationMatch=0))
    keep('storage.objects.get', sess.get(obj_url(fake, 'em/a')))
    assert sess.get(obj_url(fake, 'em/a'), params={'alt': 'media'}).content == b'alpha'
    keep('storage.objects.list', sess.get(b + f'/{BUCKET}/o', params={'prefix': 'em/',
                                                                     'maxResults': '10'}))
    keep('storage.objects.patch', sess.patch(obj_url(fake, 'em/a'), json={'metadata': {'k': 'v'}}))
    keep('storage.objects.update', sess.put(obj_url(fake, 'em/a'), json={'contentType': 'text/x'}))
    keep('storage.objects.compose', sess.post(obj_url(fake, 'em/c') + '/compose', json={
        'sourceObjects': [{'name': 'em/a'}], 'destination': {'contentType': 'text/plain'}}))
    keep('storage.objects.rewrite', sess.post(obj_url(fake, 'em/a') + f'/rewriteTo/b/{BUCKET}/o/em%2Fr',
                                              json={}))
    keep('storage.objects.copy', sess.post(obj_url(fake, 'em/a') + f'/copyTo/b/{BUCKET}/o/em%2Fk',
                                           json={}))
    keep('storage.objects.delete', sess.delete(obj_url(fake, 'em/k')), 204)
    keep('storage.buckets.delete', sess.delete(b + '/every-method'), 204)
    key = f'{fake.url}/v1/projects/{fake.project}/locations/global/keyRings/r/cryptoKeys/every'
    enc_ = keep('cloudkms.projects.locations.keyRings.cryptoKeys.encrypt',
                sess.post(key + ':encrypt', json={'plaintext': 'aGk=',
                                                  'plaintextCrc32c': str(crc32c(b'hi'))}))
    keep('cloudkms.projects.locations.keyRings.cryptoKeys.decrypt',
         sess.post(key + ':decrypt', json={'ciphertext': enc_['ciphertext']}))
    fake.set_secret('every-secret', 'x')
    keep('secretmanager.projects.secrets.versions.access',
         sess.get(f'{fake.url}/v1/projects/{fake.project}/secrets/every-secret/versions/latest:access'))
    keep('secretmanager.projects.locations.secrets.versions.access',
         sess.get(f'{fake.url}/v1/projects/{fake.project}/locations/{LOC}/secrets/every-secret/'
                  'versions/1:access'))
    fake.register_job('every-job', command=['sh', '-c', 'sleep 30'])
    jobs = f'{fake.url}/v2/projects/{fake.project}/locations/{LOC}/jobs'
    op = keep('run.projects.locations.jobs.run', run_job(sess, fake, 'every-job', {'TASK_ID': 'em'}))
    name = op['metadata']['name']
    keep('run.projects.locations.jobs.get', sess.get(jobs + '/every-job'))
    keep('run.projects.locations.jobs.executions.list', sess.get(jobs + '/every-job/executions',
                                                                 params={'pageSize': '5'}))
    keep('run.projects.locations.jobs.executions.get', sess.get(f'{fake.url}/v2/{name}'))
    keep('run.projects.locations.operations.get', sess.get(f'{fake.url}/v2/{op["name"]}'))
    keep('run.projects.locations.operations.list',
         sess.get(f'{fake.url}/v2/projects/{fake.project}/locations/{LOC}/operations'))
    keep('run.projects.locations.jobs.executions.cancel', sess.post(f'{fake.url}/v2/{name}:cancel',
                                                                    json={}))
    keep('run.projects.locations.operations.wait', sess.post(f'{fake.url}/v2/{op["name"]}:wait',
                                                             json={'timeout': '20s'}))
    wait_execution(sess, fake, name)
    keep('run.projects.locations.jobs.executions.delete', sess.delete(f'{fake.url}/v2/{name}'))
    exercise_admin_methods(fake, sess, keep)
    return out


def wait_op(sess, url, op):
    deadline = time.time() + 10
    while not op.get('done'):
        assert time.time() < deadline, op
        time.sleep(0.05)
        op = sess.get(f'{url}/{op["name"]}').json()
    return op


def exercise_admin_methods(fake, sess, keep):
    """The administrative methods `ccr deploy` calls (tests/fakes/fake_gcp_admin.py)."""
    u, pr = fake.url, fake.project
    pl = f'{u}/v1/projects/{pr}/locations/{LOC}'
    op = keep('artifactregistry.projects.locations.repositories.create',
              sess.post(pl + '/repositories', params={'repositoryId': 'every'},
                        json={'format': 'DOCKER'}))
    assert wait_op(sess, u + '/v1', op)['response']['name'].endswith('/repositories/every')
    keep('artifactregistry.projects.locations.operations.get', sess.get(f'{u}/v1/{op["name"]}'))
    keep('artifactregistry.projects.locations.repositories.get', sess.get(pl + '/repositories/every'))
    sa = keep('iam.projects.serviceAccounts.create',
              sess.post(f'{u}/v1/projects/{pr}/serviceAccounts',
                        json={'accountId': 'every-sa', 'serviceAccount': {'displayName': 'e'}}))
    keep('iam.projects.serviceAccounts.get', sess.get(f'{u}/v1/{sa["name"]}'))
    pol = keep('cloudresourcemanager.projects.getIamPolicy',
               sess.post(f'{u}/v3/projects/{pr}:getIamPolicy', json={}))
    pol['bindings'] = [{'role': 'roles/viewer', 'members': [f'serviceAccount:{sa["email"]}']}]
    keep('cloudresourcemanager.projects.setIamPolicy',
         sess.post(f'{u}/v3/projects/{pr}:setIamPolicy', json={'policy': pol}))
    sec = f'{u}/v1/projects/{pr}/secrets'
    keep('secretmanager.projects.secrets.create',
         sess.post(sec, params={'secretId': 'every-made'}, json={'replication': {'automatic': {}}}))
    keep('secretmanager.projects.secrets.get', sess.get(sec + '/every-made'))
    keep('secretmanager.projects.secrets.addVersion',
         sess.post(sec + '/every-made:addVersion', json={'payload': {
             'data': 'aGk=', 'dataCrc32c': str(crc32c(b'hi'))}}))
    pol = keep('secretmanager.projects.secrets.getIamPolicy', sess.get(sec + '/every-made:getIamPolicy'))
    keep('secretmanager.projects.secrets.setIamPolicy', sess.post(sec + '/every-made:setIamPolicy', json={
        'policy': dict(pol, bindings=[{'role': 'roles/secretmanager.secretAccessor',
                                       'members': [f'serviceAccount:{sa["email"]}']}])}))
    keep('cloudkms.projects.locations.keyRings.create',
         sess.post(pl + '/keyRings', params={'keyRingId': 'every-ring'}, json={}))
    keep('cloudkms.projects.locations.keyRings.get', sess.get(pl + '/keyRings/every-ring'))
    ck = pl + '/keyRings/every-ring/cryptoKeys'
    keep('cloudkms.projects.locations.keyRings.cryptoKeys.create',
         sess.post(ck, params={'cryptoKeyId': 'k'}, json={'purpose': 'ENCRYPT_DECRYPT'}))
    keep('cloudkms.projects.locations.keyRings.cryptoKeys.get', sess.get(ck + '/k'))
    pol = keep('cloudkms.projects.locations.keyRings.cryptoKeys.getIamPolicy', sess.get(ck + '/k:getIamPolicy'))
    keep('cloudkms.projects.locations.keyRings.cryptoKeys.setIamPolicy', sess.post(ck + '/k:setIamPolicy', json={
        'policy': dict(pol, bindings=[{'role': 'roles/cloudkms.cryptoKeyEncrypter',
                                       'members': [f'serviceAccount:{sa["email"]}']}])}))
    b = f'{u}/storage/v1/b/{BUCKET}'
    keep('storage.buckets.patch', sess.patch(b, json={'lifecycle': {'rule': [
        {'action': {'type': 'Delete'}, 'condition': {'age': 1, 'matchesPrefix': ['tasks/']}}]}}))
    pol = keep('storage.buckets.getIamPolicy', sess.get(b + '/iam'))
    pol['bindings'].append({'role': 'roles/storage.objectUser', 'members': [f'serviceAccount:{sa["email"]}']})
    keep('storage.buckets.setIamPolicy', sess.put(b + '/iam', json=pol))
    run = f'{u}/v2/projects/{pr}/locations/{LOC}'
    job = {'template': {'template': {'containers': [{'image': 'r/i:1'}], 'maxRetries': 1}}}
    op = keep('run.projects.locations.jobs.create', sess.post(run + '/jobs', params={'jobId': 'made-job'},
                                                              json=job))
    wait_op(sess, u + '/v2', op)
    keep('run.projects.locations.jobs.patch', sess.patch(run + '/jobs/made-job', json=job))
    pol = keep('run.projects.locations.jobs.getIamPolicy', sess.get(run + '/jobs/made-job:getIamPolicy'))
    keep('run.projects.locations.jobs.setIamPolicy', sess.post(run + '/jobs/made-job:setIamPolicy', json={
        'policy': dict(pol, bindings=[{'role': 'roles/run.jobsExecutorWithOverrides',
                                       'members': [f'serviceAccount:{sa["email"]}']}])}))
    svc = {'template': {'containers': [{'image': 'r/s:1'}]}, 'ingress': 'INGRESS_TRAFFIC_ALL'}
    op = keep('run.projects.locations.services.create',
              sess.post(run + '/services', params={'serviceId': 'made-svc'}, json=svc))
    wait_op(sess, u + '/v2', op)
    keep('run.projects.locations.services.get', sess.get(run + '/services/made-svc'))
    keep('run.projects.locations.services.patch', sess.patch(run + '/services/made-svc', json=svc))
    pol = keep('run.projects.locations.services.getIamPolicy',
               sess.get(run + '/services/made-svc:getIamPolicy'))
    keep('run.projects.locations.services.setIamPolicy', sess.post(
        run + '/services/made-svc:setIamPolicy',
        json={'policy': dict(pol, bindings=[{'role': 'roles/run.invoker', 'members': ['allUsers']}])}))


@pytest.mark.parametrize('mode', ['normal', 'full', 'minimal'])
def test_every_method_answers_its_response_schema(fake, sess, mode):
    """Every method the fake serves, called once: each request matches its discovery method and
    each answer validates against the method's response schema (the teardown check fails on
    any violation), in each response mode."""
    fake.reset()
    fake.config(response_mode=mode)
    out = exercise_every_method(fake, sess)
    served = {m for per in discovery_extract.METHODS.values() for m in per}
    assert set(out) == served
    seen = {e['google_method'] for e in fake.requests() if e['service'] != 'oauth'}
    assert served <= seen
    fake.assert_wire_exact()
    ex = out['run.projects.locations.jobs.executions.get']
    obj = out['storage.objects.get']
    if mode == 'normal':   # realistic fields a client does not use
        assert {'uid', 'generation', 'createTime', 'launchStage', 'conditions', 'etag'} <= set(ex)
        assert ex['template']['containers'][0]['env'] == [{'name': 'TASK_ID', 'value': 'em'}]
        assert {'kind', 'selfLink', 'mediaLink', 'etag', 'metageneration', 'id'} <= set(obj)
    elif mode == 'full':
        assert {'satisfiesPzs', 'creator', 'client', 'annotations'} <= set(ex)
        assert {'vpcAccess', 'volumes', 'serviceAccount'} <= set(ex['template'])
        assert {'name': 'TASK_ID', 'value': 'em'} == {k: v for k, v in ex['template']['containers'][0]['env'][0].items() if k in ('name', 'value')}
        assert {'acl', 'owner', 'retention', 'contexts'} & set(obj) and obj['name'] == 'em/a'
    else:
        assert not {'uid', 'etag', 'createTime', 'conditions'} & set(ex)
        assert ex['template']['containers'][0]['env'] == [{'name': 'TASK_ID', 'value': 'em'}]
        assert not {'selfLink', 'kind', 'etag'} & set(obj) and obj['generation']
