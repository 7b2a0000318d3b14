"""The Prefect defaults the flows apply before Prefect is imported."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import REPO


def _settings(env: dict[str, str]) -> list[str]:
    code = ("import flows; from prefect.settings import get_current_settings as s; "
            "print(s().home); print(s().server.ephemeral.startup_timeout_seconds)")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def test_the_temporary_server_gets_time_to_create_its_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    assert _settings(env) == [str(REPO / ".prefect"), "180"]
    env.update(PREFECT_HOME=str(tmp_path), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="7")
    assert _settings(env) == [str(tmp_path), "7"]  # what the environment says wins
