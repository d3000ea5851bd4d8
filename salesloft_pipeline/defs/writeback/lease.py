"""A run's hold on one write-back asset, renewed whenever the run talks to SalesLoft or waits for it.

Another run may take the lease over once Dagster reports the holder's run
ended, or once the lease went unrenewed for the lease timeout (the holder's
process died without Dagster noticing). So the holder renews it before every
request and before every wait of the client's pacer, a rate-limit (429) wait
included: the longest stretch without a renewal is then one request with its
retries, minutes at worst, never the client's 30 rate-limit windows. A renewal
that finds the lease taken raises LeaseLost, which stops the run before its
next request.
"""

import time
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType

from salesloft_pipeline.salesloft import Pacer, SalesloftClient
from salesloft_pipeline.warehouse.writeback import Ledger

MAX_RENEW_INTERVAL = 10.0  # seconds; renewing costs a warehouse transaction, so not before every request


class Lease:
    """`with Lease(...)`: the asset's lease for this run (LeaseHeld if another run has it), released at the end."""

    def __init__(
        self,
        ledger: Ledger,
        asset: str,
        run_id: str,
        holder_alive: Callable[[str], bool | None],
        timeout: timedelta,
    ) -> None:
        self.ledger, self.asset, self.run_id = ledger, asset, run_id
        self.holder_alive, self.timeout = holder_alive, timeout
        # Skipping renewals closer together than this is safe: a lease is only stale after `timeout`.
        self.interval = min(MAX_RENEW_INTERVAL, timeout.total_seconds() / 10)
        self._renewed = 0.0

    def __enter__(self) -> "Lease":
        self.ledger.acquire(self.asset, self.run_id, self.holder_alive, self.timeout)
        self._renewed = time.monotonic()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.ledger.release(self.asset, self.run_id)

    def renew(self) -> None:
        """Renews the lease (at most every `interval`); raises LeaseLost if another run took it."""
        if time.monotonic() - self._renewed >= self.interval:
            self.ledger.renew(self.asset, self.run_id)
            self._renewed = time.monotonic()

    def watch(self, client: SalesloftClient) -> None:
        """Makes `client` renew the lease before each request and each wait."""
        client.pacer = RenewingPacer(client.pacer, self.renew)


class RenewingPacer(Pacer):
    """The client's pacer (same settings), calling `renew` before each request and each wait."""

    def __init__(self, pacer: Pacer, renew: Callable[[], None]) -> None:
        def sleep(seconds: float) -> None:
            renew()
            time.sleep(seconds)

        super().__init__(share=pacer.share, window_seconds=pacer.window_seconds, budget=pacer.budget, sleep=sleep)
        self.renew = renew

    def wait_turn(self, cost: int = 1) -> None:
        self.renew()
        super().wait_turn(cost)
