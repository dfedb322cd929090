"""vendor/fetch and vendor/update-lock: pinned, verified, repeatable."""
import os
import pathlib
import shutil
import time

import pytest

from conftest import run, ROOT

FETCH = ROOT / "vendor" / "fetch"
UPDATE = ROOT / "vendor" / "update-lock"
LOCK = ROOT / "vendor" / "sources.lock"
CACHE = pathlib.Path(os.environ.get("CCR_CACHE_DIR") or
                     pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "ccr")
DOWNLOADS = CACHE / "sources"
# An address where nothing listens: a run that needs the network fails.
NO_NET = {"DEBIAN_MIRROR": "http://127.0.0.1:9/debian", "DEBIAN_SECURITY_MIRROR": "http://127.0.0.1:9/debian-security"}


def lock_lines(pkg):
    return [l.split() for l in LOCK.read_text().splitlines() if l.split()[:1] == [pkg]]


@pytest.fixture
def cjson_cache(tmp_path):
    """A private cache holding verified copies of cjson's downloads."""
    cache = tmp_path / "cache"
    (cache / "sources").mkdir(parents=True)
    names = [name for _, _, name, _ in lock_lines("cjson")]
    if not all((DOWNLOADS / n).exists() for n in names):
        # Populate the shared download cache (the tree was unpacked elsewhere).
        r = run([FETCH, "cjson"], env=dict(os.environ, CCR_VENDOR_SRC=str(tmp_path / "seed")))
        assert r.returncode == 0, r.stderr
    for name in names:
        shutil.copy2(DOWNLOADS / name, cache / "sources" / name)
    return cache


def fetch(tmp_path, cache, *args, extra_env=None, lock=None):
    env = dict(os.environ, CCR_CACHE_DIR=str(cache), CCR_VENDOR_SRC=str(tmp_path / "out"))
    if lock:
        env["CCR_SOURCES_LOCK"] = str(lock)
    env.update(extra_env or {})
    return run([FETCH, *args], env=env)


def test_fetch_unpacks_patches_and_stamps(tmp_path, cjson_cache):
    r = fetch(tmp_path, cjson_cache, "cjson", extra_env=NO_NET)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out" / "cjson"
    assert (out / "cJSON.c").is_file()
    series = (out / "debian" / "patches" / "series").read_text().split()
    assert series, "cjson has Debian patches"
    stamp = (out / ".ccr-stamp").read_text().split("\n")
    assert [l.split() for l in stamp if l] == lock_lines("cjson")


def test_second_run_is_a_noop_without_network(tmp_path, cjson_cache):
    assert fetch(tmp_path, cjson_cache, "cjson").returncode == 0
    marker = tmp_path / "out" / "cjson" / "cJSON.c"
    before = marker.stat().st_mtime_ns
    time.sleep(0.05)
    r = fetch(tmp_path, cjson_cache, "cjson", extra_env=NO_NET)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    assert marker.stat().st_mtime_ns == before


def test_tampered_download_is_refused(tmp_path, cjson_cache):
    orig = next(n for _, _, n, _ in lock_lines("cjson") if ".orig." in n)
    path = cjson_cache / "sources" / orig
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    r = fetch(tmp_path, cjson_cache, "cjson", extra_env=NO_NET)
    assert r.returncode != 0
    assert f"checksum mismatch for {orig}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "cjson").exists()


def test_tampered_lock_is_refused(tmp_path, cjson_cache):
    lock = tmp_path / "sources.lock"
    text = LOCK.read_text()
    line = " ".join(lock_lines("cjson")[0])
    bad = line[:-1] + ("0" if line[-1] != "0" else "1")
    lock.write_text(text.replace(line, bad))
    r = fetch(tmp_path, cjson_cache, "cjson", extra_env=NO_NET, lock=lock)
    assert r.returncode != 0 and "checksum mismatch" in r.stderr


def test_unknown_package_is_an_error(tmp_path, cjson_cache):
    r = fetch(tmp_path, cjson_cache, "no-such-package", extra_env=NO_NET)
    assert r.returncode != 0 and "not in" in r.stderr


def test_superseded_pin_says_so(tmp_path):
    """A version Debian no longer offers fails with the versions it does offer."""
    lock = tmp_path / "sources.lock"
    fake = "cjson 1.7.18-0ccrgone cjson_1.7.18-0ccrgone.dsc " + "0" * 64
    lock.write_text(fake + "\n")
    r = fetch(tmp_path, tmp_path / "cache", "cjson", lock=lock)
    assert r.returncode != 0
    assert "pinned cjson 1.7.18-0ccrgone is no longer offered" in r.stderr
    assert "1.7.18-3.1+deb13u1" in r.stderr, "lists what Debian offers"
    assert "vendor/update-lock cjson" in r.stderr


def test_update_lock_reproduces_the_pin(tmp_path):
    lock = tmp_path / "sources.lock"
    shutil.copy2(LOCK, lock)
    ver = lock_lines("cjson")[0][1]
    env = dict(os.environ, CCR_CACHE_DIR=str(tmp_path / "cache"), CCR_SOURCES_LOCK=str(lock))
    r = run([UPDATE, f"cjson={ver}"], env=env)
    assert r.returncode == 0, r.stderr
    assert lock.read_text() == LOCK.read_text()
