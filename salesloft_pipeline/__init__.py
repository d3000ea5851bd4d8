"""salesloft_pipeline: a SalesLoft ELT pipeline on Dagster."""

__version__ = "0.1.0"
