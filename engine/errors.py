"""The engine's error classes, under the project's root :class:`kernels.errors.FingerprintError`.

Messages name the offending value, the constraint it broke and what to do about it.
"""

from __future__ import annotations

from kernels.errors import FingerprintError

from .text import display

__all__ = [
    "BackendError",
    "DecodeError",
    "FingerprintError",
    "InputError",
    "QueryError",
    "StoreError",
]


class StoreError(FingerprintError):
    """The LMDB store refused an operation or could not carry it out.

    Raised for a store written with another schema, a store used in a process other than the one
    that opened it, a second writer, a full disk, or a batch that breaks the catalog's rules
    (for example a fingerprint for a track the store does not hold). The message names the
    store's path and the value at fault.
    """


class QueryError(FingerprintError):
    """An ``engine-query`` request that cannot be answered as asked.

    Raised for a track the store does not know, an unknown value name in ``--weight`` or
    ``--color``, a library with no current fingerprint, or a missing optional extra
    (matplotlib for ``plot`` and ``map``). The message names the value and the fix.
    """


class BackendError(FingerprintError):
    """The distributed backend cannot run: no dask installed, a scheduler that cannot be
    reached or went away, a malformed ``--path-map``. What the run completed is committed."""


class DecodeError(FingerprintError):
    """A file could not be decoded (engine/decode/): it names the path and the decoder's
    reason.

    Attributes
    ----------
    path : str
        The file, as it was opened.
    reason : str
        The decoder's words, corrected where they mislead.
    kind : str
        The failure record's kind: ``"decode"`` (unreadable, cut short, not audio),
        ``"no_audio"`` (a container without an audio stream), ``"unsupported"`` (a codec or
        sample format no decoder here reads), ``"encrypted"`` (DRM), ``"bad_audio"`` (a stream
        with no samples and no format).
    """

    def __init__(self, path: str, reason: str, *, kind: str = "decode") -> None:
        self.path = path
        self.reason = reason
        self.kind = kind
        super().__init__(f"{display(path)}: cannot decode audio: {reason}")

    def __reduce__(self) -> tuple[object, ...]:  # keyword-only kind survives pickling (Dask)
        return (_decode_error, (self.path, self.reason, self.kind))


def _decode_error(path: str, reason: str, kind: str) -> DecodeError:
    return DecodeError(path, reason, kind=kind)


class InputError(FingerprintError, ValueError):
    """The list of paths given to ``engine-run`` cannot be read as asked: for example one entry
    of stdin over 1 MiB without a separator (NUL-separated input without ``-0``)."""
