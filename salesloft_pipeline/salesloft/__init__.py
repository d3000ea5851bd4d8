"""SalesLoft REST API v2 client library: auth, pacing, paging, models.

Imports no Dagster. Typical use:

    with SalesloftClient() as client:        # SALESLOFT_API_KEY, SALESLOFT_BASE_URL
        for record in extract(client, "people", since=day_start, until=day_end):
            ...
"""

from salesloft_pipeline.salesloft.client import ClientStats, SalesloftClient
from salesloft_pipeline.salesloft.errors import (
    ApiError,
    AuthError,
    ConfigError,
    MissingScopeError,
    PagingError,
    RateLimitError,
    SalesloftError,
    TransportError,
)
from salesloft_pipeline.salesloft.extract import Extraction, InvalidRecord, extract
from salesloft_pipeline.salesloft.models import Record, Reference, dump_record, dump_record_json
from salesloft_pipeline.salesloft.pacing import Pacer
from salesloft_pipeline.salesloft.paging import iter_records
from salesloft_pipeline.salesloft.streams import BY_NAME, STREAMS, Stream, get_stream

__all__ = [
    "ApiError",
    "AuthError",
    "BY_NAME",
    "ClientStats",
    "ConfigError",
    "Extraction",
    "InvalidRecord",
    "MissingScopeError",
    "Pacer",
    "PagingError",
    "RateLimitError",
    "Record",
    "Reference",
    "STREAMS",
    "SalesloftClient",
    "SalesloftError",
    "Stream",
    "TransportError",
    "dump_record",
    "dump_record_json",
    "extract",
    "get_stream",
    "iter_records",
]
