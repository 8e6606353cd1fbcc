"""One job, end to end, in whatever process runs it: decode, analyse, answer as data.

The fork backend's workers (engine/run/backends/fork.py) and the Dask tasks
(engine/run/backends/dask.py) both call :func:`run_task`; decoding goes through the one decode
path (engine/decode/). Every failure of the file itself, and every bug outside the analysis
proper, comes back as a :class:`~engine.run.messages.Failed` with its traceback (the torch
ExceptionWrapper idea): only a crash of the process loses a job, and the backend reports that
as :class:`~engine.run.messages.Lost`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

import kernels
from kernels.errors import BadAudioError, ParameterError

from ..decode import open_audio, stream
from ..errors import DecodeError
from ..text import display
from .messages import Done, Failed, Job

if TYPE_CHECKING:
    from kernels import Analyzer

#: Channels the PCM buffer holds at ``block_frames`` frames; files with more read fewer frames.
BUFFER_CHANNELS = 8
#: Analyzers kept per process, keyed by (sample rate, channels); reset and reused per track.
ANALYZER_CACHE = 4


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """What every task needs besides its job, fixed for the run.

    Attributes
    ----------
    block_frames : int
        Frames per decoded block at up to :data:`BUFFER_CHANNELS` channels.
    timeout_s : float, s
        Time a track may take before its duration is known, and added to it after.
    min_speed : float, x realtime
        Once the header gives the duration ``d``, the track may take ``timeout_s + d /
        min_speed`` seconds in all; the backend kills the worker past that.
    hook : callable or None
        Fault-injection seam for the tests (never set by the CLI): called with each job before
        the work; a non-None return value is the result instead.
    """

    block_frames: int = 65536
    timeout_s: float = 30.0
    min_speed: float = 20.0
    hook: Callable[[Job], object] | None = None

    @property
    def capacity(self) -> int:
        """The PCM buffer's size, float32 samples."""
        return self.block_frames * BUFFER_CHANNELS

    def budget_s(self, duration_s: float) -> float:
        """Seconds a track of ``duration_s`` may take (``timeout_s`` when unknown)."""
        if duration_s <= 0:
            return self.timeout_s
        return self.timeout_s + duration_s / self.min_speed


class TaskState:
    """What one worker (process or thread) keeps between tracks: its PCM buffer, allocated once
    by the caller (shared memory for forked workers), and its analyzers.

    Parameters
    ----------
    buffer : ndarray, shape (capacity,), float32
        Viewed as (frames, channels) for each file.
    """

    __slots__ = ("analyzers", "buffer")

    def __init__(self, buffer: npt.NDArray[np.float32]) -> None:
        self.buffer = buffer
        self.analyzers: dict[tuple[int, int], Analyzer] = {}

    def analyzer(self, sr: int, channels: int) -> Analyzer:
        """A fresh (reset) analyzer for this format; the least recently used is dropped."""
        key = (sr, channels)
        a = self.analyzers.pop(key, None)
        if a is None:
            a = kernels.Analyzer(sr, channels)  # loaded by the supervisor's warm-up
        else:
            a.reset()
        self.analyzers[key] = a  # most recently used last
        while len(self.analyzers) > ANALYZER_CACHE:
            self.analyzers.pop(next(iter(self.analyzers)))
        return a


def run_task(job: Job, settings: TaskSettings, state: TaskState, *, worker: int, pid: int,
             on_budget: Callable[[float], None]) -> Done | Failed:
    """Fingerprint one job; never raises for anything the file or the code does.

    Parameters
    ----------
    job : Job
    settings : TaskSettings
    state : TaskState
    worker, pid : int, keyword-only
        Who runs it, for the result and its messages (worker -1 on Dask).
    on_budget : callable, keyword-only
        Called with the seconds this track may take once the header gives its duration.

    Returns
    -------
    Done or Failed
    """
    try:
        result = settings.hook(job) if settings.hook is not None else None
        if result is None:
            result = _fingerprint(job, settings, state, worker, pid, on_budget)
    except Exception as e:  # a bug outside the analysis proper: data, not a dead worker
        result = Failed(worker, pid, job.track_id, job.attempt, job.path, "exception",
                        f"{display(job.path)}: {type(e).__name__}: {e}", traceback.format_exc())
    return result  # type: ignore[return-value]  # a test hook may return anything


def _fingerprint(job: Job, settings: TaskSettings, state: TaskState, worker: int, pid: int,
                 on_budget: Callable[[float], None]) -> Done | Failed:
    shown = display(job.path)

    def failed(kind: str, message: str) -> Failed:
        return Failed(worker, pid, job.track_id, job.attempt, job.path, kind, message)

    try:
        with open_audio(job.path) as source:
            on_budget(settings.budget_s(source.duration_s))  # the header may lie: only widens
            sr, ch = source.samplerate, source.channels
            try:
                analyzer = state.analyzer(sr, ch)
            except ParameterError as e:
                return failed("unsupported", f"{shown}: {e}")
            frames = state.buffer.size // ch
            pcm = state.buffer[:frames * ch].reshape(frames, ch)
            decode_s, analysis_s = stream(source, analyzer, pcm)
            t0 = time.perf_counter()
            fp = analyzer.finish()
            analysis_s += time.perf_counter() - t0
    except DecodeError as e:
        return failed(e.kind, str(e))
    except BadAudioError as e:
        return failed("bad_audio", f"{shown}: {e}")
    return Done(worker, pid, job.track_id, job.attempt, tuple(float(v) for v in fp.as_array()),
                analyzer.n_samples / sr, sr, ch, decode_s, analysis_s, source.decoder,
                source.note)
