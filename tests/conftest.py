"""Shared fixtures for ccr's integration tests.

Tests drive the built binary (zig-out/bin/ccr, or $CCR_BIN) as a user would.
Each test that needs a server starts it itself, from tests/fakes.
"""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def ccr_bin():
    path = pathlib.Path(os.environ.get("CCR_BIN", ROOT / "zig-out" / "bin" / "ccr"))
    if not path.is_file():
        pytest.fail(f"{path} does not exist: run scripts/build first")
    return path


@pytest.fixture(scope="session")
def repo_root():
    return ROOT


def run(argv, **kw):
    """subprocess.run with text output captured and a default timeout."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 300)
    return subprocess.run([str(a) for a in argv], **kw)


def is_root():
    return os.geteuid() == 0
