"""Google API discovery documents as a wire validator (and value generator) for the fakes.

The fake Google Cloud (fake_gcp.py) must follow Google's published description of each API, so
every request it receives and every JSON answer it gives is checked here against the discovery
documents (shared/spec/google-discovery/README.md describes their layout):

    api = Discovery.load()                       # full documents, else the committed extract
    call = api.match('POST', raw_path, query)    # -> Call(method id, method, path params) or raises
    errs = api.check_request(call, query, body_json)   # [] when the request is wire-exact
    errs = api.check_response(call, answer_json)       # [] when the answer fits the schema
    value = api.generate(schema_name, mode='full')     # every field, type-correct values

Where the documents come from (Discovery.load): $CCR_GOOGLE_DISCOVERY, else
<repo>/../shared/spec/google-discovery (full documents); else tests/fakes/discovery/, a trimmed
extract committed to the repo (made by discovery_extract.py; a test keeps it equal to a fresh
extraction whenever the full documents are present).

Matching: a request path is matched against rootUrl-relative servicePath + flatPath ({x} is one
path segment) first, then servicePath + path ({+x} follows the parameter's pattern, {x} is one
segment), so the most specific method wins.  Media: a method's mediaUpload.protocols paths accept
uploads (uploadType media|multipart|resumable; a resumable session URI adds upload_id, which
discovery does not describe: it is accepted on PUT/DELETE of an upload path only), and a method
with supportsMediaDownload answers media with alt=media (also on the /download/storage/v1 path
that GCS's mediaLink uses).

In a request body a field marked readOnly (output only) is a violation: the service would
silently ignore it.  Values: "int64"/"uint64" travel as JSON strings of digits, "byte" as base64, "google-datetime"
and "date-time" as RFC 3339, "google-duration" as "<seconds>s"; enums must be listed; objects
may hold only their declared properties (or any keys when additionalProperties is given).
"""

import base64
import binascii
import json
import os
import re
from urllib.parse import unquote

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXTRACT_DIR = os.path.join(HERE, 'discovery')
# the documents the fakes use: file name -> the API's discovery id
FILES = {'run-v2.json': 'run:v2', 'storage-v1.json': 'storage:v1',
         'cloudkms-v1.json': 'cloudkms:v1', 'secretmanager-v1.json': 'secretmanager:v1',
         'artifactregistry-v1.json': 'artifactregistry:v1', 'iam-v1.json': 'iam:v1',
         'cloudresourcemanager-v3.json': 'cloudresourcemanager:v3'}

RFC3339 = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)\Z')
DURATION = re.compile(r'-?\d+(\.\d{1,9})?s\Z')
INT_STR = re.compile(r'-?\d+\Z')
UINT_STR = re.compile(r'\d+\Z')
UPLOAD_TYPES = ('media', 'multipart', 'resumable')


class NoMethod(Exception):
    """The request matches no method of any document (message says why)."""


def full_dir():
    """The folder of the full discovery documents, or None when absent."""
    env = os.environ.get('CCR_GOOGLE_DISCOVERY')
    cands = [env] if env else []
    cands.append(os.path.join(os.path.dirname(REPO), 'shared', 'spec', 'google-discovery'))
    for d in cands:
        if d and all(os.path.isfile(os.path.join(d, f)) for f in FILES):
            return d
    return None


def walk_methods(resource):
    """Every method of a document (or resource), depth first."""
    for m in (resource.get('methods') or {}).values():
        yield m
    for r in (resource.get('resources') or {}).values():
        yield from walk_methods(r)


class Call:
    """A request matched to its method: id, the method's description, the document."""

    def __init__(self, doc, method, params, media=None):
        self.doc = doc
        self.method = method
        self.id = method['id']
        self.params = params       # path parameters (decoded)
        self.media = media         # None | 'upload' | 'session' | 'download'

    def __repr__(self):
        return f'Call({self.id}, media={self.media})'


def _template_regex(template, params, flat):
    """A compiled regex for a path template (servicePath-relative or absolute)."""
    out, pos = [], 0
    names = []
    for m in re.finditer(r'\{(\+?)([^}]+)\}', template):
        out.append(re.escape(template[pos:m.start()]))
        plus, name = m.group(1), m.group(2)
        pat = '[^/]+'
        if plus and not flat:
            p = (params.get(name) or {}).get('pattern')
            pat = p.strip('^$') if p else '.+'
        grp = 'p%d' % len(names)
        names.append(name)
        out.append(f'(?P<{grp}>{pat})')
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile(''.join(out) + r'\Z'), names


def _literal(template):
    return len(re.sub(r'\{[^}]*\}', '', template))


class Route:
    """One way to reach a method: rx matches the request path (flatPath, path, a media
    protocol path), path_rx (the method's path) yields its parameters."""

    def __init__(self, priority, rx, path_rx, names, doc, method, media, literal=0):
        self.priority, self.rx, self.path_rx, self.names = priority, rx, path_rx, names
        self.literal = literal     # characters of the template outside its {parameters}
        self.doc, self.method, self.media = doc, method, media


class Discovery:
    def __init__(self, docs, source):
        self.docs = docs           # discovery id -> document
        self.source = source       # folder read
        self._routes = []          # Route, most specific first
        self._preferred = {}       # discovery id -> the routes with that API's first
        for doc in docs.values():
            self._add_routes(doc)
        # most specific first: within a priority, the template with more literal text wins
        # (".../cryptoKeys/{k}:getIamPolicy" before ".../cryptoKeys/{k}", whose {k} would
        # also match "K:getIamPolicy")
        self._routes.sort(key=lambda r: (r.priority, -r.literal))

    @classmethod
    def load(cls, folder=None):
        folder = folder or full_dir() or EXTRACT_DIR
        docs = {}
        for f, did in FILES.items():
            with open(os.path.join(folder, f), encoding='utf-8') as fh:
                d = json.load(fh)
            if d.get('id') != did:
                raise ValueError(f'{folder}/{f}: id {d.get("id")!r}, expected {did!r}')
            docs[did] = d
        return cls(docs, folder)

    # ---- routing ---------------------------------------------------------------------------
    def _add_routes(self, doc):
        sp = '/' + doc.get('servicePath', '')
        for m in walk_methods(doc):
            params = m.get('parameters') or {}
            rx, names = _template_regex(sp + m['path'], params, False)
            if m.get('flatPath'):
                frx, _ = _template_regex(sp + m['flatPath'], params, True)
                self._routes.append(Route(0, frx, rx, names, doc, m, None,
                                          _literal(sp + m['flatPath'])))
            self._routes.append(Route(1, rx, rx, names, doc, m, None, _literal(sp + m['path'])))
            for proto in ((m.get('mediaUpload') or {}).get('protocols') or {}).values():
                rx, names = _template_regex(proto['path'], params, False)
                self._routes.append(Route(2, rx, rx, names, doc, m, 'upload'))
            if m.get('supportsMediaDownload') and doc.get('servicePath'):
                rx, names = _template_regex('/download' + sp + m['path'], params, False)
                self._routes.append(Route(3, rx, rx, names, doc, m, 'download'))

    def match(self, verb, raw_path, query, prefer=None):
        """The Call for verb + raw (still percent-encoded) path, or raises NoMethod.  prefer: the
        discovery id of the API the request was sent to (its host, for Google), tried first: two
        APIs may share a path (artifactregistry and cloudkms both have v1/projects/{p}/
        locations/{l}/operations/{o})."""
        verbs_seen = []
        routes = self._routes
        if prefer:
            routes = self._preferred.get(prefer)
            if routes is None:   # computed once per API (thousands of routes with the full documents)
                routes = sorted(self._routes, key=lambda r: r.doc.get('id') != prefer)
                self._preferred[prefer] = routes
        for r in routes:
            if not r.rx.match(raw_path):
                continue
            g = r.path_rx.match(raw_path)   # the parameters are those of the method's path
            if not g:
                continue
            m, media, names = r.method, r.media, r.names
            if media == 'upload' and 'upload_id' in query:
                if verb not in ('PUT', 'DELETE'):
                    verbs_seen.append('PUT, DELETE (a resumable session)')
                    continue
                return Call(r.doc, m, {n: unquote(g.group('p%d' % i)) for i, n in enumerate(names)},
                            'session')
            if m['httpMethod'] != verb and not (verb == 'HEAD' and m['httpMethod'] == 'GET'):
                verbs_seen.append(m['httpMethod'])
                continue
            params = {n: unquote(g.group('p%d' % i)) for i, n in enumerate(names)}
            if media is None and query.get('alt') == 'media' and m.get('supportsMediaDownload'):
                media = 'download'
            return Call(r.doc, m, params, media)
        if verbs_seen:
            raise NoMethod(f'{verb} {raw_path}: the path allows only '
                           f'{", ".join(sorted(set(verbs_seen)))}')
        raise NoMethod(f'{verb} {raw_path}: no method of {", ".join(sorted(self.docs))} has this path')

    # ---- requests --------------------------------------------------------------------------
    def check_request(self, call, query, body):
        """Violations of a request: query parameters, and the JSON body (None: no JSON body;
        for a multipart upload, its metadata part)."""
        errs = []
        m, doc = call.method, call.doc
        params = m.get('parameters') or {}
        glob = doc.get('parameters') or {}
        for name, p in params.items():
            if p.get('required') and p.get('location') == 'path' and name not in call.params:
                errs.append(f'path parameter {name} missing')
            if p.get('location') == 'path' and name in call.params and p.get('pattern'):
                if not re.search(p['pattern'], call.params[name]):
                    errs.append(f'path parameter {name}={call.params[name]!r} does not match '
                                f'{p["pattern"]}')
            if p.get('required') and p.get('location') == 'query' and name not in query:
                errs.append(f'query parameter {name} is required')
        for k, v in query.items():
            if call.media == 'session' and k == 'upload_id':
                continue
            p = params.get(k) if (params.get(k) or {}).get('location') == 'query' else glob.get(k)
            if p is None:
                errs.append(f'unknown query parameter {k!r}')
                continue
            errs += self._check_value(p, v, f'query {k}', True)
        if call.media in ('upload', 'session'):
            ut = query.get('uploadType')
            if ut not in UPLOAD_TYPES:
                errs.append(f'an upload needs uploadType media|multipart|resumable, not {ut!r}')
        if call.media == 'download' and query.get('alt') != 'media':
            errs.append('a download needs alt=media')
        req = m.get('request')
        if body is not None:
            if req is None:
                errs.append(f'{call.id} takes no request body')
            else:
                errs += self.check_value(req, body, 'body', doc=call.doc, request=True)
        return [f'{call.id}: {e}' for e in errs]

    # ---- responses -------------------------------------------------------------------------
    def check_response(self, call, answer):
        """Violations of a 2xx JSON answer against the method's response schema."""
        resp = call.method.get('response')
        if resp is None:
            return [] if answer in (None, {}) else [f'{call.id}: answers no body, got one']
        return [f'{call.id}: {e}' for e in self.check_value(resp, answer, 'response', doc=call.doc)]

    # ---- values ----------------------------------------------------------------------------
    def schema(self, doc, ref):
        s = doc['schemas'].get(ref)
        if s is None:
            raise KeyError(f'{doc["id"]}: no schema {ref}')
        return s

    def check_value(self, spec, value, where, doc=None, request=False):
        """Violations of value against a schema fragment ({"$ref": ...} or inline)."""
        doc = doc or self._doc_of(spec)
        return self._check(doc, spec, value, where, 0, request)

    def _doc_of(self, spec):
        ref = spec.get('$ref')
        hits = [d for d in self.docs.values() if ref in d.get('schemas', {})]
        if not hits:
            raise KeyError(f'no document has schema {ref}')
        return hits[0]

    def _check(self, doc, spec, v, where, depth, request=False):
        if depth > 40:
            return [f'{where}: nested too deep']
        if '$ref' in spec:
            return self._check(doc, self.schema(doc, spec['$ref']), v, where, depth + 1, request)
        t = spec.get('type')
        if t == 'any' or t is None and 'properties' not in spec:
            return []
        if t == 'object' or 'properties' in spec:
            if not isinstance(v, dict):
                return [f'{where}: expected an object, got {type(v).__name__}']
            errs = []
            props = spec.get('properties') or {}
            extra = spec.get('additionalProperties')
            for k, x in v.items():
                if k in props and request and props[k].get('readOnly'):
                    errs.append(f'{where}.{k}: output only; the service ignores it in a request')
                elif k in props:
                    errs += self._check(doc, props[k], x, f'{where}.{k}', depth + 1, request)
                elif extra is not None:
                    errs += self._check(doc, extra, x, f'{where}[{k!r}]', depth + 1, request)
                else:
                    name = spec.get('id') or 'object'
                    errs.append(f'{where}: unknown field {k!r} (not in {name})')
            return errs
        if t == 'array':
            if not isinstance(v, list):
                return [f'{where}: expected an array, got {type(v).__name__}']
            errs = []
            for i, x in enumerate(v):
                errs += self._check(doc, spec.get('items') or {}, x, f'{where}[{i}]', depth + 1,
                                    request)
            return errs
        return self._check_value(spec, v, where, False)

    @staticmethod
    def _check_value(spec, v, where, from_query):
        """A scalar (JSON value, or a query string when from_query)."""
        t, fmt = spec.get('type'), spec.get('format')
        if t == 'boolean':
            ok = v in ('true', 'false') if from_query else isinstance(v, bool)
            return [] if ok else [f'{where}: expected a boolean, got {v!r}']
        if t == 'integer':
            if from_query:
                ok = isinstance(v, str) and INT_STR.match(v)
            else:
                ok = isinstance(v, int) and not isinstance(v, bool)
            if ok and fmt in ('uint32',) and int(v) < 0:
                ok = False
            return [] if ok else [f'{where}: expected an integer ({fmt}), got {v!r}']
        if t == 'number':
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if from_query:
                try:
                    float(v)
                    ok = True
                except (TypeError, ValueError):
                    ok = False
            return [] if ok else [f'{where}: expected a number, got {v!r}']
        if t == 'string':
            if not isinstance(v, str):
                return [f'{where}: expected a string ({fmt or "string"}), got {v!r}']
            if fmt in ('int64', 'uint64') and not (UINT_STR if fmt == 'uint64' else INT_STR).match(v):
                return [f'{where}: {fmt} must be a string of digits, got {v!r}']
            if fmt == 'byte':
                try:
                    s = v.replace('-', '+').replace('_', '/')
                    base64.b64decode(s + '=' * (-len(s) % 4), validate=True)
                except (binascii.Error, ValueError):
                    return [f'{where}: not base64: {v[:40]!r}']
            if fmt in ('google-datetime', 'date-time') and not RFC3339.match(v):
                return [f'{where}: not an RFC 3339 time: {v!r}']
            if fmt == 'google-duration' and not DURATION.match(v):
                return [f'{where}: not a duration like "600s": {v!r}']
            if spec.get('enum') and v not in spec['enum']:
                return [f'{where}: {v!r} is not one of {", ".join(spec["enum"])}']
            return []
        return []

    # ---- generation ------------------------------------------------------------------------
    def generate(self, ref, doc=None, skip=None, depth=0):
        """A value of schema ref with every field present and realistic, type-correct values.
        skip: {schema id: set of field names} left out (state-bearing fields a scenario owns)."""
        doc = doc or self._doc_of({'$ref': ref})
        return self._gen(doc, {'$ref': ref}, 'x', skip or {}, depth)

    def _gen(self, doc, spec, name, skip, depth):
        if '$ref' in spec:
            if depth > 6:
                return None
            return self._gen(doc, self.schema(doc, spec['$ref']), name, skip, depth + 1)
        t, fmt = spec.get('type'), spec.get('format')
        if t == 'object' or 'properties' in spec:
            out = {}
            sid = spec.get('id')
            for k, p in (spec.get('properties') or {}).items():
                if k in skip.get(sid, ()):
                    continue
                x = self._gen(doc, p, k, skip, depth + 1)
                if x is not None:
                    out[k] = x
            if 'additionalProperties' in spec and not out:
                x = self._gen(doc, spec['additionalProperties'], name, skip, depth + 1)
                out = GeneratedMap({} if x is None else {f'{name}-key': x})
            return out
        if t == 'array':
            x = self._gen(doc, spec.get('items') or {}, name, skip, depth + 1)
            return [] if x is None else [x]
        if t == 'boolean':
            return False
        if t == 'integer':
            return 1
        if t == 'number':
            return 1.5
        if t == 'any':
            return 'fake-any'
        if t == 'string':
            if spec.get('enum'):
                vals = [e for e in spec['enum'] if not e.endswith('UNSPECIFIED')]
                return (vals or spec['enum'])[-1]
            return {'int64': '1', 'uint64': '1', 'byte': 'ZmFrZQ==',
                    'google-datetime': '2026-01-02T03:04:05.123456Z',
                    'date-time': '2026-01-02T03:04:05.123Z', 'google-duration': '600s',
                    'google-fieldmask': 'name', 'date': '2026-01-02'}.get(fmt, f'fake-{name}')
        return None


class GeneratedMap(dict):
    """A generated map (additionalProperties): its sample entry is not merged into a map the
    scenario gives, since a map's keys are data."""


def merge_full(generated, actual):
    """actual (a scenario's answer) over generated (every field): objects merge recursively
    (a map the scenario gives is kept as it is), and each element of an actual list is merged
    over the generated list's first element."""
    if isinstance(generated, GeneratedMap):
        return actual
    if isinstance(actual, dict) and isinstance(generated, dict):
        out = dict(generated)
        for k, v in actual.items():
            out[k] = merge_full(generated.get(k), v)
        return out
    if isinstance(actual, list) and isinstance(generated, list) and generated:
        return [merge_full(generated[0], x) for x in actual]
    return actual
