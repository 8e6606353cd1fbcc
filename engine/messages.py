"""What travels between the supervisor and its workers: frozen dataclasses, pickled by the queues.

See NOTE [engine protocol] in engine/supervisor.py for who sends what, when.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Job:
    """One track to fingerprint; the supervisor's job queue carries these (and None to stop).

    Attributes
    ----------
    track_id : int
        The catalog id (engine/store.py).
    path : str
        As the user gave it, made absolute (never resolved through links).
    priority : int
        Reserved for ordering; 0 for every job today.
    attempt : int
        0 for the first try; a retry after a worker death carries attempt + 1.
    max_retries : int
        Retries allowed after worker deaths before the track is recorded as failed.
    enqueued_at : float, s
        ``time.monotonic()`` when the job entered the queue.
    """

    track_id: int
    path: str
    priority: int = 0
    attempt: int = 0
    max_retries: int = 2
    enqueued_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Done:
    """A fingerprint, from worker ``worker`` (index) for ``track_id``.

    ``values`` are the 25 float64 in spec order (kernels.FINGERPRINT_NAMES).
    """

    worker: int
    pid: int
    track_id: int
    attempt: int
    values: tuple[float, ...]
    duration_s: float
    sample_rate: int
    channels: int
    decode_s: float
    analysis_s: float


@dataclass(frozen=True, slots=True)
class Failed:
    """A track that could not be fingerprinted, carried as data (never raised across processes).

    Attributes
    ----------
    kind : str
        ``"decode"`` (libsndfile refused the file), ``"bad_audio"`` (no samples, NaN / inf),
        ``"exception"`` (a bug: the traceback says where), and, from the supervisor itself,
        ``"worker_died"``, ``"timeout"``, ``"missing"``, ``"not_audio"`` ... (see the scanner).
    message : str
        Names the file and the reason.
    traceback : str
        The worker's formatted traceback for ``"exception"``, else "".
    where : str
        ``"worker 3 (pid 1234), track 17 /path"`` — for logs.
    """

    worker: int
    pid: int
    track_id: int
    attempt: int
    path: str
    kind: str
    message: str
    traceback: str = ""

    @property
    def where(self) -> str:
        return f"worker {self.worker} (pid {self.pid}), track {self.track_id} {self.path}"


def jsonl_line(rec: dict[str, Any]) -> str:
    """One JSON record and a newline. Non-ASCII stays readable; a path that is not valid UTF-8
    (kept by Python as lone surrogates) is written with ASCII escapes instead, losslessly."""
    line = json.dumps(rec, ensure_ascii=False, allow_nan=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(rec, ensure_ascii=True, allow_nan=False)
    return line + "\n"
