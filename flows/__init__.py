"""Prefect flows of the pipeline (reproduce-mmbert) and their deployments."""

from tasks import prefect_env

prefect_env.apply()
