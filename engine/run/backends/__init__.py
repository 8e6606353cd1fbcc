"""Execution backends: where the jobs of a run are fingerprinted.

The supervisor (engine/run/supervisor.py) holds one :class:`Backend` and never looks inside
it; a backend never touches the supervisor's state, the catalog or the store. Two exist:

- :class:`~engine.run.backends.fork.ForkBackend`: forked workers on this machine, a bounded
  job queue, a result pipe and a shared-memory PCM buffer per worker;
- :class:`~engine.run.backends.dask.DaskBackend`: tasks on Dask distributed, a LocalCluster or
  a remote scheduler (imported only when asked for).

Contract: every job accepted by :meth:`Backend.submit` is answered by exactly one event from
:meth:`Backend.poll` or :meth:`Backend.stop` (:class:`~engine.run.messages.Done`,
:class:`~engine.run.messages.Failed` or :class:`~engine.run.messages.Lost`), or taken back by
:meth:`Backend.interrupt`; a job whose answer never comes is caught by the supervisor's
lost-job rule (NOTE [engine protocol]). Every method returns within a bounded time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..messages import Event, Job

__all__ = ["Backend"]


class Backend(Protocol):
    """What the supervisor needs from an execution backend (NOTE [engine protocol])."""

    def start(self, log: Callable[[str], None]) -> None:
        """Make the workers (or get ready to: a backend may start on its first job)."""

    def submit(self, job: Job) -> bool:
        """Hand over one job; False when there is no room (after a bounded wait)."""

    def poll(self, timeout: float) -> list[Event]:
        """The events that arrive within ``timeout`` seconds (results, lost jobs, deaths)."""

    def reset(self) -> list[Event]:
        """Replace a job queue that no worker can take from (the supervisor saw jobs queued
        and none taken for a while); the jobs in it are dropped and submitted again. The
        events that came meanwhile."""

    def interrupt(self) -> list[int]:
        """Stop starting jobs; the track ids of the jobs taken back before they started."""

    def stop(self, *, abandon: bool) -> list[Event]:
        """Stop every worker (at once when ``abandon``); the events that came meanwhile."""

    def close(self) -> None:
        """Release what is left (buffers, clusters), after the last commit."""

    def depth(self) -> int:
        """Jobs handed over and not yet started (progress, ``-v``)."""

    def active(self) -> int:
        """Jobs that a worker is known to hold right now."""

    def processes(self) -> list[int]:
        """Pids of this machine's worker processes, for the memory figure."""

    def describe(self) -> str | None:
        """The memory budget line printed at the start, if the backend has one then."""
