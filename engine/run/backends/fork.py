"""The fork backend: N forked worker processes on this machine (NOTE [engine protocol]).

The supervisor (engine/run/supervisor.py) puts jobs on one bounded ``multiprocessing.Queue``
(blocking put with a timeout); each worker owns a result pipe and a shared-memory PCM buffer,
both made before it is forked. Deaths are seen on the process sentinels, never by polling.

The PCM buffers are anonymous shared mappings (``mmap(-1, n)``, MAP_SHARED): a forked worker
inherits its buffer, a respawned one inherits the same buffer again, and there is no name in
/dev/shm to unlink, nothing a resource tracker must register, and nothing that can be left
behind, whatever kills whom.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import mmap
import multiprocessing as mp
import multiprocessing.connection
import os
import queue
import resource
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

from ...errors import BackendError
from ..messages import Event, Failed, Job, Lost
from ..task import TaskSettings, TaskState, run_task

#: Seconds a blocking put on the job queue waits before the supervisor looks at results and
#: worker health again.
PUT_TIMEOUT_S = 0.2
#: Seconds ``join`` waits for a worker to exit before SIGTERM, and again before SIGKILL.
JOIN_TIMEOUT_S = 5.0
#: Seconds a worker waits on the job queue before checking that its supervisor still lives.
GET_TIMEOUT_S = 1.0
#: Private memory a worker may add (MB): the budget's per-worker ceiling, checked in bench/
#: (forked workers share the supervisor's pages; bench/worker_memory.py measures ~12 MB of
#: their own on a 2 h track).
WORKER_MEMORY_CEILING_MB = 150.0
#: File descriptors the supervisor holds per worker (result pipe, sentinel, spare) and for
#: itself (queue, LMDB, stdio, imports), for the message when the limit is too low.
FDS_PER_WORKER, FDS_BASE = 3, 40


def signal_name(exitcode: int | None) -> str:
    """``"SIGKILL(-9)"``, ``"exit code 3"``: how a process ended, for messages."""
    if exitcode is None:
        return "no exit code"
    if exitcode < 0:
        try:
            return f"{signal.Signals(-exitcode).name}({exitcode})"
        except ValueError:
            return f"signal {-exitcode}({exitcode})"
    return f"exit code {exitcode}"


# --------------------------------------------------------------------------------------------
# Worker side


def worker_main(index: int, parent_pid: int, settings: TaskSettings, buffer: Any, jobs: Any,
                results: Any, current: Any, started: Any, budget: Any) -> None:
    """Worker loop (NOTE [engine protocol]): get a job with a timeout, say which track it is on
    in ``current[index]``, fingerprint it, send a :class:`Done` or :class:`Failed` down its own
    result pipe; exit on ``None`` or when the supervisor is gone.

    Parameters
    ----------
    index : int
        The worker's slot (0 .. cores-1); a respawned worker takes the slot of the dead one.
    parent_pid : int
        The supervisor; the worker exits when it is gone.
    settings : TaskSettings
    buffer : mmap.mmap
        Its shared PCM buffer (``settings.capacity`` float32 samples), mapped before the fork.
    jobs : multiprocessing.Queue of Job | None
        Shared by all workers, bounded; the supervisor feeds it.
    results : multiprocessing.connection.Connection
        This worker's own pipe to the supervisor. ``send`` is synchronous: a result is in the
        pipe before the next job is taken, so a crash on the next track cannot lose it (a
        queue's feeder thread could), and a worker killed mid-write damages only its own pipe.
    current : multiprocessing.Array('q')
        ``current[index]`` = the track id being worked on, -1 when idle. The supervisor reads
        it when this process dies, to name and retry the track.
    started, budget : multiprocessing.Array('d')
        ``time.monotonic()`` when the current track started (0 when idle) and the seconds it
        may take; the supervisor kills a worker that overruns (a hung decoder).
    """
    # Ctrl-C reaches the whole process group: the supervisor decides what stops and when.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    state = TaskState(np.ndarray(settings.capacity, dtype=np.float32, buffer=buffer))
    pid = os.getpid()

    def on_budget(seconds: float) -> None:
        budget[index] = seconds

    while True:
        try:
            job = jobs.get(timeout=GET_TIMEOUT_S)
        except queue.Empty:
            if os.getppid() != parent_pid:  # orphaned: the supervisor is gone
                return
            continue
        if job is None:
            return
        budget[index] = settings.timeout_s
        started[index] = time.monotonic()
        current[index] = job.track_id
        result = run_task(job, settings, state, worker=index, pid=pid, on_budget=on_budget)
        try:
            results.send(result)
        except (BrokenPipeError, EOFError, OSError):
            return  # the supervisor is gone
        except Exception as e:  # not picklable: say so instead of losing the track
            results.send(Failed(index, pid, job.track_id, job.attempt, job.path, "exception",
                                f"{job.path}: the result could not be sent "
                                f"({type(e).__name__}: {e})"))
        current[index] = -1
        started[index] = 0.0


# --------------------------------------------------------------------------------------------
# Supervisor side


class ForkBackend:
    """Forked workers fed by a bounded queue (the :class:`~engine.run.backends.Backend` of a
    single machine; NOTE [engine protocol]).

    Parameters
    ----------
    cores : int
        Worker processes.
    queue_size : int
        The job queue's bound; 0 gives the predecessor's unbounded queue fed with
        ``put_nowait``, kept only so that bench/memory.py can show the failure it caused.
    settings : TaskSettings
    """

    def __init__(self, cores: int, queue_size: int, settings: TaskSettings) -> None:
        self.cores = cores
        self.queue_size = queue_size
        self.settings = settings
        self._ctx = mp.get_context("fork")
        self._jobs: Any = None
        self._workers: list[Any] = []
        self._conns: list[Any] = []
        self._buffers: list[mmap.mmap] = []
        self._timed_out: dict[int, float] = {}  # worker slot -> seconds, killed for a timeout
        self._stopping = False

    # -- lifecycle (NOTE [engine protocol]: start, shutdown) --------------------------------

    def start(self, log: Callable[[str], None]) -> None:
        """Create the queue, the shared arrays and the PCM buffers; fork every worker.

        Raises
        ------
        BackendError
            The system refused a resource (file descriptors, processes, memory): the message
            names it and the fix.
        """
        ctx, n = self._ctx, self.cores
        try:
            self._jobs = self._new_queue()
            self._conns = [None] * n
            self._current = ctx.Array("q", [-1] * n, lock=False)
            self._started = ctx.Array("d", [0.0] * n, lock=False)
            self._budget = ctx.Array("d", [0.0] * n, lock=False)
            for _ in range(n):
                self._buffers.append(mmap.mmap(-1, self.settings.capacity * 4))
            for i in range(n):
                self._workers.append(self._spawn(i))
        except OSError as e:
            raise BackendError(_start_failure(e, n)) from e

    def _spawn(self, index: int) -> Any:
        self._current[index] = -1
        self._started[index] = 0.0
        reader, writer = self._ctx.Pipe(duplex=False)
        # Objects that exist now go to the permanent generation: a full collection in either
        # process would otherwise write to every one of them and copy their pages into each
        # worker (bench/memory.py saw +28 MB of worker USS at the supervisor's first full GC).
        gc.freeze()
        p = self._ctx.Process(target=worker_main, name=f"engine-worker-{index}",
                              args=(index, os.getpid(), self.settings,
                                    self._buffers[index], self._jobs, writer,
                                    self._current, self._started, self._budget),
                              daemon=True)
        p.start()
        writer.close()  # the worker holds the only writing end: EOF when it dies
        if self._conns[index] is not None:
            self._conns[index].close()
        self._conns[index] = reader
        return p

    def stop(self, *, abandon: bool) -> list[Event]:
        """One None per worker (unless ``abandon``), join; terminate, then kill, what stays.
        Returns what the workers finished before they went."""
        self._stopping = True
        if self._jobs is None:  # start failed before making the queue
            return []
        live = [p for p in self._workers if p.is_alive()]
        if not abandon:
            deadline = time.monotonic() + JOIN_TIMEOUT_S
            sent = 0
            while sent < len(live) and time.monotonic() < deadline:
                try:
                    self._jobs.put(None, timeout=PUT_TIMEOUT_S)
                    sent += 1
                except queue.Full:
                    if not any(p.is_alive() for p in live):
                        break
            for p in live:
                p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p in self._workers:
            for end in (p.terminate, p.kill):
                if p.is_alive():
                    end()
                    p.join(timeout=JOIN_TIMEOUT_S)
        events = self.poll(0.0)
        for c in self._conns:
            if c is not None:
                c.close()
        self._jobs.close()
        self._jobs.cancel_join_thread()  # jobs nobody will take must not block the exit
        return events

    def close(self) -> None:
        """Unmap the PCM buffers (after stop)."""
        for b in self._buffers:
            with contextlib.suppress(BufferError, OSError):
                b.close()
        self._buffers = []

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, job: Job) -> bool:
        """A blocking put with a timeout (backpressure); False when the queue stayed full."""
        if self.queue_size <= 0:
            self._jobs.put_nowait(job)  # never blocks: everything is taken at once
            return True
        try:
            self._jobs.put(job, timeout=PUT_TIMEOUT_S)
        except queue.Full:
            return False
        return True

    def poll(self, timeout: float) -> list[Event]:
        """Results and deaths within ``timeout``: wait on the result pipes and the process
        sentinels together (NOTE [engine protocol]); a dead worker is replaced at once."""
        self._check_timeouts()
        conns = [c for c in self._conns if c is not None]
        ready = mp.connection.wait([*conns, *(p.sentinel for p in self._workers)],
                                   timeout=timeout)
        events: list[Event] = []
        for i, c in enumerate(self._conns):
            if c is not None and c in ready:
                events += self._drain_pipe(i)
        if not self._stopping:
            for i, p in enumerate(self._workers):
                if not p.is_alive():
                    events += self._on_death(i, p)
        return events

    def reset(self) -> list[Event]:
        """A new queue and new workers: a worker SIGKILLed while it waited in ``get`` (which
        holds the queue's read lock for its whole timeout) leaves a lock nobody releases, and
        no worker can take a job again. Called only when no worker holds a track."""
        events = self.poll(0.0)
        for p in self._workers:
            with contextlib.suppress(OSError):
                p.kill()
            p.join(timeout=JOIN_TIMEOUT_S)
        old = self._jobs
        try:
            self._jobs = self._new_queue()
            for i in range(self.cores):
                self._workers[i] = self._spawn(i)
        except OSError as e:
            raise BackendError(_start_failure(e, self.cores)) from e
        old.close()
        old.cancel_join_thread()
        return events

    def _new_queue(self) -> Any:
        # queue_size 0: the predecessor's unbounded queue, kept only to measure its failure
        if self.queue_size <= 0:
            return self._ctx.Queue()
        return self._ctx.Queue(maxsize=self.queue_size)

    def interrupt(self) -> list[int]:
        """Take back the jobs still queued (they will not start); their track ids."""
        taken: list[int] = []
        if self._jobs is None:  # stopped before the workers started
            return taken
        with contextlib.suppress(queue.Empty, OSError):
            while True:
                job = self._jobs.get(timeout=0.05)
                if job is not None:
                    taken.append(job.track_id)
        return taken

    def depth(self) -> int:
        """Jobs queued and not yet taken by a worker."""
        try:
            return int(self._jobs.qsize())
        except (NotImplementedError, OSError, AttributeError):
            return 0

    def active(self) -> int:
        """Jobs a worker has announced and not yet answered."""
        return sum(1 for v in self._current if v >= 0) if self._workers else 0

    def processes(self) -> list[int]:
        return [p.pid for p in self._workers if p.pid is not None]

    def describe(self) -> str:
        """The memory budget: what this run may use at most, whatever the library size."""
        sup = psutil.Process().memory_info().rss / 2**20
        buf = self.settings.capacity * 4 / 2**20
        total = sup + self.cores * (WORKER_MEMORY_CEILING_MB + buf)
        return (f"memory budget: supervisor {sup:.0f} MB + {self.cores} workers x (<= "
                f"{WORKER_MEMORY_CEILING_MB:.0f} MB analysis + {buf:.0f} MB PCM buffer) = "
                f"{total:.0f} MB at most, whatever the library size; queue {self.queue_size} "
                f"jobs")

    # -- deaths (NOTE [engine protocol]: worker death) ----------------------------------------

    def _drain_pipe(self, index: int) -> list[Event]:
        """Every complete message waiting in worker ``index``'s pipe."""
        c = self._conns[index]
        got: list[Event] = []
        while c is not None:
            try:
                if not c.poll():
                    break
                got.append(c.recv())
            except (EOFError, OSError):  # the worker is gone; its sentinel tells the rest
                break
            except Exception as e:  # a message cut short by a dying worker
                got.append(Lost(None, "worker_died", f"worker {index}: unreadable message "
                                f"dropped ({e})", death=False))
                break
        return got

    def _on_death(self, index: int, p: Any) -> list[Event]:
        """Name pid, track and signal; replace the worker in the same slot and buffer."""
        p.join(timeout=JOIN_TIMEOUT_S)
        events = self._drain_pipe(index)  # what it sent before dying counts
        track = int(self._current[index])
        timed_out = self._timed_out.pop(index, None)
        cause = signal_name(p.exitcode)
        if timed_out is not None:
            where = (f"worker {index} (pid {p.pid}) killed with {cause} after {timed_out:.1f} "
                     "s, over its time limit (a hung decoder?)")
        else:
            where = f"worker {index} (pid {p.pid}) died with {cause}"
        try:
            self._workers[index] = self._spawn(index)
        except OSError as e:  # EAGAIN, EMFILE: no replacement can be made
            raise BackendError(_start_failure(e, self.cores)) from e
        kind = "timeout" if timed_out is not None else "worker_died"
        return [*events, Lost(track if track >= 0 else None, kind, where)]

    def _check_timeouts(self) -> None:
        """Kill a worker whose track has run past its budget; its death is then handled as any
        other, with the kind "timeout"."""
        now = time.monotonic()
        for i, p in enumerate(self._workers):
            t0 = self._started[i]
            if t0 <= 0.0 or i in self._timed_out or not p.is_alive():
                continue
            if now - t0 > self._budget[i]:
                self._timed_out[i] = now - t0
                with contextlib.suppress(OSError):
                    p.kill()


def _start_failure(e: OSError, cores: int) -> str:
    """What the user can do when the workers cannot be started."""
    reason = e.strerror or str(e)
    if e.errno == errno.EMFILE:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return (f"cannot start {cores} workers: {reason} (the open-file limit is {soft}; the "
                f"engine needs about {FDS_PER_WORKER * cores + FDS_BASE}): raise it (ulimit -n "
                f"1024) or pass fewer --cores")
    if e.errno == errno.EAGAIN:
        return (f"cannot start {cores} workers: {reason} (the process limit, ulimit -u?): "
                f"pass fewer --cores")
    return f"cannot start {cores} workers: {reason}"
