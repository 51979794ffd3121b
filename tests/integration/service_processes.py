"""A service run as production runs it (`python -m services.<name>`), on free ports, for the
tests that need the real server in front of the app."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from libs.common.config import PROJECT_ROOT, Settings


def _wait_until_healthy(name: str, proc: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the {name} exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still booting its workers
            pass
        time.sleep(0.2)
    pytest.fail(f"the {name} did not become healthy:\n{log_path.read_text()}")


@contextmanager
def service_process(
    name: str, settings: Settings, tmp_path: Path, port: int, env: dict[str, str]
) -> Iterator[Path]:
    """`python -m services.<name>` with the test servers' settings and `env`, healthy at
    `port`'s /healthz, until the block ends; yields the path of its log."""
    environ = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEY": settings.encryption_key,
        "JT_VAR_DIR": str(tmp_path / "var"),
        "LOG_LEVEL": "INFO",
        **env,
    }
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=PROJECT_ROOT,
            env=environ,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(name, proc, f"http://127.0.0.1:{port}/healthz", log_path)
        yield log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
