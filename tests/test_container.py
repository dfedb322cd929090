"""The serve image: FROM scratch with only /ccr, and selftest passing inside it."""
import os
import re
import shutil

import pytest

from conftest import run, is_root, ROOT, SANITIZED

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="buildah (vfs, chroot isolation) and chroot need root"),
    pytest.mark.skipif(SANITIZED, reason="the image holds only the static release binary; "
                       "CCR_SANITIZED=1 runs the dynamically linked sanitizer build"),
]


@pytest.fixture
def buildah(tmp_path):
    if not shutil.which("buildah"):
        pytest.fail("buildah missing: scripts/install-deps test installs it")
    store = ["--storage-driver", "vfs", "--root", str(tmp_path / "storage"), "--runroot", str(tmp_path / "run")]

    def call(*args, check=True):
        r = run(["buildah", *store, *args], timeout=600)
        if check:
            assert r.returncode == 0, f"buildah {args[0]}: {r.stderr}"
        return r
    yield call
    call("rm", "--all", check=False)
    call("rmi", "--all", "--force", check=False)


def test_serve_image_holds_only_ccr_and_selftest_passes(ccr_bin, buildah, tmp_path):
    # Build context as the documented command sees it after .containerignore.
    ctx = tmp_path / "ctx"
    (ctx / "zig-out" / "bin").mkdir(parents=True)
    shutil.copy2(ccr_bin, ctx / "zig-out" / "bin" / "ccr")
    shutil.copy2(ROOT / "Containerfile", ctx / "Containerfile")
    buildah("bud", "--isolation", "chroot", "--target", "serve", "-t", "ccr-serve-test", "-f",
            str(ctx / "Containerfile"), str(ctx))

    cfg = buildah("inspect", "--type", "image", "--format", "{{.OCIv1.Config.Entrypoint}}",
                  "ccr-serve-test").stdout.strip()
    assert cfg == "[/ccr serve]"

    ctr = buildah("from", "ccr-serve-test").stdout.strip().splitlines()[-1]
    mnt = buildah("mount", ctr).stdout.strip()
    rootfs = tmp_path / "rootfs"
    shutil.copytree(mnt, rootfs, symlinks=True)
    buildah("umount", ctr)
    assert sorted(os.listdir(rootfs)) == ["ccr"], os.listdir(rootfs)

    # A scratch image has no /tmp; the runtime mounts one, so does this test.
    (rootfs / "tmp").mkdir()
    os.chmod(rootfs / "tmp", 0o1777)
    r = run([shutil.which("chroot"), rootfs, "/ccr", "selftest"], env={"PATH": "/"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M)
