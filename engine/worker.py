"""The worker process: take a job, decode into its shared PCM buffer, analyse, send the result.

Workers are forked by the supervisor after it compiled every kernel (kernels.warmup), so they
start with compiled code and never compile. They never touch LMDB. See NOTE [engine protocol]
in engine/supervisor.py.
"""

from __future__ import annotations

import os
import queue
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

from kernels import Analyzer, BadAudioError, ParameterError

from .messages import Done, Failed, Job
from .scan import display

#: Analyzers kept per worker, keyed by (sample rate, channels); reset and reused per track.
ANALYZER_CACHE = 4

#: Seconds a worker waits on the job queue before checking that its supervisor still lives.
GET_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker needs, fixed at fork.

    Attributes
    ----------
    index : int
        The worker's slot (0 .. cores-1); a respawned worker takes the slot of the dead one.
    buffer : memoryview
        Its shared-memory PCM buffer (float32 samples), mapped by the supervisor before fork.
    capacity : int
        The buffer's size in float32 samples.
    parent_pid : int
        The supervisor; the worker exits when it is gone.
    timeout_s : float, s
        Time allowed for a track before its duration is known, and added to it after.
    min_speed : float, x realtime
        Once the header gives the duration ``d``, the track may take ``timeout_s + d /
        min_speed`` seconds in all; the supervisor kills the worker past that.
    hook : callable or None
        Fault-injection seam for the tests (never set by the CLI): called with each job before
        the work; a non-None return value is sent as the result instead.
    """

    index: int
    buffer: Any
    capacity: int
    parent_pid: int
    timeout_s: float = 30.0
    min_speed: float = 20.0
    hook: Callable[[Job], object] | None = None


def worker_main(spec: WorkerSpec, jobs: Any, results: Any, current: Any, started: Any,
                budget: Any) -> None:
    """Worker loop (NOTE [engine protocol]): get a job with a timeout, say which track it is on
    in ``current[index]``, fingerprint it, send a :class:`Done` or :class:`Failed` down its own
    result pipe; exit on ``None`` or when the supervisor is gone.

    Parameters
    ----------
    spec : WorkerSpec
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
    analyzers: dict[tuple[int, int], Analyzer] = {}
    pid = os.getpid()
    while True:
        try:
            job = jobs.get(timeout=GET_TIMEOUT_S)
        except queue.Empty:
            if os.getppid() != spec.parent_pid:  # orphaned: the supervisor is gone
                return
            continue
        if job is None:
            return
        budget[spec.index] = spec.timeout_s
        started[spec.index] = time.monotonic()
        current[spec.index] = job.track_id
        try:
            result = spec.hook(job) if spec.hook is not None else None
            if result is None:
                result = _fingerprint(spec, job, analyzers, pid, budget)
        except Exception as e:  # a bug outside the analysis proper: data, not a dead worker
            result = Failed(spec.index, pid, job.track_id, job.attempt, job.path, "exception",
                            f"{display(job.path)}: {type(e).__name__}: {e}",
                            traceback.format_exc())
        try:
            results.send(result)
        except (BrokenPipeError, EOFError, OSError):
            return  # the supervisor is gone
        except Exception as e:  # not picklable: say so instead of losing the track
            results.send(Failed(spec.index, pid, job.track_id, job.attempt, job.path,
                                "exception", f"{display(job.path)}: the result could not be "
                                f"sent ({type(e).__name__}: {e})", traceback.format_exc()))
        current[spec.index] = -1
        started[spec.index] = 0.0


def _libsndfile_reason(path: str, e: BaseException) -> str:
    """libsndfile's reason, corrected where it misleads: for data it does not recognise it says
    the file "does not exist or is not a regular file" even when it is one."""
    reason = str(e).strip() or type(e).__name__
    if "does not exist or is not a regular file" in reason and os.path.isfile(path):
        # its MPEG reader's words for "no format recognised": the file is there
        return "no audio format libsndfile reads was recognised in the data"
    return reason.replace(path, display(path))


def _fingerprint(spec: WorkerSpec, job: Job, analyzers: dict[tuple[int, int], Analyzer],
                 pid: int, budget: Any) -> Done | Failed:
    """One track, end to end; every failure comes back as data (kind, message, traceback)."""
    shown = display(job.path)

    def failed(kind: str, message: str, tb: str = "") -> Failed:
        return Failed(spec.index, pid, job.track_id, job.attempt, job.path, kind, message, tb)

    try:
        # bytes: soundfile would encode a str path as strict UTF-8, and a name that is not
        # valid UTF-8 (kept by Python as surrogates) would not open
        f = sf.SoundFile(os.fsencode(job.path))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        return failed("decode", f"{shown}: cannot decode audio: "
                                f"{_libsndfile_reason(job.path, e)}")
    with f:
        sr, ch = f.samplerate, f.channels
        if f.frames > 0 and sr > 0:  # the header's length (it may lie; it only widens)
            budget[spec.index] = spec.timeout_s + f.frames / sr / spec.min_speed
        key = (sr, ch)
        analyzer = analyzers.pop(key, None)
        try:
            if analyzer is None:
                analyzer = Analyzer(sr, ch)
            else:
                analyzer.reset()
        except ParameterError as e:
            return failed("unsupported", f"{shown}: {e}")
        analyzers[key] = analyzer  # most recently used last
        while len(analyzers) > ANALYZER_CACHE:
            analyzers.pop(next(iter(analyzers)))
        frames = spec.capacity // ch
        pcm = np.ndarray((frames, ch), dtype=np.float32, buffer=spec.buffer)
        decode_s = analysis_s = 0.0
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    n = f.read(frames=frames, dtype="float32", always_2d=True, out=pcm).shape[0]
                except (sf.LibsndfileError, RuntimeError) as e:
                    return failed("decode", f"{shown}: cannot decode audio: "
                                            f"{_libsndfile_reason(job.path, e)}")
                t1 = time.perf_counter()
                decode_s += t1 - t0
                if n == 0:
                    break
                analyzer.feed(pcm[:n])
                analysis_s += time.perf_counter() - t1
            t1 = time.perf_counter()
            fp = analyzer.finish()
            analysis_s += time.perf_counter() - t1
        except BadAudioError as e:
            return failed("bad_audio", f"{shown}: {e}")
        return Done(spec.index, pid, job.track_id, job.attempt,
                    tuple(float(v) for v in fp.as_array()), analyzer.n_samples / sr, sr, ch,
                    decode_s, analysis_s)
