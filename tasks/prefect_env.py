"""Prefect defaults for an offline laptop, applied before Prefect is imported; values
already in the environment win."""

from __future__ import annotations

import os
from pathlib import Path


def apply(home: Path | None = None) -> None:
    os.environ.setdefault("PREFECT_HOME", str(home or Path.cwd() / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # `make reproduce` starts Prefect's temporary server, which first creates its database: 13 s
    # on an idle 2-core machine, past Prefect's 20 s limit as soon as anything else runs.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
