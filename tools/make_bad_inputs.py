"""Write a set of broken, odd and hostile inputs for engine-run, with what must happen to each.

Usage: python tools/make_bad_inputs.py DIR [--long-seconds S] [--seed N] [--only KIND ...]

A real library holds files that are empty, cut short, mislabelled, unreadable, linked in
circles or named in ways a line-based tool cannot carry. Every *kind* in :data:`KINDS` writes one
such input into DIR (a file, a link or a folder, named after its kind) and records in
``DIR/expectations.json`` what ``engine-run --jsonl DIR`` must report for each path it produces.
Keys are paths relative to DIR, decoded with :func:`os.fsdecode` (a name that is not UTF-8 keeps
its bytes as ``surrogateescape`` surrogates; the file is written with ASCII escapes, so
``json.load`` gives them back)::

    {"valid.wav": {"kind": "valid_wav", "expect": "ok", "duration_s": 3.0, ...},
     "empty.flac": {"kind": "empty_flac", "expect": "failed", "kinds": ["decode"]},
     "trunc_50pct.wav": {"kind": ..., "expect": "ok_or_failed", "why": "..."}, ...}

Fields of an expectation:

``kind``
    The kind that produced the path.
``expect``
    ``"ok"``: a fingerprint (status ok, or cached on a rerun); ``"failed"``: a failure record
    whose ``error.kind`` is one of ``kinds``; ``"ok_or_failed"``: either is right (``why`` says
    why; a failure must still have one of ``kinds``).
``kinds``
    The error kinds a failure may carry (engine/run/messages.py ``Failed``,
    engine/run/scan.py ``ScanProblem.kind``).
``duration_s``, ``duration_tol``, ``sample_rate``, ``channels``
    What an ok record must say. ``duration_max_s``: the longest an ok record of an
    ``ok_or_failed`` path may claim (the intact file's length).
``note_contains``
    Text an ok record's ``note`` must contain: which of several audio streams was used
    (``"stream 2 of 2"``).
``needs_null``
    The name holds a newline: it can be fed through stdin only NUL-separated (``-0``).
``xfail_reason``
    The engine does not do the right thing here yet: the bug, precisely. The expectation is
    still the RIGHT behaviour; the entry fails until the engine is fixed.
``why``
    Why this expectation, where it is not obvious.

Every failure message must name its file (the basename, escaped as engine/text.py ``display``
does: ``\\xNN`` for a byte that is not UTF-8, ``\\n`` for a newline), give a reason, be one
printable line, and not claim that an existing regular file "does not exist".

Everything is deterministic: random bytes come from ``--seed``, valid audio is synthesised and
written with soundfile (WAV, FLAC, OGG, MP3, AIFF) or with FFmpeg's encoders through
tools/encode.py (M4A with AAC or ALAC, MP4 video, Vorbis in Matroska), broken files are made by
byte surgery on those encodings: truncations, MP4 atoms moved, removed, emptied or renamed
(:func:`mp4_rebuild`), a Matroska CodecID renamed. Random identifiers are fixed: the Ogg stream
serial number libsndfile draws is rewritten with its page CRCs, the Matroska segment and track
UIDs FFmpeg draws with their CRC-32 elements (:func:`mkv_fix`).
The long file (``--long-seconds``, default 7200 s: a 2-hour track; engine-run takes about 7 s
for it on one core) is a quiet sine written in blocks, never held in memory whole. Nothing is
ever passed to a shell. Modes 000 are computed into the expectations with :func:`os.access`
when generated: root (CAP_DAC_OVERRIDE) reads them anyway.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

# tools/ is not a package: its own folder on sys.path lets ``encode`` import both when this
# file runs as a script and when a test loads it with importlib
_TOOLS = os.path.dirname(os.path.abspath(__file__))
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)
from encode import encode as ffmpeg_encode  # noqa: E402  (FFmpeg's encoders, through PyAV)

__all__ = ["KINDS", "Context", "Expectation", "generate", "load_expectations", "main", "shown"]

Expectation = dict[str, Any]

#: Rate, channels and length of the valid tracks the truncations start from.
SR = 44100
CHANNELS = 2
SECONDS = 3.0
#: Length of the other short tracks.
SHORT_SECONDS = 1.0
#: Sample rate and amplitude of the long file: a quiet mono sine, cheap to write and to decode.
LONG_SR = 22050
LONG_AMPLITUDE = 0.05
#: Frames per block when writing the long file.
LONG_BLOCK = 1 << 16
#: Formats whose encodings are truncated: extension -> (soundfile format, subtype).
FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
#: Duration tolerance of an ok record, s: exact formats, and MP3 (encoder delay and padding).
EXACT_TOL = 1e-4
MP3_TOL = 0.06
#: ... and of AAC in M4A and Vorbis in Matroska: the last codec frame's padding (up to 1024,
#: 2048 frames) is decoded too (the containers give the length; FFmpeg does not cut to it).
AAC_TOL = 1024 / SR + EXACT_TOL
VORBIS_TOL = 2048 / SR + EXACT_TOL
#: The fixed serial number every Ogg page gets (libsndfile draws a random one per file).
OGG_SERIAL = 0x5EED0001
#: Bytes of the random-bytes files.
RANDOM_BYTES = 20_000

@dataclass
class Context:
    """Where the kinds write and what they record.

    Parameters
    ----------
    root : Path
        The output folder.
    seed : int
        Seed of every random draw.
    long_seconds : float
        Length of the long file, in seconds.
    """

    root: Path
    seed: int
    long_seconds: float
    expectations: dict[str, Expectation] = field(default_factory=dict)
    _encoded: dict[str, bytes] = field(default_factory=dict)

    def path(self, name: str | bytes) -> bytes:
        """The path of ``name`` (relative to the root), as bytes."""
        return os.path.join(os.fsencode(self.root), os.fsencode(name))

    def expect(self, name: str | bytes, kind: str, expect: str, **fields: Any) -> None:
        """Record what engine-run must report for ``name`` (relative to the root).

        Parameters
        ----------
        name : str or bytes
            The produced path, relative to the root.
        kind : str
            The kind that produced it.
        expect : {"ok", "failed", "ok_or_failed"}
            The outcome.
        **fields
            The other fields of the expectation (see the module docstring).
        """
        key = os.fsdecode(name)
        if key in self.expectations:
            raise ValueError(f"{key!r} is produced twice")
        if expect not in ("ok", "failed", "ok_or_failed"):
            raise ValueError(f"{key!r}: unknown expectation {expect!r}")
        if expect == "failed" and not fields.get("kinds"):
            raise ValueError(f"{key!r}: a failure needs its allowed kinds")
        if expect == "ok_or_failed" and not fields.get("why"):
            raise ValueError(f"{key!r}: ok_or_failed needs a why")
        self.expectations[key] = {"kind": kind, "expect": expect, **fields}

    def ok(self, name: str | bytes, kind: str, *, seconds: float, sr: int, channels: int,
           tol: float = EXACT_TOL, **fields: Any) -> None:
        """Record a fingerprint of ``seconds`` at ``sr`` Hz with ``channels`` channels."""
        self.expect(name, kind, "ok", duration_s=seconds, duration_tol=tol, sample_rate=sr,
                    channels=channels, **fields)

    def rng(self, salt: int) -> np.random.Generator:
        """A generator seeded by the run's seed and ``salt`` (one per kind: order-independent)."""
        return np.random.default_rng([self.seed, salt])

    def encoded(self, ext: str) -> bytes:
        """The 3-second valid track encoded as ``ext`` (cached): the source of the truncations."""
        if ext not in self._encoded:
            fmt, subtype = FORMATS[ext]
            data = encode(music(SECONDS, SR, CHANNELS), SR, fmt=fmt, subtype=subtype)
            if ext == "ogg":
                data = ogg_fix_serial(data, OGG_SERIAL)
            self._encoded[ext] = data
        return self._encoded[ext]

    def ffmpeg_encoded(self, fmt: str, seconds: float = SECONDS, **options: Any) -> bytes:
        """The valid track of ``seconds`` encoded by tools/encode.py as ``fmt`` (a key of its
        FORMATS; ``options``: its ``write`` keywords), cached; Matroska made reproducible with
        :func:`mkv_fix`."""
        key = f"{fmt} {seconds!r} {sorted(options.items())!r}"
        if key not in self._encoded:
            data = ffmpeg_encode(music(seconds, SR, CHANNELS), SR, fmt, **options)
            if data[:4] == MKV_MAGIC:
                data = mkv_fix(data)
            self._encoded[key] = data
        return self._encoded[key]

    def write(self, name: str | bytes, data: bytes) -> None:
        """Write ``data`` to ``name`` (relative to the root)."""
        fd = os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def write_audio(self, name: str | bytes, x: np.ndarray, sr: int, *, fmt: str = "WAV",
                    subtype: str | None = None) -> None:
        """Encode ``x`` with soundfile and write it to ``name``."""
        self.write(name, encode(x, sr, fmt=fmt, subtype=subtype))


def shown(name: str) -> str:
    """The printable form of a name, as engine/text.py ``display`` writes paths in messages.

    Parameters
    ----------
    name : str
        A name as :func:`os.fsdecode` gives it.

    Returns
    -------
    str
        Undecodable bytes as ``\\xNN``, control characters escaped (``\\n``).
    """
    out = []
    for ch in name:
        if ch.isprintable():
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Signals and encodings
# --------------------------------------------------------------------------------------------


def music(seconds: float, sr: int, channels: int) -> np.ndarray:
    """A music-like signal: a chord, a plucked bass at 120 BPM and a little hiss.

    Parameters
    ----------
    seconds : float
        Length in seconds.
    sr : int
        Sample rate in Hz.
    channels : int
        Channel count; each channel is the mix slightly detuned, at its own gain.

    Returns
    -------
    ndarray, float64, shape (frames, channels)
        Samples within [-0.9, 0.9].
    """
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    beat = (t * 2.0) % 1.0
    pluck = np.exp(-beat / 0.08) * np.sin(2 * np.pi * 82.4 * t)
    hiss = np.random.default_rng(12345).standard_normal(n) * 0.01
    out = np.empty((n, channels))
    for c in range(channels):
        detune = 1.0 + 0.002 * c
        chord = sum(np.sin(2 * np.pi * f * detune * t) for f in (220.0, 277.2, 329.6)) / 3.0
        out[:, c] = (0.6 + 0.3 * (c % 2)) * (0.4 * chord + 0.5 * pluck) + hiss
    return np.clip(out, -0.9, 0.9)


def encode(x: np.ndarray, sr: int, *, fmt: str, subtype: str | None = None) -> bytes:
    """Encode PCM with soundfile into bytes (no file on disk).

    Parameters
    ----------
    x : ndarray, shape (frames, channels)
        Samples.
    sr : int
        Sample rate in Hz.
    fmt : str
        soundfile major format ("WAV", "FLAC", "OGG", "MP3", "WAVEX", "AIFF", ...).
    subtype : str or None
        soundfile subtype; None for the format's default.

    Returns
    -------
    bytes
        The encoded file (a float WAV's PEAK chunk has timestamp 0, for reproducibility).
    """
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    data = buf.getvalue()
    if data[:4] == b"RIFF" and b"PEAK" in (chunks := wav_chunks(data)):
        # libsndfile stamps the PEAK chunk of a float WAV with the current time: zero it
        at, _ = chunks[b"PEAK"]
        data = data[: at + 8] + bytes(4) + data[at + 12 :]
    return data


def _ogg_crc(data: bytes) -> int:
    """CRC-32 of an Ogg page: polynomial 0x04C11DB7, not reflected, initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
            crc &= 0xFFFFFFFF
    return crc


def ogg_pages(data: bytes) -> list[tuple[int, int, int]]:
    """``(offset, length, granule position)`` of every Ogg page in ``data``."""
    pages = []
    pos = 0
    while pos + 27 <= len(data):
        if data[pos : pos + 4] != b"OggS":
            raise ValueError(f"no Ogg page at byte {pos}")
        granule = struct.unpack_from("<q", data, pos + 6)[0]
        nseg = data[pos + 26]
        length = 27 + nseg + sum(data[pos + 27 : pos + 27 + nseg])
        pages.append((pos, length, granule))
        pos += length
    return pages


def ogg_fix_serial(data: bytes, serial: int) -> bytes:
    """Give every page of a single-stream Ogg file the serial ``serial``; recompute the CRCs."""
    out = bytearray(data)
    for pos, length, _ in ogg_pages(data):
        struct.pack_into("<I", out, pos + 14, serial)
        struct.pack_into("<I", out, pos + 22, 0)
        struct.pack_into("<I", out, pos + 22, _ogg_crc(bytes(out[pos : pos + length])))
    return bytes(out)


def wav_chunks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """``{chunk id: (offset of its size field, declared size)}`` of a RIFF/WAVE file, up to
    and including the data chunk."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    chunks = {}
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        chunks[cid] = (pos + 4, size)
        if cid == b"data":
            break
        pos += 8 + size + (size & 1)
    return chunks


def header_length(ext: str, data: bytes) -> int:
    """Bytes of ``data`` before the first audio of a WAV, FLAC, Ogg Vorbis or MP3 encoding.

    WAV: up to the data chunk's payload. FLAC: the marker and every metadata block. Ogg: the
    pages of the three Vorbis headers (granule position 0). MP3: an ID3v2 tag if any and the
    first frame (the Xing/Info frame libsndfile's encoder writes, which holds no audio).

    Parameters
    ----------
    ext : {"wav", "flac", "ogg", "mp3"}
        The format.
    data : bytes
        A whole encoding written by soundfile.

    Returns
    -------
    int
        The header's length in bytes.
    """
    if ext == "wav":
        size_at, _ = wav_chunks(data)[b"data"]
        return size_at + 4
    if ext == "flac":
        pos = 4
        while True:
            last = data[pos] & 0x80
            pos += 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
            if last:
                return pos
    if ext == "ogg":
        return next(pos for pos, _, granule in ogg_pages(data) if granule > 0)
    if ext == "mp3":
        pos = 0
        if data[:3] == b"ID3":
            s = data[6:10]
            pos = 10 + ((s[0] << 21) | (s[1] << 14) | (s[2] << 7) | s[3])
        h = int.from_bytes(data[pos : pos + 4], "big")
        if h >> 21 != 0x7FF or (h >> 19) & 3 != 3 or (h >> 17) & 3 != 1:
            raise ValueError("expected an MPEG-1 layer III frame header")
        kbps = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)[(h >> 12) & 15]
        rate = (44100, 48000, 32000)[(h >> 10) & 3]
        return pos + 144 * kbps * 1000 // rate + ((h >> 9) & 1)
    raise ValueError(f"no header rule for {ext!r}")


# -- MP4 / M4A atoms -----------------------------------------------------------------------------

#: Atoms that hold only atoms (walked by :func:`mp4_rebuild`); ``stsd`` and ``meta`` have fields
#: before their children and are handled as leaves.
MP4_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf",
                            b"udta"})
#: Full atoms whose duration field is zeroed for a track without samples: name -> offset of
#: the duration in the body of version 0 (32 bits), of version 1 (64 bits).
MP4_DURATIONS = {b"mvhd": (16, 24), b"tkhd": (20, 28), b"mdhd": (16, 24)}


def mp4_atoms(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """``(name, offset, length)`` of the atoms between ``start`` and ``end`` (one level)."""
    end = len(data) if end is None else end
    out = []
    at = start
    while at + 8 <= end:
        length, name = struct.unpack_from(">I4s", data, at)
        if length == 1:
            length = struct.unpack_from(">Q", data, at + 8)[0]
        elif length == 0:
            length = end - at
        if length < 8 or at + length > end:
            raise ValueError(f"atom {name!r} at byte {at} has a bad length {length}")
        out.append((name, at, length))
        at += length
    return out


def mp4_atom(data: bytes, name: bytes) -> tuple[int, int]:
    """``(offset, length)`` of the one top-level atom ``name``."""
    found = [(at, n) for a, at, n in mp4_atoms(data) if a == name]
    if len(found) != 1:
        raise ValueError(f"{len(found)} top-level {name!r} atoms")
    return found[0]


MP4Edit = Callable[[tuple[bytes, ...], bytes], bytes | None]


def mp4_rebuild(data: bytes, edit: MP4Edit, start: int = 0, end: int | None = None,
                parents: tuple[bytes, ...] = ()) -> bytes:
    """The atoms between ``start`` and ``end`` written again, every leaf's body (after its 8-byte
    header) passed through ``edit(path, body)``: the new body, or None to drop the atom.
    Containers get their new sizes; one left empty goes too. 64-bit sizes are not written (the
    files here are small)."""
    out = []
    for name, at, length in mp4_atoms(data, start, end):
        path = (*parents, name)
        head = 16 if struct.unpack_from(">I", data, at)[0] == 1 else 8
        if name in MP4_CONTAINERS:
            body: bytes | None = mp4_rebuild(data, edit, at + head, at + length, path)
            if not body and length > head:
                body = None
        else:
            body = edit(path, data[at + head : at + length])
        if body is not None:
            out.append(struct.pack(">I4s", 8 + len(body), name) + body)
    return b"".join(out)


def mp4_payload_start(data: bytes) -> int:
    """Where the audio (the ``mdat`` atom's payload) starts."""
    at, _ = mp4_atom(data, b"mdat")
    return at + 8


def mp4_faststart(data: bytes) -> bytes:
    """``data`` (``ftyp``, ..., ``mdat``, ``moov``) with ``moov`` moved right after ``ftyp``, as
    FFmpeg's ``-movflags faststart`` writes it: every chunk offset (``stco``, ``co64``) grows by
    the length of ``moov``."""
    atoms = mp4_atoms(data)
    if atoms[0][0] != b"ftyp" or atoms[-1][0] != b"moov":
        raise ValueError("expected ftyp first and moov last")
    _, at, length = atoms[-1]
    shift = length

    def edit(path: tuple[bytes, ...], body: bytes) -> bytes | None:
        name = path[-1]
        if name not in (b"stco", b"co64"):
            return body
        fmt = f">{struct.unpack_from('>I', body, 4)[0]}{'I' if name == b'stco' else 'Q'}"
        offsets = struct.unpack_from(fmt, body, 8)
        return body[:8] + struct.pack(fmt, *(o + shift for o in offsets))

    moov = mp4_rebuild(data, edit, at, at + length)
    assert len(moov) == length
    ftyp_end = atoms[0][2]
    return data[:ftyp_end] + moov + data[ftyp_end:at]


def mp4_without(data: bytes, name: bytes) -> bytes:
    """``data`` without its top-level atom ``name``."""
    at, length = mp4_atom(data, name)
    return data[:at] + data[at + length :]


def mp4_box(name: bytes, body: bytes) -> bytes:
    """An atom: its size, its name, ``body``."""
    return struct.pack(">I4s", 8 + len(body), name) + body


def mp4_full_box(name: bytes, body: bytes, version: int = 0, flags: int = 0) -> bytes:
    """A full atom: ``body`` after the version and flags."""
    return mp4_box(name, struct.pack(">I", (version << 24) | flags) + body)


def mp4_sample_entry(data: bytes, old: bytes, new: bytes, children: bytes = b"") -> bytes:
    """``data`` (moov last) with its one sample entry ``old`` (the first of its ``stsd``)
    renamed ``new``, ``children`` (atoms) appended to it."""
    done = []

    def edit(path: tuple[bytes, ...], body: bytes) -> bytes | None:
        if path[-1] == b"stsd" and body[12:16] == old:
            done.append(path)
            n = struct.unpack_from(">I", body, 8)[0]
            entry = struct.pack(">I", n + len(children)) + new + body[16 : 8 + n] + children
            return body[:8] + entry + body[8 + n :]
        return body

    at, length = mp4_atom(data, b"moov")
    moov = mp4_rebuild(data, edit, at, at + length)
    if len(done) != 1:
        raise ValueError(f"{len(done)} sample entries {old!r}")
    return data[:at] + moov + data[at + length :]


def mp4_protection(scheme: bytes) -> bytes:
    """The ``sinf`` atom an encrypted AAC sample entry carries: the original format
    (``frma``: ``mp4a``), the scheme (``schm``) and its information (``schi``): for ``cenc``
    (Common Encryption) a ``tenc`` with a key ID, for ``itun`` (Apple FairPlay) the account and
    key atoms iTunes writes, zeroed."""
    if scheme == b"cenc":
        info = mp4_full_box(b"tenc", bytes([0, 0, 1, 8]) + bytes(range(16)))
        version = 0x10000
    elif scheme == b"itun":
        info = b"".join(mp4_box(n, bytes(k)) for n, k in
                        ((b"user", 4), (b"key ", 4), (b"iviv", 16), (b"name", 8), (b"priv", 64)))
        version = 0
    else:
        raise ValueError(f"no protection scheme {scheme!r} here")
    return mp4_box(b"sinf", mp4_box(b"frma", b"mp4a")
                   + mp4_full_box(b"schm", scheme + struct.pack(">I", version))
                   + mp4_box(b"schi", info))


def mp4_scramble(data: bytes, rng: np.random.Generator) -> bytes:
    """``data`` with every byte of its ``mdat`` payload XORed with ``rng``'s bytes: what the
    samples look like encrypted (AES-CTR output is indistinguishable from that)."""
    at, length = mp4_atom(data, b"mdat")
    payload = np.frombuffer(data, np.uint8, length - 8, at + 8)
    key = np.frombuffer(rng.bytes(length - 8), np.uint8)
    return data[: at + 8] + (payload ^ key).tobytes() + data[at + length :]


def mp4_no_samples(data: bytes) -> bytes:
    """``data`` (moov last) with its tracks' sample tables emptied, durations zeroed, edit lists
    and sample groups dropped, and an empty ``mdat``: every track is there, without one sample."""

    def edit(path: tuple[bytes, ...], body: bytes) -> bytes | None:
        name = path[-1]
        if name in (b"elst", b"sgpd", b"sbgp"):
            return None
        if name in (b"stts", b"stsc", b"stco", b"co64"):
            return body[:4] + struct.pack(">I", 0)
        if name == b"stsz":
            return body[:4] + struct.pack(">II", 0, 0)
        if name in MP4_DURATIONS:
            out = bytearray(body)
            v0, v1 = MP4_DURATIONS[name]
            if body[0] == 0:
                struct.pack_into(">I", out, v0, 0)
            else:
                struct.pack_into(">Q", out, v1, 0)
            return bytes(out)
        return body

    out = []
    for name, at, length in mp4_atoms(data):
        if name == b"mdat":
            out.append(struct.pack(">I4s", 8, b"mdat"))
        elif name == b"moov":
            out.append(mp4_rebuild(data, edit, at, at + length))
        else:
            out.append(data[at : at + length])
    return b"".join(out)


# -- Matroska elements ---------------------------------------------------------------------------

MKV_MAGIC = b"\x1a\x45\xdf\xa3"
#: Element IDs (with their length marker, as written): the master elements walked, and those
#: :func:`mkv_fix` rewrites.
MKV_MASTERS = frozenset({0x18538067, 0x1549A966, 0x1654AE6B, 0xAE, 0x1254C367, 0x7373,
                         0x63C0})  # Segment, Info, Tracks, TrackEntry, Tags, Tag, Targets
MKV_SEGMENT = 0x18538067
MKV_VOID = 0xEC
#: A CRC-32 element's ID and size (4 bytes, little-endian, over the rest of its parent).
MKV_CRC32_HEAD = b"\xbf\x84"
MKV_SEGMENT_UID = 0x73A4
MKV_TRACK_UID = 0x73C5
MKV_TAG_TRACK_UID = 0x63C5
MKV_CODEC_ID = 0x86


def _ebml_vint(data: bytes | bytearray, at: int) -> tuple[int, int, int]:
    """``(raw value with its marker, value without it, length)`` of the EBML number at ``at``."""
    first = data[at]
    n = 9 - first.bit_length() if first else 9
    if n > 8:
        raise ValueError(f"no EBML number at byte {at}")
    raw = int.from_bytes(data[at : at + n], "big")
    return raw, raw & ((1 << (7 * n)) - 1), n


def mkv_elements(data: bytes | bytearray, start: int,
                 end: int) -> list[tuple[int, int, int, int]]:
    """``(id, offset, payload start, payload end)`` of the EBML elements between ``start`` and
    ``end`` (one level; an element of unknown size runs to ``end``)."""
    out = []
    at = start
    while at < end:
        eid, _, n_id = _ebml_vint(data, at)
        _, size, n_size = _ebml_vint(data, at + n_id)
        body = at + n_id + n_size
        stop = end if size == (1 << (7 * n_size)) - 1 else body + size
        if stop > end:
            raise ValueError(f"element {eid:#x} at byte {at} runs past {end}")
        out.append((eid, at, body, stop))
        at = stop
    return out


def mkv_fix(data: bytes, codec_ids: dict[bytes, bytes] | None = None) -> bytes:
    """A Matroska file FFmpeg wrote, made reproducible: the random segment and track UIDs
    (and the tags' references to them) become 1, 2, ... and every CRC-32 element is computed
    again. ``codec_ids`` renames CodecID strings (same length: nothing moves)."""
    out = bytearray(data)
    uids: dict[bytes, int] = {}
    renamed = []

    def walk(start: int, end: int) -> None:
        for eid, _, body, stop in mkv_elements(out, start, end):
            if eid in MKV_MASTERS:
                walk(body, stop)
                continue
            value = bytes(out[body:stop])
            if eid == MKV_SEGMENT_UID:
                out[body:stop] = (1).to_bytes(stop - body, "big")
            elif eid in (MKV_TRACK_UID, MKV_TAG_TRACK_UID):
                new = uids.setdefault(value, len(uids) + 1)
                out[body:stop] = new.to_bytes(stop - body, "big")
            elif eid == MKV_CODEC_ID and codec_ids and value in codec_ids:
                if len(codec_ids[value]) != len(value):
                    raise ValueError(f"CodecID {codec_ids[value]!r} is not {len(value)} bytes")
                out[body:stop] = codec_ids[value]
                renamed.append(value)

    walk(0, len(out))
    if codec_ids and not renamed:
        raise ValueError(f"no CodecID of {sorted(codec_ids)} found")
    for eid, _, body, stop in mkv_elements(out, 0, len(out)):
        if eid != MKV_SEGMENT:
            continue
        for child, _, b, e in mkv_elements(out, body, stop):  # level 1: a CRC-32 comes first
            if child != MKV_VOID and out[b : b + 2] == MKV_CRC32_HEAD and e - b >= 6:
                struct.pack_into("<I", out, b + 2, zlib.crc32(out[b + 6 : e]))
    return bytes(out)


# --------------------------------------------------------------------------------------------
# The kinds
# --------------------------------------------------------------------------------------------

Kind = Callable[[Context], None]
#: Every kind, in generation order: name -> writer.
KINDS: dict[str, Kind] = {}


def _register(name: str, fn: Kind) -> None:
    if name in KINDS:
        raise ValueError(f"kind {name!r} registered twice")
    KINDS[name] = fn


def kind(name: str) -> Callable[[Kind], Kind]:
    """Decorator: register a writer under ``name``."""

    def register(fn: Kind) -> Kind:
        _register(name, fn)
        return fn

    return register


def _short(seconds: float = SHORT_SECONDS, sr: int = SR, channels: int = CHANNELS) -> np.ndarray:
    return music(seconds, sr, channels)


# -- controls: the intact encodings the truncations start from ---------------------------------

def _valid(ext: str) -> Kind:
    def write(ctx: Context) -> None:
        name = f"valid.{ext}"
        ctx.write(name, ctx.encoded(ext))
        ctx.ok(name, f"valid_{ext}", seconds=SECONDS, sr=SR, channels=CHANNELS,
               tol=MP3_TOL if ext == "mp3" else EXACT_TOL)

    return write


# -- zero bytes, random bytes, text ------------------------------------------------------------

def _empty(ext: str) -> Kind:
    def write(ctx: Context) -> None:
        name = f"empty.{ext}"
        ctx.write(name, b"")
        extra: dict[str, str] = {}
        ctx.expect(name, f"empty_{ext}", "failed", kinds=["decode"], **extra)

    return write


def _random(ext: str, salt: int) -> Kind:
    def write(ctx: Context) -> None:
        name = f"random_bytes.{ext}"
        ctx.write(name, ctx.rng(salt).bytes(RANDOM_BYTES))
        extra: dict[str, str] = {}
        ctx.expect(name, f"random_bytes_{ext}", "failed", kinds=["decode"],
                   why="random bytes are no audio: a fingerprint of them would be garbage",
                   **extra)

    return write


for _i, _ext in enumerate(FORMATS):
    _register(f"valid_{_ext}", _valid(_ext))
    _register(f"empty_{_ext}", _empty(_ext))
    _register(f"random_bytes_{_ext}", _random(_ext, 100 + _i))


TEXT = ("Track list\n1. Intro 3:12\n2. Outro 4:01\n" * 40).encode()


@kind("text_as_wav")
def _text_wav(ctx: Context) -> None:
    ctx.write("text_as_wav.wav", TEXT)
    ctx.expect("text_as_wav.wav", "text_as_wav", "failed", kinds=["decode"])


@kind("text_as_mp3")
def _text_mp3(ctx: Context) -> None:
    ctx.write("text_as_mp3.mp3", TEXT)
    ctx.expect("text_as_mp3.mp3", "text_as_mp3", "failed", kinds=["decode"],
)


# -- truncations -------------------------------------------------------------------------------

#: Truncation points: name -> bytes kept, from (header length, file length). The percentages
#: count the audio after the header.
CUTS: dict[str, Callable[[int, int], int]] = {
    "mid_header": lambda head, n: head // 2,
    "header_only": lambda head, n: head,
    "10pct": lambda head, n: head + (n - head) // 10,
    "50pct": lambda head, n: head + (n - head) // 2,
    "last_byte_missing": lambda head, n: n - 1,
}

_PARTIAL = ("the file ends early but what it holds decodes: a fingerprint of the part that is "
            "there (duration_s says how much) and a failure naming the damage are both right")


def _trunc_expectation(ext: str, cut: str) -> Expectation:
    if cut == "mid_header":
        exp: Expectation = {"expect": "failed", "kinds": ["decode"]}
    elif cut == "header_only":
        exp = {"expect": "failed", "kinds": ["decode", "bad_audio"],
               "why": "the header promises audio, the file holds none"}
    else:
        exp = {"expect": "ok_or_failed", "kinds": ["decode", "bad_audio"], "why": _PARTIAL,
               "duration_max_s": SECONDS + (MP3_TOL if ext == "mp3" else EXACT_TOL)}
    return exp


def _trunc(ext: str, cut: str) -> Kind:
    def write(ctx: Context) -> None:
        data = ctx.encoded(ext)
        keep = CUTS[cut](header_length(ext, data), len(data))
        name = f"trunc_{cut}.{ext}"
        ctx.write(name, data[:keep])
        exp = dict(_trunc_expectation(ext, cut))
        ctx.expect(name, f"trunc_{cut}_{ext}", exp.pop("expect"), **exp)

    return write


for _ext in FORMATS:
    for _cut in CUTS:
        _register(f"trunc_{_cut}_{_ext}", _trunc(_ext, _cut))


# -- WAV headers that lie ----------------------------------------------------------------------

Patch = Callable[[bytearray, dict[bytes, tuple[int, int]]], None]


def _patched_wav(x: np.ndarray, sr: int, patch: Patch) -> bytes:
    data = bytearray(encode(x, sr, fmt="WAV", subtype="PCM_16"))
    patch(data, wav_chunks(bytes(data)))
    return bytes(data)


def _data_size(factor: float | None) -> Patch:
    """Set the data chunk's size to ``factor`` times the truth (None: 0xFFFFFFFF)."""

    def patch(data: bytearray, chunks: dict[bytes, tuple[int, int]]) -> None:
        at, size = chunks[b"data"]
        struct.pack_into("<I", data, at, 0xFFFFFFFF if factor is None else int(size * factor))

    return patch


def _fmt_field(offset: int, fmt: str, value: int) -> Patch:
    """Overwrite one field of the fmt chunk (``offset`` into its payload)."""

    def patch(data: bytearray, chunks: dict[bytes, tuple[int, int]]) -> None:
        at, _ = chunks[b"fmt "]
        struct.pack_into(fmt, data, at + 4 + offset, value)

    return patch


@kind("wav_data_size_too_large")
def _wav_big(ctx: Context) -> None:
    name = "wav_data_size_too_large.wav"
    ctx.write(name, _patched_wav(_short(), SR, _data_size(4.0)))
    ctx.expect(name, "wav_data_size_too_large", "ok_or_failed", kinds=["decode", "bad_audio"],
               duration_max_s=SHORT_SECONDS + EXACT_TOL,
               why="the data chunk claims 4x the bytes the file holds; every sample that is "
                   "there is intact: " + _PARTIAL)


@kind("wav_data_size_unknown")
def _wav_ffff(ctx: Context) -> None:
    name = "wav_data_size_unknown.wav"
    ctx.write(name, _patched_wav(_short(), SR, _data_size(None)))
    ctx.ok(name, "wav_data_size_unknown", seconds=SHORT_SECONDS, sr=SR, channels=CHANNELS,
           why="data size 0xFFFFFFFF is what recorders write while the length is unknown; "
               "every sample is there")


@kind("wav_data_size_too_small")
def _wav_small(ctx: Context) -> None:
    name = "wav_data_size_too_small.wav"
    ctx.write(name, _patched_wav(_short(), SR, _data_size(0.5)))
    ctx.ok(name, "wav_data_size_too_small", seconds=SHORT_SECONDS / 2, sr=SR, channels=CHANNELS,
           why="the data chunk declares half the samples: those are the track, the bytes after "
               "it are trailing junk a WAV reader skips")


@kind("wav_rate_lie_huge")
def _wav_rate_huge(ctx: Context) -> None:
    name = "wav_rate_lie_huge.wav"
    ctx.write(name, _patched_wav(_short(), SR, _fmt_field(4, "<I", 2_000_000_000)))
    ctx.expect(name, "wav_rate_lie_huge", "failed", kinds=["unsupported"],
               why="a 2 GHz sample rate in the header: no audio rate; the file must fail with "
                   "that reason, not as an engine bug")


@kind("wav_rate_lie_zero")
def _wav_rate_zero(ctx: Context) -> None:
    name = "wav_rate_lie_zero.wav"
    ctx.write(name, _patched_wav(_short(), SR, _fmt_field(4, "<I", 0)))
    ctx.expect(name, "wav_rate_lie_zero", "failed", kinds=["decode", "bad_audio"])


@kind("wav_channels_lie_zero")
def _wav_ch_zero(ctx: Context) -> None:
    name = "wav_channels_lie_zero.wav"
    ctx.write(name, _patched_wav(_short(), SR, _fmt_field(2, "<H", 0)))
    ctx.expect(name, "wav_channels_lie_zero", "failed", kinds=["decode", "bad_audio"])


@kind("wav_rate_500hz")
def _wav_500(ctx: Context) -> None:
    name = "wav_rate_500hz.wav"
    ctx.write_audio(name, _short(2.0, 500, 1), 500)
    ctx.expect(name, "wav_rate_500hz", "failed", kinds=["unsupported"],
               why="a valid file below the analyzer's 1000 Hz floor (kernels/design.py "
                   "make_params): a failure of the file with that reason, not an engine bug")


# -- odd but valid audio -----------------------------------------------------------------------

def _plain(name: str, *, seconds: float = SHORT_SECONDS, sr: int = SR, channels: int = CHANNELS,
           fmt: str = "WAV", subtype: str | None = None, ext: str = "wav") -> Kind:
    def write(ctx: Context) -> None:
        fname = f"{name}.{ext}"
        ctx.write_audio(fname, _short(seconds, sr, channels), sr, fmt=fmt, subtype=subtype)
        ctx.ok(fname, name, seconds=round(seconds * sr) / sr, sr=sr, channels=channels)

    return write


_PLAIN: dict[str, dict[str, Any]] = {
    "one_frame": {"seconds": 1 / SR},
    "channels_8": {"channels": 8},
    "rate_8000": {"sr": 8000},
    "rate_192000": {"sr": 192000, "channels": 1},
    "pcm_24": {"subtype": "PCM_24"},
    "pcm_32": {"subtype": "PCM_32"},
    "pcm_u8": {"subtype": "PCM_U8"},
    "float_64": {"subtype": "DOUBLE"},
    "wav_extensible": {"fmt": "WAVEX", "subtype": "PCM_24", "channels": 6},
    "aiff": {"fmt": "AIFF", "ext": "aiff"},
}
for _name, _kw in _PLAIN.items():
    _register(_name, _plain(_name, **_kw))


@kind("zero_frames")
def _zero_frames(ctx: Context) -> None:
    ctx.write_audio("zero_frames.wav", np.zeros((0, CHANNELS)), SR)
    ctx.expect("zero_frames.wav", "zero_frames", "failed", kinds=["bad_audio"],
               why="a valid WAV without samples has nothing to describe (docs/FINGERPRINT.md: "
                   "empty input is an error)")


@kind("channels_65")
def _channels_65(ctx: Context) -> None:
    ctx.write_audio("channels_65.wav", _short(0.2, SR, 65), SR)
    ctx.expect("channels_65.wav", "channels_65", "failed", kinds=["unsupported"],
               why="a valid WAV with more channels than the analyzer takes (64): a failure of "
                   "the file with that reason, not an engine bug")


def _float_wav(name: str, value: float) -> Kind:
    def write(ctx: Context) -> None:
        x = _short()
        x[SR // 2 : SR // 2 + 3, 0] = value
        ctx.write_audio(f"{name}.wav", x, SR, subtype="FLOAT")
        ctx.expect(f"{name}.wav", name, "failed", kinds=["bad_audio"],
                   why="three samples that are no numbers (or absurdly large) in a float WAV: "
                       "any fingerprint would be meaningless")

    return write


_register("float_nan", _float_wav("float_nan", math.nan))
_register("float_inf", _float_wav("float_inf", math.inf))
_register("float_huge", _float_wav("float_huge", 1e30))


@kind("upper_case_ext")
def _upper(ctx: Context) -> None:
    ctx.write_audio("UPPER_CASE.WAV", _short(), SR)
    ctx.ok("UPPER_CASE.WAV", "upper_case_ext", seconds=SHORT_SECONDS, sr=SR, channels=CHANNELS)


@kind("wav_named_flac")
def _misnamed(ctx: Context) -> None:
    ctx.write_audio("wav_named.flac", _short(), SR)
    ctx.ok("wav_named.flac", "wav_named_flac", seconds=SHORT_SECONDS, sr=SR, channels=CHANNELS,
           why="libsndfile reads the content, not the name")


@kind("long")
def _long(ctx: Context) -> None:
    name = "long_sine.flac"
    total = int(round(ctx.long_seconds * LONG_SR))
    step = 2 * np.pi * 440.0 / LONG_SR
    with sf.SoundFile(os.fsdecode(ctx.path(name)), "w", LONG_SR, 1, subtype="PCM_16",
                      format="FLAC") as f:
        for start in range(0, total, LONG_BLOCK):
            n = min(LONG_BLOCK, total - start)
            f.write(LONG_AMPLITUDE * np.sin(step * np.arange(start, start + n)))
    ctx.ok(name, "long", seconds=total / LONG_SR, sr=LONG_SR, channels=1,
           why=f"{ctx.long_seconds:g} s; the engine's per-track time limit grows with the "
               "duration the header gives")


# -- M4A, MP4 and Matroska: the formats only FFmpeg reads ---------------------------------------

_PROBE = "engine/decode/probe.py walks the top-level atoms before FFmpeg sees the file"


@kind("valid_m4a")
def _valid_m4a(ctx: Context) -> None:
    ctx.write("valid.m4a", ctx.ffmpeg_encoded("m4a_aac"))
    ctx.ok("valid.m4a", "valid_m4a", seconds=SECONDS, sr=SR, channels=CHANNELS, tol=AAC_TOL,
           why="AAC (256 kbit/s) in M4A, moov atom last as FFmpeg writes it; FFmpeg applies the "
               "edit list's start (the encoder delay) and keeps the last frame's padding")


@kind("valid_m4a_faststart")
def _valid_m4a_faststart(ctx: Context) -> None:
    ctx.write("valid_faststart.m4a", mp4_faststart(ctx.ffmpeg_encoded("m4a_aac")))
    ctx.ok("valid_faststart.m4a", "valid_m4a_faststart", seconds=SECONDS, sr=SR,
           channels=CHANNELS, tol=AAC_TOL,
           why="valid.m4a with its moov atom first (-movflags faststart, as streaming sites "
               "write it): the control of trunc_50pct_faststart.m4a")


@kind("valid_m4a_alac")
def _valid_m4a_alac(ctx: Context) -> None:
    ctx.write("valid_alac.m4a", ctx.ffmpeg_encoded("m4a_alac"))
    ctx.ok("valid_alac.m4a", "valid_m4a_alac", seconds=SECONDS, sr=SR, channels=CHANNELS,
           why="ALAC (lossless) in M4A: every frame, no padding")


@kind("trunc_50pct_m4a")
def _trunc_m4a(ctx: Context) -> None:
    data = ctx.ffmpeg_encoded("m4a_aac")
    head = mp4_payload_start(data)
    ctx.write("trunc_50pct.m4a", data[: CUTS["50pct"](head, len(data))])
    ctx.expect("trunc_50pct.m4a", "trunc_50pct_m4a", "failed", kinds=["decode"],
               why="cut in the middle of mdat: the moov atom (the index of every sample) was to "
                   "come after it, so nothing can be located; " + _PROBE)


@kind("trunc_50pct_m4a_faststart")
def _trunc_m4a_faststart(ctx: Context) -> None:
    data = mp4_faststart(ctx.ffmpeg_encoded("m4a_aac"))
    head = mp4_payload_start(data)
    ctx.write("trunc_50pct_faststart.m4a", data[: CUTS["50pct"](head, len(data))])
    ctx.expect("trunc_50pct_faststart.m4a", "trunc_50pct_m4a_faststart", "failed",
               kinds=["decode"],
               why="moov first, mdat cut at half: the index points past the end of the file; "
                   "the probe says \"cut short\" rather than fingerprint half a track as whole")


@kind("no_moov_m4a")
def _no_moov(ctx: Context) -> None:
    ctx.write("no_moov.m4a", mp4_without(ctx.ffmpeg_encoded("m4a_aac"), b"moov"))
    ctx.expect("no_moov.m4a", "no_moov_m4a", "failed", kinds=["decode"],
               why="ftyp, free and a whole mdat but no moov atom (a recording never finished): "
                   "the message names the missing 'moov'")


@kind("zero_samples_m4a")
def _zero_samples_m4a(ctx: Context) -> None:
    ctx.write("zero_samples.m4a", mp4_no_samples(ctx.ffmpeg_encoded("m4a_aac")))
    ctx.expect("zero_samples.m4a", "zero_samples_m4a", "failed", kinds=["bad_audio"],
               why="an AAC track whose sample tables are empty (FFmpeg's muxer drops a track "
                   "without packets, so the tables of valid.m4a are emptied): a stream with a "
                   "format and no samples, like zero_frames.wav")


@kind("unknown_codec_mka")
def _unknown_codec(ctx: Context) -> None:
    data = ffmpeg_encode(music(SHORT_SECONDS, SR, CHANNELS), SR, "vorbis_mka")
    ctx.write("unknown_codec.mka", mkv_fix(data, {b"A_VORBIS": b"A_QWERTY"}))
    ctx.expect("unknown_codec.mka", "unknown_codec_mka", "failed", kinds=["unsupported"],
               why="a Matroska audio track whose CodecID is 'A_QWERTY' (patched from 'A_VORBIS'): "
                   "a codec no decoder has")


@kind("video_no_audio")
def _video_no_audio(ctx: Context) -> None:
    ctx.write("video_no_audio.mp4", ctx.ffmpeg_encoded("mp4_video_no_audio", SHORT_SECONDS))
    ctx.expect("video_no_audio.mp4", "video_no_audio", "failed", kinds=["no_audio"],
               why="an MP4 with one video stream and no audio stream")


def _several_audio(name: str, default_stream: int | None, note: str, why: str) -> Kind:
    """Two Vorbis streams in Matroska (the second at half the level), ``default_stream`` the
    one flagged default (None: neither)."""

    def write(ctx: Context) -> None:
        path = f"{name}.mka"
        ctx.write(path, ctx.ffmpeg_encoded("vorbis_mka", SHORT_SECONDS, extra_audio=1,
                                           default_stream=default_stream))
        ctx.ok(path, name, seconds=SHORT_SECONDS, sr=SR, channels=CHANNELS, tol=VORBIS_TOL,
               note_contains=note, why=why)

    return write


_register("several_audio_default", _several_audio(
    "several_audio_default", 1, "stream 2 of 2",
    "two Vorbis streams, the second flagged default: it is the one a player plays, and the "
    "record's note says so"))
_register("several_audio_no_default", _several_audio(
    "several_audio_no_default", None, "stream 1 of 2",
    "two Vorbis streams, none flagged default: FFmpeg's choice (the first), and the record's "
    "note says which and why"))


@kind("text_as_m4a")
def _text_m4a(ctx: Context) -> None:
    ctx.write("text_as_m4a.m4a", TEXT)
    ctx.expect("text_as_m4a.m4a", "text_as_m4a", "failed", kinds=["decode"],
               why="the probe finds no format; neither decoder takes it")


def _encrypted(entry: bytes, what: str) -> Kind:
    def write(ctx: Context) -> None:
        name = f"encrypted_{entry.decode()}.m4a"
        ctx.write(name, mp4_sample_entry(ctx.ffmpeg_encoded("m4a_aac"), b"mp4a", entry))
        ctx.expect(name, f"encrypted_{entry.decode()}_m4a", "failed", kinds=["encrypted"],
                   why=f"valid.m4a with its 'mp4a' sample entry renamed {entry.decode()!r} "
                       f"({what}), as a protected file declares itself")

    return write


_register("encrypted_drms_m4a", _encrypted(b"drms", "Apple FairPlay"))
_register("encrypted_enca_m4a", _encrypted(b"enca", "Common Encryption"))


def _protected(entry: bytes, scheme: bytes, salt: int, **extra: Any) -> Kind:
    def write(ctx: Context) -> None:
        name = f"encrypted_{scheme.decode()}.m4a"
        data = mp4_sample_entry(ctx.ffmpeg_encoded("m4a_aac"), b"mp4a", entry,
                                mp4_protection(scheme))
        ctx.write(name, mp4_scramble(data, ctx.rng(salt)))
        ctx.expect(name, f"encrypted_{scheme.decode()}_m4a", "failed", kinds=["encrypted"],
                   why=f"as a protected file is made: sample entry {entry.decode()!r} holding "
                       f"the 'sinf' atom of scheme {scheme.decode()!r} (its 'frma' names the "
                       f"original 'mp4a'), and samples that are ciphertext (random here)",
                   **extra)

    return write


_register("encrypted_itun_m4a", _protected(b"drms", b"itun", 300))
_register("encrypted_cenc_m4a", _protected(b"enca", b"cenc", 301))


@kind("flac_named_m4a")
def _flac_m4a(ctx: Context) -> None:
    ctx.write_audio("flac_named.m4a", _short(), SR, fmt="FLAC", subtype="PCM_16")
    ctx.ok("flac_named.m4a", "flac_named_m4a", seconds=SHORT_SECONDS, sr=SR, channels=CHANNELS,
           why="the probe reads the content, not the name: a FLAC named .m4a is a FLAC")


# -- names -------------------------------------------------------------------------------------

@kind("non_utf8_name")
def _non_utf8(ctx: Context) -> None:
    name = b"caf\xe9.wav"  # Latin-1, as old rippers wrote it
    ctx.write_audio(name, _short(), SR)
    ctx.ok(name, "non_utf8_name", seconds=SHORT_SECONDS, sr=SR, channels=CHANNELS,
           )


@kind("non_utf8_name_broken")
def _non_utf8_broken(ctx: Context) -> None:
    name = b"broken_\xff.flac"
    ctx.write(name, ctx.rng(200).bytes(5000))
    ctx.expect(name, "non_utf8_name_broken", "failed", kinds=["decode"],
               why="random bytes; the message must show the name printably (broken_\\xff.flac)")


@kind("newline_name")
def _newline(ctx: Context) -> None:
    name = b"new\nline.wav"
    ctx.write_audio(name, _short(), SR)
    ctx.ok(name, "newline_name", seconds=SHORT_SECONDS, sr=SR, channels=CHANNELS,
           needs_null=True)


@kind("newline_name_broken")
def _newline_broken(ctx: Context) -> None:
    name = b"broken\nline.flac"
    ctx.write(name, ctx.rng(201).bytes(5000))
    ctx.expect(name, "newline_name_broken", "failed", kinds=["decode"], needs_null=True,
               why="random bytes; the message must escape the newline (broken\\nline.flac) to "
                   "stay one line in a log")


# -- file system oddities ----------------------------------------------------------------------

@kind("folder_named_flac")
def _folder(ctx: Context) -> None:
    os.mkdir(ctx.path("folder.flac"))
    name = "folder.flac/inside.wav"
    ctx.write_audio(name, _short(), SR)
    ctx.ok(name, "folder_named_flac", seconds=SHORT_SECONDS, sr=SR, channels=CHANNELS,
           why="a folder named like audio is walked; the track inside is fingerprinted and the "
               "folder itself gets no record")


@kind("broken_symlink")
def _broken_link(ctx: Context) -> None:
    os.symlink(b"does_not_exist.wav", ctx.path("broken_symlink.wav"))
    ctx.expect("broken_symlink.wav", "broken_symlink", "failed", kinds=["broken_symlink"])


@kind("self_symlink")
def _self_link(ctx: Context) -> None:
    os.symlink(b"self_symlink.wav", ctx.path("self_symlink.wav"))
    ctx.expect("self_symlink.wav", "self_symlink", "failed", kinds=["symlink_loop"],
               why="a link to itself: ELOOP")


@kind("symlink_loop")
def _loop(ctx: Context) -> None:
    os.mkdir(ctx.path("symlink_loop"))
    os.symlink(b"..", ctx.path("symlink_loop/parent"))
    ctx.expect("symlink_loop/parent", "symlink_loop", "failed", kinds=["symlink_loop"],
               why="a folder link to the folder above it: reported once, not walked again")


@kind("fifo")
def _fifo(ctx: Context) -> None:
    os.mkfifo(ctx.path("fifo.wav"))
    ctx.expect("fifo.wav", "fifo", "failed", kinds=["not_a_file"],
               why="a named pipe with an audio name: opening it would block forever")


_ROOT_READS = "mode 000, but this process may read it anyway (root: CAP_DAC_OVERRIDE)"


@kind("permission_000")
def _perm(ctx: Context) -> None:
    name = "permission_000.wav"
    ctx.write_audio(name, _short(), SR)
    os.chmod(ctx.path(name), 0)
    if os.access(ctx.path(name), os.R_OK):
        ctx.ok(name, "permission_000", seconds=SHORT_SECONDS, sr=SR, channels=CHANNELS,
               why=_ROOT_READS)
    else:
        ctx.expect(name, "permission_000", "failed", kinds=["permission"])


@kind("permission_000_dir")
def _perm_dir(ctx: Context) -> None:
    os.mkdir(ctx.path("permission_000_dir"))
    ctx.write_audio("permission_000_dir/inside.wav", _short(), SR)
    os.chmod(ctx.path("permission_000_dir"), 0)
    if os.access(ctx.path("permission_000_dir"), os.R_OK | os.X_OK):
        ctx.ok("permission_000_dir/inside.wav", "permission_000_dir", seconds=SHORT_SECONDS,
               sr=SR, channels=CHANNELS, why=_ROOT_READS)
    else:
        ctx.expect("permission_000_dir", "permission_000_dir", "failed", kinds=["permission"],
                   why="a folder that cannot be listed: one record for the folder")


# --------------------------------------------------------------------------------------------

def generate(root: Path | str, *, long_seconds: float = 7200.0, seed: int = 20261128,
             only: list[str] | None = None) -> dict[str, Expectation]:
    """Write every kind (or those in ``only``) into ``root`` and ``root/expectations.json``.

    Parameters
    ----------
    root : Path or str
        Output folder; created if missing. It should be empty: an existing link, FIFO or
        folder of the same name as an input makes generation fail.
    long_seconds : float, default 7200
        Length of the long file in seconds.
    seed : int
        Seed of every random draw.
    only : list of str or None
        Kinds to write; None for all.

    Returns
    -------
    dict
        The expectations, as written to ``expectations.json``.

    Raises
    ------
    ValueError
        For an unknown kind in ``only`` or a length that is not positive.
    """
    if not long_seconds > 0:
        raise ValueError(f"long_seconds={long_seconds!r} must be positive")
    unknown = sorted(set(only or ()) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ctx = Context(root=root, seed=seed, long_seconds=long_seconds)
    for name, write in KINDS.items():
        if only is None or name in only:
            write(ctx)
    with open(root / "expectations.json", "w", encoding="ascii") as f:
        json.dump(ctx.expectations, f, indent=1, sort_keys=True, ensure_ascii=True)
        f.write("\n")
    return ctx.expectations


def load_expectations(root: Path | str) -> dict[str, Expectation]:
    """Read ``root/expectations.json`` (keys keep bytes that are not UTF-8 as surrogates)."""
    with open(Path(root) / "expectations.json", encoding="ascii") as f:
        return json.load(f)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring. Returns the exit code."""
    ap = argparse.ArgumentParser(
        prog="make_bad_inputs.py",
        description="Write broken and odd inputs for engine-run and DIR/expectations.json.")
    ap.add_argument("dir", type=Path, help="output folder (created; should be empty)")
    ap.add_argument("--long-seconds", type=float, default=7200.0,
                    help="length of the long file [%(default)g s]")
    ap.add_argument("--seed", type=int, default=20261128, help="random seed [%(default)s]")
    ap.add_argument("--only", nargs="+", metavar="KIND", choices=list(KINDS),
                    help="write only these kinds")
    args = ap.parse_args(argv)
    if not args.long_seconds > 0:
        ap.error("--long-seconds must be positive")
    expectations = generate(args.dir, long_seconds=args.long_seconds, seed=args.seed,
                            only=args.only)
    n = len(args.only) if args.only else len(KINDS)
    print(f"{n} kinds, {len(expectations)} paths, expectations in "
          f"{args.dir / 'expectations.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
