"""The administrative surface of the fake Google Cloud (fake_gcp.py): what `ccr deploy` creates.

fake_gcp.py serves the data plane (objects, encrypt/decrypt, secret access, jobs.run); this
module serves the resources a deployment is made of, with the same error formats, the same
wire check against the discovery documents (tests/fakes/discovery.py) and the same request
log, so a test can count every call and every write:

  Artifact Registry  GET|POST v1/projects/P/locations/L/repositories[/R] (create -> Operation),
                     GET v1/projects/P/locations/L/operations/ID
  IAM                GET|POST v1/projects/P/serviceAccounts[/EMAIL]
  Resource Manager   POST v3/projects/P:getIamPolicy | :setIamPolicy
  Secret Manager     GET|POST v1/projects/P/secrets[/S] (?secretId=), POST .../S:addVersion,
                     GET .../S:getIamPolicy, POST .../S:setIamPolicy
  Cloud KMS          GET|POST v1/projects/P/locations/L/keyRings[/R] (?keyRingId=),
                     GET|POST .../R/cryptoKeys[/K] (?cryptoKeyId=), K:getIamPolicy|:setIamPolicy
  Cloud Storage      GET|PATCH storage/v1/b/B (lifecycle, labels, iamConfiguration; insert is in
                     fake_gcp.py), GET|PUT storage/v1/b/B/iam
  Cloud Run v2       GET|POST|PATCH v2/projects/P/locations/L/jobs[/J] and services[/S] (create
                     and patch answer a long-running Operation that is done after
                     OP_DELAY_S; operations.get then answers it), J|S:getIamPolicy|:setIamPolicy

Resources keep what the client sent and add the fields the service sets itself (names, uids,
etags, generations, times, URIs, conditions, and some defaults a real service fills in), so a
client that compares its desired state with what it reads back must ignore server-set fields.

IAM policies: version 1, an etag that changes with every set; a setIamPolicy whose etag does
not match the current one is a 409 ABORTED (read-modify-write races are visible).  A new
bucket's policy holds the project convenience bindings GCS creates.

Jobs created here are run by jobs.run like the jobs registered through /_fake/jobs: the
command is the registered one (same short name) or --job-command; the env is the template's
(values, and secretKeyRef resolved from the fake Secret Manager at run time).
"""

import base64
import copy
import hashlib
import json
import re
import time
import uuid

OP_DELAY_S = 0.2
RUN_JOB_TYPE = 'type.googleapis.com/google.cloud.run.v2.Job'
RUN_SERVICE_TYPE = 'type.googleapis.com/google.cloud.run.v2.Service'
AR_REPO_TYPE = 'type.googleapis.com/google.devtools.artifactregistry.v1.Repository'
AR_META_TYPE = 'type.googleapis.com/google.devtools.artifactregistry.v1.OperationMetadata'
RUN_OUTPUT_ONLY = ('name', 'uid', 'generation', 'createTime', 'updateTime', 'deleteTime',
                   'expireTime', 'creator', 'lastModifier', 'observedGeneration',
                   'terminalCondition', 'conditions', 'executionCount', 'latestCreatedExecution',
                   'reconciling', 'satisfiesPzs', 'etag', 'uri', 'urls', 'latestReadyRevision',
                   'latestCreatedRevision', 'trafficStatuses')


def _etag(obj):
    return base64.b64encode(hashlib.sha256(json.dumps(obj, sort_keys=True).encode())
                            .digest()[:8]).decode()


class AdminService:
    """One handler for every administrative method above (h: the fake_gcp module, for its
    error and answer helpers)."""

    def __init__(self, st, h):
        self.st = st
        self.h = h
        self.repos = {}          # full name -> Repository
        self.sas = {}            # email -> ServiceAccount
        self.policies = {}       # resource key -> Policy
        self.keyrings = {}       # full name -> KeyRing
        self.keys = {}           # full name -> CryptoKey (also in st.kms_keys)
        self.secret_meta = {}    # (project, secret) -> Secret
        self.jobs = {}           # full name (project id) -> Job
        self.services = {}       # full name (project id) -> Service
        self.ops = {}            # operation name -> {'done_at', 'response', 'meta_type'}

    # ---- helpers -----------------------------------------------------------------------------
    def now(self):
        return self.h.rfc3339(time.time())

    def err(self, code, msg, status=None):
        return self.h.aip_error(code, msg, status)

    def body(self, raw):
        try:
            j = json.loads(raw) if raw and raw.strip() else {}
        except ValueError:
            raise self.h.ApiError(self.err(400, 'Invalid JSON payload received.'))
        if not isinstance(j, dict):
            raise self.h.ApiError(self.err(400, 'Invalid JSON payload received.'))
        return j

    def proj(self, p):
        return self.st.norm_project(p)

    def new_op(self, project, location, response, resp_type, meta_type, done=False):
        name = f'projects/{project}/locations/{location}/operations/{uuid.uuid4()}'
        with self.st.lock:
            self.ops[name] = {'done_at': time.time() + (0 if done else OP_DELAY_S),
                              'response': response, 'type': resp_type, 'meta_type': meta_type}
        return self.op_json(name)

    def op_json(self, name):
        with self.st.lock:
            op = self.ops.get(name)
        if op is None:
            return None
        done = time.time() >= op['done_at']
        d = {'name': name, 'metadata': {'@type': op['meta_type']}}
        if op['meta_type'] in (RUN_JOB_TYPE, RUN_SERVICE_TYPE):
            d['metadata'] = dict({'@type': op['meta_type']}, **op['response'])
        if done:
            d['done'] = True
            d['response'] = dict({'@type': op['type']}, **op['response'])
        return d

    # ---- IAM policies (one model for every service) ------------------------------------------
    def get_policy(self, key, storage_bucket=None):
        with self.st.lock:
            pol = self.policies.get(key)
            if pol is None:
                pol = {'version': 1, 'bindings': []}
                if storage_bucket:
                    p = self.st.project_number
                    pol['bindings'] = [
                        {'role': 'roles/storage.legacyBucketOwner',
                         'members': [f'projectEditor:{p}', f'projectOwner:{p}']},
                        {'role': 'roles/storage.legacyBucketReader',
                         'members': [f'projectViewer:{p}']}]
                pol['etag'] = _etag([key, 0])
                self.policies[key] = pol
            out = copy.deepcopy(pol)
        out.pop('seq', None)
        if not out['bindings']:
            del out['bindings']
        if storage_bucket:
            out.update({'kind': 'storage#policy', 'resourceId': f'projects/_/buckets/{storage_bucket}'})
        return out

    def set_policy(self, key, policy, storage_bucket=None):
        if not isinstance(policy, dict):
            return self.err(400, 'policy is required.')
        self.get_policy(key, storage_bucket)
        bindings = policy.get('bindings') or []
        for b in bindings:
            if not isinstance(b, dict) or not b.get('role') or not b.get('members'):
                return self.err(400, 'Each binding needs a role and members.')
            for m in b['members']:
                if not re.match(r'(allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|'
                                r'projectOwner|projectEditor|projectViewer|principal|principalSet):.+)$', m):
                    return self.err(400, f'Invalid member {m!r}.')
        with self.st.lock:
            cur = self.policies[key]
            if policy.get('etag') and policy['etag'] != cur['etag']:
                return self.err(409, 'There were concurrent policy changes. Please retry the whole '
                                'read-modify-write with exponential backoff.', 'ABORTED')
            seq = cur.get('seq', 0) + 1
            self.policies[key] = {'version': 1, 'bindings': copy.deepcopy(bindings),
                                  'etag': _etag([key, seq]), 'seq': seq}
        out = self.get_policy(key, storage_bucket)
        return self.h.json_resp(200, out)

    def policy_resp(self, key, storage_bucket=None):
        return self.h.json_resp(200, self.get_policy(key, storage_bucket))

    # ---- dispatch ----------------------------------------------------------------------------
    def handle(self, req, body):
        """A Resp, or None when the request is not one of the administrative methods."""
        p, m = req.path, req.method
        for rx, fn in self.ROUTES:
            g = re.fullmatch(rx, p)
            if g:
                r = fn(self, req, m, body, *g.groups())
                if r is not None:
                    return r
        return None

    # ---- Artifact Registry -------------------------------------------------------------------
    def ar_repos(self, req, m, body, project, loc):
        if m != 'POST':
            return None
        rid = req.query.get('repositoryId') or ''
        if not re.fullmatch(r'[a-z]([a-z0-9-]{0,61}[a-z0-9])?', rid):
            return self.err(400, f'Invalid repository id {rid!r}.')
        j = self.body(body)
        name = f'projects/{project}/locations/{loc}/repositories/{rid}'
        with self.st.lock:
            if name in self.repos:
                return self.err(409, f'the repository already exists: {name}', 'ALREADY_EXISTS')
            now = self.now()
            repo = dict(j, name=name, createTime=now, updateTime=now,
                        mode=j.get('mode', 'STANDARD_REPOSITORY'), sizeBytes='0')
            self.repos[name] = repo
        return self.h.json_resp(200, self.new_op(project, loc, repo, AR_REPO_TYPE, AR_META_TYPE))

    def ar_repo(self, req, m, body, project, loc, rid):
        if m != 'GET':
            return None
        name = f'projects/{project}/locations/{loc}/repositories/{rid}'
        with self.st.lock:
            repo = self.repos.get(name)
        if repo is None:
            return self.err(404, f'Requested entity was not found.')
        return self.h.json_resp(200, repo)

    def v1_op(self, req, m, body, project, loc, op):
        if m != 'GET':
            return None
        d = self.op_json(f'projects/{project}/locations/{loc}/operations/{op}')
        return self.h.json_resp(200, d) if d else self.err(404, 'Operation not found.')

    # ---- IAM service accounts ----------------------------------------------------------------
    def sa_create(self, req, m, body, project):
        if m != 'POST':
            return None
        j = self.body(body)
        aid = j.get('accountId') or ''
        if not re.fullmatch(r'[a-z]([-a-z0-9]{4,28}[a-z0-9])', aid):
            return self.err(400, f'Invalid account id {aid!r}: 6 to 30 characters, a-z 0-9 -.')
        project = self.proj(project)
        email = f'{aid}@{project}.iam.gserviceaccount.com'
        sa = j.get('serviceAccount') or {}
        with self.st.lock:
            if email in self.sas:
                return self.err(409, f'Service account {aid} already exists within project '
                                f'projects/{project}.', 'ALREADY_EXISTS')
            uid = str(100000000000000000000 + len(self.sas))
            d = {'name': f'projects/{project}/serviceAccounts/{email}', 'projectId': project,
                 'uniqueId': uid, 'email': email, 'etag': 'MDEwMjE5MjA=', 'oauth2ClientId': uid}
            for k in ('displayName', 'description'):
                if sa.get(k):
                    d[k] = sa[k]
            self.sas[email] = d
        return self.h.json_resp(200, d)

    def sa_get(self, req, m, body, project, ident):
        if m != 'GET':
            return None
        with self.st.lock:
            d = self.sas.get(ident) or next((s for s in self.sas.values()
                                             if s['uniqueId'] == ident), None)
        if d is None:
            return self.err(404, f'Unknown service account')
        return self.h.json_resp(200, d)

    # ---- Resource Manager --------------------------------------------------------------------
    def crm_policy(self, req, m, body, project, verb):
        if m != 'POST':
            return None
        j = self.body(body)
        key = ('project', self.proj(project))
        if verb == 'getIamPolicy':
            return self.policy_resp(key)
        return self.set_policy(key, j.get('policy'))

    # ---- Secret Manager ----------------------------------------------------------------------
    def secret_name(self, secret):
        return f'projects/{self.st.project_number}/secrets/{secret}'

    def sm_create(self, req, m, body, project):
        if m != 'POST':
            return None
        sid = req.query.get('secretId') or ''
        if not re.fullmatch(r'[A-Za-z0-9_-]{1,255}', sid):
            return self.err(400, f'Invalid secret id {sid!r}.')
        j = self.body(body)
        if not isinstance(j.get('replication'), dict) or not j['replication']:
            return self.err(400, 'Secret.replication is required.')
        key = (self.proj(project), sid)
        with self.st.lock:
            if key in self.secret_meta or key in self.st.secrets:
                return self.err(409, f'Secret [{self.secret_name(sid)}] already exists.',
                                'ALREADY_EXISTS')
            d = dict(j, name=self.secret_name(sid), createTime=self.now(),
                     etag=f'"{uuid.uuid4().hex[:14]}"')
            self.secret_meta[key] = d
            self.st.secrets.setdefault(key, {'versions': {}})
        return self.h.json_resp(200, d)

    def sm_secret(self, req, m, body, project, sid, verb):
        key = (self.proj(project), sid)
        with self.st.lock:
            exists = key in self.secret_meta or key in self.st.secrets
            meta = self.secret_meta.get(key)
        if not exists and (verb or m == 'GET'):
            return self.err(404, f'Secret [{self.secret_name(sid)}] not found.')
        if verb is None and m == 'GET':
            return self.h.json_resp(200, meta or {'name': self.secret_name(sid),
                                                  'replication': {'automatic': {}},
                                                  'createTime': self.now()})
        if verb == 'addVersion' and m == 'POST':
            j = self.body(body)
            payload = j.get('payload') or {}
            try:
                data = base64.b64decode(payload.get('data') or '', validate=True)
            except ValueError:
                return self.err(400, 'payload.data is not base64.')
            if 'dataCrc32c' in payload and int(payload['dataCrc32c']) != self.h.crc32c(data):
                return self.err(400, 'Checksum mismatch: payload.dataCrc32c does not match the data.')
            n = self.h.SERVICES['secretmanager'].add_version(project, sid, data)
            return self.h.json_resp(200, {'name': f'{self.secret_name(sid)}/versions/{n}',
                                          'createTime': self.now(), 'state': 'ENABLED',
                                          'etag': f'"{uuid.uuid4().hex[:14]}"'})
        if verb == 'getIamPolicy' and m == 'GET':
            return self.policy_resp(('secret',) + key)
        if verb == 'setIamPolicy' and m == 'POST':
            return self.set_policy(('secret',) + key, self.body(body).get('policy'))
        return None

    # ---- Cloud KMS ---------------------------------------------------------------------------
    def kms_rings(self, req, m, body, project, loc):
        if m != 'POST':
            return None
        rid = req.query.get('keyRingId') or ''
        if not re.fullmatch(r'[a-zA-Z0-9_-]{1,63}', rid):
            return self.err(400, f'Invalid key ring id {rid!r}.')
        self.body(body)
        name = f'projects/{self.proj(project)}/locations/{loc}/keyRings/{rid}'
        with self.st.lock:
            if name in self.keyrings:
                return self.err(409, f'KeyRing {name} already exists.', 'ALREADY_EXISTS')
            d = {'name': name, 'createTime': self.now()}
            self.keyrings[name] = d
        return self.h.json_resp(200, d)

    def kms_ring(self, req, m, body, project, loc, ring):
        if m != 'GET':
            return None
        name = f'projects/{self.proj(project)}/locations/{loc}/keyRings/{ring}'
        with self.st.lock:
            d = self.keyrings.get(name)
        return self.h.json_resp(200, d) if d else self.err(404, f'KeyRing {name} not found.')

    def kms_keys(self, req, m, body, project, loc, ring):
        if m != 'POST':
            return None
        kid = req.query.get('cryptoKeyId') or ''
        if not re.fullmatch(r'[a-zA-Z0-9_-]{1,63}', kid):
            return self.err(400, f'Invalid crypto key id {kid!r}.')
        j = self.body(body)
        if j.get('purpose') != 'ENCRYPT_DECRYPT':
            return self.err(400, 'This fake makes ENCRYPT_DECRYPT keys only.')
        rname = f'projects/{self.proj(project)}/locations/{loc}/keyRings/{ring}'
        name = f'{rname}/cryptoKeys/{kid}'
        with self.st.lock:
            if rname not in self.keyrings:
                return self.err(404, f'KeyRing {rname} not found.')
            if name in self.keys:
                return self.err(409, f'CryptoKey {name} already exists.', 'ALREADY_EXISTS')
            now = self.now()
            alg = (j.get('versionTemplate') or {}).get('algorithm', 'GOOGLE_SYMMETRIC_ENCRYPTION')
            d = dict(j, name=name, createTime=now,
                     primary={'name': f'{name}/cryptoKeyVersions/1', 'state': 'ENABLED',
                              'createTime': now, 'protectionLevel': 'SOFTWARE', 'algorithm': alg,
                              'generateTime': now},
                     versionTemplate={'protectionLevel': 'SOFTWARE', 'algorithm': alg},
                     destroyScheduledDuration='2592000s')
            self.keys[name] = d
            self.st.kms_keys.setdefault(name, {'versions': {1: 'ENABLED'}, 'primary': 1})
        return self.h.json_resp(200, d)

    def kms_key(self, req, m, body, project, loc, ring, key, verb):
        name = f'projects/{self.proj(project)}/locations/{loc}/keyRings/{ring}/cryptoKeys/{key}'
        with self.st.lock:
            d = self.keys.get(name)
        if d is None:
            if verb is None and m == 'GET' or verb in ('getIamPolicy', 'setIamPolicy'):
                return self.err(404, f'CryptoKey {name} not found.')
            return None
        if verb is None and m == 'GET':
            return self.h.json_resp(200, d)
        if verb == 'getIamPolicy' and m == 'GET':
            return self.policy_resp(('key', name))
        if verb == 'setIamPolicy' and m == 'POST':
            return self.set_policy(('key', name), self.body(body).get('policy'))
        return None

    # ---- Cloud Storage buckets ---------------------------------------------------------------
    def bucket(self, name):
        with self.st.lock:
            b = self.st.buckets.get(name)
        if b is None:
            raise self.h.ApiError(self.h.gcs_error(404, 'notFound',
                                                   'The specified bucket does not exist.'))
        return b

    def gcs_bucket(self, req, m, body, name):
        if m != 'PATCH':
            return None
        b = self.bucket(name)
        j = self.body(body)
        with self.st.lock:
            for k in ('lifecycle', 'labels', 'iamConfiguration', 'versioning'):
                if k in j:
                    setattr(b, 'meta_' + k, j[k])
            b.metageneration = getattr(b, 'metageneration', 1) + 1
        return self.h.json_resp(200, self.h.SERVICES['storage'].bucket_json(b))

    def gcs_iam(self, req, m, body, name):
        self.bucket(name)
        if m == 'GET':
            return self.policy_resp(('bucket', name), storage_bucket=name)
        if m == 'PUT':
            j = self.body(body)
            r = self.set_policy(('bucket', name), j, storage_bucket=name)
            return r
        return None

    # ---- Cloud Run jobs and services ---------------------------------------------------------
    def run_coll(self, req, m, body, project, loc, kind):
        if m != 'POST':
            return None
        rid = req.query.get('jobId' if kind == 'jobs' else 'serviceId') or ''
        if not re.fullmatch(r'[a-z]([-a-z0-9]{0,47}[a-z0-9])?', rid):
            return self.err(400, f'Invalid id {rid!r}.')
        j = self.body(body)
        name = f'projects/{self.proj(project)}/locations/{loc}/{kind}/{rid}'
        store = self.jobs if kind == 'jobs' else self.services
        with self.st.lock:
            if name in store:
                return self.err(409, f"Resource '{rid}' already exists.", 'ALREADY_EXISTS')
        bad = self.check_template(kind, j)
        if bad:
            return self.err(400, bad)
        obj = self.materialise(kind, name, j, None)
        with self.st.lock:
            store[name] = obj
        if req.query.get('validateOnly') == 'true':
            with self.st.lock:
                store.pop(name, None)
        t = RUN_JOB_TYPE if kind == 'jobs' else RUN_SERVICE_TYPE
        return self.h.json_resp(200, self.new_op(self.proj(project), loc, obj, t, t))

    def run_item(self, req, m, body, project, loc, kind, rid, verb):
        name = f'projects/{self.proj(project)}/locations/{loc}/{kind}/{rid}'
        store = self.jobs if kind == 'jobs' else self.services
        with self.st.lock:
            cur = store.get(name)
        if verb in ('getIamPolicy', 'setIamPolicy'):
            if cur is None:
                if kind == 'jobs' and self.st.find_job(project, loc, rid) is not None \
                        and self.st.config['restrict_jobs']:
                    pass   # a job registered through /_fake/jobs has a policy too
                else:
                    return self.err(404, f"Resource '{rid}' of kind '{kind[:-1].upper()}' in "
                                    f"region '{loc}' in project '{project}' does not exist.")
            if verb == 'getIamPolicy' and m == 'GET':
                return self.policy_resp(('run', name))
            if verb == 'setIamPolicy' and m == 'POST':
                return self.set_policy(('run', name), self.body(body).get('policy'))
            return None
        if verb is not None:
            return None
        if m == 'GET':
            if cur is None:
                if kind == 'jobs':
                    return None   # fake_gcp.py answers registered (or any, unrestricted) jobs
                return self.err(404, f"Resource '{rid}' of kind 'SERVICE' in region '{loc}' in "
                                f"project '{project}' does not exist.")
            return self.h.json_resp(200, self.with_status(kind, cur))
        if m == 'PATCH':
            if cur is None and req.query.get('allowMissing') != 'true':
                return self.err(404, f"Resource '{rid}' of kind '{kind[:-1].upper()}' in region "
                                f"'{loc}' in project '{project}' does not exist.")
            j = self.body(body)
            if j.get('name') and j['name'] != name:
                return self.err(400, f"The name in the body ({j['name']}) is not {name}.")
            if req.query.get('updateMask'):
                return self.err(400, 'This fake replaces the whole resource: no updateMask.')
            bad = self.check_template(kind, j)
            if bad:
                return self.err(400, bad)
            obj = self.materialise(kind, name, j, cur)
            with self.st.lock:
                store[name] = obj
            t = RUN_JOB_TYPE if kind == 'jobs' else RUN_SERVICE_TYPE
            return self.h.json_resp(200, self.new_op(self.proj(project), loc, obj, t, t))
        return None

    @staticmethod
    def check_template(kind, j):
        tpl = (j.get('template') or {})
        if kind == 'jobs':
            tpl = tpl.get('template') or {}
        cs = tpl.get('containers') or []
        if not cs or not all(isinstance(c, dict) and c.get('image') for c in cs):
            return 'template.containers[].image is required.'
        for c in cs:
            for e in c.get('env') or []:
                if e.get('name') in ('PORT', 'K_SERVICE', 'CLOUD_RUN_JOB') or not e.get('name'):
                    return f"Invalid env var name {e.get('name')!r}: reserved or empty."
        return None

    def materialise(self, kind, name, sent, cur):
        """The resource as the service keeps it: what was sent, plus server-set fields."""
        obj = {k: v for k, v in copy.deepcopy(sent).items() if k not in RUN_OUTPUT_ONLY}
        now = self.now()
        gen = int((cur or {}).get('generation', '0')) + 1
        obj.update({'name': name, 'uid': (cur or {}).get('uid') or str(uuid.uuid4()),
                    'generation': str(gen), 'createTime': (cur or {}).get('createTime', now),
                    'updateTime': now, 'creator': 'ccr-test@fake', 'lastModifier': 'ccr-test@fake',
                    'observedGeneration': str(gen), 'etag': f'"{uuid.uuid4().hex[:16]}"'})
        obj.setdefault('launchStage', 'GA')
        if kind == 'jobs':
            t = obj.setdefault('template', {})
            t.setdefault('taskCount', 1)
            t.setdefault('parallelism', t['taskCount'])
            tt = t.setdefault('template', {})
            tt.setdefault('maxRetries', 3)
            tt.setdefault('timeout', '600s')
            tt.setdefault('serviceAccount', f'{self.st.project_number}-compute@developer.gserviceaccount.com')
            tt.setdefault('executionEnvironment', 'EXECUTION_ENVIRONMENT_GEN2')
        else:
            t = obj.setdefault('template', {})
            short = name.rsplit('/', 1)[1]
            rev = f'{short}-{gen:05d}-{uuid.uuid4().hex[:3]}'
            t.setdefault('serviceAccount', f'{self.st.project_number}-compute@developer.gserviceaccount.com')
            t.setdefault('maxInstanceRequestConcurrency', 80)
            t.setdefault('timeout', '300s')
            obj.setdefault('ingress', 'INGRESS_TRAFFIC_ALL')
            obj.setdefault('traffic', [{'type': 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', 'percent': 100}])
            obj.update({'latestReadyRevision': f'{name}/revisions/{rev}',
                        'latestCreatedRevision': f'{name}/revisions/{rev}',
                        'trafficStatuses': [{'type': 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST',
                                             'percent': 100}],
                        'uri': f'https://{short}-{hashlib.sha1(name.encode()).hexdigest()[:10]}'
                               f'-ey.a.run.app'})
        for c in (t.get('template') or {}).get('containers', []) if kind == 'jobs' \
                else t.get('containers', []):
            r = c.setdefault('resources', {})
            r.setdefault('limits', {'cpu': '1000m', 'memory': '512Mi'})
        obj['terminalCondition'] = {'type': 'Ready', 'state': 'CONDITION_SUCCEEDED',
                                    'lastTransitionTime': now}
        obj['conditions'] = [dict(obj['terminalCondition'])]
        return obj

    def with_status(self, kind, obj):
        if kind != 'jobs':
            return obj
        with self.st.lock:
            exs = [e for e in self.st.executions.values()
                   if f'projects/{self.proj(e.project)}/locations/{e.location}/jobs/{e.job}'
                   == obj['name']]
        out = dict(obj)
        if exs:
            latest = max(exs, key=lambda e: e.create_time)
            out['executionCount'] = len(exs)
            out['latestCreatedExecution'] = {'name': latest.name,
                                             'createTime': self.h.rfc3339(latest.create_time)}
        return out

    def job_spec(self, project, location, job):
        """The spec jobs.run uses for a job created here (None: not created here)."""
        name = f'projects/{self.proj(project)}/locations/{location}/jobs/{job}'
        with self.st.lock:
            obj = self.jobs.get(name)
        if obj is None:
            return None
        t = obj.get('template') or {}
        tt = t.get('template') or {}
        c = (tt.get('containers') or [{}])[0]
        env, secret_env = {}, {}
        run = self.h.SERVICES['run']
        for e in c.get('env') or []:
            ref = (e.get('valueSource') or {}).get('secretKeyRef')
            if ref:
                v = run._resolve_secret(project, ref)
                if v is not None:
                    secret_env[e['name']] = v
            else:
                env[e['name']] = str(e.get('value', ''))
        return {'env': env, 'secret_env': secret_env, 'max_retries': int(tt.get('maxRetries', 3)),
                'task_count': int(t.get('taskCount', 1)),
                'timeout_seconds': self.h.parse_duration(tt.get('timeout', '600s'))}

    def run_op(self, req, m, body, project, loc, op):
        if m != 'GET':
            return None
        d = self.op_json(f'projects/{project}/locations/{loc}/operations/{op}')
        return self.h.json_resp(200, d) if d else None

    PL = r'/v1/projects/([^/]+)/locations/([^/]+)'
    ROUTES = [
        (PL + r'/repositories', ar_repos),
        (PL + r'/repositories/([^/:]+)', ar_repo),
        (PL + r'/operations/([^/:]+)', v1_op),
        (r'/v1/projects/([^/]+)/serviceAccounts', sa_create),
        (r'/v1/projects/([^/]+)/serviceAccounts/([^/:]+)', sa_get),
        (r'/v3/projects/([^/:]+):(getIamPolicy|setIamPolicy)', crm_policy),
        (r'/v1/projects/([^/]+)/secrets', sm_create),
        (r'/v1/projects/([^/]+)/secrets/([^/:]+)(?::(addVersion|getIamPolicy|setIamPolicy))?', sm_secret),
        (PL + r'/keyRings', kms_rings),
        (PL + r'/keyRings/([^/:]+)', kms_ring),
        (PL + r'/keyRings/([^/:]+)/cryptoKeys', kms_keys),
        (PL + r'/keyRings/([^/:]+)/cryptoKeys/([^/:]+)(?::(getIamPolicy|setIamPolicy))?', kms_key),
        (r'/storage/v1/b/([^/]+)', gcs_bucket),
        (r'/storage/v1/b/([^/]+)/iam', gcs_iam),
        (r'/v2/projects/([^/]+)/locations/([^/]+)/(jobs|services)', run_coll),
        (r'/v2/projects/([^/]+)/locations/([^/]+)/(jobs|services)/([^/:]+)'
         r'(?::(getIamPolicy|setIamPolicy))?', run_item),
        (r'/v2/projects/([^/]+)/locations/([^/]+)/operations/([^/:]+)', run_op),
    ]
