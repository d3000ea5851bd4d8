"""A SalesLoft stand-in for the demo, tests and benchmarks (see docs/simulator.md)."""

from typing import Any

from .config import SimulatorConfig

__all__ = ["Simulator", "SimulatorConfig"]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `simulator.store` or `simulator.generator`
    # load without the HTTP stack.
    if name == "Simulator":
        from .server import Simulator

        return Simulator
    raise AttributeError(name)
