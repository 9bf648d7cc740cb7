"""Python scripts that drive the worker's own code in a process of their own (no broker).

The worker's module (`stream.app`) reads its settings when imported, so a
test that runs its handlers or timers does it in a subprocess, with only the
settings it names (and its data in the test's directory).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from stream.bench.pipeline import environment_without_settings

ROOT = Path(__file__).resolve().parents[1]


def run_script(
    script: str, data_dir: Path, *args: str, status: int = 0, **settings: str
) -> subprocess.CompletedProcess[bytes]:
    """`python -c script *args` at the repository root; fails unless it exits with `status`."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=dict(environment_without_settings(), STREAM_DATA_DIR=str(data_dir), **settings),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == status, done.stderr.decode()[-3000:]
    return done


def printed(done: subprocess.CompletedProcess[bytes]) -> Any:
    """The JSON the script printed last."""
    return orjson.loads(done.stdout.splitlines()[-1])
