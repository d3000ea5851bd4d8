"""Webhook events into the warehouse: the sensor over the event store and the apply job."""
