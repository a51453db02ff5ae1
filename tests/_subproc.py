"""Fresh interpreters for the tests that need a process of their own (an
environment variable read at import, such as LOGITKIT_SIMD)."""

from __future__ import annotations

import os
import subprocess
import sys


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter running `code` under exactly `env`."""
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )


def run(code: str, **env: str) -> str:
    """`code`'s stdout, run with this process's environment plus `env`."""
    return python(code, dict(os.environ, **env)).stdout


def lower_levels(level: str) -> list[str]:
    """The SIMD levels below `level` that this CPU also runs."""
    return {"avx512": ["avx2", "scalar"], "avx2": ["scalar"]}.get(level, ["scalar"])
