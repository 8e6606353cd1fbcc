"""What travels between the supervisor and its backend: frozen dataclasses, pickled as data.

See NOTE [engine protocol] in engine/run/supervisor.py for who sends what, when. A backend
answers every job it was given with exactly one event: :class:`Done`, :class:`Failed` (the
file's own failure, made by the task) or :class:`Lost` (the job did not come back: a worker
died with it, it ran out of time, or a worker could not see the file).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Job:
    """One track to fingerprint; the fork backend's job queue carries these (and None to stop).

    Attributes
    ----------
    track_id : int
        The catalog id (engine/store).
    path : str
        As the user gave it, made absolute (never resolved through links); the Dask backend
        sends its workers the ``--path-map``'d form.
    attempt : int
        0 for the first try; a retry after a lost job carries attempt + 1.
    max_retries : int
        Retries allowed after lost jobs before the track is recorded as failed.
    """

    track_id: int
    path: str
    attempt: int = 0
    max_retries: int = 2

    def again(self) -> Job:
        """The same job, one attempt later."""
        return Job(self.track_id, self.path, self.attempt + 1, self.max_retries)


@dataclass(frozen=True, slots=True)
class Done:
    """A fingerprint, from worker ``worker`` (index; -1 on Dask) for ``track_id``.

    ``values`` are the float64 values in the order of ``kernels.FINGERPRINT_NAMES``;
    ``decoder`` is the decoder that read the file (``"libsndfile"`` or ``"ffmpeg"``) and
    ``note`` what the user should know about how it was read ("" when nothing; e.g. which of
    several audio streams was used).
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
    decoder: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Failed:
    """A track that could not be fingerprinted, carried as data (never raised across processes).

    Attributes
    ----------
    kind : str
        ``"decode"`` (the decoder refused the file: unreadable, cut short, not audio),
        ``"bad_audio"`` (no samples, NaN / inf), ``"unsupported"`` (a rate, channel count or
        codec nothing here takes), ``"no_audio"`` (a container without an audio stream),
        ``"encrypted"`` (DRM),
        ``"exception"`` (a bug: the traceback says where), and, from the supervisor itself,
        ``"worker_died"``, ``"timeout"``, ``"missing"``, ``"not_audio"`` ... (see the scanner).
    message : str
        Names the file and the reason.
    traceback : str
        The worker's formatted traceback for ``"exception"``, else "".
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
        """``"worker 3 (pid 1234), track 17 /path"``, for logs."""
        return f"worker {self.worker} (pid {self.pid}), track {self.track_id} {self.path}"


@dataclass(frozen=True, slots=True)
class Lost:
    """A job that did not come back, or a worker that died (``track_id`` None: it held none).

    The supervisor retries a lost track up to its job's ``max_retries``, then records it as
    failed with ``kind`` (one rule for every backend: Supervisor._on_lost).

    Attributes
    ----------
    track_id : int or None
    kind : str
        ``"worker_died"``, ``"timeout"`` (killed past its time budget), or ``"missing"`` (a
        Dask worker could not see a file the client sees).
    where : str
        What happened, naming the worker, pid, signal and track, e.g. ``"worker 1 (pid 4242)
        died with SIGKILL(-9) on track 17 /music/a.flac"``.
    death : bool
        Whether this event counts a worker death (one death may lose several jobs).
    """

    track_id: int | None
    kind: str
    where: str
    death: bool = True


Event = Done | Failed | Lost
