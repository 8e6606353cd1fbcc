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
#: The first packet of an Ogg stream names its codec (RFC 7845 for Opus; the Vorbis I and
#: FLAC-in-Ogg specifications).
_OGG_CODECS: Final = ((b"\x01vorbis", "vorbis"), (b"OpusHead", "opus"), (b"\x7fFLAC", "flac"),
                      (b"Speex   ", "speex"))


@dataclass(frozen=True, slots=True)
class Probe:
    """What the first bytes say.

    Attributes
    ----------
    format : str
        ``"wav"``, ``"aiff"``, ``"flac"``, ``"ogg_vorbis"``, ``"ogg_opus"``, ``"mp3"``,
        ``"mp4"``, ... (the keys of engine.decode.FORMAT_DECODERS), or ``"unknown"``.
    offset : int, bytes
        Where the content starts (past an ID3v2 tag, else 0).
    problem : str
        Why the file cannot be read whole, found by the probe itself ("" when nothing was);
        only MP4's atom walk finds any.
    encrypted : str
        How an MP4's audio is protected, e.g. ``"'enca' sample entry, scheme 'cenc'"`` ("" when
        it is not): FFmpeg reports the original codec of a protected stream (the ``frma`` box),
        so only the sample description says.
    """

    format: str
    offset: int = 0
    problem: str = ""
    encrypted: str = ""


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
    if four == b"OggS":  # the first page holds the first packet: the codec's header
        page_segments = head[26] if len(head) > 26 else 0
        packet = head[27 + page_segments:]
        for magic, codec in _OGG_CODECS:
            if packet.startswith(magic):
                return f"ogg_{codec}"
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


def _box_at(fd: int, at: int, end: int) -> tuple[bytes, int, int]:
    """The header of the box at byte ``at`` of a region ending at ``end`` (ISO/IEC 14496-12,
    4.2): (name, header bytes, box bytes), a size of 0 ("to the end") resolved. Header bytes
    are 0 when the file ends inside the header; the name is then b"" if not even its 32-bit
    form is there."""
    raw = os.pread(fd, 16, at)
    if len(raw) < 8:
        return b"", 0, 0
    length, name = _ATOM.unpack_from(raw)
    if length == 1:  # a 64-bit size follows
        if len(raw) < 16:
            return name, 0, 0
        return name, 16, struct.unpack_from(">Q", raw, 8)[0]
    return name, 8, end - at if length == 0 else length


def _mp4_layout(fd: int, size: int) -> tuple[str, tuple[int, int] | None]:
    """Why an MP4 cannot be read whole, from its top-level atoms ("" when it can), and the
    payload (start, end) of its ``moov`` atom (None when it has none)."""
    at = 0
    moov = None
    seen: set[bytes] = set()
    for _ in range(_MP4_MAX_ATOMS):
        if at >= size:
            break
        name, header, length = _box_at(fd, at, size)
        if not header:
            if not name:
                return (f"cut short: {size - at} stray bytes after the last atom, at byte "
                        f"{at:,}"), moov
            return f"cut short inside the header of atom {_name(name)} at byte {at:,}", moov
        if length < header:
            return (f"atom {_name(name)} at byte {at:,} claims {length} bytes (fewer than its "
                    f"header)"), moov
        seen.add(name)
        if name == b"moov":
            moov = (at + header, at + length)
        if at + length > size:
            if b"moov" not in seen:
                return (f"no 'moov' atom before the file ends, and atom {_name(name)} at byte "
                        f"{at:,} claims {length:,} bytes of which {size - at:,} are there: "
                        f"the file is cut short"), moov
            return (f"cut short: atom {_name(name)} at byte {at:,} claims {length:,} bytes but the "
                    f"file ends {size - at:,} bytes into it"), moov
        at += length
    else:
        return "", moov  # an odd file of many atoms: let FFmpeg judge
    if b"moov" not in seen and b"moof" not in seen:
        return ("no 'moov' atom: the index an MP4/M4A needs to be read is missing (a download "
                "or recording that was never finished)"), moov
    return "", moov


#: Sample entries of protected audio: Common Encryption ("enca", ISO/IEC 23001-7) and Apple's
#: FairPlay ("drms").
_PROTECTED_ENTRIES: Final = frozenset({b"enca", b"drms"})
#: Bytes of one sample entry read to look for its protection boxes (a real one is < 200).
_ENTRY_MAX: Final = 4096


def _boxes(fd: int, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The boxes in ``[start, end)``: (name, payload offset, payload end); a malformed length
    ends the list (FFmpeg will judge the file)."""
    out: list[tuple[bytes, int, int]] = []
    at = start
    while at + 8 <= end and len(out) < _MP4_MAX_ATOMS:
        name, header, length = _box_at(fd, at, end)
        if not header or length < header or at + length > end:
            break
        out.append((name, at + header, at + length))
        at += length
    return out


def _child(fd: int, box: tuple[int, int], name: bytes) -> tuple[int, int] | None:
    """The payload (start, end) of the first ``name`` box inside ``box``'s payload."""
    for child, start, end in _boxes(fd, *box):
        if child == name:
            return start, end
    return None


def _audio_sample_descriptions(fd: int, moov: tuple[int, int]) -> list[tuple[int, int]]:
    """The ``stsd`` payloads of the sound tracks (handler ``soun``) in the ``moov`` payload:
    moov/trak/mdia/minf/stbl/stsd (ISO/IEC 14496-12, 8.3-8.5)."""
    out = []
    for name, start, end in _boxes(fd, *moov):
        mdia = _child(fd, (start, end), b"mdia") if name == b"trak" else None
        hdlr = _child(fd, mdia, b"hdlr") if mdia else None
        if mdia is None or hdlr is None or os.pread(fd, 4, hdlr[0] + 8) != b"soun":
            continue
        minf = _child(fd, mdia, b"minf")
        stbl = _child(fd, minf, b"stbl") if minf else None
        stsd = _child(fd, stbl, b"stsd") if stbl else None
        if stsd is not None:
            out.append(stsd)
    return out


def _mp4_protection(fd: int, moov: tuple[int, int]) -> str:
    """How the audio of an MP4 is protected ("" when no sample description says it is).

    Looks at each sample entry of each sound track: a protected one is named ``enca``/``drms``,
    or carries a ``sinf`` box (whose ``schm`` names the scheme: "cenc", "cbcs", "itun" ...).
    """
    found = []
    for stsd in _audio_sample_descriptions(fd, moov):
        start, end = stsd  # version/flags (4), entry count (4), then the entries
        for entry, e_start, e_end in _boxes(fd, start + 8, end):
            raw = os.pread(fd, min(e_end - e_start, _ENTRY_MAX), e_start)
            if entry not in _PROTECTED_ENTRIES and raw.find(b"sinf") < 0:
                continue
            what = f"{_name(entry)} sample entry"
            schm = raw.find(b"schm")
            if schm >= 0 and len(raw) >= schm + 12:
                what += f", scheme {_name(raw[schm + 8:schm + 12])}"
            found.append(what)
    return "; ".join(dict.fromkeys(found))


def probe(fd: int, size: int) -> Probe:
    """Name the format of the open file ``fd`` from its content.

    Parameters
    ----------
    fd : int
        An open, readable descriptor of a regular file; its position is not used or moved.
    size : int, bytes
        The file's size (``fstat``).

    Returns
    -------
    Probe

    Raises
    ------
    OSError
        Reading failed.
    """
    head = os.pread(fd, max(HEAD_BYTES, 10), 0)
    offset = _id3v2_size(head)
    if offset:
        head = os.pread(fd, HEAD_BYTES, offset)
    fmt = _sniff(head)
    if fmt != "mp4" or offset:
        return Probe(fmt, offset)
    problem, moov = _mp4_layout(fd, size)
    encrypted = _mp4_protection(fd, moov) if moov and not problem else ""
    return Probe(fmt, offset, problem, encrypted)
