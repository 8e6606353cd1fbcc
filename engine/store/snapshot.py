"""Reads that must agree: several lookups from one LMDB read transaction.

A :class:`Snapshot` is what :meth:`Store.snapshot <engine.store.Store.snapshot>` yields; the
single-read methods of :class:`~engine.store.Store` each open one for their call.
"""

from __future__ import annotations

import lmdb

from .codec import _ID, _decode_failure, _decode_fingerprint, _decode_track, _id_bytes, _path_key
from .dbs import _Dbs
from .records import FailureRecord, FingerprintRecord, TrackRecord


class Snapshot:
    """Reads from one LMDB read transaction: every answer is of the same commit.

    Made by :meth:`Store.snapshot`; not to be kept past its ``with`` block.
    """

    __slots__ = ("_dbs", "_txn")

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: _Dbs) -> None:
        self._txn = txn
        self._dbs = dbs

    def lookup(
        self, path: str
    ) -> tuple[TrackRecord | None, FingerprintRecord | None, FailureRecord | None]:
        """Everything the store knows about a path.

        Parameters
        ----------
        path : str
            The file's path as ``os.fsdecode`` gives it.

        Returns
        -------
        tuple
            ``(track, fingerprint, failure)``, each ``None`` when absent. A track without a
            fingerprint is new, evicted or failed; a failure may come without a track.
        """
        txn, dbs = self._txn, self._dbs
        idb = txn.get(_path_key(path), db=dbs.paths)
        if idb is None:
            return None, None, None
        track_id = _ID.unpack(idb)[0]
        t = txn.get(idb, db=dbs.tracks)
        f = txn.get(idb, db=dbs.fingerprints)
        e = txn.get(idb, db=dbs.failures)
        return (
            None if t is None else _decode_track(track_id, t),
            None if f is None else _decode_fingerprint(track_id, f),
            None if e is None else _decode_failure(track_id, e),
        )

    def find_by_content_key(self, key: bytes) -> TrackRecord | None:
        """The track last stored with this content key (a moved or copied file), if any.

        Parameters
        ----------
        key : bytes
            From :func:`engine.content_key.content_key`.

        Returns
        -------
        TrackRecord or None
        """
        if not 1 <= len(key) <= 255:
            return None
        idb = self._txn.get(bytes(key), db=self._dbs.keys)
        raw = None if idb is None else self._txn.get(idb, db=self._dbs.tracks)
        if idb is None or raw is None:
            return None
        return _decode_track(_ID.unpack(idb)[0], raw)

    def get_track(self, track_id: int) -> TrackRecord | None:
        """The track record of an id, or ``None``."""
        raw = self._txn.get(_id_bytes(track_id), db=self._dbs.tracks)
        return None if raw is None else _decode_track(track_id, raw)

    def get_fingerprint(self, track_id: int) -> FingerprintRecord | None:
        """The fingerprint of an id, or ``None`` (never computed, evicted or failed).

        Check :func:`is_current` before trusting its values.
        """
        raw = self._txn.get(_id_bytes(track_id), db=self._dbs.fingerprints)
        return None if raw is None else _decode_fingerprint(track_id, raw)
