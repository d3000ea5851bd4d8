"""Raw table layouts, generated from the stream registry's models."""

from __future__ import annotations

import types
import typing
from datetime import datetime
from functools import cache

from salesloft_pipeline.salesloft import STREAMS, Reference, Stream
from salesloft_pipeline.warehouse import Column, RawTable

# References whose ids SalesLoft sends as strings (user guids, role names, template UUIDs).
TEXT_REFERENCES = {
    ("meetings", "booked_by_user"), ("users", "role"), ("team_template_attachments", "team_template"),
    ("conversations", "person"), ("conversations", "account"), ("transcriptions", "conversation"),
}
# Streams whose own ids are strings.
TEXT_IDS = {
    "team_templates", "activity_histories", "calendar_events", "conversations", "transcriptions", "custom_roles",
    "account_types",
}


def _kinds(annotation: object) -> set[object]:
    """The plain types inside an annotation like `Timestamp | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return {k for arg in typing.get_args(annotation) for k in _kinds(arg)}
    if typing.get_origin(annotation) is typing.Annotated:
        return _kinds(typing.get_args(annotation)[0])
    return {annotation}


@cache
def raw_table(stream: Stream) -> RawTable:
    """Typed columns for the record's id, references (`<name>_id`) and timestamps (UTC)."""
    columns = [Column("created_at", "timestamp", ("created_at",)), Column("updated_at", "timestamp", ("updated_at",))]
    for name, field in stream.model.model_fields.items():
        kinds = _kinds(field.annotation)
        key = field.alias or name
        if Reference in kinds:
            kind = "text" if (stream.name, key) in TEXT_REFERENCES else "bigint"
            columns.append(Column(f"{key}_id", kind, (key, "id")))
        elif datetime in kinds and key not in ("created_at", "updated_at"):
            columns.append(Column(key, "timestamp", (key,)))
    return RawTable(
        stream.name,
        id_type="text" if stream.name in TEXT_IDS else "bigint",
        columns=tuple(columns),
        partitioned=stream.incremental,
    )


def all_raw_tables() -> list[RawTable]:
    return [raw_table(s) for s in STREAMS]
