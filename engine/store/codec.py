"""The store's bytes: struct layouts, ``meta`` names, and the encoding of keys and records.

Everything the on-disk layout of the package docstring fixes, in one place: the struct of each
database's values, the big-endian integer keys, path keys (a long path keyed by its digest),
the names in ``meta``, and the functions that turn records (:mod:`engine.store.records`) into
values and back. Every encoder checks its fields and raises :class:`StoreError` for one that
does not fit, before anything is written.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

import numpy as np

from ..errors import StoreError
from .records import _N_VALUES, FailureRecord, FingerprintRecord, TrackRecord

#: On-disk layout version (the package docstring). A store written with another one is refused.
SCHEMA_VERSION: Final = 1

#: Paths whose encoding is longer than this are keyed by their digest in ``paths``.
PATH_KEY_MAX: Final = 480

_ID = struct.Struct(">Q")
_LRU_KEY = struct.Struct(">QQ")
_TRACK_HEAD = struct.Struct("<qqB")
_FAILURE_HEAD = struct.Struct("<qqIHI")
_FP = struct.Struct(f"<HHIddd{_N_VALUES}d")

#: The ``fingerprints`` value layout as a numpy record (the same bytes as ``_FP``).
_FP_DTYPE: Final = np.dtype([
    ("version", "<u2"), ("channels", "<u2"), ("sample_rate", "<u4"), ("duration_s", "<f8"),
    ("decode_s", "<f8"), ("analysis_s", "<f8"), ("values", "<f8", (_N_VALUES,)),
])
if _FP_DTYPE.itemsize != _FP.size:
    raise AssertionError(
        f"_FP_DTYPE is {_FP_DTYPE.itemsize} bytes but _FP {_FP.size}: the two descriptions of a "
        f"fingerprints value must agree field for field"
    )

#: Bytes one fingerprint occupies in ``fingerprints`` (key + value): the unit of ``max_bytes``.
FINGERPRINT_ENTRY_BYTES: Final = _ID.size + _FP.size

_META_SCHEMA = b"schema_version"
_META_FP_VERSION = b"fingerprint_version"
_META_NEXT_ID = b"next_id"
_META_TICK = b"tick"
_META_EVICTIONS = b"evictions"
_META_FP_BYTES = b"fingerprint_bytes"
_META_GENERATION = b"generation"
_META_STORE_ID = b"store_id"

_U64_MAX: Final = (1 << 64) - 1
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1


def _id_bytes(track_id: int) -> bytes:
    if not isinstance(track_id, int) or not 0 <= track_id <= _U64_MAX:
        raise StoreError(
            f"track id {track_id!r} is not an integer in [0, 2**64): use Store.new_track_id()"
        )
    return _ID.pack(track_id)


def _encode_path(path: str) -> bytes:
    if not isinstance(path, str) or not path or "\x00" in path:
        raise StoreError(
            f"path {path!r} cannot be stored: a path is a non-empty str without NUL characters "
            f"(use os.fsdecode on bytes paths)"
        )
    try:
        return path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise StoreError(
            f"path {path!r} cannot be encoded ({exc.reason}): it holds a surrogate that "
            f"os.fsdecode never produces; pass the path as os.fsdecode gives it"
        ) from exc


def is_storable_path(path: str) -> bool:
    """Whether the store can hold records for ``path``.

    Every ``str`` that ``os.fsdecode`` gives for a real file name can be stored; the ones that
    cannot are the empty string and strings holding a NUL character (the scan reports both as
    problems: an empty input line, an input with a NUL byte). A batch holding a record for such
    a path is refused whole, so the caller checks first and reports the problem without a
    record.

    Parameters
    ----------
    path : str
        A path as ``os.fsdecode`` gives it.

    Returns
    -------
    bool
    """
    try:
        _encode_path(path)
    except StoreError:
        return False
    return True


def _decode_path(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _path_key(path: str) -> bytes:
    raw = _encode_path(path)
    if len(raw) <= PATH_KEY_MAX:
        return raw
    return b"\x00" + hashlib.blake2b(raw, digest_size=32).digest()


def _check_int(what: str, value: int, lo: int, hi: int, fix: str) -> None:
    if not isinstance(value, int) or not lo <= value <= hi:
        raise StoreError(f"{what} = {value!r} does not fit the store: it must lie in [{lo}, {hi}]"
                         f"; {fix}")


def _encode_track(rec: TrackRecord) -> bytes:
    who = f"TrackRecord for track {rec.track_id}"
    _check_int(f"{who}: size", rec.size, 0, _I64_MAX, "pass st_size")
    _check_int(f"{who}: mtime_ns", rec.mtime_ns, _I64_MIN, _I64_MAX, "pass st_mtime_ns")
    key = bytes(rec.content_key)
    if not 1 <= len(key) <= 255:
        raise StoreError(
            f"{who}: content_key is {len(key)} bytes; it must be 1 to 255 bytes: pass "
            f"content_key(path, size)"
        )
    return _TRACK_HEAD.pack(rec.size, rec.mtime_ns, len(key)) + key + _encode_path(rec.path)


def _decode_track(track_id: int, raw: bytes) -> TrackRecord:
    size, mtime_ns, n = _TRACK_HEAD.unpack_from(raw)
    start = _TRACK_HEAD.size
    key = raw[start : start + n]
    return TrackRecord(track_id, _decode_path(raw[start + n :]), size, mtime_ns, key)


def _encode_failure(rec: FailureRecord) -> bytes:
    who = f"FailureRecord for track {rec.track_id}"
    _check_int(f"{who}: size", rec.size, 0, _I64_MAX, "pass st_size")
    _check_int(f"{who}: mtime_ns", rec.mtime_ns, _I64_MIN, _I64_MAX, "pass st_mtime_ns")
    _check_int(f"{who}: attempts", rec.attempts, 0, 2**32 - 1, "count attempts from 1")
    kind = rec.kind.encode("utf-8", "surrogatepass")
    message = rec.message.encode("utf-8", "surrogatepass")
    _check_int(f"{who}: len(kind)", len(kind), 0, 2**16 - 1, "use a short kind such as "
               "the exception's class name")
    _check_int(f"{who}: len(message)", len(message), 0, 2**32 - 1, "shorten the message")
    head = _FAILURE_HEAD.pack(rec.size, rec.mtime_ns, rec.attempts, len(kind), len(message))
    return head + kind + message + _encode_path(rec.path)


def _decode_failure(track_id: int, raw: bytes) -> FailureRecord:
    size, mtime_ns, attempts, nk, nm = _FAILURE_HEAD.unpack_from(raw)
    at = _FAILURE_HEAD.size
    kind = raw[at : at + nk].decode("utf-8", "surrogatepass")
    message = raw[at + nk : at + nk + nm].decode("utf-8", "surrogatepass")
    path = _decode_path(raw[at + nk + nm :])
    return FailureRecord(track_id, path, kind, message, attempts, size, mtime_ns)


def _encode_fingerprint(rec: FingerprintRecord) -> bytes:
    who = f"FingerprintRecord for track {rec.track_id}"
    _check_int(f"{who}: version", rec.version, 0, 2**16 - 1, "pass kernels.FINGERPRINT_VERSION")
    _check_int(f"{who}: channels", rec.channels, 0, 2**16 - 1, "pass the file's channel count")
    _check_int(f"{who}: sample_rate", rec.sample_rate, 0, 2**32 - 1, "pass the rate in Hz")
    return _FP.pack(rec.version, rec.channels, rec.sample_rate, float(rec.duration_s),
                    float(rec.decode_s), float(rec.analysis_s), *rec.values)


def _decode_fingerprint(track_id: int, raw: bytes) -> FingerprintRecord:
    version, channels, sample_rate, duration_s, decode_s, analysis_s, *values = _FP.unpack(raw)
    return FingerprintRecord(track_id, version, tuple(values), duration_s, sample_rate,
                             channels, decode_s, analysis_s)


def _u64(raw: bytes | None, default: int = 0) -> int:
    return default if raw is None else int(_ID.unpack(raw)[0])
