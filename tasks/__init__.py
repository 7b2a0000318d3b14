"""Prefect tasks: run one DVC stage, host the Ray cluster the stages share. No ML here."""

from tasks import prefect_env

prefect_env.apply()
