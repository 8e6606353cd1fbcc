"""The supervisor: scan, catalog, feed a bounded queue, collect results, write LMDB in batches.

NOTE [engine protocol]
======================
One supervisor process, N forked workers, two multiprocessing queues::

    inputs (args / stdin)
        |  engine.scan.scan(): a generator, never a list
        v
    supervisor ---- catalog lookup (LMDB, supervisor only) ----> cached / moved: answered here
        |
        |  jobs.put(Job, timeout=PUT_TIMEOUT_S)   bounded: maxsize = --queue-size (2 x cores)
        |  on Full: collect results, check workers, try again (backpressure: the scan waits)
        v
    +------------------ jobs: mp.Queue(maxsize) ---------------------+
    |                      |                          |              |
    worker 0            worker 1          ...       worker N-1       each: get(timeout=1 s);
    shm buffer 0        shm buffer 1                shm buffer N-1   current[i] = track id;
    |                      |                          |              decode into its buffer,
    pipe 0              pipe 1                       pipe N-1        analyse, send Done/Failed
    +------- one result pipe per worker (send is synchronous) -------+ down its OWN pipe
        |
        v
    supervisor: connection.wait(result pipes + worker sentinels, timeout)
        |-- Done / Failed -> batch -> one LMDB write txn per 256 results or 1 s
        '-- sentinel ready -> worker died: name pid, track (current[i]) and signal, e.g.
            SIGKILL(-9); retry the job (attempt + 1) up to max_retries, then record it as
            failed; fork a new worker into the same slot and buffer.

Memory is fixed by construction (unless ``--queue-size 0`` asks for the predecessor's unbounded
queue, kept only to measure its failure): the scan streams, at most ``queue_size + cores`` jobs
exist at any time (``self._pending``: queued, in a worker, or answered and not yet collected;
a new job waits for room), results are consumed as they come, and each worker owns one PCM
buffer of ``--block-frames x 8`` float32 samples, allocated once before the fork.

Shared memory: the buffers are created, the workers forked, then the names are unlinked at
once. The mappings live on in every process that has them (respawned workers are forked from
the supervisor, which keeps its mapping), and nothing is ever left in /dev/shm, whatever kills
whom.

Shutdown: when the scan is exhausted and every job is answered, one ``None`` per worker goes on
the queue (put with a timeout, checking liveness); each worker exits on it; ``join(timeout)``,
then SIGTERM, then SIGKILL for a worker that does not. SIGINT / SIGTERM to the supervisor stop
the feeding, give in-flight tracks ``--grace`` seconds, commit everything that completed and
exit 130 / 143; a second SIGINT abandons the in-flight tracks at once. Workers ignore SIGINT
(Ctrl-C reaches the whole process group; the supervisor decides). A worker whose supervisor is
gone sees ``getppid()`` change within ``GET_TIMEOUT_S`` and exits.

Every wait in this file is bounded: queue puts and gets, ``connection.wait``, ``join``.

The Dask backend (engine/dask_backend.py, NOTE [dask backend]) is this supervisor with the
worker section, ``_put``, ``_collect``, ``_drain`` and ``_on_interrupt`` replaced: the same scan,
catalog, batches, retries and output, with futures instead of the queue and the pipes.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import multiprocessing.connection
import os
import queue
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from typing import Any, TextIO

import psutil

import kernels
from kernels import FINGERPRINT_NAMES

from . import store as st
from .messages import Done, Failed, Job, jsonl_line
from .scan import Candidate, ScanProblem, display, scan
from .worker import WorkerSpec, worker_main

#: Seconds a blocking put on the job queue waits before the supervisor looks at results and
#: worker health again.
PUT_TIMEOUT_S = 0.2
#: Seconds the supervisor waits for results or a worker death when it has nothing to feed.
WAIT_TIMEOUT_S = 0.2
#: Seconds ``join`` waits for a worker to exit before SIGTERM, and again before SIGKILL.
JOIN_TIMEOUT_S = 5.0
#: Private memory a worker may add (MB): the target of the engine issue, checked in bench/.
WORKER_MEMORY_CEILING_MB = 150.0
#: Channels the PCM buffer holds at ``block_frames`` frames; files with more read fewer frames.
BUFFER_CHANNELS = 8
#: Seconds during which no worker holds a job while some jobs are unanswered before those jobs
#: are taken as lost (a worker died between taking a job and announcing it) and queued again.
LOST_JOB_S = 3.0


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Options of one ``engine-run`` (see engine/cli.py for their flags and defaults)."""

    db: str = "fingerprints.lmdb"
    cores: int = 1
    queue_size: int = 2
    force: bool = False
    retry_failed: bool = False
    max_retries: int = 2
    block_frames: int = 65536
    commit_every: int = 256
    commit_interval_s: float = 1.0
    grace_s: float = 5.0
    max_entries: int | None = None
    max_bytes: int | None = None
    jsonl: bool = False
    quiet: bool = False
    progress: bool = False
    verbose: int = 0
    follow_symlinks: bool = True
    timeout_s: float = 30.0
    min_speed: float = 20.0
    #: Fault-injection seam for the tests (engine/worker.py, WorkerSpec.hook); never set by
    #: the CLI.
    worker_hook: Callable[[Job], object] | None = None


@dataclass
class RunStats:
    """What a run did; ``summary()`` is the closing line."""

    tracks: int = 0
    ok: int = 0
    cached: int = 0
    moved: int = 0
    failed: int = 0
    retried: int = 0
    worker_deaths: int = 0
    audio_s: float = 0.0
    decode_s: float = 0.0
    analysis_s: float = 0.0
    wall_s: float = 0.0
    enqueued: int = 0
    max_queue_depth: int = 0
    max_pending: int = 0
    peak_rss_mb: float = 0.0
    interrupted: int = 0  # the signal number that stopped the run, 0 if none
    deaths: list[str] = field(default_factory=list)

    def summary(self) -> str:
        rate = self.tracks / self.wall_s if self.wall_s > 0 else 0.0
        xrt = self.audio_s / self.wall_s if self.wall_s > 0 else 0.0
        return (f"{self.tracks} tracks: {self.ok} ok, {self.cached} cached, {self.failed} failed"
                f" in {self.wall_s:.1f} s ({rate:.1f} tracks/s, {xrt:.0f}x realtime of new "
                f"audio), peak RSS {self.peak_rss_mb:.0f} MB")


@dataclass(slots=True)
class _Pending:
    job: Job
    size: int
    mtime_ns: int
    had_failure: bool


class _Interrupted(Exception):
    pass


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit code"
    if exitcode < 0:
        try:
            return f"{signal.Signals(-exitcode).name}({exitcode})"
        except ValueError:
            return f"signal {-exitcode}({exitcode})"
    return f"exit code {exitcode}"


def _rss_mb(procs: Iterable[Any]) -> float:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error, OSError, AttributeError):
            total += psutil.Process(p.pid).memory_info().rss
    with contextlib.suppress(psutil.Error):
        total += psutil.Process().memory_info().rss
    return total / 2**20


class Supervisor:
    """Runs one fingerprinting pass over the given inputs (NOTE [engine protocol]).

    Parameters
    ----------
    config : RunConfig
    out : TextIO
        Where ``--jsonl`` records go (stdout).
    err : TextIO
        Progress, memory budget, summary and problems (stderr).
    """

    def __init__(self, config: RunConfig, *, out: TextIO | None = None,
                 err: TextIO | None = None) -> None:
        self.config = config
        self._unbounded = config.queue_size <= 0
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.stats = RunStats()
        self._pending: dict[int, _Pending] = {}
        self._retry: deque[Job] = deque()
        self._batch: list[st.Operation] = []
        self._batch_results = 0
        self._last_commit = time.monotonic()
        self._workers: list[Any] = []
        self._buffers: list[shared_memory.SharedMemory] = []
        self._jobs: Any = None  # the bounded job queue, made by _start_workers
        self._conns: list[Any] = []
        self._stop_signal = 0
        self._abandon = False
        self._stopping = False
        self._timed_out: dict[int, float] = {}  # worker slot -> seconds, killed for a timeout
        self._store: st.Store | None = None
        self._bar: Any = None
        self._scanned = 0
        self._t_start = time.monotonic()
        self._last_rss = 0.0

    # -- public ------------------------------------------------------------------------------

    def run(self, inputs: Iterable[str]) -> RunStats:
        """Fingerprint every audio file under ``inputs``; returns the run's statistics."""
        cfg = self.config
        t0 = time.monotonic()
        kernels.warmup()  # compile (or load) every kernel BEFORE forking: workers never compile
        old_handlers = self._install_signal_handlers()
        try:
            self._start_workers()
            self._store = st.Store.open(st.StoreConfig(cfg.db, max_entries=cfg.max_entries,
                                                       max_bytes=cfg.max_bytes))
            self._store.clear_stale_readers()
            self._print_budget()
            self._open_progress()
            try:
                self._feed(scan(inputs, follow_symlinks=cfg.follow_symlinks))
                self._drain()
            except _Interrupted:
                self._on_interrupt()
        finally:
            # every step runs whatever the one before did; the first store error is re-raised
            # once everything is released (a full disk must not leave workers behind)
            store_error: st.StoreError | None = None
            try:
                self._stop_workers()
            except st.StoreError as e:  # a commit while collecting the last results
                store_error = e
            try:
                self._commit()
            except st.StoreError as e:
                store_error = store_error or e
            if self._store is not None:
                self._store.close()
            self._restore_signal_handlers(old_handlers)
            self._release_workers()
            self.stats.wall_s = time.monotonic() - t0
            self._close_progress()
            with contextlib.suppress(ValueError, OSError):
                self.out.flush()
            if store_error is not None:
                raise store_error
        if not cfg.quiet:
            print(self.stats.summary(), file=self.err)
        return self.stats

    # -- workers -----------------------------------------------------------------------------
    # The methods of this section, with _put, _collect, _drain and _on_interrupt, are the
    # execution backend: forked workers here, Dask in engine/dask_backend.py, which overrides
    # them. Everything else (catalog, batching, output) is shared.

    def _start_workers(self) -> None:
        cfg = self.config
        ctx = mp.get_context("fork")
        # queue_size 0: the predecessor's unbounded queue fed by put_nowait, kept only so that
        # bench/memory.py can show the failure it caused; never a default
        self._jobs = ctx.Queue() if self._unbounded else ctx.Queue(maxsize=cfg.queue_size)
        self._conns = [None] * cfg.cores  # each worker's own result pipe
        self._current = ctx.Array("q", [-1] * cfg.cores, lock=False)
        self._started = ctx.Array("d", [0.0] * cfg.cores, lock=False)
        self._budget = ctx.Array("d", [0.0] * cfg.cores, lock=False)
        self._ctx = ctx
        capacity = cfg.block_frames * BUFFER_CHANNELS
        for _ in range(cfg.cores):
            shm = shared_memory.SharedMemory(create=True, size=capacity * 4)
            self._buffers.append(shm)
        try:
            for i in range(cfg.cores):
                self._workers.append(self._spawn(i))
        finally:
            for shm in self._buffers:  # mapped in every process that needs it: drop the name
                with contextlib.suppress(FileNotFoundError):
                    shm.unlink()

    def _spawn(self, index: int) -> Any:
        cfg = self.config
        spec = WorkerSpec(index=index, buffer=self._buffers[index].buf,
                          capacity=cfg.block_frames * BUFFER_CHANNELS, parent_pid=os.getpid(),
                          timeout_s=cfg.timeout_s, min_speed=cfg.min_speed,
                          hook=cfg.worker_hook)
        self._current[index] = -1
        self._started[index] = 0.0
        reader, writer = self._ctx.Pipe(duplex=False)
        # Objects that exist now go to the permanent generation: a full collection in either
        # process would otherwise write to every one of them and copy their pages into each
        # worker (bench/memory.py saw +28 MB of worker USS at the supervisor's first full GC).
        gc.freeze()
        p = self._ctx.Process(target=worker_main, name=f"engine-worker-{index}",
                              args=(spec, self._jobs, writer, self._current, self._started,
                                    self._budget),
                              daemon=True)
        p.start()
        writer.close()  # the worker holds the only writing end: EOF when it dies
        old = self._conns[index]
        if old is not None:
            old.close()
        self._conns[index] = reader
        return p

    def _stop_workers(self) -> None:
        """Ask every worker to stop (one None each), then join; terminate what does not exit."""
        self._stopping = True
        if self._jobs is None:  # _start_workers failed before making the queue
            return
        live = [p for p in self._workers if p.is_alive()]
        if not self._abandon:
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
            if p.is_alive():
                p.terminate()
                p.join(timeout=JOIN_TIMEOUT_S)
            if p.is_alive():
                p.kill()
                p.join(timeout=JOIN_TIMEOUT_S)
        # what the workers finished before they went is still worth keeping
        self._collect(timeout=0.0)
        for c in self._conns:
            if c is not None:
                c.close()
        self._jobs.close()
        self._jobs.cancel_join_thread()  # jobs nobody will take must not block the exit

    def _release_workers(self) -> None:
        """Last step of a run, after the final commit: unmap the PCM buffers."""
        for b in self._buffers:
            with contextlib.suppress(Exception):
                b.close()

    def _queue_depth(self) -> int:
        """Jobs handed to the backend and not yet started (for progress and -v logs)."""
        try:
            return self._jobs.qsize()
        except (NotImplementedError, OSError, AttributeError):
            return 0

    def _worker_processes(self) -> list[Any]:
        """Worker processes whose memory counts in the peak RSS."""
        return self._workers

    def _check_workers(self) -> None:
        """Handle dead workers: name pid, track and signal; retry or fail the job; respawn."""
        if self._stopping:  # workers exit on purpose now
            return
        self._check_timeouts()
        for i, p in enumerate(self._workers):
            if p.is_alive():
                continue
            p.join(timeout=JOIN_TIMEOUT_S)
            self._drain_pipe(i)  # what it sent before dying counts
            track = int(self._current[i])
            cause = _signal_name(p.exitcode)
            self.stats.worker_deaths += 1
            entry = self._pending.get(track) if track >= 0 else None
            timed_out = self._timed_out.pop(i, None)
            if timed_out is not None:
                where = (f"worker {i} (pid {p.pid}) killed with {cause} after {timed_out:.1f} s,"
                         " over its time limit (a hung decoder?)")
            else:
                where = f"worker {i} (pid {p.pid}) died with {cause}"
            if entry is not None:
                where += f" on track {track} {entry.job.path}"
            self.stats.deaths.append(where)
            if self.config.verbose or entry is None:
                self._log(where)
            self._workers[i] = self._spawn(i)
            if entry is None:
                continue
            job = entry.job
            if job.attempt < job.max_retries:
                self.stats.retried += 1
                entry.job = Job(job.track_id, job.path, job.priority, job.attempt + 1,
                                job.max_retries, job.enqueued_at)
                self._retry.append(entry.job)
            else:
                kind = "timeout" if timed_out is not None else "worker_died"
                self._on_result(Failed(i, p.pid, track, job.attempt, job.path, kind,
                                       f"{job.path}: {where} (attempt {job.attempt + 1} of "
                                       f"{job.max_retries + 1}); not retried again"))

    def _check_timeouts(self) -> None:
        """Kill a worker whose track has run past its budget; its death is then handled as
        any other, with the kind "timeout"."""
        now = time.monotonic()
        for i, p in enumerate(self._workers):
            t0 = self._started[i]
            if t0 <= 0.0 or i in self._timed_out or not p.is_alive():
                continue
            if now - t0 > self._budget[i]:
                self._timed_out[i] = now - t0
                with contextlib.suppress(OSError):
                    p.kill()

    # -- feeding -----------------------------------------------------------------------------

    def _feed(self, items: Iterator[Candidate | ScanProblem]) -> None:
        """Classify each scanned item; put the jobs on the bounded queue (backpressure)."""
        for item in items:
            self._check_stop()
            self._scanned += 1
            if isinstance(item, ScanProblem):
                self._emit_problem(item)
                continue
            job = self._classify(item)
            if job is not None:
                self._put(job)
            self._tick()
            while self._retry:
                self._put(self._retry.popleft())

    def _put(self, job: Job) -> None:
        """Blocking put with a timeout; between tries: results, dead workers, commits."""
        job = Job(job.track_id, job.path, job.priority, job.attempt, job.max_retries,
                  time.monotonic())
        while True:
            self._check_stop()
            if self._unbounded:
                self._jobs.put_nowait(job)  # never blocks: everything is taken at once
                break
            try:
                self._jobs.put(job, timeout=PUT_TIMEOUT_S)
                break
            except queue.Full:
                self._collect(timeout=0.0)
                self._check_workers()
                self._maybe_commit()
                self._refresh_progress()
        self.stats.enqueued += 1
        depth = self._queue_depth()
        self.stats.max_queue_depth = max(self.stats.max_queue_depth, depth)
        self._collect(timeout=0.0)  # results are taken as they come, not when the queue fills
        if self.config.verbose and self.stats.enqueued % 100 == 0:
            self._log(f"enqueued {self.stats.enqueued}, queue depth {depth}/"
                      f"{self.config.queue_size}, pending {len(self._pending)}")

    def _classify(self, c: Candidate) -> Job | None:
        """Catalog decision for one file: cached, moved, or a job (NOTE: supervisor-only LMDB)."""
        cfg = self.config
        assert self._store is not None
        track, fp, fail = self._store.lookup(c.path)
        same = track is not None and track.size == c.size and track.mtime_ns == c.mtime_ns
        if same and not cfg.force:
            assert track is not None
            if fp is not None and st.is_current(fp):
                self._batch.append(st.Touch((track.track_id,)))
                self._emit_cached(track, fp)
                return None
            if (fail is not None and not cfg.retry_failed and fail.size == c.size
                    and fail.mtime_ns == c.mtime_ns):
                self.stats.tracks += 1
                self.stats.failed += 1
                self._emit(c.path, track.track_id, "failed", error=(fail.kind, fail.message))
                return None
            return self._job(track.track_id, c, fail is not None)
        try:
            key = st.content_key(c.path, c.size)
        except PermissionError:
            self._fail_unread(c, "permission", "permission denied: cannot read the file")
            return None
        except (OSError, st.StoreError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self._fail_unread(c, "unreadable", f"cannot read the file: {reason}")
            return None
        if track is None and not cfg.force:
            old = self._store.find_by_content_key(key)
            if (old is not None and old.path != c.path and old.size == c.size
                    and not os.path.exists(old.path)):
                old_fp = self._store.get_fingerprint(old.track_id)
                if old_fp is not None and st.is_current(old_fp):
                    self._batch.append(st.MovePath(old.track_id, c.path))
                    self._batch.append(st.PutTrack(st.TrackRecord(old.track_id, c.path, c.size,
                                                                  c.mtime_ns, key)))
                    self.stats.moved += 1
                    self._emit_cached(old, old_fp, path=c.path)
                    return None
        track_id = track.track_id if track is not None else self._store.new_track_id()
        self._batch.append(st.PutTrack(st.TrackRecord(track_id, c.path, c.size, c.mtime_ns, key)))
        return self._job(track_id, c, fail is not None)

    def _fail_unread(self, c: Candidate, kind: str, reason: str) -> None:
        """A file the supervisor cannot even read for its content key: a record, no job (it is
        tried again on every run, since permissions are usually fixed by hand)."""
        self.stats.tracks += 1
        self.stats.failed += 1
        message = f"{display(c.path)}: {reason}"
        if not self.config.jsonl and not self.config.quiet:
            self._log(message)
        self._emit(c.path, None, "failed", error=(kind, message))

    def _job(self, track_id: int, c: Candidate, had_failure: bool) -> Job:
        """Register a job, first waiting until fewer than ``queue_size + cores`` are unanswered:
        queued, in a worker, or answered but not yet collected. This, not the queue alone,
        bounds the results waiting in the (unbounded) result queue."""
        limit = self.config.queue_size + self.config.cores
        while not self._unbounded and len(self._pending) >= limit:
            self._check_stop()
            self._collect(timeout=WAIT_TIMEOUT_S)
            self._check_workers()
            while self._retry:
                self._put(self._retry.popleft())
            self._maybe_commit()
            self._refresh_progress()
        job = Job(track_id, c.path, 0, 0, self.config.max_retries, 0.0)
        self._pending[track_id] = _Pending(job, c.size, c.mtime_ns, had_failure)
        self.stats.max_pending = max(self.stats.max_pending, len(self._pending))
        return job

    # -- collecting ----------------------------------------------------------------------------

    def _drain(self) -> None:
        """After the scan: retries, then wait until every job is answered."""
        idle_since: float | None = None
        while self._pending or self._retry:
            self._check_stop()
            while self._retry:
                self._put(self._retry.popleft())
            got = self._collect(timeout=WAIT_TIMEOUT_S)
            self._check_workers()
            self._maybe_commit()
            self._refresh_progress()
            # a worker that died between get() and announcing its track leaves a job nobody
            # holds: after LOST_JOB_S of that, queue those jobs again
            nobody = (self._pending and self._jobs.qsize() == 0
                      and all(v < 0 for v in self._current))
            if got or not nobody:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > LOST_JOB_S:
                for track_id, entry in list(self._pending.items()):
                    job = entry.job
                    self._log(f"track {track_id} {job.path}: no worker holds it any more "
                              "(a worker died between taking it and starting it)")
                    if job.attempt < job.max_retries:
                        entry.job = Job(job.track_id, job.path, job.priority, job.attempt + 1,
                                        job.max_retries, 0.0)
                        self._retry.append(entry.job)
                    else:
                        self._on_result(Failed(-1, 0, track_id, job.attempt, job.path,
                                               "worker_died", f"{job.path}: lost with its "
                                               "worker, not retried again"))
                idle_since = None

    def _collect(self, *, timeout: float) -> int:
        """Take every result available within ``timeout`` from the workers' pipes; handle a
        worker death seen on its sentinel. Returns how many results were taken."""
        conns = [c for c in self._conns if c is not None]
        sentinels = [p.sentinel for p in self._workers]
        ready = mp.connection.wait([*conns, *sentinels], timeout=timeout)
        if not ready:
            return 0
        n = 0
        for i, c in enumerate(self._conns):
            if c is not None and c in ready:
                n += self._drain_pipe(i)
        if any(s in ready for s in sentinels):
            self._check_workers()
        return n

    def _drain_pipe(self, index: int) -> int:
        """Every complete message waiting in worker ``index``'s pipe."""
        c = self._conns[index]
        n = 0
        while c is not None:
            try:
                if not c.poll():
                    break
                msg = c.recv()
            except (EOFError, OSError):  # the worker is gone; its sentinel tells the rest
                break
            except Exception as e:  # a message cut short by a dying worker
                self._log(f"worker {index}: unreadable message dropped ({e})")
                break
            self._on_result(msg)
            n += 1
        return n

    def _on_result(self, msg: Done | Failed) -> None:
        entry = self._pending.pop(msg.track_id, None)
        if entry is None:  # an answer to a job already answered (a retried death): ignore
            return
        self.stats.tracks += 1
        self._batch_results += 1
        if isinstance(msg, Done):
            self.stats.ok += 1
            self.stats.audio_s += msg.duration_s
            self.stats.decode_s += msg.decode_s
            self.stats.analysis_s += msg.analysis_s
            rec = st.FingerprintRecord(msg.track_id, kernels.FINGERPRINT_VERSION, msg.values,
                                       msg.duration_s, msg.sample_rate, msg.channels,
                                       msg.decode_s, msg.analysis_s)
            self._batch.append(st.PutFingerprint(rec))
            if entry.had_failure:
                self._batch.append(st.ClearFailure(msg.track_id))
            self._emit(entry.job.path, msg.track_id, "ok", fp=rec)
        else:
            self.stats.failed += 1
            self._batch.append(st.PutFailure(st.FailureRecord(
                msg.track_id, entry.job.path, msg.kind, msg.message, msg.attempt + 1,
                entry.size, entry.mtime_ns)))
            if msg.traceback or self.config.verbose:
                self._log(f"{msg.where}: {msg.kind}: {msg.message}\n{msg.traceback}".rstrip())
            self._emit(entry.job.path, msg.track_id, "failed", error=(msg.kind, msg.message))
        self._maybe_commit()

    # -- store -------------------------------------------------------------------------------

    def _maybe_commit(self) -> None:
        cfg = self.config
        if (self._batch_results >= cfg.commit_every
                or time.monotonic() - self._last_commit >= cfg.commit_interval_s):
            self._commit()

    def _commit(self) -> None:
        if self._store is None:
            return
        if self._batch:
            self._store.commit(self._batch)
            self._batch = []
        self._batch_results = 0
        self._last_commit = time.monotonic()
        with contextlib.suppress(ValueError, BrokenPipeError):
            self.out.flush()

    # -- output ------------------------------------------------------------------------------

    def _emit_cached(self, track: st.TrackRecord, fp: st.FingerprintRecord,
                     path: str | None = None) -> None:
        self.stats.tracks += 1
        self.stats.cached += 1
        self._emit(path or track.path, track.track_id, "cached", fp=fp)

    def _emit_problem(self, p: ScanProblem) -> None:
        self.stats.tracks += 1
        self.stats.failed += 1
        if not self.config.jsonl and not self.config.quiet:
            self._log(p.message)
        self._emit(p.path, None, "failed", error=(p.kind, p.message))

    def _emit(self, path: str, track_id: int | None, status: str, *,
              fp: st.FingerprintRecord | None = None,
              error: tuple[str, str] | None = None) -> None:
        if not self.config.jsonl:
            return
        rec = {
            "path": path,
            "track_id": track_id,
            "status": status,
            "fingerprint": dict(zip(FINGERPRINT_NAMES, fp.values, strict=True)) if fp else None,
            "duration_s": fp.duration_s if fp else None,
            "sample_rate": fp.sample_rate if fp else None,
            "channels": fp.channels if fp else None,
            "error": {"kind": error[0], "message": error[1]} if error else None,
        }
        self.out.write(jsonl_line(rec))

    def _log(self, msg: str) -> None:
        if self._bar is not None:
            self._bar.write(msg, file=self.err)
        else:
            print(msg, file=self.err)

    def _print_budget(self) -> None:
        if self.config.quiet:
            return
        cfg = self.config
        sup = psutil.Process().memory_info().rss / 2**20
        buf = cfg.block_frames * BUFFER_CHANNELS * 4 / 2**20
        # The per-worker ceiling the project holds itself to (forked workers share the
        # supervisor's pages; bench/worker_memory.py measures ~12 MB of their own on a 2 h track).
        ceiling = WORKER_MEMORY_CEILING_MB
        total = sup + cfg.cores * (ceiling + buf)
        print(f"memory budget: supervisor {sup:.0f} MB + {cfg.cores} workers x (<= {ceiling:.0f}"
              f" MB analysis + {buf:.0f} MB PCM buffer) = {total:.0f} MB at most, whatever the "
              f"library size; queue {cfg.queue_size} jobs", file=self.err)

    def _open_progress(self) -> None:
        if not self.config.progress or self.config.quiet:
            return
        from tqdm import tqdm

        self._bar = tqdm(total=0, file=self.err, unit="track", dynamic_ncols=True,
                         desc="fingerprinting")

    def _tick(self) -> None:
        if self._bar is not None:
            self._refresh_progress()

    def _refresh_progress(self) -> None:
        now = time.monotonic()
        if self._bar is None:
            if now - getattr(self, "_last_rss", 0.0) >= 1.0:
                self._last_rss = now
                self.stats.peak_rss_mb = max(self.stats.peak_rss_mb,
                                             _rss_mb(self._worker_processes()))
            return
        bar = self._bar
        bar.total = self._scanned
        bar.n = self.stats.tracks
        if now - self._last_rss >= 1.0:
            self._last_rss = now
            rss = _rss_mb(self._worker_processes())
            self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, rss)
            elapsed = max(1e-9, now - self._t_start)
            bar.set_postfix_str(f"{self.stats.audio_s / elapsed:.0f}x rt, "
                                f"failed {self.stats.failed}, queue {self._queue_depth()}/"
                                f"{self.config.queue_size}, RSS {rss:.0f} MB", refresh=False)
        bar.refresh()

    def _close_progress(self) -> None:
        self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, _rss_mb([]))
        if self._bar is not None:
            self._bar.total = self._scanned
            self._bar.n = self.stats.tracks
            self._bar.close()
            self._bar = None

    # -- signals -----------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        old: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal and signum == signal.SIGINT:
                self._abandon = True  # second Ctrl-C: do not wait for in-flight tracks
            self._stop_signal = self._stop_signal or signum

        for s in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave them alone
                old[s] = signal.signal(s, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict[int, Any]) -> None:
        for s, h in old.items():
            signal.signal(s, h)

    def _check_stop(self) -> None:
        if self._stop_signal:
            raise _Interrupted()

    def _on_interrupt(self) -> None:
        """Stop feeding; let in-flight tracks finish within the grace period; keep results."""
        self.stats.interrupted = self._stop_signal
        self._log(f"{signal.Signals(self._stop_signal).name}: stopping; in-flight tracks get "
                  f"{self.config.grace_s:g} s (Ctrl-C again to abandon them)")
        deadline = time.monotonic() + self.config.grace_s
        # jobs still queued will not start: take them back so no worker picks them up
        with contextlib.suppress(queue.Empty, OSError):
            while True:
                job = self._jobs.get(timeout=0.05)
                if job is not None:
                    self._pending.pop(job.track_id, None)
        while (self._pending and not self._abandon and time.monotonic() < deadline
               and any(v >= 0 for v in self._current)):
            self._collect(timeout=min(WAIT_TIMEOUT_S, max(0.0, deadline - time.monotonic())))
        self._abandon = True  # whatever is still running is not waited for
