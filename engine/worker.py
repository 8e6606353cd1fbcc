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
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

from kernels import Analyzer, BadAudioError, DecodeError

from .messages import Done, Failed, Job

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
    """

    index: int
    buffer: Any
    capacity: int
    parent_pid: int


def worker_main(spec: WorkerSpec, jobs: Any, results: Any, current: Any) -> None:
    """Worker loop (NOTE [engine protocol]): get a job with a timeout, say which track it is on
    in ``current[index]``, fingerprint it, put a :class:`Done` or :class:`Failed` on
    ``results``; exit on ``None`` or when the supervisor is gone.

    Parameters
    ----------
    spec : WorkerSpec
    jobs : multiprocessing.Queue of Job | None
    results : multiprocessing.Queue of Done | Failed
    current : multiprocessing.Array('q')
        ``current[index]`` = the track id being worked on, -1 when idle. The supervisor reads
        it when this process dies, to name and retry the track.
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
        current[spec.index] = job.track_id
        results.put(_fingerprint(spec, job, analyzers, pid))
        current[spec.index] = -1


def _fingerprint(spec: WorkerSpec, job: Job, analyzers: dict[tuple[int, int], Analyzer],
                 pid: int) -> Done | Failed:
    """One track, end to end; every failure comes back as data (kind, message, traceback)."""

    def failed(kind: str, message: str, tb: str = "") -> Failed:
        return Failed(spec.index, pid, job.track_id, job.attempt, job.path, kind, message, tb)

    try:
        try:
            f = sf.SoundFile(job.path)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise DecodeError(job.path, str(e).strip() or type(e).__name__) from e
        with f:
            sr, ch = f.samplerate, f.channels
            key = (sr, ch)
            analyzer = analyzers.pop(key, None)
            if analyzer is None:
                analyzer = Analyzer(sr, ch)
            else:
                analyzer.reset()
            analyzers[key] = analyzer  # most recently used last
            while len(analyzers) > ANALYZER_CACHE:
                analyzers.pop(next(iter(analyzers)))
            frames = spec.capacity // ch
            pcm = np.ndarray((frames, ch), dtype=np.float32, buffer=spec.buffer)
            decode_s = analysis_s = 0.0
            while True:
                t0 = time.perf_counter()
                try:
                    n = f.read(frames=frames, dtype="float32", always_2d=True, out=pcm).shape[0]
                except (sf.LibsndfileError, RuntimeError) as e:
                    raise DecodeError(job.path, str(e).strip() or type(e).__name__) from e
                t1 = time.perf_counter()
                decode_s += t1 - t0
                if n == 0:
                    break
                analyzer.feed(pcm[:n])
                analysis_s += time.perf_counter() - t1
            t1 = time.perf_counter()
            try:
                fp = analyzer.finish()
            except BadAudioError as e:
                raise BadAudioError(f"{job.path}: {e}") from e
            analysis_s += time.perf_counter() - t1
            return Done(spec.index, pid, job.track_id, job.attempt,
                        tuple(float(v) for v in fp.as_array()), analyzer.n_samples / sr, sr, ch,
                        decode_s, analysis_s)
    except DecodeError as e:
        return failed("decode", str(e))
    except BadAudioError as e:
        msg = str(e)
        return failed("bad_audio", msg if job.path in msg else f"{job.path}: {msg}")
    except Exception as e:  # a bug: keep the traceback, name the place
        return failed("exception", f"{job.path}: {type(e).__name__}: {e}",
                      traceback.format_exc())
