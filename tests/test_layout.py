"""The shape of src/ (issue 9's rules), checked by scripts/layout --check:
no file over 800 lines, no function over 80, no include loop between modules, serve/ includes
nothing from job/, getenv only in src/settings/, `->ops->` only in
src/backend/.  The other tests build small trees that break one rule each,
so the check is seen failing."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT = os.path.join(ROOT, "scripts", "layout")


def layout(*args):
    return subprocess.run([sys.executable, LAYOUT, "--check", *args], capture_output=True, text=True)


def test_src_keeps_the_rules():
    r = layout()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "include loops: 0" in r.stdout


def write(root, rel, text):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


BROKEN = {
    "include loops": {"a/x.c": '#include "a/y.h"\n', "a/x.h": "", "a/y.c": '#include "a/x.h"\n', "a/y.h": ""},
    "files over 800 lines": {"a/big.c": "int x;\n" * 801},
    "functions over 80 lines": {"a/long.c": "int f(void)\n{\n" + "\tx++;\n" * 80 + "}\n"},
    "serve/ includes job/": {"serve/s.c": '#include "job/j.h"\n', "job/j.h": ""},
    "getenv outside the settings code": {"job/j.c": 'const char *f(void) { return getenv("X"); }\n'},
    "->ops-> outside src/backend/": {"job/j.c": "void f(struct s *s) { s->ops->put(s); }\n"},
}


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_rule_can_fail(tmp_path, rule):
    for rel, text in BROKEN[rule].items():
        write(tmp_path, rel, text)
    write(tmp_path, "settings/settings.c", 'const char *g(void) { return getenv("Y"); }\n')
    r = layout("--root", str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert rule in r.stderr, r.stderr
