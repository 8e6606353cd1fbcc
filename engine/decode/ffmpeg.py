"""The FFmpeg decoder (through PyAV, whose wheels carry FFmpeg's libraries): M4A/MP4 (AAC,
ALAC), WMA, APE, WavPack, Musepack, TTA, AC-3, Opus and Vorbis in WebM/Matroska, the audio of
video files, and everything libsndfile reads too.

One thread per decoder (``thread_count = 1``): the engine's parallelism is its worker
processes, and FFmpeg's own threads would only contend with them. FFmpeg's log stays off (PyAV's
default); what went wrong reaches the user as a :class:`~engine.errors.DecodeError`.

Frames come out of FFmpeg in whatever sample format the codec decodes to (planar or
interleaved; 8-, 16-, 32-, 64-bit integers, float or double) and in frames of the codec's own
size (1024 for AAC, 4096 for ALAC, up to about 46 000 for TTA). :meth:`FfmpegSource.read_into`
converts each one into the caller's block as it goes, keeping only the one frame that did not
fit whole: memory is one codec frame, whatever the track's length.
"""

from __future__ import annotations

import io
from typing import Any, Final

import av
import av.error
import numpy as np
import numpy.typing as npt

from ..errors import DecodeError
from .source import AudioSource

__all__ = ["MAX_DAMAGED_PACKETS", "FfmpegSource"]


#: numpy dtype of each FFmpeg sample format (without the planar "p"); FFmpeg's samples are in
#: the machine's order. :func:`_convert` scales integers by 2**-(bits-1), as libsndfile does
#: (u8 is offset by 128 first).
_SAMPLE: Final[dict[str, str]] = {
    "u8": "=u1", "s16": "=i2", "s32": "=i4", "s64": "=i8", "flt": "=f4", "dbl": "=f8",
}
#: Decoder options: AC-3 / E-AC-3 apply no dynamic range compression (FFmpeg's default
#: drc_scale 1 would compress the programme: a fingerprint describes the music as mastered).
_CODEC_OPTIONS: Final[dict[str, dict[str, str]]] = {
    "ac3": {"drc_scale": "0"},
    "eac3": {"drc_scale": "0"},
}
#: Damaged packets skipped in one file before it counts as undecodable (a player skips them
#: too; the note of the record says how many were).
MAX_DAMAGED_PACKETS: Final = 8
#: Bytes PyAV asks of the file per read.
_IO_BUFFER: Final = 1 << 16


def _strerror(exc: BaseException) -> str:
    """FFmpeg's words for an error, without the file name PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip()


class FfmpegSource(AudioSource):
    """A file FFmpeg reads, its default audio stream decoded frame by frame.

    The caller's descriptor is read through an unbuffered file object at its own offsets
    (FFmpeg never sees the name, so any name opens) and stays the caller's to close.
    """

    __slots__ = ("_container", "_damaged", "_decoded", "_flushed", "_io", "_packets", "_pending",
                 "_pending_at", "_stream", "_stream_note", "_t", "channels", "codec", "decoder",
                 "format", "frames", "note", "path", "samplerate")

    def __init__(self, path: str, fd: int, fmt: str) -> None:
        self.path = path
        self.decoder = "ffmpeg"
        self.format = fmt
        self.note = ""
        self._container: Any = None
        self._pending: list[npt.NDArray[Any]] | None = None
        self._pending_at = 0
        self._t = 0  # frames handed out so far
        self._decoded: list[Any] = []  # frames of the last packet, in reverse order
        self._damaged = 0
        self._flushed = False
        self._stream_note = ""
        self._io = io.FileIO(fd, "rb", closefd=False)
        try:
            self._open()
        except BaseException:
            self._release()
            raise

    def _fail(self, why: str, kind: str = "decode") -> DecodeError:
        return DecodeError(self.path, why, kind=kind)

    def _open(self) -> None:
        try:
            self._container = av.open(self._io, "r", buffer_size=_IO_BUFFER)
        except av.error.FFmpegError as e:
            raise self._fail(_strerror(e)) from e
        except (OSError, ValueError) as e:  # the file object's own errors
            raise self._fail(_strerror(e)) from e
        audio = list(self._container.streams.audio)
        if not audio:
            others = [s.type for s in self._container.streams]
            what = ", ".join(sorted(set(map(str, others)))) or "none"
            raise self._fail(f"no audio stream in the container (streams: {what})",
                             kind="no_audio")
        stream = self._pick(audio)
        self._stream = stream
        cc = stream.codec_context
        if cc is None:
            raise self._fail("FFmpeg has no decoder for this audio codec", kind="unsupported")
        self.codec = cc.name
        cc.thread_count = 1
        options = _CODEC_OPTIONS.get(cc.name)
        if options:
            cc.options = dict(options)
        self._packets = self._container.demux(stream)
        self.frames = self._announced_frames(stream)
        first = self._next_frame()
        if first is None:  # no samples at all: the analyzer says so ("no samples")
            self.samplerate = int(cc.sample_rate or 0)
            self.channels = int(cc.channels or 0)
            if self.samplerate <= 0 or self.channels <= 0:
                raise self._fail("the audio stream holds no frames and announces no format",
                                 kind="bad_audio")
            return
        self.samplerate = int(first.sample_rate)
        self.channels = int(first.layout.nb_channels)
        self._hold(first)

    def _pick(self, audio: list[Any]) -> Any:
        """The stream a player would play: the one flagged default, else FFmpeg's best."""
        flagged = [s for s in audio if int(s.disposition) & 1]
        stream = flagged[0] if flagged else self._container.streams.best("audio")
        if stream is None:
            stream = audio[0]
        if len(audio) > 1:
            why = "flagged default" if flagged else "FFmpeg's choice: none is flagged default"
            self._stream_note = self.note = (
                f"audio stream {audio.index(stream) + 1} of {len(audio)} used (container "
                f"stream #{stream.index}, {why})")
        return stream

    def _announced_frames(self, stream: Any) -> int:
        rate = stream.codec_context.sample_rate or 0
        if rate <= 0:
            return -1
        if stream.duration and stream.time_base:
            return int(stream.duration * stream.time_base * rate)
        if self._container.duration:
            return int(self._container.duration / 1_000_000 * rate)
        return -1

    def _next_frame(self) -> Any:
        """The next frame with samples, None at the end; a damaged packet is skipped (as a
        player does) up to :data:`MAX_DAMAGED_PACKETS`, and the note says how many were."""
        while True:
            if self._decoded:
                frame = self._decoded.pop()
                if frame.samples > 0:
                    return frame
                continue
            try:
                packet = next(self._packets, None)
            except av.error.EOFError:
                packet = None
            except av.error.FFmpegError as e:
                raise self._fail(f"{_strerror(e)} (reading the container after "
                                 f"{self._seconds():.1f} s of audio)") from e
            except (OSError, ValueError) as e:
                raise self._fail(_strerror(e)) from e
            if self._flushed:
                return None
            try:
                # None flushes the decoder at the end: its delayed frames come out last
                frames = self._stream.decode(packet)
            except av.error.EOFError:
                frames = []
            except av.error.FFmpegError as e:
                self._damaged += 1
                if self._damaged > MAX_DAMAGED_PACKETS:
                    raise self._fail(
                        f"{_strerror(e)}: more than {MAX_DAMAGED_PACKETS} damaged packets, the "
                        f"last after {self._seconds():.1f} s of audio") from e
                self._set_damage_note()
                continue
            if packet is None:
                self._flushed = True
            self._decoded = list(reversed(frames))

    def _seconds(self) -> float:
        rate = getattr(self, "samplerate", 0)
        return self._t / rate if rate else 0.0

    def _set_damage_note(self) -> None:
        damage = f"{self._damaged} damaged packet{'s' * (self._damaged > 1)} skipped"
        self.note = f"{self._stream_note}; {damage}" if self._stream_note else damage

    def _hold(self, frame: Any) -> None:
        """Keep ``frame``'s samples as numpy views of its buffers (no copy)."""
        name = frame.format.name
        planar = name.endswith("p")
        spec = _SAMPLE.get(name[:-1] if planar else name)
        if spec is None:
            raise self._fail(f"FFmpeg gave samples in format {name!r}, which is not read here",
                             kind="unsupported")
        n = frame.samples
        ch = frame.layout.nb_channels
        if ch != self.channels or frame.sample_rate != self.samplerate:
            raise self._fail(
                f"the stream changes from {self.samplerate} Hz, {self.channels} channels to "
                f"{frame.sample_rate} Hz, {ch} channels after {self._seconds():.1f} s; a "
                f"fingerprint needs one format throughout", kind="unsupported")
        dtype = np.dtype(spec)
        if planar:
            self._pending = [np.frombuffer(p, dtype, count=n) for p in frame.planes[:ch]]
        else:
            self._pending = [np.frombuffer(frame.planes[0], dtype, count=n * ch).reshape(n, ch)]
        self._pending_at = 0

    def read_into(self, out: npt.NDArray[np.float32]) -> int:
        want = out.shape[0]
        got = 0
        while got < want:
            if self._pending is None:
                if self._container is None:
                    raise self._fail("read after close")
                frame = self._next_frame()
                if frame is None:
                    break
                self._hold(frame)
            pending = self._pending
            assert pending is not None
            at = self._pending_at
            k = min(want - got, pending[0].shape[0] - at)
            _convert(pending, at, k, out[got:got + k])
            got += k
            at += k
            if at >= pending[0].shape[0]:
                self._pending = None
            else:
                self._pending_at = at
        self._t += got
        return got

    def _release(self) -> None:
        self._pending = None
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # closing a broken demuxer must not mask its error
                pass
        self._io.close()  # closefd=False: the descriptor stays the caller's


def _convert(pending: list[npt.NDArray[Any]], at: int, k: int,
             dst: npt.NDArray[np.float32]) -> None:
    """Scale ``k`` frames of ``pending`` from frame ``at`` into ``dst`` (shape (k, channels))."""
    dtype = pending[0].dtype
    # up to 16 bits a float32 scale keeps the product in float32, exact; wider integers are
    # scaled in float64 and rounded once into float32, as libsndfile's (float) x * 2**-31
    scale = 2.0 ** -(dtype.itemsize * 8 - 1)
    factor = np.float32(scale) if dtype.itemsize <= 2 else scale
    if pending[0].ndim == 1:  # planar: one array per channel
        pairs = [(p[at:at + k], dst[:, c]) for c, p in enumerate(pending)]
    else:
        pairs = [(pending[0][at:at + k], dst)]
    for src, d in pairs:
        if dtype.kind == "f":
            d[...] = src
        elif dtype.kind == "u":  # u8: offset binary
            d[...] = src
            d -= np.float32(128)
            d *= np.float32(1.0 / 128)
        else:
            np.multiply(src, factor, out=d, casting="unsafe")
