#!/usr/bin/python3
"""Write tests/fakes/discovery/*.json: the trimmed extract of Google's discovery documents.

    /usr/bin/python3 tests/fakes/discovery_extract.py [--from DIR] [--out DIR] [--check]

Reads the full documents (DIR, else $CCR_GOOGLE_DISCOVERY, else <repo>/../shared/spec/
google-discovery) and keeps, per API, only the methods the fake Google Cloud serves (METHODS
below; the ones ccr itself calls are marked) and the schemas those methods reach through
request/response and every $ref, items and additionalProperties under them.  Descriptions are
dropped; everything else is copied unchanged.  Each extract opens with "x-ccr-extract": the
source file, repository, path and commit (from the documents' README table) and the revision.
--check compares instead of writing (exit 1 on a difference), which tests/test_fake_gcp.py does.
"""

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import discovery  # noqa: E402

# Every method the fake serves.  True: ccr's service calls it (src/gcp/*.c, src/tools/gcp_cmd.c);
# 'deploy': `ccr deploy` calls it (src/deploy/*.c, through src/gcp/rest.c); False: the fake only.
METHODS = {
    'run-v2.json': {
        'run.projects.locations.jobs.run': True,
        'run.projects.locations.jobs.executions.list': True,
        'run.projects.locations.jobs.executions.get': True,
        'run.projects.locations.jobs.executions.cancel': True,
        'run.projects.locations.operations.get': True,
        'run.projects.locations.jobs.get': 'deploy',
        'run.projects.locations.jobs.executions.delete': False,
        'run.projects.locations.operations.list': False,
        'run.projects.locations.operations.wait': False,
        'run.projects.locations.jobs.create': 'deploy',
        'run.projects.locations.jobs.patch': 'deploy',
        'run.projects.locations.jobs.getIamPolicy': 'deploy',
        'run.projects.locations.jobs.setIamPolicy': 'deploy',
        'run.projects.locations.services.create': 'deploy',
        'run.projects.locations.services.get': 'deploy',
        'run.projects.locations.services.patch': 'deploy',
        'run.projects.locations.services.getIamPolicy': 'deploy',
        'run.projects.locations.services.setIamPolicy': 'deploy',
    },
    'storage-v1.json': {
        'storage.objects.insert': True,
        'storage.objects.get': True,
        'storage.objects.list': True,
        'storage.objects.delete': True,
        'storage.objects.compose': True,
        'storage.objects.patch': False,
        'storage.objects.update': False,
        'storage.objects.rewrite': False,
        'storage.objects.copy': False,
        'storage.buckets.insert': 'deploy',
        'storage.buckets.get': 'deploy',
        'storage.buckets.patch': 'deploy',
        'storage.buckets.getIamPolicy': 'deploy',
        'storage.buckets.setIamPolicy': 'deploy',
        'storage.buckets.list': False,
        'storage.buckets.delete': False,
    },
    'cloudkms-v1.json': {
        'cloudkms.projects.locations.keyRings.cryptoKeys.encrypt': True,
        'cloudkms.projects.locations.keyRings.cryptoKeys.decrypt': True,
        'cloudkms.projects.locations.keyRings.get': 'deploy',
        'cloudkms.projects.locations.keyRings.create': 'deploy',
        'cloudkms.projects.locations.keyRings.cryptoKeys.get': 'deploy',
        'cloudkms.projects.locations.keyRings.cryptoKeys.create': 'deploy',
        'cloudkms.projects.locations.keyRings.cryptoKeys.getIamPolicy': 'deploy',
        'cloudkms.projects.locations.keyRings.cryptoKeys.setIamPolicy': 'deploy',
    },
    'secretmanager-v1.json': {
        'secretmanager.projects.secrets.versions.access': True,
        'secretmanager.projects.locations.secrets.versions.access': False,
        'secretmanager.projects.secrets.get': 'deploy',
        'secretmanager.projects.secrets.create': 'deploy',
        'secretmanager.projects.secrets.addVersion': 'deploy',
        'secretmanager.projects.secrets.getIamPolicy': 'deploy',
        'secretmanager.projects.secrets.setIamPolicy': 'deploy',
    },
    'artifactregistry-v1.json': {
        'artifactregistry.projects.locations.repositories.get': 'deploy',
        'artifactregistry.projects.locations.repositories.create': 'deploy',
        'artifactregistry.projects.locations.operations.get': 'deploy',
    },
    'iam-v1.json': {
        'iam.projects.serviceAccounts.get': 'deploy',
        'iam.projects.serviceAccounts.create': 'deploy',
    },
    'cloudresourcemanager-v3.json': {
        'cloudresourcemanager.projects.getIamPolicy': False,
        'cloudresourcemanager.projects.setIamPolicy': False,
    },
}

TOP_KEYS = ('kind', 'discoveryVersion', 'id', 'name', 'version', 'revision', 'title', 'rootUrl',
            'servicePath', 'baseUrl', 'batchPath', 'protocol', 'parameters')


def ccr_methods():
    """The discovery ids of the methods ccr's service calls (serve, job, `ccr gcp`)."""
    return sorted(m for per in METHODS.values() for m, used in per.items() if used is True)


def deploy_methods():
    """The discovery ids of the methods `ccr deploy` calls."""
    return sorted(m for per in METHODS.values() for m, used in per.items() if used == 'deploy')


def readme_table(folder):
    """File name -> {repository, path, commit} from the documents' README table."""
    out = {}
    with open(os.path.join(folder, 'README.md'), encoding='utf-8') as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if len(cells) == 7 and cells[0].endswith('.json'):
                out[cells[0]] = {'repository': cells[4], 'path': cells[5], 'commit': cells[6]}
    return out


def strip(x):
    """x without description texts (recursively)."""
    if isinstance(x, dict):   # (a property *named* description is an object: it stays)
        return {k: strip(v) for k, v in x.items()
                if not (k in ('description', 'enumDescriptions') and isinstance(v, (str, list)))}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


def refs(x):
    if isinstance(x, dict):
        if isinstance(x.get('$ref'), str):
            yield x['$ref']
        for v in x.values():
            yield from refs(v)
    elif isinstance(x, list):
        for v in x:
            yield from refs(v)


def trim_resources(res, keep, path=()):
    """The resources tree holding only the methods in keep (others and empty branches go)."""
    out = {}
    methods = {k: m for k, m in (res.get('methods') or {}).items() if m['id'] in keep}
    if methods:
        out['methods'] = {k: strip(m) for k, m in sorted(methods.items())}
    subs = {}
    for name, r in sorted((res.get('resources') or {}).items()):
        t = trim_resources(r, keep, path + (name,))
        if t:
            subs[name] = t
    if subs:
        out['resources'] = subs
    return out


def extract(doc, fname, table):
    keep = set(METHODS[fname])
    found = {m['id'] for m in discovery.walk_methods(doc)} & keep
    if found != keep:
        raise SystemExit(f'{fname}: no method {", ".join(sorted(keep - found))}')
    out = {'x-ccr-extract': dict({'source': fname, 'revision': doc['revision'],
                                  'made_by': 'tests/fakes/discovery_extract.py',
                                  'methods_ccr_calls': sorted(m for m, u in METHODS[fname].items() if u)},
                                 **table.get(fname, {}))}
    for k in TOP_KEYS:
        if k in doc:
            out[k] = strip(doc[k])
    out['resources'] = trim_resources(doc, keep).get('resources', {})
    want, todo = set(), list(refs(out['resources']))
    while todo:
        r = todo.pop()
        if r in want:
            continue
        want.add(r)
        todo.extend(refs(doc['schemas'][r]))
    out['schemas'] = {k: strip(doc['schemas'][k]) for k in sorted(want)}
    return out


def render(obj):
    return json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + '\n'


def build(src):
    table = readme_table(src)
    files = {}
    for fname in discovery.FILES:
        with open(os.path.join(src, fname), encoding='utf-8') as f:
            files[fname] = render(extract(json.load(f), fname, table))
    return files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument('--from', dest='src', default=None)
    ap.add_argument('--out', default=discovery.EXTRACT_DIR)
    ap.add_argument('--check', action='store_true')
    a = ap.parse_args(argv)
    src = a.src or discovery.full_dir()
    if not src:
        print('discovery_extract: the full discovery documents are not found; set '
              'CCR_GOOGLE_DISCOVERY or pass --from DIR', file=sys.stderr)
        return 2
    files = build(src)
    bad = []
    os.makedirs(a.out, exist_ok=True)
    for fname, text in files.items():
        path = os.path.join(a.out, fname)
        if a.check:
            old = open(path, encoding='utf-8').read() if os.path.exists(path) else None
            if old != text:
                bad.append(path)
        else:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(text)
    if bad:
        print('discovery_extract: out of date (run tests/fakes/discovery_extract.py): '
              + ', '.join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
