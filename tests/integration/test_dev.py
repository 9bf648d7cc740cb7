"""`make run` as a new user sees it, and the worker's command line.

`python -m stream dev` starts its own embedded broker, a worker and the demo
feed, prints suggestions and triggers one line each, and leaves no process
behind when it stops (here on SIGINT, as Ctrl-C sends).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.broker import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def start_dev(data_dir: Path) -> subprocess.Popen[str]:
    """`python -m stream dev` as `make run` starts it, its output read line by line."""
    return subprocess.Popen(
        [sys.executable, "-m", "stream", "dev", "--rate", "20"],
        cwd=ROOT,
        env=clean_env(STREAM_DATA_DIR=str(data_dir), STREAM_WEB_PORT=str(free_port())),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_dev_shows_suggestions_and_triggers_then_leaves_nothing_running(tmp_path: Path) -> None:
    """`python -m stream dev` prints suggestions and triggers within 3 min; Ctrl-C ends all.

    The live sessions start once the worker has learnt the demo's history, so
    the first suggestions a new user sees carry items (before, the first
    ~50 met an index that had learnt nothing: "(nothing qualifies)").
    """
    process = start_dev(tmp_path)
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 180
    suggestions = triggers = 0
    learnt = False
    live: list[str] = []  # the suggestions after the feed said its history was learnt
    try:
        while time.monotonic() < deadline and (suggestions < 5 or triggers < 5 or len(live) < 5):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if " suggestion " in line and " -> " in line and "nothing" not in line:
                suggestions += 1
            if " trigger " in line and " -> " in line:
                triggers += 1
            learnt = learnt or "history learnt" in line
            if learnt and " suggestion " in line:
                live.append(line)
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    lines += rest.splitlines()
    output = "\n".join(lines)
    assert suggestions >= 5, output
    assert triggers >= 5, output
    assert len(live) >= 5 and not [line for line in live[:5] if "nothing qualifies" in line], output
    assert process.returncode == 0, output

    broker_port = int(re.search(r"embedded broker on 127\.0\.0\.1:(\d+)", output).group(1))  # type: ignore[union-attr]
    worker_pid = int(re.search(r"worker pid (\d+)", output).group(1))  # type: ignore[union-attr]
    assert "worker stopped" in output and "broker stopped" in output
    assert not pid_alive(worker_pid)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", broker_port), timeout=1):
        pass


def test_worker_fails_fast_on_a_bad_setting() -> None:
    """A malformed STREAM_* value stops the worker at once, naming the variable."""
    result = subprocess.run(
        [sys.executable, "-m", "stream", "worker", "-l", "info"],
        cwd=ROOT,
        env=clean_env(STREAM_PARTITIONS="zero", STREAM_BROKER="kafka://127.0.0.1:1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "STREAM_PARTITIONS" in result.stderr


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGHUP])
def test_dev_killed_or_its_terminal_closed_leaves_nothing_running(
    tmp_path: Path, how: signal.Signals
) -> None:
    """`make run` killed outright (SIGKILL: no handler runs), or its terminal closed (SIGHUP):
    its worker and broker go too, and do not keep the web port and retry a broker forever."""
    process = start_dev(tmp_path)
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("demo feed:" in line for line in lines):
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
    output = "\n".join(lines)
    worker_pid = int(re.search(r"worker pid (\d+)", output).group(1))  # type: ignore[union-attr]
    broker_port = int(re.search(r"embedded broker on 127\.0\.0\.1:(\d+)", output).group(1))  # type: ignore[union-attr]
    process.send_signal(how)
    process.communicate(timeout=60)
    deadline = time.monotonic() + 30  # each is sent SIGTERM, and stops in its own time
    while (pid_alive(worker_pid) or port_open(broker_port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(worker_pid), output
    assert not port_open(broker_port), output


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
