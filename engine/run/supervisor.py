"""The supervisor: scan, ask the catalog, feed a backend, collect, write LMDB in batches.

NOTE [engine protocol]
======================
One supervisor process and one execution backend (engine/run/backends/)::

    inputs (args / stdin)
        |  engine.run.scan.scan(): a generator, never a list
        v
    Supervisor._feed --- catalog.decide (one LMDB read snapshot) ---> cached / moved / failed:
        |                                                              answered here
        |  a job waits until fewer than queue_size + cores are pending (backpressure)
        |  backend.submit(job): bounded wait; False when full -> _turn(), try again
        v
    +--------------------------- ForkBackend (backends/fork.py) -------------------------+
    |  jobs: mp.Queue(maxsize = --queue-size), put(timeout=PUT_TIMEOUT_S), never nowait |
    |     |                    |                                  |                    |
    |  worker 0             worker 1          ...              worker N-1              |
    |  shm buffer 0         shm buffer 1                       shm buffer N-1          |
    |  pipe 0               pipe 1                             pipe N-1                |
    |  each: get(timeout=1 s); current[i] = track; run_task (engine/run/task.py):       |
    |  decode (engine/decode/) into its buffer, analyse, send Done / Failed down its    |
    |  OWN pipe (send is synchronous)                                                   |
    +------------------------------------------------------------------------------------+
    |  or DaskBackend (backends/dask.py, NOTE [dask backend]): the same run_task as       |
    |  Dask tasks in a bounded window of futures                                        |
    +------------------------------------------------------------------------------------+
        |  backend.poll(timeout): connection.wait(result pipes + process sentinels)
        v
    Supervisor._on_event
        |-- Done / Failed -> batch -> one LMDB write txn per 256 results or 1 s (the only
        |                    writer); the JSONL record goes out after it is in the batch
        '-- Lost (a worker died: "worker 1 (pid 4242) died with SIGKILL(-9)", or was killed
            past its time budget) -> _on_lost: the ONE retry rule: attempt + 1 up to
            max_retries, then a failure record "worker_died" / "timeout". The fork backend
            has already forked a new worker into the same slot and buffer.

Start (_start): the backend starts with the FIRST job, not with the run: kernels.warmup()
loads every Numba kernel from its cache (compiling the first time; numba as if scipy and cffi
were not installed, _numba_without_extras), then the workers fork, so they never load or compile
after the fork. A run whose every file is already in the store
(cached, moved, failed before) loads neither numba nor a worker: until then the supervisor's
calls go to a null backend (_Unstarted) with no worker, no queue and no event.

Lost jobs (_check_lost, the same rule for every backend): when jobs are pending and no worker
holds one for LOST_JOB_S, either nothing is queued (a worker died between taking a job and
announcing it: each job is lost, attempt + 1), or jobs are queued that nobody takes (a worker
SIGKILLed while waiting in ``get`` holds the queue's read lock for ever: backend.reset() makes
a new queue and new workers, and the jobs go again at the same attempt).

Memory is fixed by construction (unless ``--queue-size 0`` asks for the predecessor's unbounded
queue, kept only to measure its failure): the scan streams, at most ``queue_size + cores`` jobs
exist at any time (``_pending``: queued, in a worker, or answered and not yet collected),
results are consumed as they come, and each worker owns one PCM buffer of ``--block-frames x
8`` float32 samples, allocated once before the fork as an anonymous shared mapping: no name in
/dev/shm, nothing to unlink or leave behind. The scan runs in a thread feeding a bounded queue
(scan.Prefetch), so an idle stdin or a slow folder never stops the loop from collecting,
committing and seeing signals. JSONL records are held until their batch is committed
(report.Report.release): what is on stdout is in the store.

Shutdown: when the scan is exhausted and every job is answered, ``backend.stop``: one ``None``
per worker on the queue (put with a timeout, checking liveness); ``join(timeout)``, then
SIGTERM, then SIGKILL. SIGINT / SIGTERM stop the feeding, give in-flight tracks ``--grace``
seconds, commit everything that completed and exit 130 / 143; a second SIGINT abandons the
in-flight tracks at once. A closed stdout (``engine-run --jsonl | head -1``: EPIPE) stops the
feeding too, abandons in-flight tracks, commits what completed and exits 141 without a word;
a stdout that cannot be written (ENOSPC, EIO) does the same and exits 5 with the reason.
Workers ignore SIGINT (Ctrl-C reaches the whole process group; the supervisor decides); a
worker whose supervisor is gone sees ``getppid()`` change within ``GET_TIMEOUT_S`` and exits.

Every wait is bounded: queue puts and gets, ``connection.wait``, ``join``, Dask's waits.

Layout and imports (one way only): ``engine.run`` (this side: cli, supervisor, catalog,
report, scan, task, backends) and ``engine.query`` (the read side) never import each other;
both import ``engine.store`` (LMDB), ``engine.decode`` (the one decode path),
``engine.content_key``, ``engine.text`` and ``engine.errors``, which import neither side;
``kernels`` (numeric only) imports nothing of the engine.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.abc
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import kernels

from .. import store as st
from ..text import display
from .backends import Backend
from .catalog import Decision, decide, decide_problem
from .messages import Done, Event, Failed, Job, Lost
from .report import Report, RunStats
from .scan import Candidate, Prefetch, ScanProblem, SkipCounter, scan
from .task import TaskSettings

#: Seconds the supervisor waits for results or a worker death when it has nothing to feed.
WAIT_TIMEOUT_S = 0.2
#: Seconds during which the backend holds no job while some jobs are unanswered before those
#: jobs are taken as lost (a worker died between taking a job and announcing it).
LOST_JOB_S = 3.0


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Options of one ``engine-run`` (engine/run/cli.py has their flags and defaults)."""

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
    #: Fault-injection seam for the tests (engine/run/task.py, TaskSettings.hook); never set
    #: by the CLI.
    worker_hook: Callable[[Job], object] | None = None

    @property
    def task_settings(self) -> TaskSettings:
        return TaskSettings(self.block_frames, self.timeout_s, self.min_speed, self.worker_hook)


@dataclass(slots=True)
class _Pending:
    job: Job
    size: int
    mtime_ns: int


class _Stop(Exception):
    """A signal arrived, or stdout's reader went away: stop feeding."""


#: Packages numba imports as it loads, for features no kernel uses: scipy (a version check,
#: and the BLAS probe that lets ``np.dot`` compile) and cffi (calls into cffi-wrapped C
#: functions; cffi imports its C parser, pycparser). soundfile needs only cffi's compiled
#: backend, ``_cffi_backend``, which is another module and stays importable.
NUMBA_EXTRAS_UNUSED = ("scipy", "cffi")


class _Hide(importlib.abc.MetaPathFinder):
    """An import finder under which the packages ``names`` (and their submodules) are not
    installed."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: Any = None) -> None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (engine-run loads numba "
                                      "without it)", name=fullname)
        return None


@contextlib.contextmanager
def _numba_without_extras() -> Iterator[None]:
    """Load numba as if :data:`NUMBA_EXTRAS_UNUSED` were not installed, when numba is not
    loaded yet (those of them already loaded stay as they are).

    Where they are installed, numba imports scipy and ``scipy.linalg``, cffi and pycparser
    while it loads: about 0.12 s of every engine-run's start-up (bench/startup.py), for
    libraries this command never uses. No kernel calls numba's linear algebra or a cffi
    function, and the kernels compile and run the same without them (tests/test_engine.py).
    They are importable again as soon as the kernels are loaded; numba itself stays without
    them in this process (no ``np.dot`` in code jitted later), which engine-run never needs.
    """
    names = [n for n in NUMBA_EXTRAS_UNUSED if n not in sys.modules]
    if "numba" in sys.modules or not names:
        yield
        return
    finder = _Hide(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


class _Unstarted:
    """The backend the supervisor talks to before its first job (a null object): no worker,
    no queue, no event. :meth:`Supervisor._start` puts the real backend in its place, so that
    a run that finds every file in the store never starts, polls or stops one (NOTE [engine
    protocol]: start)."""

    def start(self, log: Callable[[str], None]) -> None:
        raise RuntimeError("internal: the supervisor starts its real backend, not this one")

    def submit(self, job: Job) -> bool:
        return False

    def poll(self, timeout: float) -> list[Event]:
        return []

    def reset(self) -> list[Event]:
        return []

    def interrupt(self) -> list[int]:
        return []

    def stop(self, *, abandon: bool) -> list[Event]:
        return []

    def close(self) -> None:
        pass

    def depth(self) -> int:
        return 0

    def active(self) -> int:
        return 0

    def processes(self) -> list[int]:
        return []

    def describe(self) -> str | None:
        return None


class Supervisor:
    """Runs one fingerprinting pass over the given inputs (NOTE [engine protocol]).

    Parameters
    ----------
    config : RunConfig
    backend : Backend, optional
        Where the jobs run; default: forked workers on this machine (``config.cores``).
    out : TextIO
        Where ``--jsonl`` records go (stdout).
    err : TextIO
        Progress, memory budget, summary and problems (stderr).
    """

    def __init__(self, config: RunConfig, *, backend: Backend | None = None,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        if backend is None:
            from .backends.fork import ForkBackend

            backend = ForkBackend(config.cores, config.queue_size, config.task_settings)
        self.config = config
        self.backend = backend
        self.stats = RunStats()
        self.report = Report(self.stats, out=out, err=err, jsonl=config.jsonl,
                             quiet=config.quiet, progress=config.progress)
        self._limit = None if config.queue_size <= 0 else config.queue_size + config.cores
        self._pending: dict[int, _Pending] = {}
        self._retry: deque[Job] = deque()
        self._batch: list[st.Operation] = []
        self._batch_results = 0
        self._last_commit = time.monotonic()
        self._store: st.Store | None = None
        self._stop_signal = 0
        self._abandon = False
        self._scanned = 0
        self._idle_since: float | None = None
        self._last_check = 0.0
        #: The backend every call goes to: a null object until the first job needs the real
        #: one (_start), then ``backend``, started or half-started; ``backend.close()`` is
        #: called in any case.
        self._live: Backend = _Unstarted()

    # -- the run -------------------------------------------------------------------------------

    def run(self, inputs: Iterable[str]) -> RunStats:
        """Fingerprint every audio file under ``inputs``; returns the run's statistics."""
        cfg = self.config
        t0 = time.monotonic()
        skips = SkipCounter()  # files the scan skips as not audio: the summary counts them

        def count_and_list(path: str, extension: str) -> None:  # -v; in the scan's thread
            if skips.add(path, extension):  # nothing once the run has closed the counter
                self.report.log(f"skipped (not audio): {display(path)}")

        on_skip = count_and_list if cfg.verbose else skips.add
        old_handlers = self._install_signal_handlers()  # Ctrl-C in the warm-up stops quietly
        try:
            self._store = store = st.Store.open(st.StoreConfig(
                cfg.db, max_entries=cfg.max_entries, max_bytes=cfg.max_bytes))
            store.clear_stale_readers()
            self.report.open()
            self._feed(store, scan(inputs, follow_symlinks=cfg.follow_symlinks,
                                   on_skip=on_skip))
            self._drain()
        except _Stop:
            self._on_stop()
        finally:
            # every step runs whatever the one before did; the first store error is re-raised
            # once everything is released (a full disk must not leave workers behind)
            store_error: st.StoreError | None = None
            try:
                for ev in self._live.stop(abandon=self._abandon):
                    self._on_event(ev)
            except st.StoreError as e:  # a commit while collecting the last results
                store_error = e
            try:
                self._commit()
            except st.StoreError as e:
                store_error = store_error or e
                self.report.discard()  # those records are not in the store
            if self._store is not None:
                self._store.close()
            self._restore_signal_handlers(old_handlers)
            self.backend.close()
            self.stats.wall_s = time.monotonic() - t0
            self.stats.interrupted = self._stop_signal
            self.stats.skipped = skips.close()  # a scan thread still running says no more
            self.report.close(scanned=self._scanned)
            if store_error is not None:
                raise store_error
        if not self.stats.output_closed:  # its reader is gone: nothing more to say
            self.report.summary()
        return self.stats

    def _feed(self, store: st.Store, items: Iterable[Candidate | ScanProblem]) -> None:
        """Decide each scanned item; hand the jobs to the backend (backpressure). The scan runs
        in a thread (scan.Prefetch): while it waits (an idle stdin, a slow folder) the loop
        still collects, commits and sees signals."""
        scanned = Prefetch(items)
        try:
            while True:
                self._check_stop()
                item = scanned.get(WAIT_TIMEOUT_S if self._pending else 0.05)
                if item is Prefetch.END:
                    return
                if item is Prefetch.EMPTY:  # an idle input: jobs to retry must not wait for it
                    self._submit_retries()
                    self._turn(0.0)
                    continue
                self._decide(store, item)  # type: ignore[arg-type]
        finally:
            scanned.close()

    def _decide(self, store: st.Store, item: Candidate | ScanProblem) -> None:
        """One scanned item: its catalog decision, and a job handed over when there is room."""
        self._scanned += 1
        if isinstance(item, ScanProblem):
            self._on_decision(decide_problem(store, item), 0, 0)
        else:
            while self._limit is not None and len(self._pending) >= self._limit:
                self._turn(WAIT_TIMEOUT_S)
            self._on_decision(decide(store, item, force=self.config.force,
                                     retry_failed=self.config.retry_failed,
                                     max_retries=self.config.max_retries,
                                     busy=self._pending), item.size, item.mtime_ns)
            self._refresh()
        self._submit_retries()
        self._maybe_commit()  # a long run of cached files must not grow the batch

    def _drain(self) -> None:
        """After the scan: retries, then wait until every job is answered."""
        while self._pending or self._retry:
            self._submit_retries()
            self._turn(WAIT_TIMEOUT_S)

    def _start(self) -> None:
        """Load the kernels and start the backend, once, when the first job needs them (NOTE
        [engine protocol]: start). The kernels load BEFORE any worker is forked, never after;
        a run that finds every file in the store loads neither numba nor a worker
        (bench/startup.py: ``run_cached`` against ``run_fresh``)."""
        if self._live is self.backend:
            return
        # The warm-up imports numba and its registries and loads every cached kernel: objects
        # by the hundred thousand that all live on; the cyclic collector, run over them again
        # and again meanwhile, frees nothing but costs part of every run's start-up.
        gc.disable()
        try:
            with _numba_without_extras():
                kernels.warmup()  # compile (or load) every kernel BEFORE forking: never after
        finally:
            gc.enable()
        self._check_stop()
        self._live = self.backend  # a start that fails half-way is still stopped and closed
        self.backend.start(self.report.log)
        self.report.budget(self.backend.describe())

    def _turn(self, timeout: float) -> None:
        """One turn of the loop: events within ``timeout``, lost jobs, commit, progress."""
        self._check_stop()
        for ev in self._live.poll(timeout):
            self._on_event(ev)
        self._check_lost()
        self._maybe_commit()
        self._refresh()

    def _submit(self, job: Job) -> None:
        self._start()
        while not self._live.submit(job):  # each try waits a bounded time for room
            self._turn(0.0)
        self.stats.enqueued += 1
        depth = self._live.depth()
        self.stats.max_queue_depth = max(self.stats.max_queue_depth, depth)
        if self.config.verbose and self.stats.enqueued % 100 == 0:
            self.report.log(f"enqueued {self.stats.enqueued}, queue depth {depth}/"
                            f"{self.config.queue_size}, pending {len(self._pending)}")
        self._turn(0.0)  # results are taken as they come, not when the queue fills

    def _submit_retries(self) -> None:
        while self._retry and self._live.submit(self._retry[0]):
            self._retry.popleft()

    # -- catalog answers -------------------------------------------------------------------------

    def _on_decision(self, d: Decision, size: int, mtime_ns: int) -> None:
        self._batch.extend(d.ops)
        if d.job is not None:
            self._pending[d.job.track_id] = _Pending(d.job, size, mtime_ns)
            self.stats.max_pending = max(self.stats.max_pending, len(self._pending))
            self._submit(d.job)
        elif d.error is not None:
            self._answer_failed(d.path, d.track_id, d.error, show=d.new_problem)
        else:  # cached, moved
            self.stats.tracks += 1
            self.stats.cached += 1
            self.report.record(d.path, d.track_id, "cached", fp=d.fp)
            if d.status == "moved":
                # at once: the next decision must see the track at its new path (two copies
                # of one file moved together; a failure recorded for the old path)
                self.stats.moved += 1
                self._commit()

    def _answer_failed(self, path: str, track_id: int | None, error: tuple[str, str], *,
                       show: bool) -> None:
        """A failure known before any job: a scan problem, an unreadable or unchanged file."""
        self.stats.tracks += 1
        self.stats.failed += 1
        if show:
            self.report.problem(error[1])
        self.report.record(path, track_id, "failed", error=error)

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, Lost):
            self._on_lost(ev)
            return
        entry = self._pending.pop(ev.track_id, None)
        if entry is None:  # an answer to a job already answered (a retried death): ignore
            return
        self.stats.tracks += 1
        self._batch_results += 1
        path = entry.job.path
        if isinstance(ev, Done):
            self.stats.ok += 1
            self.stats.audio_s += ev.duration_s
            self.stats.decode_s += ev.decode_s
            self.stats.analysis_s += ev.analysis_s
            rec = st.FingerprintRecord(ev.track_id, kernels.FINGERPRINT_VERSION, ev.values,
                                       ev.duration_s, ev.sample_rate, ev.channels,
                                       ev.decode_s, ev.analysis_s)
            self._batch.append(st.PutFingerprint(rec))  # drops the track's failure, if any
            if ev.note and self.config.verbose:
                self.report.log(f"{display(path)}: {ev.note}")
            self.report.record(path, ev.track_id, "ok", fp=rec, decoder=ev.decoder,
                               note=ev.note)
        else:
            self.stats.failed += 1
            self._batch.append(st.PutFailure(st.FailureRecord(
                ev.track_id, path, ev.kind, ev.message, ev.attempt + 1, entry.size,
                entry.mtime_ns)))
            if ev.traceback or self.config.verbose:
                self.report.log(f"{ev.where}: {ev.kind}: {ev.message}\n{ev.traceback}".rstrip())
            self.report.record(path, ev.track_id, "failed", error=(ev.kind, ev.message))
        self._maybe_commit()

    def _on_lost(self, ev: Lost) -> None:
        """The one retry rule (NOTE [engine protocol]): a lost job goes again with attempt + 1
        up to its max_retries, then it is a failure record of the event's kind."""
        entry = self._pending.get(ev.track_id) if ev.track_id is not None else None
        where = ev.where if entry is None else f"{ev.where} on track {ev.track_id} " \
                                               f"{display(entry.job.path)}"
        if ev.death:
            self.stats.worker_deaths += 1
            self.stats.deaths.append(where)
        if self.config.verbose or (entry is None and ev.death):
            self.report.log(where)
        if entry is None:
            return
        job = entry.job
        if job.attempt < job.max_retries:
            self.stats.retried += 1
            entry.job = job.again()
            self._retry.append(entry.job)
            return
        self._on_event(Failed(-1, 0, job.track_id, job.attempt, job.path, ev.kind,
                              f"{display(job.path)}: {where} (attempt {job.attempt + 1} of "
                              f"{job.max_retries + 1}); not retried again"))

    def _check_lost(self) -> None:
        """Jobs pending while no worker holds one, for LOST_JOB_S of consecutive readings: if
        jobs are still queued, the queue is stuck (a worker killed while waiting in ``get``
        keeps the queue's read lock for ever): the backend resets it and every waiting job
        goes again at the same attempt; if nothing is queued, the jobs were lost with a worker
        that died between taking one and announcing it, and each is lost (attempt + 1)."""
        now = time.monotonic()
        gap, self._last_check = now - self._last_check, now
        waiting = len(self._pending) - len(self._retry)
        if waiting <= 0 or self._live.active():
            self._idle_since = None
            return
        if self._idle_since is None or gap > 1.0:  # readings far apart prove nothing
            self._idle_since = now
            return
        if now - self._idle_since <= LOST_JOB_S:
            return
        self._idle_since = None
        queued = {j.track_id for j in self._retry}
        waiting_ids = [t for t in self._pending if t not in queued]
        if self._live.depth():
            self.report.log(f"no worker has taken a queued job for {LOST_JOB_S:g} s (a worker "
                            f"killed while waiting for one holds the queue's lock): new queue "
                            f"and workers; {len(waiting_ids)} job(s) go again")
            for ev in self._live.reset():
                self._on_event(ev)
            self._retry.extend(self._pending[t].job for t in waiting_ids if t in self._pending)
            return
        for track_id in waiting_ids:
            self._on_lost(Lost(track_id, "worker_died", "no worker holds it any more (a worker "
                                                        "died between taking it and starting "
                                                        "it)", death=False))

    # -- store ---------------------------------------------------------------------------------

    def _maybe_commit(self) -> None:
        cfg = self.config
        if (self._batch_results >= cfg.commit_every or len(self._batch) >= 4 * cfg.commit_every
                or time.monotonic() - self._last_commit >= cfg.commit_interval_s):
            self._commit()

    def _commit(self) -> None:
        """One write transaction for the batch; then its records go out (Report.release)."""
        if self._store is None:
            return
        if self._batch:
            self._store.commit(self._batch)
            self._batch = []
        self._batch_results = 0
        self._last_commit = time.monotonic()
        self.report.release()

    def _refresh(self) -> None:
        self.report.refresh(scanned=self._scanned,
                            queue=self._live.depth(),
                            queue_size=self.config.queue_size,
                            pids=self._live.processes)

    # -- stopping ------------------------------------------------------------------------------

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
        if self._stop_signal or self.report.output_closed:
            raise _Stop()

    def _on_stop(self) -> None:
        """Stop feeding; in-flight tracks get the grace period (none when stdout's reader has
        gone); keep what completes (NOTE [engine protocol]: shutdown)."""
        for track_id in self._live.interrupt():  # queued: not run
            self._pending.pop(track_id, None)
        for job in self._retry:
            self._pending.pop(job.track_id, None)
        self._retry.clear()
        if self.report.output_closed:
            self._abandon = True
            return
        self.stats.interrupted = self._stop_signal
        self.report.log(f"{signal.Signals(self._stop_signal).name}: stopping; in-flight tracks "
                        f"get {self.config.grace_s:g} s (Ctrl-C again to abandon them)")
        deadline = time.monotonic() + self.config.grace_s
        while (self._pending and not self._abandon and time.monotonic() < deadline
               and self._live.active()):
            for ev in self._live.poll(min(WAIT_TIMEOUT_S,
                                            max(0.0, deadline - time.monotonic()))):
                self._on_event(ev)
        self._abandon = True  # whatever is still running is not waited for

