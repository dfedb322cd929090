"""The arm64 build: `-Dtarget=aarch64-linux-musl` builds a static binary,
and its selftest passes under qemu-user when the machine has it."""
import os
import re
import shutil

import pytest

from conftest import run, ROOT, SANITIZED


@pytest.mark.skipif(os.environ.get("CCR_SKIP_CROSS") == "1", reason="CCR_SKIP_CROSS=1")
@pytest.mark.skipif(SANITIZED, reason="the aarch64 cross build is a release build; scripts/test runs it")
def test_aarch64_build_and_selftest(tmp_path):
    prefix = tmp_path / "arm64"
    r = run([ROOT / "vendor" / "zig", "build", "-Dtarget=aarch64-linux-musl", "-p", prefix], cwd=ROOT, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    binary = prefix / "bin" / "ccr"
    out = run(["file", binary]).stdout
    assert "ARM aarch64" in out and "statically linked" in out, out
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not qemu:
        pytest.skip("qemu-user-static not installed: built, but not run")
    r = run([qemu, binary, "selftest"], timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    assert re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M)
