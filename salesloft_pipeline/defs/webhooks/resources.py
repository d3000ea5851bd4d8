"""The event store the webhook endpoint writes, as a Dagster resource."""

import dagster as dg
from pydantic import Field

from salesloft_pipeline.webhooks import EventStore, open_event_store


class EventStoreResource(dg.ConfigurableResource):
    """Where the webhook endpoint stores accepted deliveries."""

    url: str | None = Field(
        default=None,
        description="SALESLOFT_EVENTS_URL: postgresql://..., a SQLite file path, or unset for"
        " events.sqlite under SALESLOFT_PIPELINE_HOME.",
    )

    def open(self) -> EventStore:
        return open_event_store(self.url)
