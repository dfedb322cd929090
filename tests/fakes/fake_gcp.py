#!/usr/bin/python3
"""Fake Google Cloud server for ccr's tests (wire protocol: shared/spec/gcp-api.md).

Start:
    /usr/bin/python3 tests/fakes/fake_gcp.py --port 0 --state-dir DIR [--job-command 'CMD ...']
        [--bucket NAME]... [--job NAME]... [--project ID] [--project-number N] [--region R]
        [--token-ttl S] [--cancel-grace S] [--seed N] [--no-auth] [--host 127.0.0.1] [--verbose]
It prints one line "LISTENING <port>" on stdout once ready, after writing
    DIR/sa.json                service-account key (PKCS#8 PEM), token_uri = http://127.0.0.1:PORT/token
    DIR/authorized_user.json   gcloud-style user credentials (refresh_token grant), same token_uri
    DIR/endpoints.json         port, url, project, region, bucket names, paths of the two key files
    DIR/kms-master.key         per-instance KMS root secret (reused if DIR is reused)
    DIR/executions/<exec-id>/task<i>-attempt<a>.stdout|.stderr   output of job processes
SIGTERM/SIGINT: stops, SIGKILLs and reaps every running job process group, exits 0.

Google surface (one port, all services; see gcp-api.md for the wire details):
  POST /token                          jwt-bearer (RS256 verified against known SA keys; iss, aud,
                                       scope, iat/exp checks) and refresh_token grants
  GET  /oauth2/v3/certs                JWKS of the key signing ID tokens
  GET  / and /computeMetadata/v1/...   metadata server; needs Metadata-Flavor: Google (else 403);
                                       token, identity?audience=, email, project-id,
                                       numeric-project-id, region, zone, universe-domain
  /storage/v1/b[/B[/o[/NAME[/compose|/rewriteTo/..|/copyTo/..]]]], /upload/storage/v1/b/B/o
  (media|multipart|resumable), /download/storage/v1/b/B/o/NAME     Cloud Storage JSON API
  POST /v1/projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]:encrypt|:decrypt
  GET  /v1/projects/P[/locations/L]/secrets/S/versions/(latest|N):access
  POST /v2/projects/P/locations/L/jobs/J:run          -> Operation, really runs the job command
  GET  /v2/projects/P/locations/L/jobs/J[/executions] ; GET|DELETE /v2/.../executions/E
  POST /v2/.../executions/E:cancel ; GET /v2/.../operations[/ID] ; POST /v2/.../operations/ID:wait
  and what a deployment is made of (fake_gcp_admin.py): Artifact Registry repositories, IAM
  service accounts, project/bucket/key/secret/job/service IAM policies, secrets.create/
  addVersion, key rings and keys, bucket patch (lifecycle), Cloud Run jobs and services
  create/get/patch (long-running operations).  A job made by jobs.create runs its template's
  env (secretKeyRef resolved) with the registered command of that name or --job-command.
Every non-OAuth, non-metadata endpoint requires "Authorization: Bearer <token issued here>" (or a
self-signed SA JWT, gcp-api.md 1.7) unless config require_auth is false; GCS may be anonymous
with allow_anonymous_storage (STORAGE_EMULATOR_HOST mode).

Jobs: argv = --job-command shell-split (or the command registered for the job) + args override;
env = this server's environment + registered job env + overrides (with $(VAR) expansion and
secretKeyRef resolved from the fake Secret Manager) + CLOUD_RUN_JOB/EXECUTION/TASK_INDEX/
TASK_ATTEMPT/TASK_COUNT; own process group (setsid); cwd = the server's cwd unless registered.
When the main process exits, the rest of its group is SIGKILLed (container teardown). Cancel and
task timeout: SIGTERM to the group, SIGKILL after cancel_grace_seconds. Without a job command an
execution succeeds at once with no process.

Control API (not Google's; no auth, no faults, not in the request log). JSON in and out.
  GET  /_fake/health | /_fake/info
  GET  /_fake/requests[?since=ID&service=S&path_prefix=P]   DELETE clears
       entries: id, time, conn (connection number: keep-alive reuse is visible), method, path
       (decoded), raw_path, query (secret-looking keys redacted), headers (a fixed safe subset,
       never Authorization/Cookie), auth (was an Authorization header present), auth_type,
       auth_ok, service (oauth|metadata|storage|kms|secretmanager|run|unknown), status (null if
       no response was sent), fault (names of fired rules), dropped, req_bytes, resp_bytes,
       duration_ms. Bodies are never logged.
  POST /_fake/faults   {"seed": N, "rules": [RULE...], "append": false}   (or one RULE inline)
  GET  /_fake/faults (rules with seen/fired counters)    DELETE clears the rules
       RULE = {"name", match keys: "service", "method"/"methods", "path_prefix", "path_regex",
               "path_contains", "query": {k: v|true}, "headers": {name: regex};
               "probability" (default 1, seeded RNG), "skip" (let N matches pass first),
               "count" (fire at most N times);
               actions: "latency_ms": ms | [min, max]; "status": 503|429|403|... with
               "retry_after", "message", "reason" (error body in the service's own format);
               "drop": "before_body" | "mid_body" (after "drop_after_bytes", default half the
               body; a resumable chunk keeps what resumable_partial_persist says) |
               "after_body" (processed, response lost) | "mid_response" (response cut after
               "drop_after_bytes"); "drop_style": "rst" (default) | "fin";
               "expire_token": true (the caller's token expires now -> 401);
               "json_merge": {...} (merged into a 2xx JSON response); "headers_out": {...}}
  GET  /_fake/violations   requests and answers that broke Google's discovery documents
       (tests/fakes/discovery.py; {method, path, where: request|response, violation}); DELETE
       returns and clears them.  With config validate=strict (the default) such a request is
       answered 400 with the violation.  Log entries name the matched method (google_method).
  POST /_fake/config {key: value}   GET shows; keys: see DEFAULT_CONFIG below
  POST /_fake/reset   kill jobs; clear objects, uploads, secrets, KMS keys, faults, log, config;
                      buckets/jobs from the command line and issued tokens survive
  POST /_fake/tokens/expire {"token"?}   expire one or all issued tokens; GET /_fake/tokens
  POST /_fake/secrets {"name": "projects/P/secrets/S" | "project","secret"; "data" | "data_b64";
                       "state"?} -> {"version": N};  {"name", "version", "state"} changes a state
  GET  /_fake/executions | /_fake/executions/<exec-id>   (pids, pgids, exit codes, log paths)
  POST /_fake/jobs {"name": J | "projects/P/locations/L/jobs/J", "command": str|list, "args",
                    "env": {}, "max_retries", "task_count", "timeout_seconds", "cwd",
                    "restrict": bool, "runtime_only": bool (the job exists only once made by
                    jobs.create; this gives the command and env its executions run with)}
  POST /_fake/buckets {"name"};  GET /_fake/objects?bucket=B;
  GET|PUT|DELETE /_fake/objects/<bucket>/<url-encoded name>   raw bytes, for seeding/inspection
  GET  /_fake/uploads   resumable sessions (persisted bytes, total, finished)
  POST /_fake/service-accounts {"client_email"?, "public_key_pem"?, "private_key_id"?}
       -> a new key file (generated) or registers a public key
  POST /_fake/service-accounts/revoke {"client_email", "private_key_id"?}
  POST /_fake/kms/keys {"name", "rotate": bool, "version_states": {"1": "DISABLED"}}

Needs python3-cryptography; uses python3-crcmod for fast CRC32C when installed (a pure-Python
fallback is about 20x slower: ~1 s per 20 MiB).
"""

import argparse
import base64
import ctypes
import datetime
import email.utils
import hashlib
import hmac
import http.server
import json
import os
import random
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from urllib.parse import parse_qsl, quote, unquote

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import discovery  # noqa: E402  (Google's discovery documents: the wire validator)
import fake_gcp_admin  # noqa: E402  (what `ccr deploy` creates: registry, IAM, run jobs/services)

JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform'
EXEC_TYPE = 'type.googleapis.com/google.cloud.run.v2.Execution'
RESUMABLE_UNIT = 262144  # 256 KiB
SHORT_LIVED_MSG = ('Invalid JWT: Token must be a short-lived token (60 minutes) and in a '
                   'reasonable timeframe. Check your iat and exp values in the JWT claim.')
RESERVED_ENV = {'CLOUD_RUN_JOB', 'CLOUD_RUN_EXECUTION', 'CLOUD_RUN_TASK_INDEX',
                'CLOUD_RUN_TASK_ATTEMPT', 'CLOUD_RUN_TASK_COUNT', 'PORT',
                'K_SERVICE', 'K_REVISION', 'K_CONFIGURATION'}

# --------------------------------------------------------------------------------------------
# CRC32C (Castagnoli, reflected 0x82F63B78, init/xorout 0xFFFFFFFF)

try:  # python3-crcmod ships a C extension; about 20x faster than the fallback below
    import crcmod.predefined as _crcmod_predefined
    _CRCMOD = _crcmod_predefined.mkCrcFun('crc-32c')
except Exception:  # pragma: no cover - depends on the machine
    _CRCMOD = None


def _crc_tables():
    poly = 0x82F63B78
    t0 = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[i] >> 8) ^ t0[prev[i] & 0xFF] for i in range(256)])
    return tables


_CRC_T = None


def _crc32c_py(data):
    global _CRC_T
    if _CRC_T is None:
        _CRC_T = _crc_tables()
    t0, t1, t2, t3, t4, t5, t6, t7 = _CRC_T
    crc = 0xFFFFFFFF
    n = len(data) // 8 * 8
    mv = memoryview(data)
    for i in range(0, n, 8):
        x = int.from_bytes(mv[i:i + 8], 'little') ^ crc
        crc = (t7[x & 0xFF] ^ t6[(x >> 8) & 0xFF] ^ t5[(x >> 16) & 0xFF] ^ t4[(x >> 24) & 0xFF]
               ^ t3[(x >> 32) & 0xFF] ^ t2[(x >> 40) & 0xFF] ^ t1[(x >> 48) & 0xFF] ^ t0[x >> 56])
    for b in bytes(mv[n:]):
        crc = t0[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c(data):
    """CRC32C of bytes as an unsigned int."""
    if _CRCMOD is not None:
        return _CRCMOD(bytes(data))
    return _crc32c_py(bytes(data))


def crc32c_b64(data):
    """GCS form: base64 of the 4 big-endian bytes."""
    return base64.b64encode(crc32c(data).to_bytes(4, 'big')).decode()


# --------------------------------------------------------------------------------------------
# small helpers

def b64e(b):
    return base64.b64encode(b).decode('ascii')


def b64d(s):
    """Lenient proto3 'bytes' decoding: standard or URL-safe alphabet, padded or not."""
    if not isinstance(s, str):
        raise ValueError('not a string')
    s = s.strip().replace('-', '+').replace('_', '/').rstrip('=')
    if not re.fullmatch(r'[A-Za-z0-9+/]*', s) or len(s) % 4 == 1:
        raise ValueError('invalid base64')
    return base64.b64decode(s + '=' * (-len(s) % 4))


def b64url_nopad(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode('ascii')


def b64url_decode(s):
    s = s.strip().rstrip('=')
    if not re.fullmatch(r'[A-Za-z0-9_\-]*', s):
        raise ValueError('invalid base64url')
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))


def rfc3339(t, digits=6):
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    frac = f'{dt.microsecond:06d}'[:digits]
    return dt.strftime('%Y-%m-%dT%H:%M:%S') + ('.' + frac if digits else '') + 'Z'


def parse_int(v):
    """int64 fields arrive as JSON strings or numbers."""
    if isinstance(v, bool):
        raise ValueError('bool is not an integer')
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r'-?\d+', v.strip()):
        return int(v.strip())
    raise ValueError(f'not an integer: {v!r}')


def parse_duration(v):
    if isinstance(v, (int, float)):
        return float(v)
    m = re.fullmatch(r'\s*(\d+(?:\.\d*)?)s\s*', str(v))
    if not m:
        raise ValueError(f'invalid duration {v!r}')
    return float(m.group(1))


def prune_defaults(obj):
    """proto3 JSON mapping: fields holding their default value are omitted."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            v = prune_defaults(v)
            if v is None or v is False or v == '' or v == [] or v == {}:
                continue
            if isinstance(v, int) and not isinstance(v, bool) and v == 0:
                continue
            out[k] = v
        return out
    if isinstance(obj, list):
        return [prune_defaults(x) for x in obj]
    return obj


class Resp:
    """An HTTP response produced by a handler and written by the connection handler."""

    def __init__(self, status, body=b'', headers=None, ctype=None, reason=None):
        self.status = status
        if isinstance(body, str):
            body = body.encode('utf-8')
        self.body = body
        self.headers = list(headers or [])
        self.ctype = ctype
        self.reason = reason
        self.json = None  # decoded object, when the body is JSON


def json_resp(status, obj, headers=None):
    r = Resp(status, json.dumps(obj, indent=2).encode('utf-8') + b'\n', headers,
             'application/json; charset=UTF-8')
    r.json = obj
    return r


class ApiError(Exception):
    def __init__(self, resp):
        super().__init__(resp.status)
        self.resp = resp


AIP_STATUS = {400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED',
              404: 'NOT_FOUND', 405: 'INVALID_ARGUMENT', 409: 'ALREADY_EXISTS',
              412: 'FAILED_PRECONDITION', 413: 'INVALID_ARGUMENT', 429: 'RESOURCE_EXHAUSTED',
              499: 'CANCELLED', 500: 'INTERNAL', 501: 'UNIMPLEMENTED', 502: 'UNAVAILABLE',
              503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED'}
GCS_REASON = {400: 'invalid', 401: 'authError', 403: 'forbidden', 404: 'notFound',
              405: 'invalid', 409: 'conflict', 412: 'conditionNotMet',
              416: 'requestedRangeNotSatisfiable', 429: 'rateLimitExceeded',
              499: 'clientClosedRequest', 500: 'backendError', 502: 'backendError',
              503: 'backendError', 504: 'backendError'}
DEFAULT_MESSAGES = {400: 'Invalid request.', 401: 'Request had invalid authentication credentials.',
                    403: 'The caller does not have permission', 404: 'Not Found',
                    409: 'Conflict', 412: 'Precondition Failed',
                    429: 'Quota exceeded. Please retry later.', 500: 'Internal error encountered.',
                    502: 'Bad Gateway', 503: 'The service is currently unavailable.',
                    504: 'Deadline expired before operation could complete.'}


def gcs_error(code, reason=None, message=None, headers=None, extra=None):
    reason = reason or GCS_REASON.get(code, 'backendError')
    message = message or DEFAULT_MESSAGES.get(code, 'Error')
    item = {'domain': 'global', 'reason': reason, 'message': message}
    if extra:
        item.update(extra)
    return json_resp(code, {'error': {'code': code, 'message': message, 'errors': [item]}}, headers)


def aip_error(code, message=None, status=None, details=None, headers=None):
    err = {'code': code, 'message': message or DEFAULT_MESSAGES.get(code, 'Error'),
           'status': status or AIP_STATUS.get(code, 'UNKNOWN')}
    if details:
        err['details'] = details
    return json_resp(code, {'error': err}, headers)


def oauth_error(code, error, desc):
    return json_resp(code, {'error': error, 'error_description': desc},
                     [('Cache-Control', 'no-store'), ('Pragma', 'no-cache')])


def text_resp(status, text, headers=None, ctype='application/text'):
    return Resp(status, text, headers, ctype)


def service_error(service, code, message=None, reason=None, headers=None):
    """An error body in the format of the given service."""
    if service == 'storage':
        return gcs_error(code, reason, message, headers)
    if service == 'oauth':
        err = {429: 'rate_limit_exceeded', 500: 'internal_failure', 503: 'temporarily_unavailable'}
        return oauth_error(code, reason or err.get(code, 'server_error'),
                           message or DEFAULT_MESSAGES.get(code, 'Error'))
    if service == 'metadata':
        return text_resp(code, (message or DEFAULT_MESSAGES.get(code, 'Error')) + '\n',
                         [('Metadata-Flavor', 'Google')] + list(headers or []), 'text/html; charset=UTF-8')
    return aip_error(code, message, headers=headers)


def classify(path):
    if path.startswith('/_fake/') or path == '/_fake':
        return 'control'
    if path == '/token' or path.startswith('/oauth2/'):
        return 'oauth'
    if path == '/' or path.startswith('/computeMetadata'):
        return 'metadata'
    if path.startswith(('/storage/v1/', '/upload/storage/v1/', '/download/storage/v1/',
                        '/resumable/upload/storage/v1/')) or path == '/storage/v1/b':
        return 'storage'
    if path.startswith('/v1/') and '/keyRings' in path:
        return 'kms'
    if path.startswith('/v1/') and re.search(r'^/v1/projects/[^/]+(/locations/[^/]+)?/secrets', path):
        return 'secretmanager'
    if path.startswith('/v2/'):
        return 'run'
    if path.startswith('/v1/') and ('/repositories' in path or '/operations/' in path):
        return 'artifactregistry'
    if path.startswith('/v1/') and '/serviceAccounts' in path:
        return 'iam'
    if path.startswith('/v3/projects/'):
        return 'cloudresourcemanager'
    return 'unknown'


# --------------------------------------------------------------------------------------------
# Request object

LOGGED_HEADERS = ('content-type', 'content-length', 'content-range', 'range', 'transfer-encoding',
                  'x-upload-content-type', 'x-upload-content-length', 'x-goog-hash',
                  'metadata-flavor', 'user-agent', 'x-goog-api-client', 'x-goog-user-project',
                  'expect', 'connection', 'x-forwarded-for', 'x-goog-request-params',
                  'x-cloud-trace-context', 'traceparent')
SECRET_QUERY_KEYS = {'assertion', 'access_token', 'refresh_token', 'client_secret', 'key',
                     'token', 'code', 'password'}


class Request:
    def __init__(self, method, target, headers, conn_id):
        self.method = method
        if target.startswith(('http://', 'https://')):
            rest = target.split('://', 1)[1]
            target = '/' + rest.split('/', 1)[1] if '/' in rest else '/'
        self.target = target
        raw_path, _, raw_query = target.partition('?')
        self.raw_path = raw_path
        self.raw_query = raw_query
        try:
            self.path = unquote(raw_path, errors='strict')
        except UnicodeDecodeError:
            self.path = unquote(raw_path, errors='replace')
        self.query = {}
        for k, v in parse_qsl(raw_query, keep_blank_values=True):
            self.query.setdefault(k, v)
        self.headers = headers
        self.conn_id = conn_id
        self.bearer = None
        auth = headers.get('Authorization')
        self.auth_present = auth is not None
        self.auth_type = None
        if auth is not None:
            scheme, _, cred = auth.strip().partition(' ')
            self.auth_type = scheme.lower() or None
            if scheme.lower() == 'bearer':
                self.bearer = cred.strip()
        host = headers.get('Host') or ''
        self.host = host

    def header(self, name, default=None):
        v = self.headers.get(name)
        return default if v is None else v


# --------------------------------------------------------------------------------------------
# Service accounts, tokens

class ServiceAccount:
    def __init__(self, email, project):
        self.email = email
        self.project = project
        self.keys = {}  # kid -> public key
        self.unique_id = str(random.SystemRandom().randint(10 ** 20, 10 ** 21 - 1))

    def add_key(self, kid, public_key):
        self.keys[kid] = public_key


def new_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode('ascii')


def sign_jwt(key, kid, claims):
    header = {'alg': 'RS256', 'typ': 'JWT', 'kid': kid}
    si = (b64url_nopad(json.dumps(header, separators=(',', ':')).encode()) + '.'
          + b64url_nopad(json.dumps(claims, separators=(',', ':')).encode()))
    sig = key.sign(si.encode('ascii'), padding.PKCS1v15(), hashes.SHA256())
    return si + '.' + b64url_nopad(sig)


def parse_jwt(token):
    parts = token.split('.')
    if len(parts) != 3:
        raise ValueError('a JWT has three segments')
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    sig = b64url_decode(parts[2])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError('JWT header and claims must be objects')
    return header, claims, sig, (parts[0] + '.' + parts[1]).encode('ascii')


class TokenInfo:
    def __init__(self, principal, scopes, expiry, source):
        self.principal = principal
        self.scopes = scopes
        self.expiry = expiry
        self.source = source


# --------------------------------------------------------------------------------------------
# Fault injection

class FaultRule:
    TERMINAL = ('status', 'drop', 'expire_token')

    def __init__(self, spec, index):
        if not isinstance(spec, dict):
            raise ValueError('a fault rule is an object')
        self.spec = spec
        self.name = str(spec.get('name') or f'rule{index}')
        m = dict(spec.get('match') or {})
        for k in ('service', 'method', 'methods', 'path_prefix', 'path_regex', 'path_contains',
                  'query', 'headers'):
            if k in spec and k not in m:
                m[k] = spec[k]
        self.services = self._list(m.get('service'))
        self.methods = [x.upper() for x in self._list(m.get('methods') or m.get('method'))]
        self.path_prefix = m.get('path_prefix')
        self.path_regex = re.compile(m['path_regex']) if m.get('path_regex') else None
        self.path_contains = m.get('path_contains')
        self.query = m.get('query') or {}
        self.match_headers = {k: re.compile(v) for k, v in (m.get('headers') or {}).items()}
        self.probability = float(spec.get('probability', spec.get('rate', 1.0)))
        self.count = spec.get('count')
        self.skip = int(spec.get('skip', 0))
        self.status = spec.get('status')
        self.retry_after = spec.get('retry_after')
        self.message = spec.get('message')
        self.reason = spec.get('reason')
        lat = spec.get('latency_ms', 0)
        self.latency = lat if isinstance(lat, list) else [lat, lat]
        self.drop = spec.get('drop')
        if self.drop not in (None, 'before_body', 'mid_body', 'after_body', 'mid_response'):
            raise ValueError('drop must be before_body|mid_body|after_body|mid_response')
        self.drop_after_bytes = spec.get('drop_after_bytes')
        self.drop_style = spec.get('drop_style', 'rst')
        self.expire_token = bool(spec.get('expire_token'))
        self.json_merge = spec.get('json_merge')
        self.extra_headers = list((spec.get('headers_out') or {}).items())
        self.seen = 0
        self.fired = 0

    @staticmethod
    def _list(v):
        if v is None:
            return []
        return v if isinstance(v, list) else [v]

    def matches(self, req, service):
        if self.services and service not in self.services:
            return False
        if self.methods and req.method not in self.methods:
            return False
        if self.path_prefix and not req.path.startswith(self.path_prefix):
            return False
        if self.path_contains and self.path_contains not in req.path:
            return False
        if self.path_regex and not self.path_regex.search(req.path):
            return False
        for k, v in self.query.items():
            if v is True:
                if k not in req.query:
                    return False
            elif req.query.get(k) != str(v):
                return False
        for k, rx in self.match_headers.items():
            if not rx.search(req.header(k, '')):
                return False
        return True

    def describe(self):
        d = dict(self.spec)
        d['name'] = self.name
        d['seen'] = self.seen
        d['fired'] = self.fired
        return d


class Decision:
    def __init__(self):
        self.latency_ms = 0.0
        self.rule = None  # the rule whose terminal action applies
        self.names = []   # every rule that fired
        self.json_merge = None
        self.extra_headers = []

    @property
    def label(self):
        return ','.join(self.names) if self.names else None


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rng = random.Random(0)
        self.seed = 0
        self.rules = []

    def set(self, spec, append=False):
        seed = spec.get('seed')
        rules_spec = spec.get('rules')
        if rules_spec is None:
            keys = set(spec) - {'seed', 'append'}
            rules_spec = [{k: spec[k] for k in keys}] if keys else []
        with self.lock:
            start = len(self.rules) if append else 0
            rules = [FaultRule(r, start + i) for i, r in enumerate(rules_spec)]
            if append:
                self.rules.extend(rules)
            else:
                self.rules = rules
            if seed is not None or not append:
                self.seed = int(seed or 0)
                self.rng = random.Random(self.seed)

    def clear(self):
        with self.lock:
            self.rules = []
            self.rng = random.Random(self.seed)

    def describe(self):
        with self.lock:
            return {'seed': self.seed, 'rules': [r.describe() for r in self.rules]}

    def decide(self, req, service):
        d = Decision()
        with self.lock:
            for r in self.rules:
                if not r.matches(req, service):
                    continue
                r.seen += 1
                if r.seen <= r.skip:
                    continue
                if r.count is not None and r.fired >= int(r.count):
                    continue
                if r.probability < 1.0 and self.rng.random() >= r.probability:
                    continue
                r.fired += 1
                d.names.append(r.name)
                lo, hi = float(r.latency[0] or 0), float(r.latency[1] or 0)
                d.latency_ms += lo if hi <= lo else self.rng.uniform(lo, hi)
                if r.json_merge:
                    d.json_merge = dict(d.json_merge or {}, **r.json_merge)
                d.extra_headers.extend(r.extra_headers)
                if d.rule is None and (r.status or r.drop or r.expire_token):
                    d.rule = r
        return d


# --------------------------------------------------------------------------------------------
# Cloud Storage model

class GcsObject:
    def __init__(self, bucket, name, data, generation, attrs, now):
        self.bucket = bucket
        self.name = name
        self.data = bytes(data)
        self.generation = generation
        self.metageneration = 1
        self.content_type = attrs.get('contentType') or 'application/octet-stream'
        self.content_encoding = attrs.get('contentEncoding')
        self.content_disposition = attrs.get('contentDisposition')
        self.content_language = attrs.get('contentLanguage')
        self.cache_control = attrs.get('cacheControl')
        self.custom_time = attrs.get('customTime')
        self.metadata = {str(k): str(v) for k, v in (attrs.get('metadata') or {}).items()
                         if v is not None}
        self.component_count = attrs.get('componentCount')
        self.md5 = attrs.get('md5')
        self.crc = attrs.get('crc')
        self.created = now
        self.updated = now

    @property
    def etag(self):
        return b64e(hashlib.sha1(f'{self.generation}/{self.metageneration}'.encode()).digest()[:9])


class Bucket:
    def __init__(self, name, project, now):
        self.name = name
        self.project = project
        self.objects = {}
        self.created = now


class UploadSession:
    def __init__(self, sid, bucket, name, attrs, preconds, total):
        self.id = sid
        self.bucket = bucket
        self.name = name
        self.attrs = attrs
        self.preconds = preconds
        self.data = bytearray()
        self.total = total
        self.result = None  # Resp once finalized (200 object or 412/400 error)
        self.cancelled = False
        self.lock = threading.Lock()
        self.created = time.time()


def glob_to_regex(pattern):
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == '*':
            if pattern[i:i + 2] == '**':
                out.append('.*')
                i += 2
                continue
            out.append('[^/]*')
        elif c == '?':
            out.append('[^/]')
        elif c == '[':
            j = pattern.find(']', i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith('!'):
                    body = '^' + body[1:]
                out.append('[' + body.replace('\\', '\\\\') + ']')
                i = j + 1
                continue
        elif c == '{':
            j = pattern.find('}', i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                alts = pattern[i + 1:j].split(',')
                out.append('(?:' + '|'.join(re.escape(a) for a in alts) + ')')
                i = j + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(''.join(out) + r'\Z', re.S)


def parse_multipart_related(body, ctype):
    m = re.search(r'boundary\s*=\s*("([^"]+)"|([^;\s]+))', ctype or '', re.I)
    if not m:
        raise ValueError('multipart Content-Type without boundary')
    boundary = (m.group(2) or m.group(3)).encode('latin-1')
    delim = b'--' + boundary
    pos = body.find(delim)
    if pos < 0:
        raise ValueError('multipart body does not contain the boundary')
    pos += len(delim)
    parts = []
    while True:
        if body[pos:pos + 2] == b'--':
            break
        eol = body.find(b'\r\n', pos)
        if eol < 0:
            raise ValueError('truncated multipart body')
        pos = eol + 2
        nxt = body.find(b'\r\n' + delim, pos)
        if nxt < 0:
            raise ValueError('multipart body lacks a closing boundary')
        chunk = body[pos:nxt]
        if chunk.startswith(b'\r\n'):
            head, data = b'', chunk[2:]
        else:
            he = chunk.find(b'\r\n\r\n')
            if he < 0:
                raise ValueError('multipart part without a header/body separator')
            head, data = chunk[:he], chunk[he + 4:]
        headers = {}
        for line in head.split(b'\r\n'):
            if b':' in line:
                k, v = line.split(b':', 1)
                headers[k.strip().decode('latin-1').lower()] = v.strip().decode('latin-1')
        parts.append((headers, data))
        pos = nxt + 2 + len(delim)
    return parts


# --------------------------------------------------------------------------------------------
# Cloud Run model

class Attempt:
    def __init__(self, number):
        self.number = number
        self.pid = None
        self.pgid = None
        self.exit_code = None
        self.signal = None
        self.start = None
        self.end = None
        self.stdout = None
        self.stderr = None
        self.done = False
        self.kill_reason = None
        self.error = None

    def describe(self):
        return {'attempt': self.number, 'pid': self.pid, 'pgid': self.pgid,
                'exit_code': self.exit_code, 'signal': self.signal,
                'start': self.start, 'end': self.end, 'stdout': self.stdout,
                'stderr': self.stderr, 'done': self.done, 'kill_reason': self.kill_reason,
                'error': self.error}


class Task:
    def __init__(self, index):
        self.index = index
        self.state = 'PENDING'  # RUNNING SUCCEEDED FAILED CANCELLED
        self.attempts = []
        self.message = None

    @property
    def current(self):
        return self.attempts[-1] if self.attempts else None


class Execution:
    def __init__(self, project, location, job, exec_id, spec, env_overrides, argv, task_count,
                 timeout, max_retries):
        self.project = project
        self.location = location
        self.job = job
        self.exec_id = exec_id
        self.name = f'projects/{project}/locations/{location}/jobs/{job}/executions/{exec_id}'
        self.uid = str(uuid.uuid4())
        self.spec = spec
        self.env_overrides = env_overrides
        self.argv = argv
        self.task_count = task_count
        self.timeout = timeout
        self.max_retries = max_retries
        self.create_time = time.time()
        self.start_time = None
        self.completion_time = None
        self.update_time = self.create_time
        self.cancel_requested = False
        self.cancel_time = None
        self.tasks = [Task(i) for i in range(task_count)]
        self.operation = None
        self.log_dir = None

    def counts(self):
        c = {'RUNNING': 0, 'SUCCEEDED': 0, 'FAILED': 0, 'CANCELLED': 0}
        for t in self.tasks:
            if t.state in c:
                c[t.state] += 1
        retried = sum(1 for t in self.tasks if len(t.attempts) > 1)
        return c, retried

    @property
    def done(self):
        return self.completion_time is not None

    @property
    def outcome(self):
        if not self.done:
            return 'RUNNING'
        c, _ = self.counts()
        if c['CANCELLED']:
            return 'CANCELLED'
        if c['FAILED']:
            return 'FAILED'
        return 'SUCCEEDED'


class Operation:
    def __init__(self, name, execution, kind):
        self.name = name
        self.execution = execution
        self.kind = kind


# --------------------------------------------------------------------------------------------
# Server state

DEFAULT_CONFIG = {
    'token_ttl': 3599,                 # expires_in of issued access tokens, seconds
    'require_auth': True,              # Bearer token required on storage/kms/secretmanager/run
    'allow_anonymous_storage': False,  # STORAGE_EMULATOR_HOST mode: GCS without Authorization
    'accept_self_signed_jwt': True,    # Bearer <self-signed JWT> (gcp-api.md 1.7)
    'jwt_clock_skew': 60,              # seconds an assertion's iat may lie in the future
    'extra_token_audiences': [],       # further accepted 'aud' values for /token
    'cancel_grace_seconds': 10.0,      # SIGTERM -> SIGKILL delay for cancelled/timed-out jobs
    'resumable_chunk_mode': 'strict',  # strict: 400 on a non-final chunk not a multiple of 256 KiB
                                       # truncate: persist only the 256 KiB multiple, 308
    'resumable_partial_persist': 'aligned',  # bytes kept from a chunk whose connection dropped:
                                             # none | aligned (256 KiB multiple) | all
    'kms_auto_create': True,           # unknown CryptoKeys spring into existence
    'restrict_jobs': False,            # only jobs registered via /_fake/jobs or --job exist
    'omit_default_fields': True,       # proto3 JSON: omit 0/false/empty in KMS/Run responses
    'max_log_entries': 20000,
    'validate': 'strict',              # requests/answers checked against the discovery documents:
                                       # strict (a bad request gets 400 and is recorded) |
                                       # record (recorded only) | off
    'response_mode': 'normal',         # normal | full (every schema field, realistic values,
                                       # under the scenario's values) | minimal (no default and
                                       # no informational field)
    'max_page_size': 0,                # executions.list pages hold at most this many (0: pageSize)
}


class State:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.args = args
        self.state_dir = os.path.abspath(args.state_dir)
        self.project = args.project
        self.project_number = args.project_number
        self.region = args.region
        self.port = None
        self.host = args.host
        self.verbose = args.verbose
        self.config = dict(DEFAULT_CONFIG)
        self.config['token_ttl'] = args.token_ttl
        self.config['cancel_grace_seconds'] = args.cancel_grace
        if args.no_auth:
            self.config['require_auth'] = False
        self.default_job_command = args.job_command
        self.faults = Faults()
        if args.seed is not None:
            self.faults.set({'seed': args.seed, 'rules': []})
        self.log = []
        self.log_seq = 0
        self.violations = []   # requests/answers that broke the discovery documents
        self.conn_seq = 0
        self.tokens = {}
        self.sas = {}
        self.users = {}  # refresh_token -> dict
        self.buckets = {}
        self.sessions = {}
        self.last_gen = 0
        self.kms_keys = {}
        self.secrets = {}
        self.jobs = {}
        self.executions = {}
        self.operations = {}
        self.exec_rng = random.Random()
        self.shutting_down = False
        self.task_threads = []
        self.admin = None   # fake_gcp_admin.AdminService, set by main()
        master_path = os.path.join(self.state_dir, 'kms-master.key')
        if os.path.exists(master_path):
            with open(master_path, 'rb') as f:
                self.kms_master = f.read()
        else:
            self.kms_master = secrets.token_bytes(32)
            with open(master_path, 'wb') as f:
                f.write(self.kms_master)
            os.chmod(master_path, 0o600)
        # the default service account (written to sa.json) and the key that signs ID tokens
        self.sa_key = new_rsa_key()
        self.sa_kid = secrets.token_hex(20)
        self.sa_email = f'ccr-test@{self.project}.iam.gserviceaccount.com'
        sa = ServiceAccount(self.sa_email, self.project)
        sa.add_key(self.sa_kid, self.sa_key.public_key())
        self.sas[self.sa_email] = sa
        self._google_key = None  # signs ID tokens; generated on first use (keygen is slow)
        self.google_kid = secrets.token_hex(20)
        self.user = {'client_id': f'{secrets.randbelow(10 ** 12)}-fake.apps.googleusercontent.com',
                     'client_secret': 'fake-' + secrets.token_urlsafe(18),
                     'refresh_token': '1//fake-' + secrets.token_urlsafe(32),
                     'email': 'developer@example.com'}
        self.users[self.user['refresh_token']] = self.user
        self.initial_buckets = list(args.bucket or []) or ['ccr-test-bucket']
        for b in self.initial_buckets:
            self.buckets[b] = Bucket(b, self.project, time.time())
        for j in args.job or []:
            self.register_job({'name': j})
            self.config['restrict_jobs'] = True
        self.initial_jobs = dict(self.jobs)
        self.initial_config = dict(self.config)

    @property
    def google_key(self):
        with self.lock:
            if self._google_key is None:
                self._google_key = new_rsa_key()
            return self._google_key

    # ---- key files -------------------------------------------------------------------------
    @property
    def base_url(self):
        return f'http://127.0.0.1:{self.port}'

    def write_key_files(self):
        token_uri = self.base_url + '/token'
        sa = {
            'type': 'service_account',
            'project_id': self.project,
            'private_key_id': self.sa_kid,
            'private_key': private_pem(self.sa_key),
            'client_email': self.sa_email,
            'client_id': self.sas[self.sa_email].unique_id,
            'token_uri': token_uri,
            'universe_domain': 'googleapis.com',
        }
        user = {
            'type': 'authorized_user',
            'client_id': self.user['client_id'],
            'client_secret': self.user['client_secret'],
            'refresh_token': self.user['refresh_token'],
            'token_uri': token_uri,
            'quota_project_id': self.project,
        }
        endpoints = {
            'port': self.port, 'url': self.base_url, 'token_uri': token_uri,
            'metadata_host': f'127.0.0.1:{self.port}', 'project': self.project,
            'project_number': self.project_number, 'region': self.region,
            'service_account': self.sa_email, 'buckets': self.initial_buckets,
            'sa_path': os.path.join(self.state_dir, 'sa.json'),
            'authorized_user_path': os.path.join(self.state_dir, 'authorized_user.json'),
        }
        for fname, obj in (('sa.json', sa), ('authorized_user.json', user),
                           ('endpoints.json', endpoints)):
            path = os.path.join(self.state_dir, fname)
            tmp = path + '.tmp'
            with open(tmp, 'w') as f:
                json.dump(obj, f, indent=2)
                f.write('\n')
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)

    # ---- request log -----------------------------------------------------------------------
    def log_start(self, req, service):
        q = {k: ('<redacted>' if k.lower() in SECRET_QUERY_KEYS else v) for k, v in req.query.items()}
        hdrs = {}
        for h in LOGGED_HEADERS:
            v = req.headers.get(h)
            if v is not None:
                hdrs[h] = v
        with self.lock:
            self.log_seq += 1
            entry = {'id': self.log_seq, 'time': time.time(), 'conn': req.conn_id,
                     'method': req.method, 'path': req.path, 'raw_path': req.raw_path,
                     'query': q, 'headers': hdrs, 'auth': req.auth_present,
                     'auth_type': req.auth_type, 'auth_ok': None, 'service': service,
                     'status': None, 'fault': None, 'dropped': False, 'req_bytes': 0,
                     'resp_bytes': 0, 'duration_ms': None, 'google_method': None}
            self.log.append(entry)
            limit = int(self.config['max_log_entries'])
            if len(self.log) > limit:
                del self.log[:len(self.log) - limit]
        return entry

    # ---- tokens ----------------------------------------------------------------------------
    def issue_token(self, principal, scopes, source):
        tok = 'ya29.fake-' + secrets.token_urlsafe(36)
        ttl = int(self.config['token_ttl'])
        with self.lock:
            self.tokens[tok] = TokenInfo(principal, list(scopes), time.time() + ttl, source)
        return tok, ttl

    def expire_tokens(self, token=None):
        now = time.time()
        with self.lock:
            n = 0
            for t, info in self.tokens.items():
                if token is None or t == token:
                    if info.expiry > now:
                        n += 1
                    info.expiry = min(info.expiry, now - 1)
            return n

    def token_audiences(self, req):
        auds = {f'http://127.0.0.1:{self.port}/token', f'http://localhost:{self.port}/token'}
        if req.host:
            auds.add(f'http://{req.host}/token')
        auds.update(self.config.get('extra_token_audiences') or [])
        return auds

    def verify_sa_jwt(self, token):
        """Returns (header, claims, sa) or raises ValueError(description)."""
        try:
            header, claims, sig, signing_input = parse_jwt(token)
        except Exception:
            raise ValueError('Invalid JWT Signature.')
        if header.get('alg') != 'RS256':
            raise ValueError('Invalid JWT Signature.')
        iss = claims.get('iss')
        with self.lock:
            sa = self.sas.get(iss) if isinstance(iss, str) else None
            keys = dict(sa.keys) if sa else {}
        if sa is None:
            raise LookupError('Invalid grant: account not found')
        kid = header.get('kid')
        candidates = [keys[kid]] if kid in keys else ([] if kid else list(keys.values()))
        for pub in candidates:
            try:
                pub.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
                return header, claims, sa
            except InvalidSignature:
                continue
        raise ValueError('Invalid JWT Signature.')

    def authenticate(self, req, service):
        """None if the request may proceed, else a 401/403 Resp in the service's format."""
        if not self.config['require_auth']:
            return None
        if req.auth_type is None and service == 'storage' and self.config['allow_anonymous_storage']:
            return None
        svc_host = {'storage': 'storage.googleapis.com', 'kms': 'cloudkms.googleapis.com',
                    'secretmanager': 'secretmanager.googleapis.com',
                    'run': 'run.googleapis.com', 'iam': 'iam.googleapis.com',
                    'artifactregistry': 'artifactregistry.googleapis.com',
                    'cloudresourcemanager': 'cloudresourcemanager.googleapis.com'
                    }.get(service, 'googleapis.com')
        problem = None
        info = None
        if req.auth_type is None:
            problem = 'missing'
        elif req.bearer is None or not req.bearer:
            problem = 'invalid'
        else:
            with self.lock:
                info = self.tokens.get(req.bearer)
            if info is None and self.config['accept_self_signed_jwt'] and req.bearer.count('.') == 2:
                info = self._self_signed(req.bearer, svc_host)
            if info is None:
                problem = 'invalid'
            elif info.expiry <= time.time():
                problem = 'expired'
        if problem is None:
            if not self._scope_ok(info.scopes, service):
                if service == 'storage':
                    return gcs_error(403, 'insufficientPermissions',
                                     'Insufficient Permission')
                return aip_error(403, 'Request had insufficient authentication scopes.',
                                 details=[{'@type': 'type.googleapis.com/google.rpc.ErrorInfo',
                                           'reason': 'ACCESS_TOKEN_SCOPE_INSUFFICIENT',
                                           'domain': 'googleapis.com',
                                           'metadata': {'service': svc_host}}])
            return None
        www = [('WWW-Authenticate', 'Bearer realm="https://accounts.google.com/"'
                + ('' if problem == 'missing' else ', error="invalid_token"'))]
        if service == 'storage':
            if problem == 'missing':
                return gcs_error(401, 'required', 'Login Required', www,
                                 {'locationType': 'header', 'location': 'Authorization'})
            return gcs_error(401, 'authError', 'Invalid Credentials', www,
                             {'locationType': 'header', 'location': 'Authorization'})
        if problem == 'missing':
            msg = ('Request is missing required authentication credential. Expected OAuth 2 '
                   'access token, login cookie or other valid authentication credential.')
            reason = 'CREDENTIALS_MISSING'
        else:
            msg = ('Request had invalid authentication credentials. Expected OAuth 2 access '
                   'token, login cookie or other valid authentication credential.')
            reason = 'ACCESS_TOKEN_EXPIRED' if problem == 'expired' else 'ACCESS_TOKEN_TYPE_UNSUPPORTED'
        return aip_error(401, msg, 'UNAUTHENTICATED',
                         [{'@type': 'type.googleapis.com/google.rpc.ErrorInfo', 'reason': reason,
                           'domain': 'googleapis.com', 'metadata': {'service': svc_host}}], www)

    def _self_signed(self, token, svc_host):
        try:
            header, claims, sa = self.verify_sa_jwt(token)
        except (ValueError, LookupError):
            return None
        try:
            iat, exp = int(claims['iat']), int(claims['exp'])
        except (KeyError, TypeError, ValueError):
            return None
        now = time.time()
        if exp - iat != 3600 or iat > now + self.config['jwt_clock_skew']:
            return None
        aud, scope = claims.get('aud'), claims.get('scope')
        if bool(aud) == bool(scope):
            return None
        if aud and aud not in (f'https://{svc_host}/', f'https://{svc_host}'):
            return None
        scopes = scope.split() if scope else [CLOUD_PLATFORM]
        return TokenInfo(sa.email, scopes, float(exp), 'self-signed-jwt')

    @staticmethod
    def _scope_ok(scopes, service):
        if CLOUD_PLATFORM in scopes:
            return True
        need = {'storage': 'https://www.googleapis.com/auth/devstorage.',
                'kms': 'https://www.googleapis.com/auth/cloudkms'}.get(service)
        return bool(need) and any(s.startswith(need) for s in scopes)

    # ---- storage helpers -------------------------------------------------------------------
    def next_generation(self):
        with self.lock:
            g = max(self.last_gen + 1, int(time.time() * 1_000_000))
            self.last_gen = g
            return g

    # ---- jobs ------------------------------------------------------------------------------
    def register_job(self, spec):
        name = spec.get('name')
        if not name:
            raise ValueError('job name required')
        m = re.fullmatch(r'projects/([^/]+)/locations/([^/]+)/jobs/([^/]+)', name)
        key = (m.group(1), m.group(2), m.group(3)) if m else ('*', '*', name)
        cmd = spec.get('command', self.default_job_command)
        if isinstance(cmd, str):
            cmd = shlex.split(cmd)
        job = {'key': key, 'command': cmd, 'args': list(spec.get('args') or []),
               'env': dict(spec.get('env') or {}), 'max_retries': int(spec.get('max_retries', 0)),
               'task_count': int(spec.get('task_count', 1)),
               'timeout_seconds': spec.get('timeout_seconds'), 'cwd': spec.get('cwd'),
               # only the command and env a job created through jobs.create runs with: until
               # then the job does not exist
               'runtime_only': bool(spec.get('runtime_only'))}
        with self.lock:
            self.jobs[key] = job
        return job

    def find_job(self, project, location, job):
        made = self.admin.job_spec(project, location, job) if self.admin else None
        if made is not None:   # created through jobs.create: its template, the registered command
            with self.lock:
                reg = self.jobs.get(('*', '*', job)) or self.jobs.get((project, location, job))
            cmd = reg['command'] if reg else (shlex.split(self.default_job_command)
                                              if self.default_job_command else None)
            made.update({'key': (project, location, job), 'command': cmd,
                         'args': list(reg['args']) if reg else [],
                         'cwd': reg['cwd'] if reg else None,
                         'env': dict(reg['env'] if reg else {}, **made['env'])})
            return made
        with self.lock:
            for key in ((project, location, job), (self.norm_project(project), location, job),
                        ('*', '*', job)):
                if key in self.jobs:
                    return None if self.jobs[key].get('runtime_only') else self.jobs[key]
        if self.config['restrict_jobs']:
            return None
        cmd = shlex.split(self.default_job_command) if self.default_job_command else None
        return {'key': (project, location, job), 'command': cmd, 'args': [], 'env': {},
                'max_retries': 0, 'task_count': 1, 'timeout_seconds': None, 'cwd': None}

    def norm_project(self, p):
        return self.project if p == self.project_number else p


# --------------------------------------------------------------------------------------------
# OAuth token endpoint + metadata server

class AuthService:
    def __init__(self, st):
        self.st = st

    def token(self, req, body):
        if req.method != 'POST':
            return oauth_error(405, 'invalid_request', 'Token requests must use POST.')
        ctype = req.header('Content-Type', '')
        try:
            if 'json' in ctype:
                form = {k: str(v) for k, v in json.loads(body or b'{}').items()}
            else:
                form = dict(parse_qsl(body.decode('utf-8'), keep_blank_values=True))
        except Exception:
            return oauth_error(400, 'invalid_request', 'Could not parse the request body.')
        gt = form.get('grant_type')
        if not gt:
            return oauth_error(400, 'invalid_request', 'Missing required parameter: grant_type')
        if gt == JWT_GRANT:
            return self._jwt_grant(req, form)
        if gt == 'refresh_token':
            return self._refresh_grant(req, form)
        return oauth_error(400, 'unsupported_grant_type', f'Invalid grant_type: {gt}')

    def _jwt_grant(self, req, form):
        st = self.st
        assertion = form.get('assertion')
        if not assertion:
            return oauth_error(400, 'invalid_request', 'Missing required parameter: assertion')
        try:
            header, claims, sa = st.verify_sa_jwt(assertion)
        except LookupError as e:
            return oauth_error(400, 'invalid_grant', str(e))
        except ValueError as e:
            return oauth_error(400, 'invalid_grant', str(e))
        aud = claims.get('aud')
        if aud not in st.token_audiences(req):
            return oauth_error(400, 'invalid_grant',
                               'Invalid JWT: Failed audience check. The right audience is '
                               f'{st.base_url}/token')
        try:
            iat, exp = claims['iat'], claims['exp']
            if isinstance(iat, bool) or isinstance(exp, bool):
                raise TypeError
            iat, exp = float(iat), float(exp)
        except (KeyError, TypeError, ValueError):
            return oauth_error(400, 'invalid_grant', SHORT_LIVED_MSG)
        now = time.time()
        if (iat > now + st.config['jwt_clock_skew'] or exp <= now or exp <= iat
                or exp - iat > 3600):
            return oauth_error(400, 'invalid_grant', SHORT_LIVED_MSG)
        sub = claims.get('sub')
        if sub and sub != sa.email:
            return oauth_error(401, 'unauthorized_client',
                               'Client is unauthorized to retrieve access tokens using this '
                               'method, or client not authorized for any of the scopes requested.')
        target = claims.get('target_audience')
        if target:
            return json_resp(200, {'id_token': self.id_token(sa.email, sa.unique_id, target)},
                             [('Cache-Control', 'no-store')])
        scope = claims.get('scope')
        if not isinstance(scope, str) or not scope.strip():
            return oauth_error(400, 'invalid_scope',
                               'Invalid OAuth scope or ID token audience provided.')
        tok, ttl = st.issue_token(sa.email, scope.split(), 'jwt-bearer')
        return json_resp(200, {'access_token': tok, 'expires_in': ttl, 'token_type': 'Bearer'},
                         [('Cache-Control', 'no-store'), ('Pragma', 'no-cache')])

    def _refresh_grant(self, req, form):
        st = self.st
        client_id = form.get('client_id')
        client_secret = form.get('client_secret')
        basic = req.header('Authorization', '')
        if basic.lower().startswith('basic '):
            try:
                cid, _, csec = base64.b64decode(basic[6:].strip()).decode().partition(':')
                client_id, client_secret = unquote(cid), unquote(csec)
            except Exception:
                return oauth_error(401, 'invalid_client', 'Unauthorized')
        rt = form.get('refresh_token')
        if not rt:
            return oauth_error(400, 'invalid_request', 'Missing required parameter: refresh_token')
        with st.lock:
            user = st.users.get(rt)
        if user is None:
            return oauth_error(400, 'invalid_grant', 'Bad Request')
        if client_id != user['client_id']:
            return oauth_error(401, 'invalid_client', 'The OAuth client was not found.')
        if not hmac.compare_digest(str(client_secret or ''), user['client_secret']):
            return oauth_error(401, 'invalid_client', 'Unauthorized')
        scopes = (form.get('scope') or CLOUD_PLATFORM).split()
        tok, ttl = st.issue_token(user['email'], scopes, 'refresh_token')
        return json_resp(200, {'access_token': tok, 'expires_in': ttl, 'token_type': 'Bearer',
                               'scope': ' '.join(scopes)},
                         [('Cache-Control', 'no-store'), ('Pragma', 'no-cache')])

    def id_token(self, email, sub, audience):
        now = int(time.time())
        claims = {'iss': 'https://accounts.google.com', 'aud': audience, 'azp': email,
                  'sub': sub, 'email': email, 'email_verified': True, 'iat': now,
                  'exp': now + 3600}
        return sign_jwt(self.st.google_key, self.st.google_kid, claims)

    def certs(self, req):
        pub = self.st.google_key.public_key().public_numbers()

        def enc(n):
            return b64url_nopad(n.to_bytes((n.bit_length() + 7) // 8, 'big'))
        return json_resp(200, {'keys': [{'kty': 'RSA', 'alg': 'RS256', 'use': 'sig',
                                         'kid': self.st.google_kid, 'n': enc(pub.n),
                                         'e': enc(pub.e)}]})

    # ---- metadata server -------------------------------------------------------------------
    def metadata(self, req):
        st = self.st
        mf = [('Metadata-Flavor', 'Google')]
        if req.header('X-Forwarded-For') is not None:
            return text_resp(403, 'Request had an X-Forwarded-For header and was rejected.\n',
                             mf, 'text/html; charset=UTF-8')
        if req.header('Metadata-Flavor') != 'Google':
            return text_resp(403, 'Your client does not have permission to get URL '
                             f'{req.path} from this server. Missing Metadata-Flavor:Google header.\n',
                             mf, 'text/html; charset=UTF-8')
        if req.method not in ('GET', 'HEAD'):
            return text_resp(405, 'Method not allowed\n', mf)
        if req.path in ('/', ''):
            return text_resp(200, 'computeMetadata/\n', mf)
        p = req.path[len('/computeMetadata'):]
        if p in ('', '/'):
            return text_resp(200, 'v1/\n', mf)
        if not p.startswith('/v1'):
            return text_resp(404, 'Not Found\n', mf, 'text/html; charset=UTF-8')
        p = p[len('/v1'):].lstrip('/')
        sa_prefix = 'instance/service-accounts/'
        simple = {
            '': 'instance/\nproject/\nuniverse/\n',
            'project/project-id': st.project,
            'project/numeric-project-id': st.project_number,
            'instance/region': f'projects/{st.project_number}/regions/{st.region}',
            'instance/zone': f'projects/{st.project_number}/zones/{st.region}-1',
            'instance/id': '4520031799277581759',
            'instance/hostname': 'localhost',
            'universe/universe-domain': 'googleapis.com',
            'universe/universe_domain': 'googleapis.com',
            'instance/service-accounts': 'default/\n' + st.sa_email + '/\n',
            'instance/service-accounts/': 'default/\n' + st.sa_email + '/\n',
        }
        if p in simple:
            return text_resp(200, simple[p], mf)
        if p.startswith(sa_prefix):
            rest = p[len(sa_prefix):]
            acct, _, leaf = rest.partition('/')
            if acct not in ('default', st.sa_email):
                return text_resp(404, 'Not Found\n', mf, 'text/html; charset=UTF-8')
            scopes = [CLOUD_PLATFORM]
            if leaf == '':
                info = {'aliases': ['default'], 'email': st.sa_email, 'scopes': scopes}
                if req.query.get('recursive') == 'true':
                    return Resp(200, json.dumps(info), mf, 'application/json')
                return text_resp(200, 'aliases\nemail\nidentity\nscopes\ntoken\n', mf)
            if leaf == 'email':
                return text_resp(200, st.sa_email, mf)
            if leaf == 'aliases':
                return text_resp(200, 'default', mf)
            if leaf == 'scopes':
                return text_resp(200, '\n'.join(scopes) + '\n', mf)
            if leaf == 'token':
                req_scopes = [s for s in (req.query.get('scopes') or '').split(',') if s] or scopes
                tok, ttl = st.issue_token(st.sa_email, req_scopes, 'metadata')
                return Resp(200, json.dumps({'access_token': tok, 'expires_in': ttl,
                                             'token_type': 'Bearer'}), mf, 'application/json')
            if leaf == 'identity':
                aud = req.query.get('audience')
                if not aud:
                    return text_resp(400, 'non-empty audience parameter required\n', mf)
                return text_resp(200, self.id_token(st.sa_email, st.sas[st.sa_email].unique_id,
                                                    aud), mf)
        return text_resp(404, 'Not Found\n', mf, 'text/html; charset=UTF-8')


# --------------------------------------------------------------------------------------------
# Cloud Storage JSON API

class StorageService:
    def __init__(self, st):
        self.st = st

    # ---- helpers ---------------------------------------------------------------------------
    def base(self, req):
        return f'http://{req.host}' if req.host else self.st.base_url

    def bucket(self, name):
        with self.st.lock:
            b = self.st.buckets.get(name)
        if b is None:
            raise ApiError(gcs_error(404, 'notFound', 'The specified bucket does not exist.'))
        return b

    def obj_json(self, o, base):
        qn = quote(o.name, safe='')
        qb = quote(o.bucket, safe='')
        d = {'kind': 'storage#object', 'id': f'{o.bucket}/{o.name}/{o.generation}',
             'selfLink': f'{base}/storage/v1/b/{qb}/o/{qn}',
             'mediaLink': f'{base}/download/storage/v1/b/{qb}/o/{qn}?generation={o.generation}&alt=media',
             'name': o.name, 'bucket': o.bucket, 'generation': str(o.generation),
             'metageneration': str(o.metageneration), 'contentType': o.content_type,
             'storageClass': 'STANDARD', 'size': str(len(o.data))}
        if o.md5 is not None:
            d['md5Hash'] = o.md5
        d['crc32c'] = o.crc
        d['etag'] = o.etag
        d['timeCreated'] = rfc3339(o.created, 3)
        d['updated'] = rfc3339(o.updated, 3)
        d['timeStorageClassUpdated'] = rfc3339(o.created, 3)
        for attr, key in (('content_encoding', 'contentEncoding'),
                          ('content_disposition', 'contentDisposition'),
                          ('content_language', 'contentLanguage'),
                          ('cache_control', 'cacheControl'), ('custom_time', 'customTime')):
            v = getattr(o, attr)
            if v is not None:
                d[key] = v
        if o.component_count:
            d['componentCount'] = o.component_count
        if o.metadata:
            d['metadata'] = dict(o.metadata)
        return d

    @staticmethod
    def precond_values(q, prefix=''):
        out = {}
        for k in ('ifGenerationMatch', 'ifGenerationNotMatch', 'ifMetagenerationMatch',
                  'ifMetagenerationNotMatch'):
            key = prefix + (k[0].upper() + k[1:] if prefix else k)
            if key in q:
                try:
                    out[k] = parse_int(q[key])
                except ValueError:
                    raise ApiError(gcs_error(400, 'invalid',
                                             f"Invalid value for parameter '{key}': {q[key]}"))
        return out

    @staticmethod
    def check_preconds(obj, pre, for_read=False):
        """Raises ApiError(412, or 304 for reads whose *NotMatch condition fails)."""
        def fail(not_match):
            if for_read and not_match:
                raise ApiError(Resp(304, b''))
            raise ApiError(gcs_error(412, 'conditionNotMet', 'At least one of the pre-conditions '
                                     'you specified did not hold.',
                                     extra={'locationType': 'header', 'location': 'If-Match'}))
        if 'ifGenerationMatch' in pre:
            g = pre['ifGenerationMatch']
            if g == 0:
                if obj is not None:
                    fail(False)
            elif obj is None or obj.generation != g:
                fail(False)
        if 'ifGenerationNotMatch' in pre:
            g = pre['ifGenerationNotMatch']
            if obj is None:
                fail(False)
            elif g != 0 and obj.generation == g:
                fail(True)
        if 'ifMetagenerationMatch' in pre:
            if obj is None or obj.metageneration != pre['ifMetagenerationMatch']:
                fail(False)
        if 'ifMetagenerationNotMatch' in pre:
            if obj is None:
                fail(False)
            elif obj.metageneration == pre['ifMetagenerationNotMatch']:
                fail(True)

    @staticmethod
    def valid_name(name):
        if not name:
            raise ApiError(gcs_error(400, 'required', 'Required'))
        raw = name.encode('utf-8', 'surrogatepass')
        if len(raw) > 1024 or '\r' in name or '\n' in name or name in ('.', '..') \
                or name.startswith('.well-known/acme-challenge/'):
            raise ApiError(gcs_error(400, 'invalid', 'The specified object name is not valid.'))

    @staticmethod
    def parse_goog_hash(v):
        out = {}
        for part in (v or '').split(','):
            k, _, val = part.strip().partition('=')
            if k and val:
                out[k.strip().lower()] = val.strip()
        return out

    def store(self, req, bucket_name, name, data, attrs, pre, expect_md5=None, expect_crc=None,
              composite=False):
        """Create a new generation of an object (all upload types, compose, copy)."""
        self.valid_name(name)
        data = bytes(data)
        crc = crc32c_b64(data)
        md5 = None if composite else b64e(hashlib.md5(data).digest())
        if expect_crc is not None and expect_crc != crc:
            raise ApiError(gcs_error(400, 'invalid', f'Provided CRC32C "{expect_crc}" doesn\'t '
                                     f'match calculated CRC32C "{crc}".'))
        if expect_md5 is not None and expect_md5 != b64e(hashlib.md5(data).digest()):
            raise ApiError(gcs_error(400, 'invalid', f'Provided MD5 hash "{expect_md5}" doesn\'t '
                                     'match calculated MD5 hash '
                                     f'"{b64e(hashlib.md5(data).digest())}".'))
        attrs = dict(attrs)
        attrs['md5'] = md5
        attrs['crc'] = crc
        st = self.st
        with st.lock:
            b = st.buckets.get(bucket_name)
            if b is None:
                raise ApiError(gcs_error(404, 'notFound', 'The specified bucket does not exist.'))
            self.check_preconds(b.objects.get(name), pre)
            obj = GcsObject(bucket_name, name, data, st.next_generation(), attrs, time.time())
            b.objects[name] = obj
        return json_resp(200, self.obj_json(obj, self.base(req)))

    @staticmethod
    def attrs_from_meta(meta):
        if not isinstance(meta, dict):
            raise ApiError(gcs_error(400, 'invalid', 'Object metadata must be a JSON object.'))
        attrs = {}
        for k in ('contentType', 'contentEncoding', 'contentDisposition', 'contentLanguage',
                  'cacheControl', 'customTime'):
            if meta.get(k) is not None:
                attrs[k] = str(meta[k])
        md = meta.get('metadata')
        if md is not None:
            if not isinstance(md, dict):
                raise ApiError(gcs_error(400, 'invalid', 'metadata must be an object'))
            attrs['metadata'] = md
        return attrs

    # ---- dispatch --------------------------------------------------------------------------
    def handle(self, req, body):
        p = req.raw_path
        m = re.fullmatch(r'/(?:resumable/)?upload/storage/v1/b/([^/]+)/o/?', p)
        if m:
            bucket = unquote(m.group(1))
            if 'upload_id' in req.query:
                return self.resumable_request(req, body, bucket)
            if req.method != 'POST':
                return gcs_error(405, 'invalid', 'Method not allowed.')
            ut = req.query.get('uploadType') or ('resumable' if p.startswith('/resumable/') else None)
            if ut == 'media':
                return self.upload_media(req, body, bucket)
            if ut == 'multipart':
                return self.upload_multipart(req, body, bucket)
            if ut == 'resumable':
                return self.resumable_init(req, body, bucket)
            return gcs_error(400, 'invalid', 'Upload requests must include an uploadType URL '
                             'parameter and a URL path beginning with /upload/')
        m = re.fullmatch(r'/download/storage/v1/b/([^/]+)/o/(.+)', p)
        if m:
            if req.method not in ('GET', 'HEAD'):
                return gcs_error(405, 'invalid', 'Method not allowed.')
            return self.get_object(req, unquote(m.group(1)), self.decode_name(m.group(2)), True)
        if p in ('/storage/v1/b', '/storage/v1/b/'):
            if req.method == 'GET':
                with self.st.lock:
                    items = [self.bucket_json(b) for _, b in sorted(self.st.buckets.items())]
                return json_resp(200, {'kind': 'storage#buckets', 'items': items})
            if req.method == 'POST':
                return self.insert_bucket(req, body)
            return gcs_error(405, 'invalid', 'Method not allowed.')
        m = re.fullmatch(r'/storage/v1/b/([^/]+)/?', p)
        if m:
            name = unquote(m.group(1))
            if req.method == 'GET':
                return json_resp(200, self.bucket_json(self.bucket(name)))
            if req.method == 'DELETE':
                b = self.bucket(name)
                with self.st.lock:
                    if b.objects:
                        return gcs_error(409, 'conflict', 'The bucket you tried to delete is not empty.')
                    del self.st.buckets[name]
                return Resp(204)
            return gcs_error(405, 'invalid', 'Method not allowed.')
        m = re.fullmatch(r'/storage/v1/b/([^/]+)/o/?', p)
        if m:
            if req.method == 'GET':
                return self.list_objects(req, unquote(m.group(1)))
            return gcs_error(400, 'invalid', 'Use the /upload/ endpoint to insert objects.')
        m = re.fullmatch(r'/storage/v1/b/([^/]+)/o/(.+)', p)
        if m:
            bucket, rest = unquote(m.group(1)), m.group(2)
            if req.method == 'POST':
                if rest.endswith('/compose'):
                    return self.compose(req, body, bucket, self.decode_name(rest[:-len('/compose')]))
                mm = re.fullmatch(r'(.+)/(rewriteTo|copyTo)/b/([^/]+)/o/(.+)', rest)
                if mm:
                    return self.copy(req, body, bucket, self.decode_name(mm.group(1)),
                                     unquote(mm.group(3)), self.decode_name(mm.group(4)),
                                     mm.group(2) == 'rewriteTo')
                return gcs_error(405, 'invalid', 'Method not allowed.')
            name = self.decode_name(rest)
            if req.method in ('GET', 'HEAD'):
                return self.get_object(req, bucket, name, req.query.get('alt') == 'media')
            if req.method == 'DELETE':
                return self.delete_object(req, bucket, name)
            if req.method in ('PATCH', 'PUT'):
                return self.patch_object(req, body, bucket, name, req.method == 'PUT')
            return gcs_error(405, 'invalid', 'Method not allowed.')
        return gcs_error(404, 'notFound', 'Not Found')

    @staticmethod
    def decode_name(raw):
        try:
            return unquote(raw, errors='strict')
        except UnicodeDecodeError:
            raise ApiError(gcs_error(400, 'invalid', 'The object name is not valid UTF-8.'))

    def bucket_json(self, b):
        mg = getattr(b, 'metageneration', 1)
        d = {'kind': 'storage#bucket', 'id': b.name, 'name': b.name,
             'projectNumber': self.st.project_number, 'metageneration': str(mg),
             'location': getattr(b, 'location', None) or self.st.region.upper(),
             'storageClass': 'STANDARD', 'etag': b64e(f'{b.name}/{mg}'.encode())[:8],
             'timeCreated': rfc3339(b.created, 3), 'updated': rfc3339(b.created, 3),
             'locationType': 'region'}
        for k in ('lifecycle', 'labels', 'iamConfiguration', 'versioning'):
            v = getattr(b, 'meta_' + k, None)
            if v:
                d[k] = v
        return d

    def insert_bucket(self, req, body):
        try:
            meta = json.loads(body or b'{}')
            name = meta['name']
        except Exception:
            return gcs_error(400, 'required', 'Required')
        if not re.fullmatch(r'[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]', name):
            return gcs_error(400, 'invalid', 'Invalid bucket name')
        with self.st.lock:
            if name in self.st.buckets:
                return gcs_error(409, 'conflict', 'Your previous request to create the named '
                                 'bucket succeeded and you already own it.')
            b = Bucket(name, req.query.get('project') or self.st.project, time.time())
            for k in ('lifecycle', 'labels', 'iamConfiguration', 'versioning'):
                if meta.get(k):
                    setattr(b, 'meta_' + k, meta[k])
            if meta.get('location'):
                b.location = str(meta['location']).upper()
            self.st.buckets[name] = b
        return json_resp(200, self.bucket_json(b))

    # ---- uploads ---------------------------------------------------------------------------
    def upload_media(self, req, body, bucket):
        self.bucket(bucket)
        name = req.query.get('name')
        if not name:
            return gcs_error(400, 'required', 'Required')
        attrs = {'contentType': req.header('Content-Type') or 'application/octet-stream'}
        for k in ('contentEncoding',):
            if k in req.query:
                attrs[k] = req.query[k]
        meta = {}
        for k, v in req.headers.items():
            if k.lower().startswith('x-goog-meta-'):
                meta[k[len('x-goog-meta-'):]] = v
        if meta:
            attrs['metadata'] = meta
        hashes_ = self.parse_goog_hash(req.header('x-goog-hash'))
        return self.store(req, bucket, name, body, attrs, self.precond_values(req.query),
                          hashes_.get('md5'), hashes_.get('crc32c'))

    def upload_multipart(self, req, body, bucket):
        self.bucket(bucket)
        ctype = req.header('Content-Type', '')
        if not ctype.lower().startswith('multipart/'):
            return gcs_error(400, 'invalid', 'Multipart uploads need a multipart/related body.')
        try:
            parts = parse_multipart_related(body, ctype)
        except ValueError as e:
            return gcs_error(400, 'invalid', f'Invalid multipart request: {e}')
        if len(parts) != 2:
            return gcs_error(400, 'invalid', 'Invalid multipart request with '
                             f'{len(parts)} parts; expected 2 (metadata, media).')
        (mh, mdata), (dh, data) = parts
        try:
            meta = json.loads(mdata.decode('utf-8')) if mdata.strip() else {}
        except Exception:
            return gcs_error(400, 'parseError', 'Parse Error')
        attrs = self.attrs_from_meta(meta)
        if 'contentType' not in attrs:
            attrs['contentType'] = dh.get('content-type') or 'application/octet-stream'
        name = meta.get('name') or req.query.get('name')
        return self.store(req, bucket, name, data, attrs, self.precond_values(req.query),
                          meta.get('md5Hash'), meta.get('crc32c'))

    def resumable_init(self, req, body, bucket):
        self.bucket(bucket)
        meta = {}
        if body and body.strip():
            try:
                meta = json.loads(body.decode('utf-8'))
            except Exception:
                return gcs_error(400, 'parseError', 'Parse Error')
        attrs = self.attrs_from_meta(meta)
        if 'contentType' not in attrs:
            attrs['contentType'] = req.header('X-Upload-Content-Type') or 'application/octet-stream'
        name = meta.get('name') or req.query.get('name')
        self.valid_name(name)
        total = None
        xl = req.header('X-Upload-Content-Length')
        if xl is not None:
            try:
                total = int(xl)
            except ValueError:
                return gcs_error(400, 'invalid', 'Invalid X-Upload-Content-Length')
        pre = self.precond_values(req.query)
        expect = {'md5': meta.get('md5Hash'), 'crc32c': meta.get('crc32c')}
        sid = 'ADPycd' + secrets.token_urlsafe(36)
        sess = UploadSession(sid, bucket, name, attrs, pre, total)
        sess.expect = expect
        with self.st.lock:
            self.st.sessions[sid] = sess
        loc = (f'{self.base(req)}/upload/storage/v1/b/{quote(bucket, safe="")}/o'
               f'?uploadType=resumable&name={quote(name, safe="")}&upload_id={sid}')
        return Resp(200, b'', [('Location', loc), ('X-GUploader-UploadID', sid)], 'text/plain; charset=utf-8')

    CR_RE = re.compile(r'\s*bytes\s+(?:\*|(\d+)-(\d+))/(\*|\d+)\s*', re.I)

    def _session(self, req, bucket):
        sid = req.query.get('upload_id')
        with self.st.lock:
            sess = self.st.sessions.get(sid)
        if sess is None or sess.bucket != bucket:
            raise ApiError(gcs_error(404, 'notFound', 'No such upload.'))
        return sess

    def _range_header(self, sess):
        return [('Range', f'bytes=0-{len(sess.data) - 1}')] if sess.data else []

    def _finalize(self, req, sess, headers_hash):
        exp = dict(sess.expect)
        for k, v in headers_hash.items():
            if k in ('md5', 'crc32c'):
                exp[k] = v
        try:
            resp = self.store(req, sess.bucket, sess.name, sess.data, sess.attrs, sess.preconds,
                              exp.get('md5'), exp.get('crc32c'))
        except ApiError as e:
            resp = e.resp
        sess.result = resp
        return resp

    def resumable_request(self, req, body, bucket):
        sess = self._session(req, bucket)
        if req.method == 'DELETE':
            with sess.lock:
                sess.cancelled = True
            with self.st.lock:
                self.st.sessions.pop(sess.id, None)
            return Resp(499, b'', reason='Client Closed Request')
        if req.method not in ('PUT', 'POST'):
            return gcs_error(405, 'invalid', 'Method not allowed.')
        with sess.lock:
            if sess.cancelled:
                return gcs_error(404, 'notFound', 'No such upload.')
            if sess.result is not None:
                if sess.result.status == 200 and sess.result.json is not None:
                    # already complete: answer with the current view of the object
                    return json_resp(200, sess.result.json)
                return sess.result
            cr = req.header('Content-Range')
            if cr is None:
                if sess.data:
                    return gcs_error(400, 'invalid', 'Content-Range header required.')
                if sess.total is not None and sess.total != len(body):
                    return gcs_error(400, 'invalid', 'Request body size does not match '
                                     'X-Upload-Content-Length.')
                sess.data += body
                return self._finalize(req, sess, self.parse_goog_hash(req.header('x-goog-hash')))
            m = self.CR_RE.fullmatch(cr)
            if not m:
                return gcs_error(400, 'invalid', f'Failed to parse Content-Range header: {cr}')
            total = None if m.group(3) == '*' else int(m.group(3))
            if total is not None:
                if sess.total is not None and sess.total != total:
                    return gcs_error(400, 'invalid', f'The total size {total} differs from the '
                                     f'previously declared {sess.total}.')
            cur = len(sess.data)
            if m.group(1) is None:  # bytes */TOTAL or bytes */*: status query (or finalize)
                if body:
                    return gcs_error(400, 'invalid', 'A "bytes */N" Content-Range must have an '
                                     'empty body.')
                if total is not None:
                    if cur > total:
                        return gcs_error(400, 'invalid', f'Total size {total} is smaller than the '
                                         f'{cur} bytes already uploaded.')
                    sess.total = total
                    if cur == total:
                        return self._finalize(req, sess, self.parse_goog_hash(req.header('x-goog-hash')))
                return Resp(308, b'', self._range_header(sess), reason='Resume Incomplete')
            start, end = int(m.group(1)), int(m.group(2))
            if end < start or len(body) != end - start + 1:
                return gcs_error(400, 'invalid', f'Content-Range {cr} does not match the '
                                 f'{len(body)} byte(s) in the request body.')
            if total is not None and end >= total:
                return gcs_error(400, 'invalid', f'Content-Range {cr} ends beyond the total size.')
            if start > cur:
                return gcs_error(400, 'invalid', 'Invalid request. According to the Content-Range '
                                 f'header, the upload offset is {start} byte(s), which exceeds '
                                 f'already uploaded size of {cur} byte(s).')
            if total is not None:
                sess.total = total
            final = sess.total is not None and end + 1 == sess.total
            if not final and len(body) % RESUMABLE_UNIT:
                if self.st.config['resumable_chunk_mode'] == 'strict':
                    return gcs_error(400, 'invalid', 'Invalid request. The number of bytes '
                                     'uploaded is required to be a multiple of 262144, except '
                                     'for the final request. The received request contained '
                                     f'{len(body)} bytes, which does not meet this requirement.')
                keep = len(body) - len(body) % RESUMABLE_UNIT
                body = body[:keep]
                end = start + keep - 1
            if end >= cur:
                sess.data += body[cur - start:]
            if final and len(sess.data) == sess.total:
                return self._finalize(req, sess, self.parse_goog_hash(req.header('x-goog-hash')))
            return Resp(308, b'', self._range_header(sess), reason='Resume Incomplete')

    def resumable_partial(self, req, received):
        """A chunk PUT whose connection died after `received` bytes of body."""
        mode = self.st.config['resumable_partial_persist']
        if mode == 'none' or req.method not in ('PUT', 'POST'):
            return
        sid = req.query.get('upload_id')
        with self.st.lock:
            sess = self.st.sessions.get(sid)
        if sess is None:
            return
        m = self.CR_RE.fullmatch(req.header('Content-Range') or '')
        if not m or m.group(1) is None:
            return
        start = int(m.group(1))
        with sess.lock:
            if sess.result is not None or sess.cancelled:
                return
            cur = len(sess.data)
            if start > cur:
                return
            new = received[cur - start:] if cur - start < len(received) else b''
            avail = cur + len(new)
            keep = avail if mode == 'all' else avail - avail % RESUMABLE_UNIT
            if sess.total is not None:
                keep = min(keep, sess.total - 1)  # never completes the upload implicitly
            if keep > cur:
                sess.data += new[:keep - cur]

    # ---- reads -----------------------------------------------------------------------------
    def lookup(self, bucket, name, q):
        b = self.bucket(bucket)
        with self.st.lock:
            obj = b.objects.get(name)
        if obj is not None and 'generation' in q:
            try:
                if parse_int(q['generation']) != obj.generation:
                    obj = None
            except ValueError:
                raise ApiError(gcs_error(400, 'invalid', 'Invalid generation'))
        return obj

    def not_found(self, bucket, name):
        return gcs_error(404, 'notFound', f'No such object: {bucket}/{name}')

    def get_object(self, req, bucket, name, media):
        obj = self.lookup(bucket, name, req.query)
        pre = self.precond_values(req.query)
        if obj is None:
            return self.not_found(bucket, name)
        self.check_preconds(obj, pre, for_read=True)
        if not media:
            return json_resp(200, self.obj_json(obj, self.base(req)))
        data = obj.data
        size = len(data)
        hdrs = [('X-Goog-Generation', str(obj.generation)),
                ('X-Goog-Metageneration', str(obj.metageneration)),
                ('X-Goog-Hash', f'crc32c={obj.crc}' + (f',md5={obj.md5}' if obj.md5 else '')),
                ('X-Goog-Stored-Content-Length', str(size)),
                ('X-Goog-Stored-Content-Encoding', obj.content_encoding or 'identity'),
                ('ETag', f'"{obj.etag}"'), ('Accept-Ranges', 'bytes'),
                ('Last-Modified', email.utils.formatdate(obj.updated, usegmt=True))]
        if obj.content_disposition:
            hdrs.append(('Content-Disposition', obj.content_disposition))
        hdrs.append(('Cache-Control', obj.cache_control or 'private, max-age=0'))
        rng = req.header('Range')
        if rng and size > 0:
            m = re.fullmatch(r'\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*(?:,.*)?', rng)
            if m and (m.group(1) or m.group(2)):
                a, b = m.group(1), m.group(2)
                if a == '':
                    n = int(b)
                    start, end = max(0, size - n), size - 1
                    bad = n == 0
                else:
                    start = int(a)
                    end = min(int(b), size - 1) if b else size - 1
                    bad = start >= size or (b != '' and int(b) < start)
                if bad:
                    r = gcs_error(416, 'requestedRangeNotSatisfiable',
                                  'Request range not satisfiable',
                                  [('Content-Range', f'bytes */{size}')])
                    return r
                hdrs.append(('Content-Range', f'bytes {start}-{end}/{size}'))
                return Resp(206, data[start:end + 1], hdrs, obj.content_type)
        return Resp(200, data, hdrs, obj.content_type)

    def list_objects(self, req, bucket):
        q = req.query
        b = self.bucket(bucket)
        prefix = q.get('prefix', '')
        delim = q.get('delimiter', '')
        start_off = q.get('startOffset', '')
        end_off = q.get('endOffset', '')
        trailing = q.get('includeTrailingDelimiter') == 'true'
        glob = glob_to_regex(q['matchGlob']) if q.get('matchGlob') else None
        try:
            max_results = int(q.get('maxResults', 1000))
        except ValueError:
            return gcs_error(400, 'invalid', 'Invalid maxResults')
        if max_results <= 0:
            return gcs_error(400, 'invalid', 'Invalid maxResults')
        max_results = min(max_results, 1000)
        after = None
        if q.get('pageToken'):
            try:
                tok = json.loads(b64d(q['pageToken']))
                after = (tok['k'], tok['t'])
            except Exception:
                return gcs_error(400, 'invalid', 'Invalid pageToken')
        with self.st.lock:
            objs = sorted(b.objects.values(), key=lambda o: o.name)
        entries = []  # (key, kind 0=prefix 1=item, obj)
        seen = set()
        for o in objs:
            n = o.name
            if prefix and not n.startswith(prefix):
                continue
            if start_off and n < start_off:
                continue
            if end_off and n >= end_off:
                continue
            if glob and not glob.match(n):
                continue
            if delim:
                rest = n[len(prefix):]
                i = rest.find(delim)
                if i >= 0:
                    p = prefix + rest[:i + len(delim)]
                    if p not in seen:
                        seen.add(p)
                        entries.append((p, 0, None))
                    if trailing and i + len(delim) == len(rest):
                        entries.append((n, 1, o))
                    continue
            entries.append((n, 1, o))
        if after is not None:
            entries = [e for e in entries if (e[0], e[1]) > after]
        page, more = entries[:max_results], len(entries) > max_results
        out = {'kind': 'storage#objects'}
        base = self.base(req)
        prefixes = [e[0] for e in page if e[1] == 0]
        items = [self.obj_json(e[2], base) for e in page if e[1] == 1]
        if more:
            last = page[-1]
            out['nextPageToken'] = b64e(json.dumps({'k': last[0], 't': last[1]}).encode())
        if prefixes:
            out['prefixes'] = prefixes
        if items:
            out['items'] = items
        return json_resp(200, out)

    # ---- writes on existing objects --------------------------------------------------------
    def delete_object(self, req, bucket, name):
        pre = self.precond_values(req.query)
        with self.st.lock:
            obj = self.lookup(bucket, name, req.query)
            if obj is None:
                return self.not_found(bucket, name)
            self.check_preconds(obj, pre)
            del self.st.buckets[bucket].objects[name]
        return Resp(204)

    def patch_object(self, req, body, bucket, name, replace):
        try:
            meta = json.loads(body or b'{}')
        except Exception:
            return gcs_error(400, 'parseError', 'Parse Error')
        pre = self.precond_values(req.query)
        if not isinstance(meta, dict):
            return gcs_error(400, 'invalid', 'Object metadata must be a JSON object.')
        with self.st.lock:
            obj = self.lookup(bucket, name, req.query)
            if obj is None:
                return self.not_found(bucket, name)
            self.check_preconds(obj, pre)
            for key, attr in (('contentType', 'content_type'), ('contentEncoding', 'content_encoding'),
                              ('contentDisposition', 'content_disposition'),
                              ('contentLanguage', 'content_language'),
                              ('cacheControl', 'cache_control'), ('customTime', 'custom_time')):
                if key in meta or replace:
                    v = meta.get(key)
                    if key == 'contentType' and v is None:
                        v = 'application/octet-stream'
                    setattr(obj, attr, v)
            if 'metadata' in meta or replace:
                md = meta.get('metadata') or {}
                newmd = {} if replace else dict(obj.metadata)
                for k, v in md.items():
                    if v is None:
                        newmd.pop(k, None)
                    else:
                        newmd[k] = str(v)
                obj.metadata = newmd
            obj.metageneration += 1
            obj.updated = time.time()
            return json_resp(200, self.obj_json(obj, self.base(req)))

    def compose(self, req, body, bucket, name):
        try:
            spec = json.loads(body or b'{}')
        except Exception:
            return gcs_error(400, 'parseError', 'Parse Error')
        sources = spec.get('sourceObjects') if isinstance(spec, dict) else None
        if not sources or not isinstance(sources, list):
            return gcs_error(400, 'required', 'Required')
        if len(sources) > 32:
            return gcs_error(400, 'invalid', 'The number of source components provided '
                             f'({len(sources)}) exceeds the maximum (32)')
        pre = self.precond_values(req.query)
        dest = spec.get('destination') or {}
        attrs = self.attrs_from_meta(dest)
        b = self.bucket(bucket)
        with self.st.lock:
            parts, count = [], 0
            for s in sources:
                if not isinstance(s, dict) or not s.get('name'):
                    return gcs_error(400, 'required', 'Required')
                o = b.objects.get(s['name'])
                if o is None:
                    return self.not_found(bucket, s['name'])
                try:
                    if 'generation' in s and parse_int(s['generation']) != o.generation:
                        return self.not_found(bucket, s['name'])
                    op = s.get('objectPreconditions') or {}
                    if 'ifGenerationMatch' in op and parse_int(op['ifGenerationMatch']) != o.generation:
                        return gcs_error(412, 'conditionNotMet', 'At least one of the '
                                         'pre-conditions you specified did not hold.')
                except ValueError:
                    return gcs_error(400, 'invalid', 'Invalid generation')
                parts.append(o.data)
                count += o.component_count or 1
            if count > 1024:
                return gcs_error(400, 'invalid', 'The number of components in the composite '
                                 f'object ({count}) would exceed the maximum (1024).')
            if 'contentType' not in attrs:
                attrs['contentType'] = 'application/octet-stream'
            attrs['componentCount'] = count
            return self.store(req, bucket, name, b''.join(parts), attrs, pre, composite=True)

    def copy(self, req, body, sbucket, sname, dbucket, dname, rewrite):
        try:
            meta = json.loads(body) if body and body.strip() else {}
        except Exception:
            return gcs_error(400, 'parseError', 'Parse Error')
        src = self.lookup(sbucket, sname, {'generation': req.query['sourceGeneration']}
                          if 'sourceGeneration' in req.query else {})
        if src is None:
            return self.not_found(sbucket, sname)
        self.check_preconds(src, self.precond_values(req.query, 'ifSource'))
        attrs = {'contentType': src.content_type, 'metadata': dict(src.metadata)}
        for attr, key in (('content_encoding', 'contentEncoding'),
                          ('content_disposition', 'contentDisposition'),
                          ('content_language', 'contentLanguage'),
                          ('cache_control', 'cacheControl')):
            if getattr(src, attr) is not None:
                attrs[key] = getattr(src, attr)
        if meta:
            attrs.update(self.attrs_from_meta(meta))
        resp = self.store(req, dbucket, dname, src.data, attrs, self.precond_values(req.query),
                          composite=bool(src.component_count))
        if not rewrite:
            return resp
        size = str(len(src.data))
        return json_resp(200, {'kind': 'storage#rewriteResponse', 'totalBytesRewritten': size,
                               'objectSize': size, 'done': True, 'resource': resp.json})


# --------------------------------------------------------------------------------------------
# Cloud KMS

class KmsService:
    PREFIX = b'CCRFAKEKMS1'

    def __init__(self, st):
        self.st = st

    def _key(self, name, create):
        st = self.st
        with st.lock:
            k = st.kms_keys.get(name)
            if k is None and create:
                k = {'versions': {1: 'ENABLED'}, 'primary': 1}
                st.kms_keys[name] = k
            return k

    def _material(self, name, version):
        return hmac.new(self.st.kms_master, f'{name}/cryptoKeyVersions/{version}'.encode(),
                        hashlib.sha256).digest()

    def handle(self, req, body):
        m = re.fullmatch(r'/v1/projects/([^/]+)/locations/([^/]+)/keyRings/([^/]+)/cryptoKeys/'
                         r'([^/:]+)(?:/cryptoKeyVersions/([^/:]+))?:(encrypt|decrypt)', req.path)
        if not m:
            return aip_error(404, 'Method not found.')
        if req.method != 'POST':
            return aip_error(405, 'Method not allowed.', 'INVALID_ARGUMENT')
        project = self.st.norm_project(m.group(1))
        name = f'projects/{project}/locations/{m.group(2)}/keyRings/{m.group(3)}/cryptoKeys/{m.group(4)}'
        key = self._key(name, self.st.config['kms_auto_create'])
        if key is None:
            return aip_error(404, f'{name} not found.')
        try:
            reqj = json.loads(body or b'{}')
            if not isinstance(reqj, dict):
                raise ValueError
        except Exception:
            return aip_error(400, 'Invalid JSON payload received.')
        if m.group(6) == 'encrypt':
            return self.encrypt(name, key, m.group(5), reqj)
        if m.group(5):
            return aip_error(400, 'Decrypt must be called on a CryptoKey, not a CryptoKeyVersion.')
        return self.decrypt(name, key, reqj)

    @staticmethod
    def _bytes_field(reqj, field, required):
        v = reqj.get(field)
        if v is None or v == '':
            if required:
                raise ApiError(aip_error(400, f'{field} is required.'))
            return b''
        try:
            return b64d(v)
        except ValueError:
            raise ApiError(aip_error(400, f"Invalid value at '{field}' (TYPE_BYTES), Base64 "
                                     'decoding failed.'))

    @staticmethod
    def _check_crc(reqj, field, data, snake):
        if field not in reqj or reqj[field] is None:
            return False
        try:
            want = parse_int(reqj[field])
        except ValueError:
            raise ApiError(aip_error(400, f"Invalid value at '{field}' (TYPE_INT64)"))
        if want != crc32c(data):
            data_field = snake.replace('_crc32c', '')
            raise ApiError(aip_error(400, f'The checksum in field {snake} did not match the data '
                                     f'in field {data_field}.'))
        return True

    def _resp(self, obj):
        if self.st.config['omit_default_fields']:
            obj = prune_defaults(obj)
        return json_resp(200, obj)

    def encrypt(self, name, key, version, reqj):
        pt = self._bytes_field(reqj, 'plaintext', True)
        aad = self._bytes_field(reqj, 'additionalAuthenticatedData', False)
        if len(pt) > 65536:
            return aip_error(400, 'The plaintext exceeds the maximum size of 65536 bytes.')
        if len(aad) > 65536:
            return aip_error(400, 'The additional authenticated data exceeds the maximum size '
                             'of 65536 bytes.')
        vpt = self._check_crc(reqj, 'plaintextCrc32c', pt, 'plaintext_crc32c')
        vaad = self._check_crc(reqj, 'additionalAuthenticatedDataCrc32c', aad,
                               'additional_authenticated_data_crc32c')
        with self.st.lock:
            v = int(version) if version and version.isdigit() else key['primary']
            state = key['versions'].get(v)
        if state is None:
            return aip_error(404, f'{name}/cryptoKeyVersions/{version} not found.')
        if state != 'ENABLED':
            return aip_error(400, f'{name}/cryptoKeyVersions/{v} is not enabled, current state '
                             f'is: {state}.', 'FAILED_PRECONDITION')
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._material(name, v)).encrypt(nonce, pt, name.encode() + b'\0' + aad)
        ct = self.PREFIX + v.to_bytes(4, 'big') + nonce + sealed
        return self._resp({'name': f'{name}/cryptoKeyVersions/{v}', 'ciphertext': b64e(ct),
                           'ciphertextCrc32c': str(crc32c(ct)),
                           'verifiedPlaintextCrc32c': vpt,
                           'verifiedAdditionalAuthenticatedDataCrc32c': vaad,
                           'protectionLevel': 'SOFTWARE'})

    def decrypt(self, name, key, reqj):
        ct = self._bytes_field(reqj, 'ciphertext', True)
        aad = self._bytes_field(reqj, 'additionalAuthenticatedData', False)
        self._check_crc(reqj, 'ciphertextCrc32c', ct, 'ciphertext_crc32c')
        self._check_crc(reqj, 'additionalAuthenticatedDataCrc32c', aad,
                        'additional_authenticated_data_crc32c')
        bad = aip_error(400, 'Decryption failed: the ciphertext is invalid.')
        p = len(self.PREFIX)
        if len(ct) < p + 4 + 12 + 16 or not ct.startswith(self.PREFIX):
            return bad
        v = int.from_bytes(ct[p:p + 4], 'big')
        with self.st.lock:
            state = key['versions'].get(v)
            primary = key['primary']
        if state is None:
            return bad
        if state != 'ENABLED':
            return aip_error(400, f'{name}/cryptoKeyVersions/{v} is not enabled, current state '
                             f'is: {state}.', 'FAILED_PRECONDITION')
        try:
            pt = AESGCM(self._material(name, v)).decrypt(ct[p + 4:p + 16], ct[p + 16:],
                                                        name.encode() + b'\0' + aad)
        except InvalidTag:
            return bad
        return self._resp({'plaintext': b64e(pt), 'plaintextCrc32c': str(crc32c(pt)),
                           'usedPrimary': v == primary, 'protectionLevel': 'SOFTWARE'})


# --------------------------------------------------------------------------------------------
# Secret Manager

class SecretService:
    def __init__(self, st):
        self.st = st

    def key(self, project, secret):
        return (self.st.norm_project(project), secret)

    def add_version(self, project, secret, data, state='ENABLED'):
        with self.st.lock:
            s = self.st.secrets.setdefault(self.key(project, secret), {'versions': {}})
            n = max(s['versions'], default=0) + 1
            s['versions'][n] = {'data': data, 'state': state, 'created': time.time()}
            return n

    def handle(self, req, body):
        m = re.fullmatch(r'/v1/projects/([^/]+)(?:/locations/([^/]+))?/secrets/([^/]+)/versions/'
                         r'([^/:]+):access', req.path)
        if not m:
            return aip_error(404, 'Method not found.')
        if req.method != 'GET':
            return aip_error(405, 'Method not allowed.', 'INVALID_ARGUMENT')
        project, secret, ver = m.group(1), m.group(3), m.group(4)
        num = self.st.project_number
        loc = f'/locations/{m.group(2)}' if m.group(2) else ''
        sname = f'projects/{num}{loc}/secrets/{secret}'
        with self.st.lock:
            s = self.st.secrets.get(self.key(project, secret))
            if s is None or not s['versions']:
                return aip_error(404, f'Secret [{sname}] not found or has no versions.')
            if ver == 'latest':
                # "latest" is the most recently created version, whatever its state
                n = max(s['versions'])
            elif ver.isdigit():
                n = int(ver)
            else:
                return aip_error(400, f'Invalid secret version id: {ver}')
            v = s['versions'].get(n)
            if v is None:
                return aip_error(404, f'Secret Version [{sname}/versions/{ver}] not found.')
            if v['state'] != 'ENABLED':
                return aip_error(400, f'Secret Version [{sname}/versions/{n}] is in '
                                 f"{v['state']} state.", 'FAILED_PRECONDITION')
            data = v['data']
        return json_resp(200, {'name': f'{sname}/versions/{n}',
                               'payload': {'data': b64e(data), 'dataCrc32c': str(crc32c(data))}})


# --------------------------------------------------------------------------------------------
# Cloud Run Admin API v2

def _set_subreaper():
    """Orphaned grandchildren of a job are re-parented to us, so we can reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


class RunService:
    def __init__(self, st):
        self.st = st

    # ---- JSON ------------------------------------------------------------------------------
    def execution_json(self, ex):
        with self.st.lock:
            c, retried = ex.counts()
            outcome = ex.outcome
            t_cond = ex.completion_time or ex.start_time or ex.create_time
            conds = [{'type': 'ResourcesAvailable', 'state': 'CONDITION_SUCCEEDED',
                      'lastTransitionTime': rfc3339(ex.start_time or ex.create_time)}]
            if ex.start_time:
                conds.append({'type': 'Started', 'state': 'CONDITION_SUCCEEDED',
                              'lastTransitionTime': rfc3339(ex.start_time)})
            comp = {'type': 'Completed', 'lastTransitionTime': rfc3339(t_cond)}
            if outcome == 'RUNNING':
                if ex.cancel_requested:
                    comp.update(state='CONDITION_RECONCILING', executionReason='CANCELLING',
                                message='The execution is being cancelled.')
                else:
                    comp.update(state='CONDITION_RECONCILING',
                                message=f"{c['RUNNING']} task(s) running.")
            elif outcome == 'SUCCEEDED':
                comp.update(state='CONDITION_SUCCEEDED',
                            message='Execution completed successfully in '
                            f'{ex.completion_time - (ex.start_time or ex.create_time):.2f}s.')
            elif outcome == 'CANCELLED':
                comp.update(state='CONDITION_FAILED', executionReason='CANCELLED',
                            severity='ERROR', message='The execution was cancelled.')
            else:
                failed = [t for t in ex.tasks if t.state == 'FAILED']
                msg = failed[0].message if failed and failed[0].message else 'Task failed.'
                comp.update(state='CONDITION_FAILED', executionReason='NON_ZERO_EXIT_CODE',
                            severity='ERROR', message=msg)
            conds.append(comp)
            d = {'name': ex.name, 'uid': ex.uid, 'generation': '1',
                 'createTime': rfc3339(ex.create_time), 'updateTime': rfc3339(ex.update_time)}
            if ex.start_time:
                d['startTime'] = rfc3339(ex.start_time)
            if ex.completion_time:
                d['completionTime'] = rfc3339(ex.completion_time)
            d.update({'launchStage': 'GA', 'job': ex.job, 'parallelism': ex.task_count,
                      'taskCount': ex.task_count,
                      # Execution.template is a TaskTemplate (Job.template is not)
                      'template': {'maxRetries': ex.max_retries,
                                   'timeout': f'{int(ex.timeout or 600)}s',
                                   'containers': [{'image': 'fake.local/ccr-job:latest',
                                                   'env': self.execution_env(ex)}]},
                      'reconciling': not ex.done, 'conditions': conds, 'observedGeneration': '1',
                      'runningCount': c['RUNNING'], 'succeededCount': c['SUCCEEDED'],
                      'failedCount': c['FAILED'], 'cancelledCount': c['CANCELLED'],
                      'retriedCount': retried,
                      'logUri': f'{self.st.base_url}/_fake/executions/{ex.exec_id}',
                      'etag': f'"{ex.uid[:8]}-{int(ex.update_time * 1000)}"'})
        if self.st.config['omit_default_fields']:
            d = prune_defaults(d)
        return d

    def operation_json(self, op):
        ex = op.execution
        exj = self.execution_json(ex)
        d = {'name': op.name, 'metadata': dict({'@type': EXEC_TYPE}, **exj), 'done': ex.done}
        if ex.done:
            outcome = ex.outcome
            if outcome == 'SUCCEEDED':
                d['response'] = dict({'@type': EXEC_TYPE}, **exj)
            elif outcome == 'CANCELLED':
                d['error'] = {'code': 1, 'message': 'The execution was cancelled.'}
            else:
                cond = [c for c in exj.get('conditions', []) if c.get('type') == 'Completed']
                d['error'] = {'code': 2, 'message': cond[0].get('message', 'Execution failed.')
                              if cond else 'Execution failed.'}
        if self.st.config['omit_default_fields']:
            d = prune_defaults(d)
        return d

    # ---- dispatch --------------------------------------------------------------------------
    def handle(self, req, body):
        p = req.path
        m = re.fullmatch(r'/v2/projects/([^/]+)/locations/([^/]+)/jobs/([^/:]+):run', p)
        if m:
            if req.method != 'POST':
                return aip_error(405, 'Method not allowed.', 'INVALID_ARGUMENT')
            return self.run(req, body, m.group(1), m.group(2), m.group(3))
        m = re.fullmatch(r'/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/]+/executions/[^/:]+)(:cancel)?', p)
        if m:
            ex = self.find_execution(m.group(1))
            if m.group(2):
                if req.method != 'POST':
                    return aip_error(405, 'Method not allowed.', 'INVALID_ARGUMENT')
                if ex is None:
                    return self.exec_not_found(m.group(1))
                return self.cancel(req, ex)
            if ex is None:
                return self.exec_not_found(m.group(1))
            if req.method == 'GET':
                return json_resp(200, self.execution_json(ex))
            if req.method == 'DELETE':
                if not ex.done:
                    return aip_error(400, f'Execution {ex.name} is still running.',
                                     'FAILED_PRECONDITION')
                op = self.new_operation(ex, 'delete')
                with self.st.lock:
                    self.st.executions.pop(ex.exec_id, None)
                return json_resp(200, self.operation_json(op))
            return aip_error(405, 'Method not allowed.', 'INVALID_ARGUMENT')
        m = re.fullmatch(r'/v2/projects/([^/]+)/locations/([^/]+)/jobs/([^/:]+)/executions', p)
        if m and req.method == 'GET':
            return self.list_executions(req, *m.groups())
        m = re.fullmatch(r'/v2/projects/([^/]+)/locations/([^/]+)/jobs/([^/:]+)', p)
        if m and req.method == 'GET':
            return self.get_job(*m.groups())
        m = re.fullmatch(r'/v2/(projects/[^/]+/locations/[^/]+/operations/[^/:]+)(:wait)?', p)
        if m:
            with self.st.lock:
                op = self.st.operations.get(m.group(1))
            if op is None:
                return aip_error(404, f'Operation {m.group(1)} not found.')
            if m.group(2):
                if req.method != 'POST':
                    return aip_error(405, 'Method not allowed.', 'INVALID_ARGUMENT')
                try:
                    to = parse_duration((json.loads(body or b'{}') or {}).get('timeout', '60s'))
                except Exception:
                    return aip_error(400, 'Invalid timeout.')
                deadline = time.time() + min(to, 120.0)
                while not op.execution.done and time.time() < deadline:
                    time.sleep(0.05)
            elif req.method != 'GET':
                return aip_error(405, 'Method not allowed.', 'INVALID_ARGUMENT')
            return json_resp(200, self.operation_json(op))
        m = re.fullmatch(r'/v2/projects/([^/]+)/locations/([^/]+)/operations', p)
        if m and req.method == 'GET':
            prefix = f'projects/{m.group(1)}/locations/{m.group(2)}/operations/'
            with self.st.lock:
                ops = [o for n, o in self.st.operations.items() if n.startswith(prefix)]
            return json_resp(200, {'operations': [self.operation_json(o) for o in ops]})
        return aip_error(404, 'Method not found.')

    def exec_not_found(self, name):
        return aip_error(404, f"Resource '{name.rsplit('/', 1)[-1]}' of kind 'EXECUTION' in region "
                         f"'{name.split('/')[3]}' in project '{name.split('/')[1]}' does not exist.")

    def job_not_found(self, project, location, job):
        return aip_error(404, f"Resource '{job}' of kind 'JOB' in region '{location}' in project "
                         f"'{project}' does not exist.")

    def find_execution(self, name):
        exec_id = name.rsplit('/', 1)[-1]
        with self.st.lock:
            ex = self.st.executions.get(exec_id)
        if ex is None:
            return None
        parts = name.split('/')
        if (self.st.norm_project(parts[1]) != self.st.norm_project(ex.project)
                or parts[3] != ex.location or parts[5] != ex.job):
            return None
        return ex

    def new_operation(self, ex, kind):
        op = Operation(f'projects/{ex.project}/locations/{ex.location}/operations/{uuid.uuid4()}',
                       ex, kind)
        with self.st.lock:
            self.st.operations[op.name] = op
        return op

    def get_job(self, project, location, job):
        spec = self.st.find_job(project, location, job)
        if spec is None:
            return self.job_not_found(project, location, job)
        name = f'projects/{project}/locations/{location}/jobs/{job}'
        with self.st.lock:
            exs = [e for e in self.st.executions.values()
                   if e.job == job and e.location == location]
            latest = max(exs, key=lambda e: e.create_time) if exs else None
            count = len(exs)
        d = {'name': name, 'uid': str(uuid.uuid5(uuid.NAMESPACE_URL, name)), 'generation': '1',
             'launchStage': 'GA', 'executionCount': count,
             'template': {'taskCount': spec['task_count'], 'parallelism': spec['task_count'],
                          'template': {'maxRetries': spec['max_retries'],
                                       'timeout': f"{int(spec['timeout_seconds'] or 600)}s",
                                       'containers': [{'image': 'fake.local/ccr-job:latest'}]}},
             'terminalCondition': {'type': 'Ready', 'state': 'CONDITION_SUCCEEDED'}}
        if latest:
            d['latestCreatedExecution'] = {'name': latest.name,
                                           'createTime': rfc3339(latest.create_time)}
            if latest.completion_time:
                d['latestCreatedExecution']['completionTime'] = rfc3339(latest.completion_time)
        if self.st.config['omit_default_fields']:
            d = prune_defaults(d)
        return json_resp(200, d)

    @staticmethod
    def execution_env(ex):
        """The container env an execution runs with, as the API shows it in
        template.containers[0].env: the job's env merged with the run's
        containerOverrides env (an override replaces a variable of the same name)."""
        over = {e['name']: e for e in ex.env_overrides}
        env = [over.pop(n, {'name': str(n), 'value': str(v)}) for n, v in ex.spec['env'].items()]
        return env + [e for e in ex.env_overrides if e['name'] in over]

    def list_executions(self, req, project, location, job):
        with self.st.lock:
            exs = [e for e in self.st.executions.values()
                   if (job == '-' or e.job == job) and e.location == location
                   and self.st.norm_project(e.project) == self.st.norm_project(project)]
        exs.sort(key=lambda e: e.create_time, reverse=True)
        try:
            size = int(req.query.get('pageSize') or 100)
            if self.st.config['max_page_size']:
                size = min(size, int(self.st.config['max_page_size']))
            start = int(b64d(req.query['pageToken']).decode()) if req.query.get('pageToken') else 0
        except Exception:
            return aip_error(400, 'Invalid page token or size.')
        page = exs[start:start + size]
        out = {'executions': [self.execution_json(e) for e in page]}
        if start + size < len(exs):
            out['nextPageToken'] = b64e(str(start + size).encode())
        return json_resp(200, out)

    # ---- run -------------------------------------------------------------------------------
    def run(self, req, body, project, location, job):
        st = self.st
        spec = st.find_job(project, location, job)
        if spec is None:
            return self.job_not_found(project, location, job)
        try:
            reqj = json.loads(body) if body and body.strip() else {}
            if not isinstance(reqj, dict):
                raise ValueError
        except Exception:
            return aip_error(400, 'Invalid JSON payload received.')
        ov = reqj.get('overrides') or {}
        co = ov.get('containerOverrides') or []
        if not isinstance(co, list) or len(co) > 1:
            return aip_error(400, 'Exactly one container override is supported by this fake.')
        env_list, args_override, clear_args = [], None, False
        if co:
            c0 = co[0] or {}
            env_list = c0.get('env') or []
            if 'args' in c0:
                args_override = [str(a) for a in c0.get('args') or []]
            clear_args = bool(c0.get('clearArgs'))
        env_overrides = []
        resolved = {}
        for e in env_list:
            if not isinstance(e, dict) or not e.get('name'):
                return aip_error(400, 'Each env var needs a name.')
            n = str(e['name'])
            if n in RESERVED_ENV:
                return aip_error(400, f'The following reserved env names were provided: {n}. '
                                 'These values are automatically set by the system.')
            if 'valueSource' in e:
                ref = (e['valueSource'] or {}).get('secretKeyRef') or {}
                val = self._resolve_secret(project, ref)
                if val is None:
                    return aip_error(400, f"Secret {ref.get('secret')} version "
                                     f"{ref.get('version', 'latest')} is not accessible.")
                env_overrides.append({'name': n, 'valueSource': e['valueSource']})
            else:
                val = self._expand(str(e.get('value', '')), resolved)
                env_overrides.append({'name': n, 'value': str(e.get('value', ''))})
            resolved[n] = val
        task_count = spec['task_count']
        if 'taskCount' in ov:
            try:
                task_count = int(ov['taskCount'])
            except (TypeError, ValueError):
                return aip_error(400, 'Invalid taskCount.')
            if task_count < 1 or task_count > 100:
                return aip_error(400, 'taskCount must be between 1 and 100 in this fake.')
        timeout = spec['timeout_seconds']
        if 'timeout' in ov:
            try:
                timeout = parse_duration(ov['timeout'])
            except ValueError:
                return aip_error(400, f"Invalid value at 'overrides.timeout': {ov['timeout']}")
        argv = None
        if spec['command']:
            args = spec['args']
            if clear_args:
                args = []
            if args_override is not None:
                args = args_override
            argv = list(spec['command']) + list(args)
        if reqj.get('validateOnly'):
            ex = Execution(project, location, job, f'{job}-validate', spec, env_overrides, argv,
                           task_count, timeout, spec['max_retries'])
            return json_resp(200, prune_defaults({'name': f'projects/{project}/locations/'
                                                  f'{location}/operations/{uuid.uuid4()}',
                                                  'metadata': dict({'@type': EXEC_TYPE},
                                                                   **self.execution_json(ex))}))
        alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
        with st.lock:
            while True:
                exec_id = f'{job}-' + ''.join(st.exec_rng.choice(alphabet) for _ in range(5))
                if exec_id not in st.executions:
                    break
            ex = Execution(project, location, job, exec_id, spec, env_overrides, argv, task_count,
                           timeout, spec['max_retries'])
            ex.resolved_env = resolved
            ex.log_dir = os.path.join(st.state_dir, 'executions', exec_id)
            st.executions[exec_id] = ex
        os.makedirs(ex.log_dir, exist_ok=True)
        op = self.new_operation(ex, 'run')
        ex.operation = op
        for t in ex.tasks:
            th = threading.Thread(target=self._task_thread, args=(ex, t), daemon=True,
                                  name=f'task-{exec_id}-{t.index}')
            with st.lock:
                st.task_threads = [x for x in st.task_threads if x.is_alive()] + [th]
            th.start()
        return json_resp(200, self.operation_json(op))

    @staticmethod
    def _expand(value, env):
        """Cloud Run env expansion: $(VAR) -> value of an earlier var, $$(VAR) -> $(VAR)."""
        return re.sub(r'\$\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\(([A-Za-z_][A-Za-z0-9_]*)\)',
                      lambda m: m.group(0)[1:] if m.group(0).startswith('$$')
                      else env.get(m.group(2), m.group(0)), value)

    def _resolve_secret(self, project, ref):
        secret = str(ref.get('secret') or '')
        version = str(ref.get('version') or 'latest')
        m = re.fullmatch(r'projects/([^/]+)/secrets/([^/]+)', secret)
        proj, sname = (m.group(1), m.group(2)) if m else (project, secret)
        with self.st.lock:
            s = self.st.secrets.get((self.st.norm_project(proj), sname))
            if not s or not s['versions']:
                return None
            n = max(s['versions']) if version == 'latest' else int(version) if version.isdigit() else -1
            v = s['versions'].get(n)
            if not v or v['state'] != 'ENABLED':
                return None
            return v['data'].decode('utf-8', 'replace')

    def _task_thread(self, ex, task):
        st = self.st
        try:
            for attempt_no in range(ex.max_retries + 1):
                with st.lock:
                    if ex.cancel_requested:
                        task.state = 'CANCELLED'
                        break
                    att = Attempt(attempt_no)
                    task.attempts.append(att)
                if ex.argv is None:
                    with st.lock:
                        att.start = att.end = time.time()
                        att.exit_code = 0
                        att.done = True
                        ex.start_time = ex.start_time or att.start
                        task.state = 'SUCCEEDED'
                    break
                code = self._run_attempt(ex, task, att)
                with st.lock:
                    if att.kill_reason == 'cancel' or (ex.cancel_requested and code != 0):
                        task.state = 'CANCELLED'
                        break
                    if code == 0:
                        task.state = 'SUCCEEDED'
                        break
                    task.state = 'FAILED'
                    if att.kill_reason == 'timeout':
                        task.message = (f'Task {ex.exec_id}-task{task.index} failed: the task '
                                        f'timed out after {ex.timeout:g}s.')
                    else:
                        task.message = (f'Task {ex.exec_id}-task{task.index} failed with message: '
                                        f'The container exited with an error (exit code {code}).')
                    if att.error:
                        task.message += ' ' + att.error
                    ex.update_time = time.time()
                    if attempt_no < ex.max_retries:
                        task.state = 'PENDING'
        except Exception:
            traceback.print_exc()
            with st.lock:
                task.state = 'FAILED'
                task.message = 'internal error in the fake'
        finally:
            with st.lock:
                if task.state in ('PENDING', 'RUNNING'):
                    task.state = 'FAILED'
                ex.update_time = time.time()
                if all(t.state in ('SUCCEEDED', 'FAILED', 'CANCELLED') for t in ex.tasks):
                    ex.completion_time = time.time()
                    ex.update_time = ex.completion_time

    def _run_attempt(self, ex, task, att):
        st = self.st
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in ex.spec['env'].items()})
        env.update(ex.spec.get('secret_env') or {})
        env.update(ex.resolved_env)
        env.update({'CLOUD_RUN_JOB': ex.job, 'CLOUD_RUN_EXECUTION': ex.exec_id,
                    'CLOUD_RUN_TASK_INDEX': str(task.index),
                    'CLOUD_RUN_TASK_ATTEMPT': str(att.number),
                    'CLOUD_RUN_TASK_COUNT': str(ex.task_count)})
        base = os.path.join(ex.log_dir, f'task{task.index}-attempt{att.number}')
        att.stdout, att.stderr = base + '.stdout', base + '.stderr'
        cwd = ex.spec.get('cwd') or None
        with open(att.stdout, 'wb') as out, open(att.stderr, 'wb') as err:
            try:
                proc = subprocess.Popen(ex.argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=err, start_new_session=True,
                                        close_fds=True)
            except OSError as e:
                err.write(f'fake_gcp: cannot start {ex.argv!r}: {e}\n'.encode())
                with st.lock:
                    att.start = att.end = time.time()
                    att.exit_code = 127
                    att.error = str(e)
                    att.done = True
                    ex.start_time = ex.start_time or att.start
                return 127
        with st.lock:
            att.pid = att.pgid = proc.pid
            att.start = time.time()
            ex.start_time = ex.start_time or att.start
            ex.update_time = att.start
            task.state = 'RUNNING'
            cancel_now = ex.cancel_requested
        if cancel_now:
            self.terminate(ex, att, 'cancel')
        timer = None
        if ex.timeout:
            timer = threading.Timer(ex.timeout, self.terminate, (ex, att, 'timeout'))
            timer.daemon = True
            timer.start()
        status = self._wait_group(proc.pid)
        if timer:
            timer.cancel()
        code = os.waitstatus_to_exitcode(status) if status is not None else 255
        proc.returncode = code
        with st.lock:
            att.end = time.time()
            att.done = True
            if code < 0:
                att.signal = -code
                att.exit_code = 128 - code
            else:
                att.exit_code = code
        return att.exit_code

    @staticmethod
    def _wait_group(pid):
        """Wait for the leader; when it exits, kill and reap the rest of its process group
        (as Cloud Run tears the container down when the main process ends)."""
        status = None
        while True:
            try:
                wpid, st_ = os.waitpid(-pid, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if wpid == pid:
                status = st_
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if status is None:  # leader reaped elsewhere (should not happen)
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                status = None
        return status

    def terminate(self, ex, att, reason):
        with self.st.lock:
            if att.done or att.pgid is None:
                return
            if att.kill_reason is None:
                att.kill_reason = reason
            pgid = att.pgid
            grace = float(self.st.config['cancel_grace_seconds'])
        try:
            os.killpg(pgid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return

        def kill():
            with self.st.lock:
                if att.done:
                    return
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        t = threading.Timer(grace, kill)
        t.daemon = True
        t.start()

    def cancel(self, req, ex):
        with self.st.lock:
            if ex.done:
                return aip_error(400, f'Execution {ex.name} has already completed.',
                                 'FAILED_PRECONDITION')
            first = not ex.cancel_requested
            ex.cancel_requested = True
            ex.cancel_time = ex.cancel_time or time.time()
            ex.update_time = time.time()
            running = [t.current for t in ex.tasks if t.current and not t.current.done
                       and t.current.pgid is not None]
        if first:
            for att in running:
                self.terminate(ex, att, 'cancel')
        op = self.new_operation(ex, 'cancel')
        return json_resp(200, self.operation_json(op))

    def kill_all(self, wait=0.0):
        """SIGKILL every running job's process group; optionally wait for the task threads
        to reap them (so no job process outlives the fake)."""
        with self.st.lock:
            for ex in self.st.executions.values():
                if not ex.done:
                    ex.cancel_requested = True
            atts = [t.current for ex in self.st.executions.values() for t in ex.tasks
                    if t.current and not t.current.done and t.current.pgid]
            threads = list(self.st.task_threads)
        for att in atts:
            att.kill_reason = att.kill_reason or 'cancel'
            try:
                os.killpg(att.pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.time() + wait
        for th in threads:
            th.join(max(0.0, deadline - time.time()))

    def describe(self, ex):
        with self.st.lock:
            return {'name': ex.name, 'exec_id': ex.exec_id, 'job': ex.job, 'project': ex.project,
                    'location': ex.location,
                    'operation': ex.operation.name if ex.operation else None,
                    'state': ex.outcome, 'argv': ex.argv, 'env_overrides': ex.env_overrides,
                    'task_count': ex.task_count, 'timeout': ex.timeout,
                    'max_retries': ex.max_retries, 'cancel_requested': ex.cancel_requested,
                    'create_time': ex.create_time, 'start_time': ex.start_time,
                    'completion_time': ex.completion_time, 'log_dir': ex.log_dir,
                    'tasks': [{'index': t.index, 'state': t.state, 'message': t.message,
                               'attempts': [a.describe() for a in t.attempts]}
                              for t in ex.tasks]}


# --------------------------------------------------------------------------------------------
# Control API

class ControlService:
    def __init__(self, st, services):
        self.st = st
        self.sv = services

    def handle(self, req, body):
        p = req.path.rstrip('/') or '/'
        try:
            data = json.loads(body) if body and body.strip() and not p.startswith('/_fake/objects/') else {}
        except Exception:
            return json_resp(400, {'error': 'body must be JSON'})
        try:
            return self._route(req, p, data, body)
        except (ValueError, KeyError, TypeError) as e:
            return json_resp(400, {'error': f'{type(e).__name__}: {e}'})

    def _route(self, req, p, data, body):
        st = self.st
        meth = req.method
        if p == '/_fake/health':
            return json_resp(200, {'ok': True})
        if p == '/_fake/info':
            return json_resp(200, {'port': st.port, 'url': st.base_url,
                                   'token_uri': st.base_url + '/token', 'project': st.project,
                                   'project_number': st.project_number, 'region': st.region,
                                   'service_account': st.sa_email, 'state_dir': st.state_dir,
                                   'buckets': sorted(st.buckets), 'config': st.config,
                                   'crc32c_impl': 'crcmod' if _CRCMOD else 'python'})
        if p == '/_fake/violations':
            with st.lock:
                out = list(st.violations)
                if meth == 'DELETE':
                    st.violations.clear()
            return json_resp(200, {'violations': out})
        if p == '/_fake/requests':
            if meth == 'DELETE':
                with st.lock:
                    st.log.clear()
                return json_resp(200, {'ok': True})
            since = int(req.query.get('since', 0))
            svc = req.query.get('service')
            prefix = req.query.get('path_prefix')
            with st.lock:
                out = [dict(e) for e in st.log if e['id'] > since
                       and (not svc or e['service'] == svc)
                       and (not prefix or e['path'].startswith(prefix))]
            return json_resp(200, {'requests': out, 'last_id': st.log_seq})
        if p == '/_fake/faults':
            if meth == 'GET':
                return json_resp(200, st.faults.describe())
            if meth == 'DELETE':
                st.faults.clear()
                return json_resp(200, st.faults.describe())
            st.faults.set(data, append=bool(data.get('append')))
            return json_resp(200, st.faults.describe())
        if p == '/_fake/config':
            if meth == 'POST':
                for k, v in data.items():
                    if k not in DEFAULT_CONFIG:
                        raise ValueError(f'unknown config key {k}')
                    with st.lock:
                        st.config[k] = v
            return json_resp(200, st.config)
        if p == '/_fake/reset':
            return self.reset()
        if p == '/_fake/tokens/expire':
            n = st.expire_tokens(data.get('token'))
            return json_resp(200, {'expired': n})
        if p == '/_fake/tokens':
            now = time.time()
            with st.lock:
                live = sum(1 for t in st.tokens.values() if t.expiry > now)
                return json_resp(200, {'issued': len(st.tokens), 'live': live})
        if p == '/_fake/secrets':
            return self.secrets(meth, data)
        if p == '/_fake/executions':
            with st.lock:
                exs = sorted(st.executions.values(), key=lambda e: e.create_time)
            return json_resp(200, {'executions': [self.sv['run'].describe(e) for e in exs]})
        m = re.fullmatch(r'/_fake/executions/([^/]+)', p)
        if m:
            with st.lock:
                ex = st.executions.get(m.group(1))
            if ex is None:
                return json_resp(404, {'error': 'no such execution'})
            return json_resp(200, self.sv['run'].describe(ex))
        if p == '/_fake/jobs':
            if meth == 'POST':
                job = st.register_job(data)
                if data.get('restrict') is not None:
                    st.config['restrict_jobs'] = bool(data['restrict'])
                return json_resp(200, self._job_desc(job))
            with st.lock:
                return json_resp(200, {'jobs': [self._job_desc(j) for j in st.jobs.values()]})
        if p == '/_fake/buckets':
            if meth == 'POST':
                name = data['name']
                with st.lock:
                    if name not in st.buckets:
                        st.buckets[name] = Bucket(name, st.project, time.time())
            with st.lock:
                return json_resp(200, {'buckets': sorted(st.buckets)})
        if p == '/_fake/objects':
            b = self.sv['storage'].bucket(req.query['bucket'])
            with st.lock:
                objs = sorted(b.objects.values(), key=lambda o: o.name)
                return json_resp(200, {'objects': [
                    {'name': o.name, 'size': len(o.data), 'generation': o.generation,
                     'metageneration': o.metageneration, 'contentType': o.content_type,
                     'metadata': o.metadata, 'crc32c': o.crc, 'md5Hash': o.md5,
                     'componentCount': o.component_count} for o in objs]})
        m = re.fullmatch(r'/_fake/objects/([^/]+)/(.+)', req.path)
        if m:
            return self.raw_object(req, unquote(m.group(1)), m.group(2), body)
        if p == '/_fake/uploads':
            with st.lock:
                return json_resp(200, {'uploads': [
                    {'upload_id': s.id, 'bucket': s.bucket, 'name': s.name,
                     'persisted': len(s.data), 'total': s.total,
                     'finished': s.result is not None,
                     'status': s.result.status if s.result else None}
                    for s in st.sessions.values()]})
        if p == '/_fake/service-accounts':
            return self.service_accounts(data)
        if p == '/_fake/service-accounts/revoke':
            with st.lock:
                sa = st.sas.get(data['client_email'])
                if sa is None:
                    return json_resp(404, {'error': 'no such service account'})
                kid = data.get('private_key_id')
                if kid:
                    sa.keys.pop(kid, None)
                else:
                    del st.sas[data['client_email']]
            return json_resp(200, {'ok': True})
        if p == '/_fake/kms/keys':
            name = data['name']
            with st.lock:
                k = st.kms_keys.setdefault(name, {'versions': {1: 'ENABLED'}, 'primary': 1})
                if data.get('rotate'):
                    v = max(k['versions']) + 1
                    k['versions'][v] = 'ENABLED'
                    k['primary'] = v
                for v, s in (data.get('version_states') or {}).items():
                    k['versions'][int(v)] = s
                return json_resp(200, {'name': name, 'primary': k['primary'],
                                       'versions': {str(v): s for v, s in k['versions'].items()}})
        return json_resp(404, {'error': f'unknown control endpoint {req.path}'})

    @staticmethod
    def _job_desc(j):
        return {'key': list(j['key']), 'command': j['command'], 'args': j['args'],
                'env_names': sorted(j['env']), 'max_retries': j['max_retries'],
                'task_count': j['task_count'], 'timeout_seconds': j['timeout_seconds'],
                'cwd': j['cwd']}

    def reset(self):
        st = self.st
        self.sv['run'].kill_all(wait=5.0)
        st.faults.clear()
        st.faults.seed = 0
        st.faults.rng = random.Random(0)
        with st.lock:
            st.log.clear()
            st.violations.clear()
            st.buckets = {b: Bucket(b, st.project, time.time()) for b in st.initial_buckets}
            st.sessions.clear()
            st.secrets.clear()
            st.kms_keys.clear()
            st.jobs = dict(st.initial_jobs)
            st.operations.clear()
            st.config = dict(st.initial_config)
            if st.admin is not None:
                st.admin.__init__(st, st.admin.h)
            # executions are kept until their processes are reaped, then dropped
            st.executions = {k: e for k, e in st.executions.items() if not e.done}
        return json_resp(200, {'ok': True})

    def secrets(self, meth, data):
        st = self.st
        sm = self.sv['secretmanager']
        if meth == 'GET':
            with st.lock:
                return json_resp(200, {'secrets': [
                    {'project': k[0], 'secret': k[1],
                     'versions': {str(n): v['state'] for n, v in s['versions'].items()}}
                    for k, s in st.secrets.items()]})
        name = data.get('name')
        if name:
            m = re.fullmatch(r'projects/([^/]+)/secrets/([^/]+)', name)
            if not m:
                raise ValueError('name must be projects/P/secrets/S')
            project, secret = m.group(1), m.group(2)
        else:
            project, secret = data.get('project', st.project), data['secret']
        if 'version' in data and 'state' in data and 'data' not in data and 'data_b64' not in data:
            with st.lock:
                s = st.secrets[sm.key(project, secret)]
                s['versions'][int(data['version'])]['state'] = data['state']
            return json_resp(200, {'name': f'projects/{project}/secrets/{secret}/versions/'
                                           f"{int(data['version'])}", 'state': data['state']})
        if 'data_b64' in data:
            payload = b64d(data['data_b64'])
        else:
            payload = str(data['data']).encode('utf-8')
        n = sm.add_version(project, secret, payload, data.get('state', 'ENABLED'))
        return json_resp(200, {'name': f'projects/{project}/secrets/{secret}/versions/{n}',
                               'version': n})

    def service_accounts(self, data):
        st = self.st
        email = data.get('client_email') or f'sa-{secrets.token_hex(4)}@{st.project}.iam.gserviceaccount.com'
        with st.lock:
            sa = st.sas.get(email)
            if sa is None:
                sa = ServiceAccount(email, st.project)
                st.sas[email] = sa
        if data.get('public_key_pem'):
            pub = serialization.load_pem_public_key(data['public_key_pem'].encode())
            kid = data.get('private_key_id') or secrets.token_hex(20)
            with st.lock:
                sa.add_key(kid, pub)
            return json_resp(200, {'client_email': email, 'private_key_id': kid})
        key = new_rsa_key()
        kid = secrets.token_hex(20)
        with st.lock:
            sa.add_key(kid, key.public_key())
        info = {'type': 'service_account', 'project_id': st.project, 'private_key_id': kid,
                'private_key': private_pem(key), 'client_email': email,
                'client_id': sa.unique_id, 'token_uri': st.base_url + '/token',
                'universe_domain': 'googleapis.com'}
        return json_resp(200, info)

    def raw_object(self, req, bucket, raw_name, body):
        st = self.st
        storage = self.sv['storage']
        name = storage.decode_name(raw_name)
        if req.method == 'PUT':
            ctype = req.header('Content-Type') or 'application/octet-stream'
            resp = storage.store(req, bucket, name, body, {'contentType': ctype}, {})
            return resp
        b = storage.bucket(bucket)
        with st.lock:
            o = b.objects.get(name)
            if o is None:
                return json_resp(404, {'error': 'no such object'})
            if req.method == 'DELETE':
                del b.objects[name]
                return Resp(204)
        return Resp(200, o.data, [('X-Goog-Generation', str(o.generation))], o.content_type)


# --------------------------------------------------------------------------------------------
# HTTP layer

# --------------------------------------------------------------------------------------------
# The wire check: every Google request and answer against the discovery documents

# response_mode=full leaves these out: their presence carries the scenario's state
FULL_SKIP = {'GoogleCloudRunV2Execution': {'completionTime', 'deleteTime', 'expireTime',
                                           'cancelledCount', 'failedCount', 'succeededCount',
                                           'runningCount', 'retriedCount'},
             'GoogleCloudRunV2TaskTemplate': {'timeout'},
             'GoogleLongrunningOperation': {'error', 'response'},
             'GoogleCloudRunV2EnvVar': {'valueSource'},
             'Object': {'contentEncoding', 'componentCount', 'md5Hash', 'size', 'crc32c',
                        'generation', 'kmsKeyName', 'customerEncryption', 'softDeleteTime',
                        'hardDeleteTime', 'timeDeleted', 'retention', 'retentionExpirationTime'},
             'Objects': {'nextPageToken', 'prefixes'},
             'GoogleCloudRunV2ListExecutionsResponse': {'nextPageToken'},
             'DecryptResponse': {'usedPrimary'},
             'GoogleCloudRunV2Condition': {'executionReason', 'reason', 'revisionReason',
                                           'severity', 'message'}}
# response_mode=minimal leaves these out (besides every field holding a default value): fields
# that only inform, which a client must not need
MINIMAL_DROP = {'uid', 'etag', 'createTime', 'updateTime', 'launchStage', 'logUri',
                'observedGeneration', 'reconciling', 'satisfiesPzs', 'selfLink', 'mediaLink',
                'kind', 'id', 'timeCreated', 'updated', 'timeStorageClassUpdated',
                'storageClass', 'conditions', 'startTime', 'parallelism', 'job',
                'protectionLevel'}


def _minimal(obj):
    obj = prune_defaults(obj)
    if isinstance(obj, dict):
        return {k: _minimal(v) for k, v in obj.items() if k not in MINIMAL_DROP}
    if isinstance(obj, list):
        return [_minimal(x) for x in obj]
    return obj


# the discovery id of each service classify() names (Google tells them apart by host name)
SERVICE_API = {'storage': 'storage:v1', 'kms': 'cloudkms:v1', 'secretmanager': 'secretmanager:v1',
               'run': 'run:v2', 'artifactregistry': 'artifactregistry:v1', 'iam': 'iam:v1',
               'cloudresourcemanager': 'cloudresourcemanager:v3'}


class Wire:
    """Checks requests to storage/kms/secretmanager/run against Google's discovery documents
    (tests/fakes/discovery.py), validates every 2xx JSON answer against the method's response
    schema, shapes answers for response_mode, and records each violation in STATE.violations
    (GET /_fake/violations) so the test that caused it fails."""

    def __init__(self, st):
        self.st = st
        self.api = discovery.Discovery.load()

    def record(self, req, where, errs):
        with self.st.lock:
            for e in errs:
                self.st.violations.append({'method': req.method, 'path': req.raw_path,
                                           'where': where, 'violation': e})

    def request(self, req, body):
        """(Call or None, violations)."""
        if self.st.config['validate'] == 'off':
            return None, []
        try:
            call = self.api.match(req.method, req.raw_path, req.query,
                                  SERVICE_API.get(classify(req.path)))
        except discovery.NoMethod as e:
            bad = [str(e)]
            self.record(req, 'request', bad)
            return None, bad
        doc, bad = self._request_json(call, req, body)
        bad += self.api.check_request(call, req.query, doc)
        self.record(req, 'request', bad)
        return call, bad

    @staticmethod
    def _request_json(call, req, body):
        """The JSON document a request carries (None: none), and violations."""
        if call.media in ('session', 'download'):
            return None, []
        raw = body
        if call.media == 'upload':
            ut = req.query.get('uploadType')
            if ut not in ('multipart', 'resumable'):
                return None, []   # media bytes (or a bad uploadType, which check_request names)
            if ut == 'multipart':
                try:
                    parts = parse_multipart_related(body, req.header('Content-Type', ''))
                except ValueError as e:
                    return None, [f'{call.id}: multipart body: {e}']
                raw = parts[0][1] if parts else b''
        if not raw or not raw.strip():
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            return None, [f'{call.id}: the request body is not JSON']

    def response(self, req, call, resp, entry):
        """resp shaped for response_mode and checked (violations recorded)."""
        if call is None or resp.json is None or not 200 <= resp.status < 300 \
                or call.media == 'download':
            return resp
        obj = self.shape(call, resp.json)
        if obj is not resp.json:
            resp = json_resp(resp.status, obj, resp.headers)
        bad = self.api.check_response(call, obj)
        for k in ('metadata', 'response'):   # an Operation carrying an Execution
            x = obj.get(k) if call.method.get('response', {}).get('$ref') == \
                'GoogleLongrunningOperation' else None
            if isinstance(x, dict) and x.get('@type') == EXEC_TYPE:
                x = {a: b for a, b in x.items() if a != '@type'}
                bad += [f'{call.id}: {k} {e}' for e in self.api.check_value(
                    {'$ref': 'GoogleCloudRunV2Execution'}, x, 'Execution')]
        if bad:
            entry['violations'] = bad
            self.record(req, 'response', bad)
        return resp

    def shape(self, call, obj):
        mode = self.st.config['response_mode']
        ref = (call.method.get('response') or {}).get('$ref')
        if mode == 'minimal':
            return _minimal(obj)
        if mode != 'full' or not ref:
            return obj
        out = discovery.merge_full(self.api.generate(ref, doc=call.doc, skip=FULL_SKIP), obj)
        if ref == 'GoogleLongrunningOperation':
            ex = self.api.generate('GoogleCloudRunV2Execution', skip=FULL_SKIP)
            for k in ('metadata', 'response'):
                if isinstance(obj.get(k), dict) and obj[k].get('@type') == EXEC_TYPE:
                    out[k] = discovery.merge_full(ex, obj[k])
                elif k == 'metadata' and k not in obj:
                    out.pop(k, None)
        return out


WIRE = None


class ClientGone(Exception):
    def __init__(self, received):
        super().__init__('client went away')
        self.received = received


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'FakeGCP/1.0'
    sys_version = ''
    timeout = 300

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        with STATE.lock:
            STATE.conn_seq += 1
            self.conn_id = STATE.conn_seq

    def log_message(self, fmt, *args):
        if STATE.verbose:
            sys.stderr.write('fake_gcp: %s - %s\n' % (self.address_string(), fmt % args))

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # ---- body reading ----------------------------------------------------------------------
    def read_body(self, limit=None):
        """Returns the request body (decoded if chunked). With `limit`, stops after that
        many bytes. Raises ClientGone(partial) if the peer goes away mid-body."""
        te = (self.headers.get('Transfer-Encoding') or '').lower()
        got = bytearray()
        try:
            if 'chunked' in te:
                while True:
                    line = self.rfile.readline(65537)
                    if not line:
                        raise ClientGone(bytes(got))
                    size = int(line.split(b';', 1)[0].strip() or b'0', 16)
                    if size == 0:
                        while True:  # trailers
                            t = self.rfile.readline(65537)
                            if not t:
                                raise ClientGone(bytes(got))
                            if t in (b'\r\n', b'\n'):
                                break
                        break
                    remaining = size
                    while remaining:
                        want = min(remaining, 65536)
                        if limit is not None:
                            want = min(want, limit - len(got))
                            if want <= 0:
                                return bytes(got)
                        piece = self.rfile.read(want)
                        if not piece:
                            raise ClientGone(bytes(got))
                        got += piece
                        remaining -= len(piece)
                    if self.rfile.readline(65537) == b'':
                        raise ClientGone(bytes(got))
                return bytes(got)
            cl = self.headers.get('Content-Length')
            if cl is None:
                return b''
            n = int(cl)
            if n < 0:
                raise ValueError('negative Content-Length')
            if limit is not None:
                n = min(n, limit)
            while len(got) < n:
                piece = self.rfile.read(min(n - len(got), 1 << 20))
                if not piece:
                    raise ClientGone(bytes(got))
                got += piece
            return bytes(got)
        except (ConnectionError, socket.timeout, OSError) as e:
            if isinstance(e, ClientGone):
                raise
            raise ClientGone(bytes(got))

    def declared_length(self):
        try:
            return int(self.headers.get('Content-Length'))
        except (TypeError, ValueError):
            return None

    # ---- writing ---------------------------------------------------------------------------
    def build_head(self, resp, body_len):
        reason = resp.reason
        if reason is None:
            try:
                reason = http.HTTPStatus(resp.status).phrase
            except ValueError:
                reason = ''
        lines = [f'HTTP/1.1 {resp.status} {reason}',
                 f'Date: {email.utils.formatdate(usegmt=True)}', f'Server: {self.server_version}']
        names = {k.lower() for k, _ in resp.headers}
        if resp.ctype and 'content-type' not in names:
            lines.append(f'Content-Type: {resp.ctype}')
        if resp.status not in (204, 304) and resp.status >= 200:
            lines.append(f'Content-Length: {body_len}')
        for k, v in resp.headers:
            lines.append(f'{k}: {v}')
        if self.close_connection:
            lines.append('Connection: close')
        return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')

    def send(self, resp, truncate=None):
        body = resp.body if resp.status not in (204, 304) else b''
        head = self.build_head(resp, len(body))
        if self.command == 'HEAD':
            body = b''
        if truncate is not None:
            body = body[:truncate]
        self.wfile.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.wfile.write(body)
        return len(body)

    def drop(self, style='rst'):
        """Abort the connection: RST (default) or FIN."""
        self.close_connection = True
        try:
            if style == 'rst':
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b'\x01\x00\x00\x00\x00\x00\x00\x00')
                try:
                    self.rfile.close()
                except Exception:
                    pass
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- main ------------------------------------------------------------------------------
    def _handle(self):
        t0 = time.time()
        req = Request(self.command, self.path, self.headers, self.conn_id)
        service = classify(req.path)
        if service == 'control':
            try:
                body = self.read_body()
                resp = CONTROL.handle(req, body)
            except ApiError as e:
                resp = e.resp
            except ClientGone:
                self.close_connection = True
                return
            except Exception:
                traceback.print_exc()
                resp = json_resp(500, {'error': traceback.format_exc()})
            try:
                self.send(resp)
            except OSError:
                self.close_connection = True
            return
        entry = STATE.log_start(req, service)
        try:
            self._serve(req, service, entry)
        finally:
            entry['duration_ms'] = round((time.time() - t0) * 1000, 3)

    def _serve(self, req, service, entry):
        decision = STATE.faults.decide(req, service)
        entry['fault'] = decision.label
        if decision.latency_ms:
            time.sleep(decision.latency_ms / 1000.0)
        rule = decision.rule
        drop = rule.drop if rule else None
        if drop == 'before_body':
            entry['dropped'] = True
            self.drop(rule.drop_style)
            return
        if drop == 'mid_body':
            n = rule.drop_after_bytes
            if n is None:
                n = (self.declared_length() or 0) // 2
            try:
                partial = self.read_body(limit=int(n))
            except ClientGone as e:
                partial = e.received
            entry['req_bytes'] = len(partial)
            entry['dropped'] = True
            if service == 'storage' and 'upload_id' in req.query:
                SERVICES['storage'].resumable_partial(req, partial)
            self.drop(rule.drop_style)
            return
        try:
            body = self.read_body()
        except ClientGone as e:
            entry['req_bytes'] = len(e.received)
            entry['dropped'] = True
            if service == 'storage' and 'upload_id' in req.query:
                SERVICES['storage'].resumable_partial(req, e.received)
            self.close_connection = True
            return
        except ValueError:
            self.close_connection = True
            resp = service_error(service, 400, 'Malformed request body framing.')
            entry['status'] = resp.status
            self.send(resp)
            return
        entry['req_bytes'] = len(body)
        if rule and rule.status:
            hdrs = list(decision.extra_headers)
            if rule.retry_after is not None:
                hdrs.append(('Retry-After', str(rule.retry_after)))
            resp = service_error(service, int(rule.status), rule.message, rule.reason, hdrs)
        else:
            if rule and rule.expire_token and req.bearer:
                STATE.expire_tokens(req.bearer)
            resp = self.dispatch(req, service, body, entry)
            if decision.json_merge and resp.json is not None and resp.status < 300:
                merged = dict(resp.json)
                merged.update(decision.json_merge)
                resp = json_resp(resp.status, merged, resp.headers)
            resp.headers.extend(decision.extra_headers)
        if drop == 'after_body':
            entry['dropped'] = True
            entry['status'] = resp.status
            self.drop(rule.drop_style)
            return
        entry['status'] = resp.status
        try:
            if drop == 'mid_response':
                n = rule.drop_after_bytes
                if n is None:
                    n = len(resp.body) // 2
                entry['resp_bytes'] = self.send(resp, truncate=int(n))
                entry['dropped'] = True
                self.drop(rule.drop_style)
                return
            entry['resp_bytes'] = self.send(resp)
        except OSError:
            entry['dropped'] = True
            self.close_connection = True

    def dispatch(self, req, service, body, entry):
        try:
            if service == 'oauth':
                if req.path == '/token':
                    return SERVICES['auth'].token(req, body)
                if req.path == '/oauth2/v3/certs':
                    return SERVICES['auth'].certs(req)
                return oauth_error(404, 'invalid_request', 'Not Found')
            if service == 'metadata':
                return SERVICES['auth'].metadata(req)
            if service == 'unknown':
                return aip_error(404, f'The requested URL {req.path} was not found on this server.')
            call, bad = WIRE.request(req, body)
            entry['google_method'] = call.id if call else None
            if bad:
                entry['violations'] = bad
                if STATE.config['validate'] == 'strict':
                    return service_error(service, 400, 'Request not in the discovery document: '
                                         + '; '.join(bad)[:2000])
            denied = STATE.authenticate(req, service)
            entry['auth_ok'] = denied is None if req.auth_present else None
            if denied is not None:
                return denied
            resp = SERVICES['admin'].handle(req, body)
            if resp is None:
                resp = SERVICES[service].handle(req, body) if service in SERVICES else \
                    aip_error(404, 'Method not found.')
            return WIRE.response(req, call, resp, entry)
        except ApiError as e:
            return e.resp
        except Exception:
            traceback.print_exc()
            return service_error(service, 500, 'Internal error in the fake server.')


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError, socket.timeout)):
            return
        if STATE.verbose or not isinstance(exc, OSError):
            super().handle_error(request, client_address)


STATE = None
SERVICES = {}
CONTROL = None


def main(argv=None):
    global STATE, CONTROL, WIRE
    ap = argparse.ArgumentParser(description='Fake Google Cloud server for ccr tests')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--state-dir', required=True)
    ap.add_argument('--job-command', default=None,
                    help='shell-split argv run by Cloud Run jobs.run (default: none -> '
                         'executions succeed at once without a process)')
    ap.add_argument('--job', action='append',
                    help='register a job (short or full name); only registered jobs exist then')
    ap.add_argument('--bucket', action='append', help='bucket to create (default ccr-test-bucket)')
    ap.add_argument('--project', default='ccr-test-project')
    ap.add_argument('--project-number', default='123456789012')
    ap.add_argument('--region', default='europe-west3')
    ap.add_argument('--token-ttl', type=int, default=3599)
    ap.add_argument('--cancel-grace', type=float, default=10.0)
    ap.add_argument('--seed', type=int, default=None)
    ap.add_argument('--no-auth', action='store_true', help='do not require Bearer tokens')
    ap.add_argument('--verbose', action='store_true')
    args = ap.parse_args(argv)
    os.makedirs(args.state_dir, exist_ok=True)
    _set_subreaper()
    STATE = State(args)
    WIRE = Wire(STATE)
    SERVICES.update({'auth': AuthService(STATE), 'storage': StorageService(STATE),
                     'kms': KmsService(STATE), 'secretmanager': SecretService(STATE),
                     'run': RunService(STATE),
                     'admin': fake_gcp_admin.AdminService(STATE, sys.modules[__name__])})
    STATE.admin = SERVICES['admin']
    CONTROL = ControlService(STATE, SERVICES)
    httpd = Server((args.host, args.port), Handler)
    STATE.port = httpd.server_address[1]
    STATE.write_key_files()

    def stop(signum, frame):
        if not STATE.shutting_down:
            STATE.shutting_down = True
            threading.Thread(target=httpd.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f'LISTENING {STATE.port}', flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        SERVICES['run'].kill_all(wait=5.0)
        httpd.server_close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
