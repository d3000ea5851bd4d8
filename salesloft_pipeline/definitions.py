"""The code location: every asset, check, schedule, sensor and resource of the pipeline."""

from __future__ import annotations

import os

import dagster as dg

from salesloft_pipeline.defs.engagement.assets import ENGAGEMENT_ASSETS, engagement_job
from salesloft_pipeline.defs.engagement.attribution import cadence_pipeline
from salesloft_pipeline.defs.engagement.checks import ENGAGEMENT_CHECKS
from salesloft_pipeline.defs.engagement.sensors import engagement_late_updates_sensor
from salesloft_pipeline.defs.engagement.update import engagement_update_job
from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS
from salesloft_pipeline.defs.extract.checks import EXTRACT_CHECKS
from salesloft_pipeline.defs.extract.schedules import (
    full_refresh_job,
    full_refresh_schedule,
    incremental_job,
    salesloft_incremental_schedule,
    salesloft_lookback_schedule,
)
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.defs.run_health import dead_run_workers_sensor
from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
from salesloft_pipeline.defs.webhooks.jobs import webhook_apply_job
from salesloft_pipeline.defs.webhooks.resources import EventStoreResource
from salesloft_pipeline.defs.webhooks.sensors import salesloft_webhooks_sensor
from salesloft_pipeline.defs.writeback.assets import WRITEBACK_ASSETS, writeback_job


def _env(name: str) -> dg.EnvVar | None:
    """`name` as an EnvVar (read at run time, never shown in run config) if it is set; else None,
    and the resource reads the environment itself at run time (so API key and OAuth both work)."""
    return dg.EnvVar(name) if os.environ.get(name) else None


defs = dg.Definitions(
    assets=[*EXTRACT_ASSETS, *STAGING_ASSETS, *ENGAGEMENT_ASSETS, cadence_pipeline, *WRITEBACK_ASSETS],
    asset_checks=[*EXTRACT_CHECKS, *ENGAGEMENT_CHECKS],
    jobs=[incremental_job, full_refresh_job, engagement_job, engagement_update_job, webhook_apply_job, writeback_job],
    schedules=[salesloft_incremental_schedule, salesloft_lookback_schedule, full_refresh_schedule],
    sensors=[
        engagement_late_updates_sensor,
        salesloft_webhooks_sensor,
        dead_run_workers_sensor,
        dg.AutomationConditionSensorDefinition(
            "salesloft_automation",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=int(os.environ.get("SALESLOFT_AUTOMATION_SECONDS") or 30),
        ),
    ],
    # A run's steps one after the other in the run's process: the steps that
    # call SalesLoft queue on one pool slot anyway, DuckDB takes one writer at a
    # time, and a process a step costs seconds for each of 53 streams.
    executor=dg.in_process_executor,
    resources={
        # Secrets come from the environment at run time and never enter run config.
        "salesloft": SalesloftResource(
            api_key=_env("SALESLOFT_API_KEY"),
            client_id=_env("SALESLOFT_CLIENT_ID"),
            client_secret=_env("SALESLOFT_CLIENT_SECRET"),
            refresh_token=_env("SALESLOFT_REFRESH_TOKEN"),
            store_url=_env("SALESLOFT_OAUTH_STORE_URL"),  # may hold a database password
        ),
        "warehouse": WarehouseResource(),
        "events": EventStoreResource(),
    },
)
