"""The Dask distributed backend: the same kernels on Dask workers, one machine or many.

``engine-run --backend dask`` starts a LocalCluster of ``--cores`` single-threaded worker
processes; ``engine-run --scheduler tcp://HOST:8786`` uses an existing cluster. Only the
execution changes: :class:`DaskSupervisor` is the local :class:`~engine.supervisor.Supervisor`
(its scan, catalog, incremental rules, LMDB batches, retries, progress and output) with the
methods that run jobs replaced. docs/SCALING.md says when to use which backend.

NOTE [dask backend]
===================
::

    inputs -> Supervisor._feed -> _classify (LMDB catalog, this process only)
        |  Job (path rewritten by --path-map for the workers' mounts)
        |  _put: client.submit(fingerprint_task, job, key="fingerprint-<run>-<track>-a<attempt>")
        |        while the window is full (2 x worker threads): _collect with a timeout
        v
    scheduler: a LocalCluster in this process, or tcp://HOST:8786   (allowed-failures = 0)
        |
        v
    Dask workers (Nanny processes, spawned): _Warmup plugin: numba 1 thread, kernels.warmup()
        each task: the local worker's _fingerprint (engine/worker.py): decode with soundfile in
        blocks into a per-thread buffer, analyse, return Done / Failed as data; a watchdog
        thread kills its own process past the track's time budget (a hung decoder)
        |
        v
    as_completed(with_results=True, raise_errors=False) -> Supervisor._on_result -> LMDB batch
        KilledWorker (the worker died with the task: a poison file, a kill, the memory limit,
        the watchdog) -> the job again with attempt + 1 and a new key, up to --max-retries;
        then a failure record "worker_died" (or "timeout" when the task outlived --timeout).

Why the engine, not Dask, retries: Dask's own retries (``allowed-failures``, default 3) would
multiply with the engine's. A worker that dies fails every task it held: the one it ran and
the one queued behind it ("collateral"). Each lost task is a *suspect*: it is submitted again
(attempt + 1, a new key) with no other suspect in flight, so the poison file is alone when it
kills its second worker and its companion of the first death runs safely elsewhere. The Dask
backend's ``--max-retries`` defaults to 1: a poison file costs 2 worker restarts (Dask's
default would cost 4), an innocent collateral track succeeds on its retry.

Memory: the client holds at most ``window`` futures and ``queue_size + cores`` pending jobs,
whatever the library size, as the local engine does. Each spawned worker is a full Python
process (about 210 MB with the kernels loaded, against about 12 MB of private memory for a
forked local worker); the nanny restarts one that passes 95 % of ``--memory-limit``.
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

from .errors import BackendError
from .messages import Done, Failed, Job
from .scan import display
from .supervisor import (
    BUFFER_CHANNELS,
    WAIT_TIMEOUT_S,
    RunConfig,
    Supervisor,
)
from .worker import WorkerSpec, _fingerprint

__all__ = ["DaskConfig", "DaskSupervisor", "PathMap", "TaskSettings", "fingerprint_task"]

log = logging.getLogger(__name__)

#: Seconds closing the client and the LocalCluster may take.
CLOSE_TIMEOUT_S: Final = 10.0
#: How often the window is resized to the cluster's thread count, seconds.
RESIZE_EVERY_S: Final = 2.0
#: Dask settings of every run; the environment goes to worker processes the nannies spawn.
_DASK_SETTINGS: Final = {
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
    """Options of the Dask backend (engine/cli.py has the flags).

    Attributes
    ----------
    scheduler : str or None
        Address of a running scheduler (``tcp://HOST:8786``); None starts a LocalCluster of
        ``RunConfig.cores`` single-threaded worker processes.
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
    """

    scheduler: str | None = None
    memory_limit: str | int = "1GiB"
    path_map: PathMap = field(default_factory=PathMap)
    window: int | None = None
    local_directory: str | None = None
    connect_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """What every task needs besides its job (pickled to the workers once per task)."""

    block_frames: int
    timeout_s: float
    min_speed: float
    version: int
    hook: Callable[[Job], object] | None = None


# --------------------------------------------------------------------------------------------
# Worker side


def _worker_plugin_class() -> type:
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


class _Budget:
    """Seconds the current task may take; ``_fingerprint`` widens it once the header gives the
    duration (it indexes by worker slot, as the local engine's shared array; one slot here)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __getitem__(self, _index: int) -> float:
        return self.seconds

    def __setitem__(self, _index: int, seconds: float) -> None:
        self.seconds = seconds


_local = threading.local()


def _worker_index() -> int:
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return -1
    return name if isinstance(name, int) else -1


def fingerprint_task(job: Job, settings: TaskSettings) -> Done | Failed:
    """One track on a Dask worker: the local engine's decode-and-analyse, as data.

    Each worker thread keeps one PCM buffer (``block_frames x 8`` float32, allocated once) and
    its analyzers. A watchdog thread kills this worker process when the track runs past its
    time budget (``timeout_s``, plus ``duration / min_speed`` once the header is read): a
    hung decoder cannot be interrupted any other way; the nanny restarts the worker and the
    client sees ``KilledWorker``.

    Parameters
    ----------
    job : Job
        With the path as this worker sees it.
    settings : TaskSettings

    Returns
    -------
    Done or Failed
        Every failure of the file itself is data; a crash takes the process (KilledWorker).
    """
    index, pid = _worker_index(), os.getpid()
    if not os.path.exists(job.path):
        return Failed(index, pid, job.track_id, job.attempt, job.path, "missing",
                      f"{display(job.path)}: not found on the Dask worker (pid {pid}): is the "
                      f"library mounted there, and does --path-map map the client's path to "
                      f"it?")
    if settings.version != kernels.FINGERPRINT_VERSION:
        return Failed(index, pid, job.track_id, job.attempt, job.path, "version",
                      f"{display(job.path)}: this worker computes fingerprint version "
                      f"{kernels.FINGERPRINT_VERSION}, the client stores version "
                      f"{settings.version}: install the same engine on every worker")
    capacity = settings.block_frames * BUFFER_CHANNELS
    state = getattr(_local, "state", None)
    if state is None or state[0].size != capacity:
        state = (np.empty(capacity, np.float32), {})
        _local.state = state
    buffer, analyzers = state
    spec = WorkerSpec(index=index, buffer=buffer.data, capacity=capacity, parent_pid=0,
                      timeout_s=settings.timeout_s, min_speed=settings.min_speed,
                      hook=settings.hook)
    budget = _Budget(settings.timeout_s)
    finished = threading.Event()
    t0 = time.monotonic()

    def watchdog() -> None:
        while not finished.wait(0.2):
            if time.monotonic() - t0 > budget.seconds:
                os.kill(pid, signal.SIGKILL)

    threading.Thread(target=watchdog, name="fingerprint-watchdog", daemon=True).start()
    try:
        result = settings.hook(job) if settings.hook is not None else None
        if result is None:
            result = _fingerprint(spec, job, analyzers, pid, budget)
    except Exception as e:  # a bug outside the analysis proper: data, as in the local worker
        result = Failed(index, pid, job.track_id, job.attempt, job.path, "exception",
                        f"{display(job.path)}: {type(e).__name__}: {e}", traceback.format_exc())
    finally:
        finished.set()
    return result  # type: ignore[return-value]  # a test hook may return anything


# --------------------------------------------------------------------------------------------
# Client side


@dataclass(slots=True)
class _InFlight:
    job: Job  # with the client's path
    submitted: float


class DaskSupervisor(Supervisor):
    """:class:`Supervisor` whose jobs run on Dask (NOTE [dask backend]).

    Parameters
    ----------
    config : RunConfig
        ``cores`` is the LocalCluster's worker count (ignored with a scheduler address);
        ``queue_size`` is not used: the window is ``DaskConfig.window``.
    dask_config : DaskConfig
    out, err : TextIO, optional
        As for :class:`Supervisor`.

    Raises
    ------
    BackendError
        (from :meth:`run`) when the scheduler cannot be reached, has no worker, or goes away.
    """

    def __init__(self, config: RunConfig, dask_config: DaskConfig, **kw: Any) -> None:
        super().__init__(config, **kw)
        self.dask_config = dask_config
        self._client: Any = None
        self._cluster: Any = None
        self._ac: Any = None
        self._settings_ctx: contextlib.ExitStack | None = None
        self._futures: dict[str, tuple[Any, _InFlight]] = {}
        self._suspect: str | None = None  # key of the one retried task in flight, if any
        self._dead: set[str] = set()  # addresses of workers that died (a restart gets a new one)
        self._no_workers_since: float | None = None
        self._run_token = uuid.uuid4().hex[:8]
        self._window = max(1, dask_config.window or 2 * config.cores)
        self._threads = config.cores
        self._last_resize = 0.0
        self._checked_paths = False
        self._task_settings = TaskSettings(config.block_frames, config.timeout_s,
                                           config.min_speed, kernels.FINGERPRINT_VERSION,
                                           config.worker_hook)

    # -- backend: start and stop ---------------------------------------------------------------

    def _start_workers(self) -> None:
        """Only check that Dask is there: the cluster starts with the first job, so a run that
        finds everything in the store never starts one."""
        try:
            import distributed  # noqa: F401
        except ImportError as exc:
            raise BackendError(f"the Dask backend needs dask[distributed] ({exc}): pip install "
                               f"-e .[dask]") from exc

    def _connect(self) -> None:
        """Start the LocalCluster or connect to the scheduler; register the warm-up plugin."""
        import dask
        from distributed import Client, LocalCluster, as_completed

        dc = self.dask_config
        self._settings_ctx = contextlib.ExitStack()
        self._settings_ctx.enter_context(dask.config.set(_DASK_SETTINGS))
        if not self.config.verbose:
            # a task lost with its worker is reported here, as a failure record or a retry
            for name in ("distributed.scheduler", "distributed.nanny", "distributed.worker",
                         "distributed.core", "distributed.client"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            if dc.scheduler is None:
                self._cluster = LocalCluster(
                    n_workers=self.config.cores, threads_per_worker=1, processes=True,
                    memory_limit=dc.memory_limit, dashboard_address=None, host="127.0.0.1",
                    silence_logs=logging.CRITICAL if not self.config.verbose else logging.WARN,
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
                    ours = self.config.max_retries + 1
                    self._log(f"dask: the scheduler at {dc.scheduler} has allowed-failures="
                              f"{allowed}; start it with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_"
                              f"FAILURES=0 so that a poison file costs {ours} worker restarts, "
                              f"not {(allowed + 1) * ours}")
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
        self._print_dask_budget()

    def _register_warmup(self) -> None:
        """Register the warm-up plugin; a worker dying meanwhile (the scheduler keeps the
        plugin and runs it on the worker the nanny starts instead) costs one more try."""
        plugin = _worker_plugin_class()(ignore_sigint=self._cluster is not None)
        for attempt in range(3):
            try:
                self._client.register_plugin(plugin)
                return
            except OSError as exc:
                if attempt == 2:
                    raise
                log.info("dask: registering the warm-up plugin failed (%s); again", exc)
                self._client.wait_for_workers(1, timeout=self.dask_config.connect_timeout_s)

    def _stop_workers(self) -> None:
        self._stopping = True
        if self._client is None:
            return
        with contextlib.suppress(Exception):
            self._collect(timeout=0.0)  # what finished is still worth keeping
        if self._futures:
            if self._client.status == "running":  # else there is no one to tell
                with contextlib.suppress(Exception):
                    self._client.cancel([f for f, _ in self._futures.values()])
            self._futures.clear()
            self._suspect = None

    def _release_workers(self) -> None:
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
        except Exception:  # the scheduler is gone: _check_workers says so
            return
        self._threads = threads
        if self.dask_config.window is None:
            self._window = max(2, 2 * threads)
        if threads:
            self._no_workers_since = None
        elif self._no_workers_since is None:
            self._no_workers_since = now
        elif now - self._no_workers_since > self.dask_config.connect_timeout_s:
            where = self.dask_config.scheduler or "the LocalCluster"
            raise BackendError(f"dask: {where} has had no worker for "
                               f"{now - self._no_workers_since:.0f} s: start workers for it; "
                               f"what completed is committed")

    # -- backend: feeding and collecting ---------------------------------------------------------

    def _put(self, job: Job) -> None:
        """Submit one task once the window has room; collect results meanwhile. A retried task
        (a suspect: it was lost with a worker) also waits until no other suspect is in flight,
        so that a poison file cannot take another suspect down with it."""
        while len(self._futures) >= self._window or (job.attempt > 0
                                                     and self._suspect is not None):
            self._check_stop()
            self._collect(timeout=WAIT_TIMEOUT_S)
            self._check_workers()
            self._maybe_commit()
            self._refresh_progress()
        self._check_stop()
        if self._client is None:
            self._connect()
        remote = self.dask_config.path_map.to_remote(job.path)
        if not self._checked_paths and os.path.isfile(job.path):
            self._checked_paths = True
            self._check_visible(job.path, remote)
        sent = Job(job.track_id, remote, job.priority, job.attempt, job.max_retries,
                   time.monotonic())
        key = f"fingerprint-{self._run_token}-{job.track_id}-a{job.attempt}"
        future = self._client.submit(fingerprint_task, sent, self._task_settings, key=key,
                                     pure=False, retries=0)
        self._futures[future.key] = (future, _InFlight(job, time.monotonic()))
        if job.attempt > 0:
            self._suspect = future.key
        self._ac.add(future)
        self.stats.enqueued += 1
        self.stats.max_queue_depth = max(self.stats.max_queue_depth, len(self._futures))
        self._collect(timeout=0.0)

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

    def _collect(self, *, timeout: float) -> int:
        """Results within ``timeout``: Done/Failed go to _on_result, lost tasks to _lost."""
        if self._ac is None:
            return 0
        if timeout > 0 and self._futures and not self._ac.has_ready():
            from distributed import wait

            try:
                wait([f for f, _ in self._futures.values()], timeout=timeout,
                     return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
            except Exception as exc:  # FuturesCancelledError: the scheduler went away?
                self._check_scheduler(exc)
        elif timeout > 0 and not self._futures:
            time.sleep(min(timeout, 0.05))
        n = 0
        for future, result in self._ac.next_batch(block=False):
            entry = self._futures.pop(future.key, None)
            if future.key == self._suspect:
                self._suspect = None
            status = future.status
            future.release()
            if entry is None:
                continue
            n += 1
            _, flight = entry
            if status == "cancelled":  # nobody here cancels a task the run still waits for
                if self._stopping:
                    continue  # the run is over: it is not coming back
                self._check_scheduler(None)
            if (status == "finished" and isinstance(result, Failed) and result.kind == "missing"
                    and flight.job.attempt < flight.job.max_retries
                    and os.path.isfile(flight.job.path)):
                # the client sees the file, that worker did not (a worker that joined without
                # the mount): another try, likely elsewhere, rather than a lasting failure
                self._again(flight.job)
            elif status == "finished" and isinstance(result, Done | Failed):
                self._on_result(result)
            elif status == "finished":
                self._on_result(Failed(-1, 0, flight.job.track_id, flight.job.attempt,
                                       flight.job.path, "exception",
                                       f"{display(flight.job.path)}: the task returned "
                                       f"{type(result).__name__}, not a result"))
            else:
                error = result[1] if isinstance(result, tuple) and len(result) == 3 else result
                self._lost(flight, status, error)
        return n

    def _again(self, job: Job) -> None:
        """Submit ``job`` once more, as a suspect (attempt + 1: see _put)."""
        self.stats.retried += 1
        retry = Job(job.track_id, job.path, job.priority, job.attempt + 1, job.max_retries, 0.0)
        entry = self._pending.get(job.track_id)
        if entry is not None:
            entry.job = retry
            self._retry.append(retry)

    def _lost(self, flight: _InFlight, status: str, exc: Any) -> None:
        """A task that did not return: retry it (a worker died with it) or record why."""
        from distributed.scheduler import KilledWorker

        job = flight.job
        elapsed = time.monotonic() - flight.submitted
        if isinstance(exc, KilledWorker) or status == "cancelled":
            worker = getattr(getattr(exc, "last_worker", None), "address", None)
            if worker is None or worker not in self._dead:  # one death can lose two tasks
                self.stats.worker_deaths += 1
                if worker is not None:
                    self._dead.add(worker)
            worker = worker or "a worker"
            where = (f"{worker} died with it ({type(exc).__name__ if exc else status}, "
                     f"{elapsed:.1f} s after submission)")
            self.stats.deaths.append(f"track {job.track_id} {job.path}: {where}")
            if self.config.verbose:
                self._log(f"dask: track {job.track_id} {display(job.path)}: {where}")
            if job.attempt < job.max_retries:
                self._again(job)
                return
            kind = "timeout" if elapsed > self.config.timeout_s else "worker_died"
            self._on_result(Failed(-1, 0, job.track_id, job.attempt, job.path, kind,
                                   f"{display(job.path)}: {where} (attempt {job.attempt + 1} "
                                   f"of {job.max_retries + 1}); not retried again"))
            return
        tb = "".join(traceback.format_exception(exc)) if isinstance(exc, BaseException) else ""
        self._on_result(Failed(-1, 0, job.track_id, job.attempt, job.path, "exception",
                               f"{display(job.path)}: the task failed on Dask: "
                               f"{type(exc).__name__}: {exc}", tb))

    def _check_scheduler(self, exc: BaseException | None) -> None:
        """Raise :class:`BackendError` when the client has lost its scheduler (its futures
        are cancelled then); a brief reconnect is given ``connect_timeout_s``."""
        client = self._client
        if client is None or client.status == "running" or self._stopping:
            return
        deadline = time.monotonic() + self.dask_config.connect_timeout_s
        while exc is None and client.status == "connecting" and time.monotonic() < deadline:
            time.sleep(0.2)  # a brief disconnect: the client reconnects by itself
        if client.status != "running" or exc is not None:
            where = self.dask_config.scheduler or "the LocalCluster's scheduler"
            why = f"; {str(exc).splitlines()[0]}" if exc is not None and str(exc) else ""
            raise BackendError(f"dask: lost the connection to {where} (client status "
                               f"{client.status!r}{why}); what completed is committed: run "
                               f"engine-run again to do the rest")

    def _check_workers(self) -> None:
        if self._stopping or self._client is None:
            return
        if self._client.status != "running":
            self._check_scheduler(None)
        self._resize_window()

    def _drain(self) -> None:
        """After the scan: retries, then wait until every job is answered."""
        while self._pending or self._retry:
            self._check_stop()
            while self._retry:
                self._put(self._retry.popleft())
            self._collect(timeout=WAIT_TIMEOUT_S)
            self._check_workers()
            self._maybe_commit()
            self._refresh_progress()
            if self._pending and not self._futures and not self._retry:
                for track_id, entry in list(self._pending.items()):  # cannot happen; stay total
                    self._on_result(Failed(-1, 0, track_id, entry.job.attempt, entry.job.path,
                                           "worker_died", f"{display(entry.job.path)}: lost "
                                           "by the Dask backend"))

    def _on_interrupt(self) -> None:
        """Stop feeding; give tasks in flight the grace period; cancel what is left."""
        self.stats.interrupted = self._stop_signal
        self._log(f"{signal.Signals(self._stop_signal).name}: stopping; tasks in flight get "
                  f"{self.config.grace_s:g} s (Ctrl-C again to abandon them)")
        deadline = time.monotonic() + self.config.grace_s
        self._retry.clear()
        while self._futures and not self._abandon and time.monotonic() < deadline:
            self._collect(timeout=min(WAIT_TIMEOUT_S, max(0.0, deadline - time.monotonic())))
        self._abandon = True

    # -- reporting ---------------------------------------------------------------------------

    def _queue_depth(self) -> int:
        return len(self._futures)

    def _worker_processes(self) -> list[Any]:
        if self._cluster is None:
            return []  # a remote cluster's memory is its own
        with contextlib.suppress(psutil.Error):
            return list(psutil.Process().children(recursive=True))
        return []

    def _print_budget(self) -> None:
        """Printed when the cluster starts (:meth:`_print_dask_budget`), if one is needed."""

    def _print_dask_budget(self) -> None:
        if self.config.quiet:
            return
        dc = self.dask_config
        sup = psutil.Process().memory_info().rss / 2**20
        where = (f"LocalCluster of {self.config.cores} worker processes x 1 thread, "
                 f"memory limit {dc.memory_limit} each (the nanny restarts a worker past 95 %)"
                 if dc.scheduler is None else f"scheduler {dc.scheduler}, {self._threads} "
                 f"worker threads")
        self._log(f"dask: {where}; client {sup:.0f} MB; at most {self._window} tasks in "
                  f"flight, whatever the library size")
