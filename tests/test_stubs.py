"""The hand-kept stubs in _core.pyi must match the compiled module."""

import subprocess
import sys

import pytest


def test_core_stubs_match_compiled_module():
    pytest.importorskip("mypy")
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "logitkit._core", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
