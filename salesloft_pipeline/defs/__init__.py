"""Dagster definitions, by concern (extract, staging, engagement, webhooks).

These modules do not use `from __future__ import annotations`: Dagster reads
parameter annotations (context, config, resources) when it builds definitions.
"""
