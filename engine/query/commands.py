"""The store's read side (``engine-query``): show, export, stats, failures, similar, playlist,
duplicates, plot and map. Never blocks a running engine-run.

Readers open the LMDB environment read-only and take one read transaction per listing (a
consistent snapshot even while the supervisor commits); they never write to LMDB. Commands that
*use* particular fingerprints (show, similar, playlist, plot) record them in the store's
``reads.log``, which the writer folds into its LRU at its next commit (engine/store, "Reads
feed the LRU"). Bulk reads (export, stats, failures, duplicates, map) record nothing.

Each command is a function taking the open store, the parsed options and an output stream, so
that tests call them in-process; ``engine.query.cli`` only parses and maps errors to exit codes.
Every ``-o FILE`` goes through :mod:`engine.query.output` (nothing clobbered).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt

from kernels import FINGERPRINT_NAMES, FINGERPRINT_UNITS, FINGERPRINT_VERSION
from kernels.errors import FingerprintError

from .. import store as st
from ..content_key import content_key
from ..errors import QueryError
from ..text import display, fingerprint_fields, jsonl_line
from .output import atomic_output, check_output
from .similarity import DUPLICATE_WEIGHTS, Library, duplicates, nearest, parse_weights, playlist

__all__ = [
    "DEFAULT_DUPLICATE_DISTANCE",
    "DEFAULT_DUPLICATE_DURATION_S",
    "Ref",
    "atomic_output",
    "check_output",
    "cmd_duplicates",
    "cmd_export",
    "cmd_failures",
    "cmd_map",
    "cmd_playlist",
    "cmd_plot",
    "cmd_show",
    "cmd_similar",
    "cmd_stats",
    "export_jsonl",
    "export_records",
    "resolve",
    "sidecar_path",
]

#: ``duplicates``: largest distance D of a near pair (IQRs, engine/query/similarity.py, with its
#: DUPLICATE_WEIGHTS). Calibrated by bench/query_calibration.py (docs/QUERY.md): on the 132
#: tracks of the full corpus as FLAC, MP3 128k and OGG q3 the same audio lay at 0.009-0.179
#: (median 0.038), different songs of similar duration at 0.450 and above; 0.25 sits between.
DEFAULT_DUPLICATE_DISTANCE: Final = 0.25
#: ``duplicates``: largest duration difference of a near pair, seconds (encoder padding and
#: trimming change a track's length by a few hundredths of a second).
DEFAULT_DUPLICATE_DURATION_S: Final = 0.5

_UNITS: Final = dict(zip(FINGERPRINT_NAMES, FINGERPRINT_UNITS, strict=True))


# --------------------------------------------------------------------------------------------
# Which track: PATH or ID


@dataclass(frozen=True, slots=True)
class Ref:
    """A track named on the command line, resolved.

    Attributes
    ----------
    label : str
        What to call it in output: its path (printable) or the argument.
    path : str or None
        Its path (in the store, or on disk for an outside file).
    track_id : int or None
        Its id when the store has it.
    values : np.ndarray, shape (25,), float64
        Its fingerprint.
    version : int
        The fingerprint's version (this code's for an outside file).
    row : int or None
        Its row in the library, when given one and it is there.
    note : str or None
        How it was found when that is worth saying (a copy's fingerprint, computed now).
    """

    label: str
    path: str | None
    track_id: int | None
    values: npt.NDArray[np.float64]
    version: int
    row: int | None = None
    note: str | None = None


#: Track ids are unsigned 64-bit integers in the store: a longer number names no track.
_MAX_TRACK_ID: Final = (1 << 64) - 1
#: Longest argument a message repeats whole; longer ones are cut in the middle.
_SHOWN_MAX: Final = 60


def _from_record(s: st.Store, track: st.TrackRecord, lib: Library | None,
                 note: str | None = None) -> Ref | None:
    """The track's Ref, or None when it has no fingerprint of this code's version."""
    fp = s.get_fingerprint(track.track_id)
    if fp is None or not st.is_current(fp):
        return None
    return Ref(display(track.path), track.path, track.track_id, np.array(fp.values),
               fp.version, None if lib is None else lib.row(track.track_id), note)


def _as_track_id(ref: str) -> int | None:
    """``ref`` as a track id when it is all ASCII digits (``"²"`` is a digit to Python, not
    an id), else None; a number past every id gives ``_MAX_TRACK_ID + 1``."""
    if not (ref.isascii() and ref.isdigit()):
        return None
    digits = ref.lstrip("0") or "0"
    if len(digits) > len(str(_MAX_TRACK_ID)):  # also spares int() its 4300-digit limit
        return _MAX_TRACK_ID + 1
    return min(int(digits), _MAX_TRACK_ID + 1)


def _shown(ref: str) -> str:
    text = display(ref)
    if len(text) <= _SHOWN_MAX:
        return text
    half = _SHOWN_MAX // 2
    return f"{text[:half]}...{text[-half:]} ({len(text)} characters)"


def resolve(s: st.Store, ref: str, *, lib: Library | None = None,
            compute: bool = False) -> Ref:
    """Find the track a user named: a path in the store, a track id, or (``compute``) a file.

    In this order: ``ref`` as a path in the store, made absolute as engine-run makes it
    (``os.path.abspath``, links not resolved); an existing file with the content key of a
    stored track (a copy or a moved file); ``ref`` as a track id when it is all ASCII digits
    (even if a file of that name exists here); and with ``compute``, an existing file
    fingerprinted now.

    A stored track, named by path or by id alike, whose fingerprint is stale or evicted is,
    with ``compute``, fingerprinted now from its file when that still exists.

    Parameters
    ----------
    s : Store
    ref : str
        The command-line argument.
    lib : Library, optional, keyword-only
        When given, the result's ``row`` is filled in.
    compute : bool, keyword-only
        Fingerprint a file the store has no current fingerprint of instead of failing.

    Returns
    -------
    Ref

    Raises
    ------
    QueryError
        When nothing matches (a track id out of range included), the track has no current
        fingerprint (failed, evicted, of an older version, not yet run) and ``compute``
        cannot help, or the file cannot be fingerprinted.
    """
    path = os.path.abspath(ref)
    exists = os.path.isfile(path)
    track, _fp, failure = s.lookup(path)
    if track is not None:
        return _stored(s, track, failure, lib, compute)
    if exists:
        with_key = _by_content(s, path, lib)
        if with_key is not None:
            return with_key
    track_id = _as_track_id(ref)
    if track_id is not None and track_id <= _MAX_TRACK_ID:
        by_id = s.get_track(track_id)
        if by_id is not None:
            return _stored(s, by_id, None, lib, compute)
    if exists:
        if compute:
            return _compute(path, lib)
        raise QueryError(f"{display(path)} is not in the store {s.path}: run engine-run "
                         f"--db {s.path} on it first")
    if failure is not None:
        raise QueryError(_no_fingerprint(s, None, failure))
    if track_id is not None:
        raise QueryError(_unknown_id(s, ref, track_id))
    if os.path.isdir(path):
        raise QueryError(f"{display(path)} is a folder, and TRACK is one track: give a file in "
                         f"it, or a track id")
    if os.path.exists(path):
        raise QueryError(f"{display(path)} is not a regular file, and not in the store "
                         f"{s.path}: give an audio file, or a track id")
    raise QueryError(f"no track at {_shown(path)}: not in the store {s.path} and no such "
                     f"file; give a path as engine-run saw it, or a track id")


def _stored(s: st.Store, track: st.TrackRecord, failure: st.FailureRecord | None,
            lib: Library | None, compute: bool) -> Ref:
    """A stored track's Ref, named by path or by id alike: its current fingerprint, or with
    ``compute`` its file fingerprinted now (the fingerprint is evicted or stale)."""
    found = _from_record(s, track, lib)
    if found is not None:
        return found
    if not compute:
        raise QueryError(_no_fingerprint(s, track, failure))
    fp = s.get_fingerprint(track.track_id)
    if failure is not None:
        why = f"in the store as failed ({failure.kind}: {failure.message})"
    elif fp is None:
        why = "in the store without a fingerprint, evicted or not yet computed"
    else:
        why = (f"stored with a fingerprint of version {fp.version}, this engine's is "
               f"{FINGERPRINT_VERSION}")
    if not os.path.isfile(track.path):
        raise QueryError(f"{display(track.path)} is {why}, and its file is gone, so it cannot "
                         f"be fingerprinted now either: restore the file (then run engine-run "
                         f"--db {s.path} on it), or name another track")
    return _compute(track.path, lib, why=why, track_id=track.track_id)


def _unknown_id(s: st.Store, ref: str, track_id: int) -> str:
    """Why no track has this id: past the store's ids, or not (no longer) in it."""
    top = int(s.stats()["next_id"]) - 1
    head = f"no track with id {_shown(ref)}"
    if top < 1:
        return (f"{head}: the store {s.path} holds no track yet; run engine-run --db {s.path} "
                f"on the library first")
    if not 1 <= track_id <= top:
        return (f"{head}: track ids in the store {s.path} are 1 to {top}; engine-query export "
                f"lists them")
    for f in s.iter_failures():
        if f.track_id == track_id:
            return _no_fingerprint(s, None, f)
    return (f"{head}: not in this store (track ids are 1 to {top}, and this one was deleted "
            f"or never used); engine-query export lists the ids")


def _no_fingerprint(s: st.Store, track: st.TrackRecord | None,
                    failure: st.FailureRecord | None) -> str:
    path = display(track.path if track is not None else failure.path if failure else "?")
    if failure is not None:
        return (f"{path} has no fingerprint: it failed ({failure.kind}: {failure.message}); "
                f"fix the file and run engine-run --retry-failed")
    fp = None if track is None else s.get_fingerprint(track.track_id)
    if fp is not None:
        return (f"{path} has a fingerprint of version {fp.version}, this engine's is "
                f"{FINGERPRINT_VERSION}: run engine-run --db {s.path} on it to recompute it")
    return (f"{path} has no fingerprint in the store {s.path} (not computed yet, or evicted): "
            f"run engine-run --db {s.path} on it")


def _by_content(s: st.Store, path: str, lib: Library | None) -> Ref | None:
    try:
        size = os.stat(path).st_size
        key = content_key(path, size)
    except (OSError, st.StoreError):
        return None
    track = s.find_by_content_key(key)
    if track is None:
        return None
    found = _from_record(s, track, lib, note=f"same content as {display(track.path)}")
    return None if found is None else Ref(display(path), path, found.track_id, found.values,
                                          found.version, found.row, found.note)


def _compute(path: str, lib: Library | None, *, why: str = "not in the store",
             track_id: int | None = None) -> Ref:
    """Fingerprint the file at ``path`` now; ``why`` says why (in the note and any error)."""
    from ..decode import fingerprint_file  # the analyzer's imports only when needed

    t0 = time.perf_counter()
    try:
        fp = fingerprint_file(path)
    except FingerprintError as exc:
        raise QueryError(f"{display(path)} is {why} and cannot be fingerprinted now: {exc}"
                         ) from exc
    return Ref(display(path), path, track_id, fp.as_array(), FINGERPRINT_VERSION, None,
               f"{why}: fingerprinted now in {time.perf_counter() - t0:.1f} s")


def _library(s: st.Store, *, cache: bool = True, need: int = 1) -> Library:
    lib = Library.load(s, cache=cache)
    if len(lib) < need:
        raise QueryError(
            f"the store {s.path} holds {len(lib)} fingerprint(s) of version "
            f"{FINGERPRINT_VERSION}; this needs at least {need}: run engine-run on the library"
        )
    return lib


def _in_library(ref: Ref, lib: Library, s: st.Store) -> int:
    if ref.row is None:
        raise QueryError(
            f"{ref.label} is not in the library of {s.path} (a playlist runs through "
            f"fingerprinted tracks): run engine-run on it first"
        )
    return ref.row


def _paths(s: st.Store, track_ids: Sequence[int]) -> list[str]:
    out = []
    for tid in track_ids:
        t = s.get_track(tid)
        out.append("" if t is None else t.path)
    return out


def _fmt(v: float) -> str:
    return f"{v:.4g}"


# --------------------------------------------------------------------------------------------
# show, export, stats, failures


def cmd_show(s: st.Store, ref: str, out: IO[str], *, as_json: bool = False) -> None:
    """The 25 values of one stored track with names and units (or one JSON record)."""
    r = resolve(s, ref)
    fp = s.get_fingerprint(r.track_id) if r.track_id is not None else None
    track = s.get_track(r.track_id) if r.track_id is not None else None
    if fp is None or track is None:  # evicted or replaced since resolve() saw it
        raise QueryError(f"{r.label} changed in the store while being read: try again")
    s.record_reads([fp.track_id])
    if as_json:
        out.write(jsonl_line(_record(track, fp) | {"version": fp.version,
                                                   "current": st.is_current(fp)}))
        return
    out.write(f"{r.label}\n")
    if r.note:
        out.write(f"  ({r.note})\n")
    out.write(f"  track {track.track_id}, {fp.duration_s:.2f} s, {fp.sample_rate} Hz, "
              f"{fp.channels} ch, {track.size} bytes, fingerprint version {fp.version}"
              f"{'' if st.is_current(fp) else ' (stale: engine-run will recompute it)'}\n")
    key = fingerprint_fields(fp.values)["key"]
    out.write("  key: none (no tonal centre)\n" if key is None else
              f"  key: {key['label']} ({key['camelot']}), strength {key['strength']:.2f}\n")
    width = max(map(len, FINGERPRINT_NAMES))
    for i, (name, v) in enumerate(zip(FINGERPRINT_NAMES, fp.values, strict=True)):
        out.write(f"  {i + 1:2d} {name:<{width}}  {v:>12.6g}  {_UNITS[name]}\n")


def _record(track: st.TrackRecord, fp: st.FingerprintRecord) -> dict[str, Any]:
    return {
        "path": track.path,
        "track_id": track.track_id,
        "status": "ok",
        **fingerprint_fields(fp.values),
        "duration_s": fp.duration_s,
        "sample_rate": fp.sample_rate,
        "channels": fp.channels,
        "error": None,
    }


def export_records(s: st.Store) -> Iterator[dict[str, Any]]:
    """Every current fingerprint as the record ``engine-run --jsonl`` writes (status "ok")."""
    for track, fp in s.iter_fingerprints():
        if st.is_current(fp):
            yield _record(track, fp)


def export_jsonl(s: st.Store, out: IO[str]) -> int:
    """Write every current fingerprint as JSONL; returns how many."""
    n = 0
    for rec in export_records(s):
        out.write(jsonl_line(rec))
        n += 1
    return n


_CSV_HEAD: Final = ("track_id", "path", "duration_s", "sample_rate", "channels", "key",
                    "camelot", "key_strength", *FINGERPRINT_NAMES)


def _csv_writer(out: IO[str]) -> Any:
    """RFC 4180 CSV: CRLF line ends, and any field holding a comma, a quote, CR or LF quoted.

    The line end matters: Python's writer quotes a field for the characters of its own line
    terminator only, so with ``"\n"`` a path with a bare CR went out unquoted and split its
    row in every reader.
    """
    return csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)


def export_csv(s: st.Store, out: IO[str]) -> int:
    """Write every current fingerprint as CSV (header row, RFC 4180 quoting and CRLF line ends:
    a path holding CR, LF, a comma or a quote reads back exactly); returns how many.

    Values are written with ``repr`` precision (they read back bit for bit).
    """
    w = _csv_writer(out)
    w.writerow(_CSV_HEAD)
    n = 0
    for track, fp in s.iter_fingerprints():
        if st.is_current(fp):
            key = fingerprint_fields(fp.values)["key"] or {}
            w.writerow((track.track_id, track.path, repr(fp.duration_s), fp.sample_rate,
                        fp.channels, key.get("label", ""), key.get("camelot", ""),
                        repr(key["strength"]) if key else "", *map(repr, fp.values)))
            n += 1
    return n


def sidecar_path(npy_path: str) -> str:
    """The id/path sidecar of an exported ``.npy``: ``X.npy`` -> ``X.tracks.csv``."""
    stem = npy_path[:-4] if npy_path.endswith(".npy") else npy_path
    return stem + ".tracks.csv"


def export_npy(s: st.Store, path: str, *, store: str | None = None) -> int:
    """Write the current fingerprints as an ``(n, 25)`` float64 ``.npy`` plus a sidecar CSV.

    The sidecar (:func:`sidecar_path`, RFC 4180 like :func:`export_csv`) has columns ``row,
    track_id, path``: row i of the matrix is the track on its row i. Both come from one
    snapshot, and both outputs are checked (:func:`check_output`) before either is written.
    Memory stays flat: rows stream to a scratch file first (beside the output), and the
    ``.npy`` header (which needs the count) is written last.

    Parameters
    ----------
    s : Store
    path : str
        The ``.npy`` output (``-o``).
    store : str, optional, keyword-only
        The store's directory: outputs inside it are refused.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    QueryError
        When either output cannot be written (:mod:`engine.query.output`).
    """
    side = sidecar_path(path)
    target = check_output(path, store=store)
    check_output(side, store=store)
    if os.path.realpath(target.path) == os.path.realpath(side):
        raise QueryError(f"-o {display(path)}: it is also its own sidecar {display(side)}; "
                         f"name the .npy file differently")
    scratch = (tempfile.gettempdir() if target.stream
               else os.path.dirname(os.path.abspath(target.path)))
    n = 0
    try:
        raw = tempfile.TemporaryFile(dir=scratch)
    except OSError as exc:
        raise QueryError(f"-o {display(path)}: cannot create a scratch file in "
                         f"{display(scratch)} ({exc.strerror}); write elsewhere, or make the "
                         f"folder writable") from exc
    with raw, atomic_output(side, store=store) as sf:
        w = _csv_writer(sf)
        w.writerow(("row", "track_id", "path"))
        for track, fp in s.iter_fingerprints():
            if st.is_current(fp):
                raw.write(np.asarray(fp.values, dtype="<f8").tobytes())
                w.writerow((n, track.track_id, track.path))
                n += 1
        raw.seek(0)
        with atomic_output(path, "wb", store=store) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f8", "fortran_order": False, "shape": (n, len(FINGERPRINT_NAMES))})
            shutil.copyfileobj(raw, f, 1 << 20)
    return n


def cmd_export(s: st.Store, fmt: str, output: str, out: IO[str]) -> int:
    """``export --format jsonl|csv|npy [-o FILE]``; returns the count written.

    ``-o FILE`` is written as :func:`atomic_output` says (never clobbering a device, a link or
    a folder); outputs inside the store's directory are refused.
    """
    if fmt == "npy":
        if output == "-":
            raise QueryError("export --format npy needs -o FILE.npy (it writes FILE.npy and its "
                             "sidecar FILE.tracks.csv)")
        return export_npy(s, output, store=s.path)
    writer = export_jsonl if fmt == "jsonl" else export_csv
    if output == "-":
        return writer(s, out)
    with atomic_output(output, store=s.path) as f:
        return writer(s, f)


def cmd_stats(s: st.Store) -> dict[str, Any]:
    """The store's counts and sizes (:meth:`Store.stats`) as a JSON-ready dict."""
    return dict(s.stats())


def cmd_failures(s: st.Store, out: IO[str], *, as_jsonl: bool = False,
                 kind: str | None = None) -> int:
    """Every failure record (optionally of one kind): a table or JSONL; returns the count."""
    n = 0
    rows = []
    for f in s.iter_failures():
        if kind is not None and f.kind != kind:
            continue
        n += 1
        if as_jsonl:
            out.write(jsonl_line({"track_id": f.track_id, "path": f.path, "kind": f.kind,
                                  "message": f.message, "attempts": f.attempts}))
        else:
            rows.append(f)
    if not as_jsonl:
        if not rows:
            out.write("no failures\n")
        else:
            kw = max(4, *(len(f.kind) for f in rows))
            out.write(f"{'track':>7}  {'kind':<{kw}}  tries  path: message\n")
            for f in rows:
                out.write(f"{f.track_id:>7}  {f.kind:<{kw}}  {f.attempts:>5}  "
                          f"{display(f.path)}: {display(f.message)}\n")
    return n


# --------------------------------------------------------------------------------------------
# similar, playlist, duplicates


def cmd_similar(s: st.Store, ref: str, out: IO[str], *, k: int = 10,
                weights: Sequence[str] = (), as_jsonl: bool = False,
                cache: bool = True) -> list[dict[str, Any]]:
    """The ``k`` tracks most similar to ``ref`` (a stored track, or any file: fingerprinted
    now), nearest first, with the values that differ most; returns the result records."""
    w = parse_weights(weights)
    lib = _library(s, cache=cache)
    r = resolve(s, ref, lib=lib, compute=True)
    q = lib.scaling.apply(r.values)
    found = nearest(lib, q, w, k, exclude=() if r.row is None else (r.row,))
    paths = _paths(s, [n.track_id for n in found])
    results: list[dict[str, Any]] = []
    for rank, (nb, path) in enumerate(zip(found, paths, strict=True), 1):
        diff = lib.differences(q, lib.z[nb.row], w)
        col = [FINGERPRINT_NAMES.index(d) for d in diff]
        results.append({
            "rank": rank, "track_id": nb.track_id, "path": path,
            "distance": round(nb.distance, 6),
            "differs_most": [{"name": FINGERPRINT_NAMES[c], "query": float(r.values[c]),
                              "value": float(lib.values[nb.row, c])} for c in col],
        })
    s.record_reads(([] if r.track_id is None else [r.track_id])
                   + [n.track_id for n in found])
    if as_jsonl:
        for rec in results:
            out.write(jsonl_line({"query": r.path, "query_track_id": r.track_id} | rec))
        return results
    out.write(f"similar to {r.label}" + (f" ({r.note})" if r.note else "") +
              f", among {len(lib)} tracks:\n")
    if not results:
        out.write("  (no other track)\n")
        return results
    out.write(f"{'#':>3}  {'distance':>8}  {'track':>7}  path  [differs most in]\n")
    for rec in results:
        diffs = ", ".join(f"{d['name']} {_fmt(d['query'])}->{_fmt(d['value'])}"
                          for d in rec["differs_most"])
        out.write(f"{rec['rank']:>3}  {rec['distance']:>8.3f}  {rec['track_id']:>7}  "
                  f"{display(rec['path'])}  [{diffs}]\n")
    return results


def cmd_playlist(s: st.Store, seed: str, out: IO[str], *, n: int = 30, to: str | None = None,
                 weights: Sequence[str] = (), as_jsonl: bool = False,
                 allow_duplicates: bool = False, cache: bool = True) -> list[dict[str, Any]]:
    """A smooth playlist from ``seed`` (to ``to``): M3U (extended) or JSONL; returns records.

    No track comes twice, nor (unless ``allow_duplicates``) a near duplicate of one already in
    it (:data:`DEFAULT_DUPLICATE_DISTANCE`, :data:`DEFAULT_DUPLICATE_DURATION_S`)."""
    w = parse_weights(weights)
    lib = _library(s, cache=cache)
    a = _in_library(resolve(s, seed, lib=lib), lib, s)
    b = None if to is None else _in_library(resolve(s, to, lib=lib), lib, s)
    rows = playlist(lib, a, n, w, target=b,
                    distinct=0.0 if allow_duplicates else DEFAULT_DUPLICATE_DISTANCE,
                    distinct_weights=parse_weights(base=DUPLICATE_WEIGHTS),
                    duration_tolerance_s=DEFAULT_DUPLICATE_DURATION_S)
    ids = [int(lib.track_ids[i]) for i in rows]
    paths = _paths(s, ids)
    records: list[dict[str, Any]] = []
    for pos, (row, tid, path) in enumerate(zip(rows, ids, paths, strict=True)):
        step = 0.0 if pos == 0 else lib.distance(rows[pos - 1], row, w)
        records.append({"position": pos + 1, "track_id": tid, "path": path,
                        "duration_s": float(lib.duration_s[row]), "step_distance": round(step, 6)})
    s.record_reads(ids)
    if as_jsonl:
        for rec in records:
            out.write(jsonl_line(rec))
        return records
    out.write("#EXTM3U\n")
    for rec in records:
        path = rec["path"]
        if "\n" in path or "\r" in path:  # an M3U line cannot hold it; JSONL can
            out.write(f"# skipped track {rec['track_id']}: its path has a line break\n")
            continue
        title = os.path.splitext(os.path.basename(path))[0].replace(",", " ")
        out.write(f"#EXTINF:{math.ceil(rec['duration_s'])},{title}\n{path}\n")
    return records


def cmd_duplicates(s: st.Store, out: IO[str], *,
                   max_distance: float = DEFAULT_DUPLICATE_DISTANCE,
                   duration_tolerance_s: float = DEFAULT_DUPLICATE_DURATION_S,
                   weights: Sequence[str] = (), as_jsonl: bool = False,
                   cache: bool = True) -> list[dict[str, Any]]:
    """Exact duplicates (same content key) and near ones (same duration, distance under
    ``max_distance``): a listing or JSONL; returns the records."""
    if not (math.isfinite(max_distance) and max_distance >= 0):
        raise QueryError(f"--max-distance {max_distance}: must be a number >= 0")
    if not (math.isfinite(duration_tolerance_s) and duration_tolerance_s >= 0):
        raise QueryError(f"--duration-tolerance {duration_tolerance_s}: must be a number >= 0")
    w = parse_weights(weights, base=DUPLICATE_WEIGHTS)
    lib = _library(s, cache=cache, need=0)
    rep = duplicates(lib, w, max_distance=max_distance,
                     duration_tolerance_s=duration_tolerance_s)
    records: list[dict[str, Any]] = []
    for group in rep.exact:
        ids = [int(lib.track_ids[i]) for i in group]
        records.append({"kind": "exact", "distance": 0.0,
                        "content_key": lib.content_keys[group[0]].tobytes().hex(),
                        "tracks": [{"track_id": t, "path": p}
                                   for t, p in zip(ids, _paths(s, ids), strict=True)]})
    for i, j, d in rep.near:
        ids = [int(lib.track_ids[i]), int(lib.track_ids[j])]
        records.append({"kind": "near", "distance": round(d, 6),
                        "tracks": [{"track_id": t, "path": p}
                                   for t, p in zip(ids, _paths(s, ids), strict=True)]})
    if as_jsonl:
        for rec in records:
            out.write(jsonl_line(rec))
        return records
    out.write(f"{len(rep.exact)} group(s) of identical files, {len(rep.near)} near pair(s) "
              f"(D <= {max_distance:g}, durations within {duration_tolerance_s:g} s) among "
              f"{len(lib)} tracks\n")
    for rec in records:
        head = "exact" if rec["kind"] == "exact" else f"near  D={rec['distance']:.3f}"
        out.write(f"{head}\n")
        for t in rec["tracks"]:
            out.write(f"    {t['track_id']:>7}  {display(t['path'])}\n")
    return records


# --------------------------------------------------------------------------------------------
# plot, map


def cmd_plot(s: st.Store, ref: str, output: str, *, cache: bool = True) -> Ref:
    """One fingerprint against the library's distribution, as an image (``engine.plots``).

    ``output`` is checked first (:func:`check_output`; not inside the store), then written as
    :func:`atomic_output` says.
    """
    from .plots import plot_track, require_matplotlib

    require_matplotlib()
    check_output(output, store=s.path)
    lib = _library(s, cache=cache)
    r = resolve(s, ref, lib=lib, compute=True)
    plot_track(lib, r.values, title=r.label, output=output, row=r.row)
    if r.track_id is not None:
        s.record_reads([r.track_id])
    return r


def cmd_map(s: st.Store, output: str, *, color: str = "tempo_bpm",
            highlight: Sequence[str] = (), weights: Sequence[str] = (),
            cache: bool = True) -> int:
    """A 2-D PCA map of the library coloured by a value, as an image; returns the track count.

    ``output`` is checked first (:func:`check_output`; not inside the store), then written as
    :func:`atomic_output` says.
    """
    from .plots import plot_map, require_matplotlib

    require_matplotlib()
    check_output(output, store=s.path)
    w = parse_weights(weights)
    lib = _library(s, cache=cache, need=2)
    rows = [_in_library(resolve(s, h, lib=lib), lib, s) for h in highlight]
    plot_map(lib, color=color, output=output, weights=w, highlight=rows)
    return len(lib)
