"""Catalog decisions: what the store already knows about a scanned file, and what to do.

For each :class:`~engine.run.scan.Candidate` the supervisor asks :func:`decide`, which reads
one store snapshot (one LMDB read transaction for the path, the content key and the
fingerprint) and answers with a :class:`Decision`: serve the stored fingerprint (``cached``), a
moved file's fingerprint under its new path (``moved``), an unchanged failure (``failed``), or
a job. The decision also carries the store operations it implies; the supervisor adds them to
its next batch (it is the only writer, NOTE [engine protocol]).

:func:`decide_problem` does the same for a :class:`~engine.run.scan.ScanProblem` (a missing
file, a name that is not audio, an unreadable folder): the problem becomes a failure record, so
``engine-query failures`` lists it like a decode failure.

Rules (README, "engine-run"):

- a file whose size and mtime match its track, with a current fingerprint: ``cached``;
- the same with a failure of that size and mtime: ``failed`` again, unless --retry-failed;
- a new path whose content key (size + first and last 64 KiB) is a track whose old path is
  gone, with the same size and a current fingerprint: ``moved``;
- anything else, and everything with --force: a job.
"""

from __future__ import annotations

import os
from collections.abc import Container
from dataclasses import dataclass

from ..content_key import content_key
from ..errors import StoreError
from ..store import (
    FailureRecord,
    FingerprintRecord,
    MovePath,
    Operation,
    PutFailure,
    PutFingerprint,
    PutTrack,
    Store,
    Touch,
    TrackRecord,
    is_current,
    is_storable_path,
)
from ..text import display
from .messages import Job
from .scan import Candidate, ScanProblem


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one scanned file.

    Attributes
    ----------
    status : str
        ``"cached"``, ``"moved"``, ``"failed"`` (known or unreadable) or ``"job"``.
    path : str
    track_id : int or None
        The id its records are stored under; None for a path the store cannot hold.
    ops : tuple of Operation
        For the supervisor's next batch.
    fp : FingerprintRecord or None
        The stored fingerprint served (cached, moved).
    error : (kind, message) or None
        For ``"failed"``.
    job : Job or None
        For ``"job"``: the first attempt.
    new_problem : bool
        A failure found now (a scan problem, an unreadable file), to be shown on stderr; an
        unchanged failure of an earlier run is not shown again.
    """

    status: str
    path: str
    track_id: int | None
    ops: tuple[Operation, ...] = ()
    fp: FingerprintRecord | None = None
    error: tuple[str, str] | None = None
    job: Job | None = None
    new_problem: bool = False


def decide(store: Store, c: Candidate, *, force: bool, retry_failed: bool,
           max_retries: int, busy: Container[int] = ()) -> Decision:
    """The catalog's answer for ``c``, from one read snapshot of ``store``.

    Parameters
    ----------
    store : Store
        The writer's store (new track ids come from it).
    c : Candidate
    force, retry_failed : bool, keyword-only
        ``--force`` and ``--retry-failed``.
    max_retries : int, keyword-only
        Given to a new job (``--max-retries``).
    busy : container of int, keyword-only
        Track ids with a job in flight: such a track is never taken for a moved file (its
        answer will name its own path).

    Returns
    -------
    Decision
    """
    with store.snapshot() as snap:
        track, fp, fail = snap.lookup(c.path)
        same = track is not None and track.size == c.size and track.mtime_ns == c.mtime_ns
        if track is not None and same and not force:
            if fp is not None and is_current(fp):
                return Decision("cached", c.path, track.track_id, (Touch((track.track_id,)),),
                                fp=fp)
            if (fail is not None and not retry_failed and fail.size == c.size
                    and fail.mtime_ns == c.mtime_ns):
                return Decision("failed", c.path, track.track_id,
                                error=(fail.kind, fail.message))
            return Decision("job", c.path, track.track_id,
                            job=Job(track.track_id, c.path, 0, max_retries))
        try:
            key = content_key(c.path, c.size)
        except PermissionError:
            return _failed(store, c.path, track, fail, "permission",
                           f"{display(c.path)}: permission denied: cannot read the file")
        except (OSError, StoreError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            return _failed(store, c.path, track, fail, "unreadable",
                           f"{display(c.path)}: cannot read the file: {reason}")
        if track is None and not force:
            old = snap.find_by_content_key(key)
            if (old is not None and old.path != c.path and old.size == c.size
                    and old.track_id not in busy and not os.path.exists(old.path)):
                old_fp = snap.get_fingerprint(old.track_id)
                if old_fp is not None and is_current(old_fp):
                    record = TrackRecord(old.track_id, c.path, c.size, c.mtime_ns, key)
                    # PutTrack with a new mtime (a copy, then a delete) drops the fingerprint
                    # (the store's rule against stale values); the content key says it is the
                    # same file, so it is put back in the same transaction
                    return Decision("moved", c.path, old.track_id,
                                    (MovePath(old.track_id, c.path), PutTrack(record),
                                     PutFingerprint(old_fp)), fp=old_fp)
    track_id = track.track_id if track is not None else store.new_track_id()
    return Decision("job", c.path, track_id,
                    (PutTrack(TrackRecord(track_id, c.path, c.size, c.mtime_ns, key)),),
                    job=Job(track_id, c.path, 0, max_retries))


def decide_problem(store: Store, p: ScanProblem) -> Decision:
    """A scan problem as a failure record (no track record: there is no size or content key).

    The path's existing id is reused (its fingerprint, if any, is dropped by the failure: the
    file is gone or unreadable); a path the store has never seen gets a new id. A path the
    store cannot hold (empty, or with a NUL) is reported only.

    Parameters
    ----------
    store : Store
    p : ScanProblem

    Returns
    -------
    Decision
        ``"failed"``, with the PutFailure in ``ops`` when the path can be stored.
    """
    if not is_storable_path(p.path):
        return Decision("failed", p.path, None, error=(p.kind, p.message), new_problem=True)
    with store.snapshot() as snap:
        track, _, fail = snap.lookup(p.path)
    return _failed(store, p.path, track, fail, p.kind, p.message)


def _failed(store: Store, path: str, track: TrackRecord | None, fail: FailureRecord | None,
            kind: str, message: str) -> Decision:
    """A failure found before any job, recorded under the path's id (a new one if it has
    none): tried again on every run, since such causes are usually fixed by hand."""
    track_id = (track.track_id if track is not None else fail.track_id if fail is not None
                else store.new_track_id())
    record = FailureRecord(track_id, path, kind, message,
                           fail.attempts + 1 if fail is not None else 1, 0, 0)
    return Decision("failed", path, track_id, (PutFailure(record),), error=(kind, message),
                    new_problem=True)
