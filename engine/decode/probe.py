"""Tell a file's format from its first bytes, before any decoder sees it.

:func:`probe` reads at most :data:`HEAD_BYTES` from the start of the file (past an ID3v2 tag)
and names the container by its magic numbers; the file's name is never consulted, so a FLAC
named ``.mp3`` or an M4A named ``.wav`` goes to the decoder that reads it. For MP4/M4A it also
walks the top-level atoms (a few ``pread`` calls of 16 bytes each): an MP4 without its ``moov``
atom, or one whose last atom runs past the end of the file, cannot be read whole, and is said so
before FFmpeg's generic "Invalid data found when processing input".
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["HEAD_BYTES", "Probe", "probe"]

#: Bytes read from the start of the content (after an ID3v2 tag) to tell the format.
HEAD_BYTES: Final = 64
#: Top-level MP4 atoms looked at before giving up the walk (a real file has fewer than 10).
_MP4_MAX_ATOMS: Final = 4096

_ATOM = struct.Struct(">I4s")


@dataclass(frozen=True, slots=True)
class Probe:
    """What the first bytes say.

    Attributes
    ----------
    format : str
        ``"wav"``, ``"aiff"``, ``"flac"``, ``"ogg"``, ``"mp3"``, ``"mp4"``, ... (the keys of
        engine.decode.FORMAT_DECODERS), or ``"unknown"``.
    offset : int, bytes
        Where the content starts (past an ID3v2 tag, else 0).
    problem : str
        Why the file cannot be read whole, found by the probe itself ("" when nothing was);
        only MP4's atom walk finds any.
    """

    format: str
    offset: int = 0
    problem: str = ""


def _id3v2_size(head: bytes) -> int:
    """Bytes an ID3v2 tag at the start of ``head`` occupies (0 when there is none)."""
    if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return 0
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def _mpeg_sync(head: bytes) -> str | None:
    """``"mp3"`` (MPEG-1/2 audio layer I-III) or ``"adts"`` (raw AAC) for a frame sync."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    layer = (head[1] >> 1) & 3
    if layer == 0:  # ADTS uses the layer bits as "00" and a 12-bit sync
        return "adts" if head[1] & 0xF0 == 0xF0 else None
    rate_index = (head[2] >> 2) & 3
    bitrate_index = head[2] >> 4
    if rate_index == 3 or bitrate_index == 15 or (head[1] >> 3) & 3 == 1:
        return None  # reserved values: not a frame header
    return "mp3"


def _sniff(head: bytes) -> str:
    """The container named by ``head``'s magic numbers, ``"unknown"`` when none matches."""
    four = head[:4]
    if four in (b"RIFF", b"RIFX", b"RF64", b"BW64"):
        kind = head[8:12]
        if kind == b"WAVE":
            return "wav"
        return "avi" if kind == b"AVI " else "unknown"
    if four == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:16] == b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00":
        return "w64"
    if four == b"caff":
        return "caf"
    if four in (b".snd", b"dns."):
        return "au"
    if four == b"fLaC":
        return "flac"
    if four == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp" or head[4:8] in (b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mp4"
    if four == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:16] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c":
        return "asf"
    if four == b"MAC ":
        return "ape"
    if four == b"wvpk":
        return "wavpack"
    if four == b"MPCK" or head[:3] == b"MP+":
        return "musepack"
    if four in (b"TTA1", b"TTA2"):
        return "tta"
    if head[:2] == b"\x0b\x77":
        return "ac3"
    if four == b"\x7f\xfe\x80\x01":
        return "dts"
    if head[:6] == b"#!AMR\n":
        return "amr"
    return _mpeg_sync(head) or "unknown"


def _name(atom: bytes) -> str:
    return repr(atom.decode("latin-1"))


def _mp4_problem(fd: int, size: int) -> str:
    """Why an MP4 cannot be read whole, from its top-level atoms ("" when it can)."""
    at = 0
    seen: set[bytes] = set()
    for _ in range(_MP4_MAX_ATOMS):
        if at >= size:
            break
        raw = os.pread(fd, 16, at)
        if len(raw) < 8:
            return f"cut short: {size - at} stray bytes after the last atom, at byte {at:,}"
        length, name = _ATOM.unpack_from(raw)
        if length == 1:  # 64-bit size follows
            if len(raw) < 16:
                return f"cut short inside the header of atom {_name(name)} at byte {at:,}"
            length = struct.unpack_from(">Q", raw, 8)[0]
        elif length == 0:  # "to the end of the file"
            length = size - at
        if length < 8:
            return (f"atom {_name(name)} at byte {at:,} claims {length} bytes (fewer than its "
                    f"header)")
        seen.add(name)
        if at + length > size:
            if b"moov" not in seen and name != b"moov":
                return (f"no 'moov' atom before the file ends, and atom {_name(name)} at byte "
                        f"{at:,} claims {length:,} bytes of which {size - at:,} are there: "
                        f"the file is cut short")
            return (f"cut short: atom {_name(name)} at byte {at:,} claims {length:,} bytes but the "
                    f"file ends {size - at:,} bytes into it")
        at += length
    else:
        return ""  # an odd file of many atoms: let FFmpeg judge
    if b"moov" not in seen and b"moof" not in seen:
        return ("no 'moov' atom: the index an MP4/M4A needs to be read is missing (a download "
                "or recording that was never finished)")
    return ""


def probe(fd: int) -> Probe:
    """Name the format of the open file ``fd`` from its content.

    Parameters
    ----------
    fd : int
        An open, readable descriptor of a regular file; its position is not used or moved.

    Returns
    -------
    Probe

    Raises
    ------
    OSError
        Reading failed.
    """
    size = os.fstat(fd).st_size
    head = os.pread(fd, max(HEAD_BYTES, 10), 0)
    offset = _id3v2_size(head)
    if offset:
        head = os.pread(fd, HEAD_BYTES, offset)
    fmt = _sniff(head)
    problem = _mp4_problem(fd, size) if fmt == "mp4" and offset == 0 else ""
    return Probe(fmt, offset, problem)
