"""The binary itself: static linking, versions, multicall dispatch, selftest."""
import os
import re
import shutil

import pytest

from conftest import run, is_root, release_binary_only

LIB_VERSIONS = {
    "libcurl": "8.14.1",
    "mbedtls": "3.6.6",
    "libgit2": "1.9.0",
    "zlib": "1.3.1",
    "cjson": "1.7.18",
    "http-parser": "2.9.4",
}


@release_binary_only
def test_statically_linked(ccr_bin):
    out = run(["file", "-L", ccr_bin]).stdout
    assert "statically linked" in out, out
    assert "ELF 64-bit" in out
    ldd = run(["ldd", ccr_bin])
    assert "not a dynamic executable" in (ldd.stdout + ldd.stderr)


def test_version_reads_each_library(ccr_bin):
    r = run([ccr_bin, "version"])
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert re.match(r"\d+\.\d+\.\d+", lines["ccr"])
    for lib, ver in LIB_VERSIONS.items():
        assert lines[lib].startswith(ver), (lib, lines.get(lib))
    assert "mbedTLS/3.6.6" in lines["libcurl"]


def test_no_command_prints_usage_and_exits_2(ccr_bin):
    r = run([ccr_bin])
    assert r.returncode == 2
    assert "usage: ccr COMMAND" in r.stderr and r.stdout == ""


def test_unknown_command_exits_2(ccr_bin):
    r = run([ccr_bin, "frobnicate"])
    assert r.returncode == 2
    assert "unknown command 'frobnicate'" in r.stderr
    assert "serve" in r.stderr and "selftest" in r.stderr


def test_help_lists_every_command(ccr_bin):
    r = run([ccr_bin, "help"])
    assert r.returncode == 0
    for cmd in ("serve", "job", "selftest", "version", "help"):
        assert re.search(rf"^\s+{cmd}\s", r.stdout, re.M), cmd


@pytest.mark.parametrize("name", ["ccr-version", "version"])
def test_argv0_dispatch(ccr_bin, tmp_path, name):
    link = tmp_path / name
    link.symlink_to(ccr_bin)
    r = run([link])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ccr ")
    assert "libgit2 1.9.0" in r.stdout


def test_argv0_selftest_link_passes_arguments(ccr_bin, tmp_path):
    link = tmp_path / "ccr-selftest"
    link.symlink_to(ccr_bin)
    r = run([link, "--list", "net/"])
    assert r.returncode == 0, r.stderr
    names = r.stdout.split()
    assert names and all(n.startswith("net/") for n in names)


def test_selftest_passes(ccr_bin):
    r = run([ccr_bin, "selftest"])
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    assert m and int(m.group(2)) == 0, r.stdout
    listed = run([ccr_bin, "selftest", "--list"]).stdout.split()
    assert len(listed) == int(m.group(1))
    # The deployment checks are there; the unit tests are in ccr-unit, not in ccr.
    for name in ("crypto/sha256", "crypto/aes256gcm", "net/ca_bundle", "net/tls_config", "net/curl_loopback",
                 "net/git_clone", "backend/envelope_local", "backend/storage_local", "sandbox/box"):
        assert name in listed, listed
    assert not [n for n in listed if n.startswith(("json/", "http/", "proxy/"))], listed


def test_selftest_reports_failure(ccr_bin, tmp_path):
    """With no writable TMPDIR the git case must fail, and the exit code say so."""
    env = dict(os.environ, TMPDIR=str(tmp_path / "missing"))
    r = run([ccr_bin, "selftest", "net/git_clone"], env=env)
    assert r.returncode == 1
    assert "FAIL net/git_clone" in r.stdout
    assert r.stdout.strip().endswith("0 passed, 1 failed")


def test_selftest_unknown_case_is_usage_error(ccr_bin):
    r = run([ccr_bin, "selftest", "no/such/case"])
    assert r.returncode == 2 and "no case matches" in r.stderr


@release_binary_only
@pytest.mark.skipif(not is_root(), reason="chroot needs root")
def test_selftest_in_empty_chroot(ccr_bin, tmp_path):
    """Only /ccr and an empty /tmp: no /dev, /etc, /proc or CA files."""
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(ccr_bin, root / "ccr")
    r = run([shutil.which("chroot"), root, "/ccr", "selftest"], env={"PATH": "/"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M), r.stdout
    assert sorted(p.name for p in root.iterdir()) == ["ccr", "tmp"]
    assert list((root / "tmp").iterdir()) == [], "selftest left files behind"
