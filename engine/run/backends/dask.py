"""The Dask distributed backend: the same task on Dask workers, one machine or many.

``engine-run --backend dask`` starts a LocalCluster of ``--cores`` single-threaded worker
processes; ``engine-run --scheduler tcp://HOST:8786`` uses an existing cluster. Only the
execution changes: the supervisor, its catalog, retries, batches and output are the same
objects as with the fork backend. docs/SCALING.md says when to use which backend.

NOTE [dask backend]
===================
::

    Supervisor (engine/run/supervisor.py): catalog, retries, LMDB batches, output
        |  DaskBackend.submit(job): path rewritten by --path-map for the workers' mounts;
        |  client.submit(fingerprint_task, key="fingerprint-<run>-<track>-a<attempt>");
        |  False while the window (2 x worker threads) is full, after a bounded wait
        v
    scheduler: a LocalCluster in this process, or tcp://HOST:8786   (allowed-failures = 0)
        |
        v
    Dask workers (Nanny processes, spawned): _Warmup plugin: numba 1 thread, kernels.warmup()
        each task: engine.run.task.run_task (the fork workers' code) into a per-thread buffer;
        a watchdog thread kills its own process past the track's time budget (a hung decoder)
        |
        v
    DaskBackend.poll: as_completed(with_results=True, raise_errors=False)
        Done / Failed -> the supervisor;  KilledWorker (a poison file, a kill, the memory
        limit, the watchdog) -> Lost("worker_died" or "timeout"): the supervisor's one retry
        rule sends the job again (attempt + 1, a new key) or records it as failed.

Why the engine, not Dask, retries: Dask's own retries (``allowed-failures``, default 3) would
multiply with the engine's. A worker that dies fails every task it held: the one it ran and
the one queued behind it ("collateral"). Each retried task is a *suspect*: :meth:`submit`
refuses a second suspect while one is in flight, so the poison file is alone when it kills its
second worker and its companion of the first death runs safely elsewhere. ``--max-retries``
defaults to 1 here: a poison file costs 2 worker restarts (Dask's default would cost 4), an
innocent collateral track succeeds on its retry.

Memory: the client holds at most ``window`` futures, and the supervisor at most ``queue_size +
cores`` pending jobs, whatever the library size. Each spawned worker is a full Python process
(about 210 MB with the kernels loaded, against about 12 MB of private memory for a forked
worker); the nanny restarts one that passes 95 % of ``--memory-limit``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import psutil

import kernels

from ...errors import BackendError
from ...text import display
from ..messages import Done, Event, Failed, Job, Lost
from ..task import TaskSettings, TaskState, run_task

__all__ = ["DaskBackend", "DaskConfig", "PathMap", "fingerprint_task"]

log = logging.getLogger(__name__)

#: Seconds closing the client and the LocalCluster may take.
CLOSE_TIMEOUT_S: Final = 10.0
#: How often the window is resized to the cluster's thread count, seconds.
RESIZE_EVERY_S: Final = 2.0
#: Seconds :meth:`DaskBackend.submit` waits for room in a full window.
SUBMIT_WAIT_S: Final = 0.2
#: Dask settings of every run; the environment goes to worker processes the nannies spawn.
DASK_SETTINGS: Final = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS": "1",
    "distributed.nanny.pre-spawn-environ.OPENBLAS_NUM_THREADS": "1",
    "distributed.nanny.pre-spawn-environ.MKL_NUM_THREADS": "1",
    "distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS": "1",
}


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True, slots=True)
class PathMap:
    """``--path-map LOCAL=REMOTE``: where the workers see the files the client scans.

    The longest LOCAL prefix that matches a path on a folder boundary is replaced by its
    REMOTE. Only the jobs sent to workers are rewritten: the catalog, the output and the
    failure records keep the client's paths.

    Attributes
    ----------
    pairs : tuple of (str, str)
        (local, remote) prefixes, absolute, without a trailing slash (``/`` itself allowed).
    """

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, items: Sequence[str]) -> PathMap:
        """From ``LOCAL=REMOTE`` strings; :class:`BackendError` names a malformed one."""
        pairs = []
        for item in items:
            local, sep, remote = item.partition("=")
            if not sep or not local or not remote:
                raise BackendError(f"--path-map {item!r}: expected LOCAL=REMOTE, e.g. "
                                   f"/home/me/Music=/mnt/music")
            if not (local.startswith("/") and remote.startswith("/")):
                raise BackendError(f"--path-map {item!r}: both prefixes must be absolute paths")
            pairs.append((_strip(os.path.abspath(local)), _strip(os.path.normpath(remote))))
        pairs.sort(key=lambda p: len(p[0]), reverse=True)
        return cls(tuple(pairs))

    def to_remote(self, path: str) -> str:
        """The path as the workers see it (unchanged when no prefix matches)."""
        for local, remote in self.pairs:
            if local == "/":
                return remote.rstrip("/") + path
            if path == local or path.startswith(local + "/"):
                return remote + path[len(local):]
        return path


def _strip(p: str) -> str:
    return p if p == "/" else p.rstrip("/")


@dataclass(frozen=True, slots=True)
class DaskConfig:
    """Options of the Dask backend (engine/run/cli.py has the flags).

    Attributes
    ----------
    scheduler : str or None
        Address of a running scheduler (``tcp://HOST:8786``); None starts a LocalCluster of
        ``workers`` single-threaded worker processes.
    workers : int
        LocalCluster worker processes (``--cores``).
    memory_limit : str or int
        Per worker of the LocalCluster (``"1GiB"``, bytes, or ``"auto"``); a remote cluster's
        workers have the limit they were started with.
    path_map : PathMap
    window : int or None
        Tasks in flight; None: 2 x the cluster's worker threads (resized as workers come and
        go).
    local_directory : str or None
        Scratch space of LocalCluster workers; None: Dask's default under the temp folder.
    connect_timeout_s : float
        Seconds to reach the scheduler and see its first worker (and to wait for a reconnect
        when the connection drops mid-run).
    verbose : bool
        Keep Dask's own logs (else only the engine speaks).
    """

    scheduler: str | None = None
    workers: int = 1
    memory_limit: str | int = "1GiB"
    path_map: PathMap = field(default_factory=PathMap)
    window: int | None = None
    local_directory: str | None = None
    connect_timeout_s: float = 30.0
    verbose: bool = False


# --------------------------------------------------------------------------------------------
# Worker side


def worker_plugin_class() -> type:
    """The warm-up WorkerPlugin (a class made on demand: distributed is imported lazily)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class _Warmup(WorkerPlugin):
        """Once per worker process (and again in each one a nanny restarts): one numba thread,
        every kernel loaded from the on-disk cache (compiled when the cache is cold)."""

        name = "fingerprint-warmup"
        idempotent = True

        def __init__(self, ignore_sigint: bool = False) -> None:
            self.ignore_sigint = ignore_sigint

        def setup(self, worker: Any) -> None:
            import numba

            if self.ignore_sigint:
                # A LocalCluster's workers share the terminal's process group: Ctrl-C must not
                # kill the tracks in flight, the engine decides (as for forked workers).
                with contextlib.suppress(ValueError):  # not the main thread: leave it
                    signal.signal(signal.SIGINT, signal.SIG_IGN)

            if numba.get_num_threads() != 1:
                numba.set_num_threads(1)
            t0 = time.perf_counter()
            kernels.warmup()
            worker.fingerprint_warmup_s = time.perf_counter() - t0

    return _Warmup


_local = threading.local()


def fingerprint_task(job: Job, settings: TaskSettings, version: int) -> Done | Failed:
    """One track on a Dask worker: :func:`engine.run.task.run_task`, with a watchdog.

    Each worker thread keeps one :class:`~engine.run.task.TaskState` (a PCM buffer allocated
    once, and its analyzers). A watchdog thread kills this worker process when the track runs
    past its time budget: a hung decoder cannot be interrupted any other way; the nanny
    restarts the worker and the client sees ``KilledWorker``.

    Parameters
    ----------
    job : Job
        With the path as this worker sees it.
    settings : TaskSettings
    version : int
        The fingerprint version the client stores; a worker that computes another refuses.

    Returns
    -------
    Done or Failed
        Every failure of the file itself is data; a crash takes the process (KilledWorker).
    """
    pid = os.getpid()
    if not os.path.exists(job.path):
        return Failed(-1, pid, job.track_id, job.attempt, job.path, "missing",
                      f"{display(job.path)}: not found on the Dask worker (pid {pid}): is the "
                      f"library mounted there, and does --path-map map the client's path to "
                      f"it?")
    if version != kernels.FINGERPRINT_VERSION:
        return Failed(-1, pid, job.track_id, job.attempt, job.path, "version",
                      f"{display(job.path)}: this worker computes fingerprint version "
                      f"{kernels.FINGERPRINT_VERSION}, the client stores version {version}: "
                      f"install the same engine on every worker")
    state = getattr(_local, "state", None)
    if state is None or state.buffer.size != settings.capacity:
        state = _local.state = TaskState(np.empty(settings.capacity, np.float32))
    budget = [settings.timeout_s]
    finished = threading.Event()
    t0 = time.monotonic()

    def watchdog() -> None:
        while not finished.wait(0.2):
            if time.monotonic() - t0 > budget[0]:
                os.kill(pid, signal.SIGKILL)

    def on_budget(seconds: float) -> None:
        budget[0] = seconds

    threading.Thread(target=watchdog, name="fingerprint-watchdog", daemon=True).start()
    try:
        return run_task(job, settings, state, worker=-1, pid=pid, on_budget=on_budget)
    finally:
        finished.set()


# --------------------------------------------------------------------------------------------
# Client side


@dataclass(slots=True)
class _InFlight:
    job: Job  # with the client's path
    submitted: float


class DaskBackend:
    """Jobs as Dask tasks (NOTE [dask backend]); a :class:`~engine.run.backends.Backend`.

    Parameters
    ----------
    config : DaskConfig
    settings : TaskSettings

    Raises
    ------
    BackendError
        (from its methods) when Dask is not installed, the scheduler cannot be reached, has no
        worker, or goes away.
    """

    def __init__(self, config: DaskConfig, settings: TaskSettings) -> None:
        self.config = config
        self.settings = settings
        self._log: Callable[[str], None] = lambda _msg: None
        self._client: Any = None
        self._cluster: Any = None
        self._ac: Any = None
        self._settings_ctx: contextlib.ExitStack | None = None
        self._futures: dict[str, tuple[Any, _InFlight]] = {}
        self._suspect: str | None = None  # key of the one retried task in flight, if any
        self._dead: set[str] = set()  # addresses of workers that died (a restart gets a new one)
        self._no_workers_since: float | None = None
        self._run_token = uuid.uuid4().hex[:8]
        self._window = max(1, config.window or 2 * config.workers)
        self._threads = config.workers
        self._last_resize = 0.0
        self._checked_paths = False
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, log: Callable[[str], None]) -> None:
        """Only check that Dask is there: the cluster starts with the first job, so a run that
        finds everything in the store never starts one."""
        self._log = log
        try:
            import distributed  # noqa: F401
        except ImportError as exc:
            raise BackendError(f"the Dask backend needs dask[distributed] ({exc}): pip install "
                               f"-e .[dask]") from exc

    def _connect(self) -> None:
        """Start the LocalCluster or connect to the scheduler; register the warm-up plugin."""
        import dask
        from distributed import Client, LocalCluster, as_completed

        dc = self.config
        self._settings_ctx = contextlib.ExitStack()
        self._settings_ctx.enter_context(dask.config.set(DASK_SETTINGS))
        if not dc.verbose:
            # a task lost with its worker is reported by the engine, as a failure or a retry
            for name in ("distributed.scheduler", "distributed.nanny", "distributed.worker",
                         "distributed.core", "distributed.client"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            if dc.scheduler is None:
                self._cluster = LocalCluster(
                    n_workers=dc.workers, threads_per_worker=1, processes=True,
                    memory_limit=dc.memory_limit, dashboard_address=None, host="127.0.0.1",
                    silence_logs=logging.CRITICAL if not dc.verbose else logging.WARN,
                    local_directory=dc.local_directory,
                    # its HTTP server (health, metrics) on a free loopback port, not :8787
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
                self._client = Client(self._cluster, timeout=dc.connect_timeout_s)
            else:
                self._client = Client(dc.scheduler, timeout=dc.connect_timeout_s)
                self._client.wait_for_workers(1, timeout=dc.connect_timeout_s)
                allowed = self._client.run_on_scheduler(
                    lambda dask_scheduler: dask_scheduler.allowed_failures)
                if allowed != 0:
                    self._log(f"dask: the scheduler at {dc.scheduler} has allowed-failures="
                              f"{allowed}; start it with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_"
                              f"FAILURES=0 so that Dask's retries do not multiply the "
                              f"engine's (--max-retries)")
            self._register_warmup()
        except BackendError:
            raise
        except Exception as exc:  # OSError, TimeoutError, "Nanny failed to start", ...
            raise BackendError(f"dask: cannot start or reach the cluster "
                               f"({dc.scheduler or 'LocalCluster'}): {exc}; check the address "
                               f"and that its workers run") from exc
        self._resize_window(force=True)
        with contextlib.suppress(Exception):
            wide = sorted(a for a, n in self._client.nthreads().items() if n > 1)
            if wide:
                self._log(f"dask: {len(wide)} worker(s) run several threads (e.g. {wide[0]}): "
                          f"a crash or a hung track takes every task of the process with it; "
                          f"start workers with --nthreads 1 (docs/SCALING.md)")
        self._ac = as_completed(with_results=True, raise_errors=False)
        self._log(self._budget_line())

    def _register_warmup(self) -> None:
        """Register the warm-up plugin; a worker dying meanwhile (the scheduler keeps the
        plugin and runs it on the worker the nanny starts instead) costs one more try."""
        plugin = worker_plugin_class()(ignore_sigint=self._cluster is not None)
        for attempt in range(3):
            try:
                self._client.register_plugin(plugin)
                return
            except OSError as exc:
                if attempt == 2:
                    raise
                log.info("dask: registering the warm-up plugin failed (%s); again", exc)
                self._client.wait_for_workers(1, timeout=self.config.connect_timeout_s)

    def stop(self, *, abandon: bool) -> list[Event]:
        """What finished is still worth keeping; cancel the rest (``abandon`` changes nothing
        here: the supervisor already waited its grace period)."""
        self._stopping = True
        if self._client is None:
            return []
        events: list[Event] = []
        with contextlib.suppress(Exception):
            events = self.poll(0.0)
        if self._futures:
            if self._client.status == "running":  # else there is no one to tell
                with contextlib.suppress(Exception):
                    self._client.cancel([f for f, _ in self._futures.values()])
            self._futures.clear()
            self._suspect = None
        return events

    def close(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=CLOSE_TIMEOUT_S if client.status == "running" else 1)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=CLOSE_TIMEOUT_S)
        if self._settings_ctx is not None:
            self._settings_ctx.close()
            self._settings_ctx = None

    def _resize_window(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_resize < RESIZE_EVERY_S:
            return
        self._last_resize = now
        try:
            threads = sum(self._client.nthreads().values())
        except Exception:  # the scheduler is gone: _check_scheduler says so
            return
        self._threads = threads
        if self.config.window is None:
            self._window = max(2, 2 * threads)
        if threads:
            self._no_workers_since = None
        elif self._no_workers_since is None:
            self._no_workers_since = now
        elif now - self._no_workers_since > self.config.connect_timeout_s:
            where = self.config.scheduler or "the LocalCluster"
            raise BackendError(f"dask: {where} has had no worker for "
                               f"{now - self._no_workers_since:.0f} s: start workers for it; "
                               f"what completed is committed")

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, job: Job) -> bool:
        """Submit one task when the window has room, else wait for a result up to
        :data:`SUBMIT_WAIT_S` and say False. A retried job (a suspect: it was lost with a
        worker) also waits until no other suspect is in flight (NOTE [dask backend])."""
        if len(self._futures) >= self._window or (job.attempt > 0 and self._suspect):
            self._wait(SUBMIT_WAIT_S)
            return False
        if self._client is None:
            self._connect()
        remote = self.config.path_map.to_remote(job.path)
        if not self._checked_paths and os.path.isfile(job.path):
            self._checked_paths = True
            self._check_visible(job.path, remote)
        sent = Job(job.track_id, remote, job.attempt, job.max_retries)
        key = f"fingerprint-{self._run_token}-{job.track_id}-a{job.attempt}"
        future = self._client.submit(fingerprint_task, sent, self.settings,
                                     kernels.FINGERPRINT_VERSION, key=key, pure=False,
                                     retries=0)
        self._futures[future.key] = (future, _InFlight(job, time.monotonic()))
        if job.attempt > 0:
            self._suspect = future.key
        self._ac.add(future)
        return True

    def _check_visible(self, local: str, remote: str) -> None:
        """Stop the run, before the first task, when a worker cannot see the first file: a
        missing mount or a wrong --path-map would otherwise become one failure record per
        track, and failed tracks are not retried by later runs."""
        try:
            seen = self._client.run(os.path.isfile, remote)
        except Exception as exc:  # the check is a courtesy: the tasks say the same, later
            log.debug("dask: visibility check failed: %s", exc)
            return
        blind = sorted(addr for addr, ok in seen.items() if not ok)
        if blind:
            raise BackendError(
                f"dask: {len(blind)} of {len(seen)} workers ({', '.join(blind[:3])}"
                f"{', ...' if len(blind) > 3 else ''}) cannot see {display(remote)}, the "
                f"client's {display(local)}: mount the library on every worker, or pass "
                f"--path-map LOCAL=REMOTE for where it is mounted there")

    def _wait(self, timeout: float) -> None:
        """Until a task completes or ``timeout`` passes."""
        if self._ac is None or not self._futures or self._ac.has_ready():
            return
        from distributed import wait

        try:
            wait([f for f, _ in self._futures.values()], timeout=timeout,
                 return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        except Exception as exc:  # FuturesCancelledError: the scheduler went away?
            self._check_scheduler(exc)

    def poll(self, timeout: float) -> list[Event]:
        """Results within ``timeout``; lost tasks as :class:`Lost`."""
        if self._client is None or self._ac is None:
            if timeout > 0:
                time.sleep(min(timeout, 0.05))
            return []
        if not self._stopping:
            if self._client.status != "running":
                self._check_scheduler(None)
            self._resize_window()
        if timeout > 0:
            if self._futures:
                self._wait(timeout)
            else:
                time.sleep(min(timeout, 0.05))
        events: list[Event] = []
        for future, result in self._ac.next_batch(block=False):
            entry = self._futures.pop(future.key, None)
            if future.key == self._suspect:
                self._suspect = None
            status = future.status
            future.release()
            if entry is None:
                continue
            job = entry[1].job
            if status == "cancelled":  # nobody here cancels a task the run still waits for
                if self._stopping:
                    continue  # the run is over: it is not coming back
                self._check_scheduler(None)
            if status == "finished":
                events.append(self._finished(job, result))
            else:
                error = result[1] if isinstance(result, tuple) and len(result) == 3 else result
                events.append(self._lost(entry[1], status, error))
        return events

    def _finished(self, job: Job, result: Any) -> Event:
        if isinstance(result, Failed) and result.kind == "version":
            # the cluster, not the file: every track would fail the same way, and a stored
            # failure would keep the track from later runs
            raise BackendError(f"dask: {result.message}")
        if isinstance(result, Failed) and result.kind == "missing" and os.path.isfile(job.path):
            # the client sees the file, that worker did not (a worker that joined without the
            # mount): another try, likely elsewhere, rather than a lasting failure
            if job.attempt < job.max_retries:
                return Lost(job.track_id, "missing", result.message, death=False)
        if isinstance(result, Done | Failed):
            return result
        return Failed(-1, 0, job.track_id, job.attempt, job.path, "exception",
                      f"{display(job.path)}: the task returned {type(result).__name__}, not a "
                      f"result")

    def _lost(self, flight: _InFlight, status: str, exc: Any) -> Event:
        """A task that did not return: a worker died with it, or it raised on Dask."""
        from distributed.scheduler import KilledWorker

        job = flight.job
        elapsed = time.monotonic() - flight.submitted
        if isinstance(exc, KilledWorker) or status == "cancelled":
            worker = getattr(getattr(exc, "last_worker", None), "address", None)
            death = worker is None or worker not in self._dead  # one death can lose two tasks
            if worker is not None:
                self._dead.add(worker)
            kind = "timeout" if elapsed > self.settings.timeout_s else "worker_died"
            return Lost(job.track_id, kind, f"{worker or 'a worker'} died with it "
                        f"({type(exc).__name__ if exc else status}, {elapsed:.1f} s after "
                        f"submission)", death=death)
        tb = "".join(traceback.format_exception(exc)) if isinstance(exc, BaseException) else ""
        return Failed(-1, 0, job.track_id, job.attempt, job.path, "exception",
                      f"{display(job.path)}: the task failed on Dask: {type(exc).__name__}: "
                      f"{exc}", tb)

    def _check_scheduler(self, exc: BaseException | None) -> None:
        """Raise :class:`BackendError` when the client has lost its scheduler (its futures
        are cancelled then); a brief reconnect is given ``connect_timeout_s``."""
        client = self._client
        if client is None or client.status == "running" or self._stopping:
            return
        deadline = time.monotonic() + self.config.connect_timeout_s
        while exc is None and client.status == "connecting" and time.monotonic() < deadline:
            time.sleep(0.2)  # a brief disconnect: the client reconnects by itself
        if client.status != "running" or exc is not None:
            where = self.config.scheduler or "the LocalCluster's scheduler"
            why = f"; {str(exc).splitlines()[0]}" if exc is not None and str(exc) else ""
            raise BackendError(f"dask: lost the connection to {where} (client status "
                               f"{client.status!r}{why}); what completed is committed: run "
                               f"engine-run again to do the rest")

    def interrupt(self) -> list[int]:
        """Tasks in flight run on (the supervisor gives them the grace period)."""
        return []

    def reset(self) -> list[Event]:
        """Nothing to reset: a future is held until it completes or its worker is lost."""
        return []

    # -- reporting -----------------------------------------------------------------------------

    def depth(self) -> int:
        return len(self._futures)

    def active(self) -> int:
        return len(self._futures)

    def processes(self) -> list[int]:
        if self._cluster is None:
            return []  # a remote cluster's memory is its own
        with contextlib.suppress(psutil.Error):
            return [p.pid for p in psutil.Process().children(recursive=True)]
        return []

    def describe(self) -> str | None:
        """Nothing before the cluster starts: :meth:`_connect` logs the budget then."""
        return None

    def _budget_line(self) -> str:
        dc = self.config
        sup = psutil.Process().memory_info().rss / 2**20
        limit = (f"{dc.memory_limit / 2**20:,.0f} MiB" if isinstance(dc.memory_limit, int)
                 else dc.memory_limit)
        where = (f"LocalCluster of {dc.workers} worker processes x 1 thread, memory limit "
                 f"{limit} each (the nanny restarts a worker past 95 %)"
                 if dc.scheduler is None else f"scheduler {dc.scheduler}, {self._threads} "
                 f"worker threads")
        return (f"dask: {where}; client {sup:.0f} MB; at most {self._window} tasks in flight, "
                f"whatever the library size")

