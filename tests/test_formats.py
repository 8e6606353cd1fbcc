"""Every format a library holds, through both decoders (engine/decode): FFmpeg-encoded fixtures
(tools/encode.py) for what libsndfile does not read, exact sample conversion against
libsndfile, lossless formats bit for bit, lossy ones within the codec tolerance, the content
probe over the name, and every engine path (fork workers, Dask, ``similar FILE``, the API)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import helpers as h
import numpy as np
import pytest
import signals as sig
import soundfile as sf

from engine.decode import fingerprint_file, open_audio
from engine.errors import DecodeError
from kernels import FINGERPRINT_NAMES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from encode import FORMATS, encode  # noqa: E402  (tools/ is not a package)

SR = 44100
#: Codec tolerance (docs/FINGERPRINT.md, "Codec noise"): a value may move by 0.10 of its spread
#: over a real library (the IQR measured by bench/robustness.py) under a good encode.
CODEC_TOLERANCE = 0.10
_IQR = {k: v["iqr"] for k, v in json.loads(
    (ROOT / "bench" / "results" / "robustness-v2.json").read_text())["iqr"].items()}


def music(seconds: float = 8.0, sr: int = SR, seed: int = 5) -> np.ndarray:
    """A music-like clip rounded to 16-bit steps: what every lossless file below holds."""
    x = sig.music_like(seconds, sr, seed=seed)
    return np.round(x * 32767) / 32768


def write(path: Path, x: np.ndarray, sr: int, kind: str, **kw) -> Path:
    path.write_bytes(encode(x, sr, kind, **kw))
    return path


def decoded(path: Path, decoder: str | None = None, block: int = 65536) -> np.ndarray:
    with open_audio(path, decoder=decoder) as s:
        buf = np.empty((block, s.channels), np.float32)
        parts = []
        while n := s.read_into(buf):
            parts.append(buf[:n].copy())
    return np.concatenate(parts)


def codec_noise(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """|a - b| of each value in units of its IQR over the corpus."""
    return {k: abs(a[i] - b[i]) / _IQR[k] for i, k in enumerate(FINGERPRINT_NAMES)}


# --------------------------------------------------------------------------------------------
# what reads what


@pytest.mark.parametrize("kind", [k for k in FORMATS if FORMATS[k].codec])
def test_every_format_ffmpeg_encodes_is_read(tmp_path, kind):
    f = FORMATS[kind]
    sr = f.rate or SR
    x = music(4.0, sr)
    path = write(tmp_path / f"a.{f.ext}", x, sr, kind)
    with open_audio(path) as s:
        assert (s.samplerate, s.channels) == (sr, 2)
        decoder = s.decoder
    # libsndfile is faster at what it reads (FLAC, WAV, MP3: FORMAT_DECODERS), FFmpeg at Opus
    assert decoder == ("libsndfile" if f.ext in ("flac", "wav", "mp3") else "ffmpeg")
    fp = fingerprint_file(path).as_array()
    assert np.isfinite(fp).all()
    n = len(decoded(path))
    assert abs(n - len(x)) <= 2048 + 1024, (n, len(x))  # codec priming and padding at most


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_both_decoders_give_the_same_floats(tmp_path, rng, subtype):
    """Every integer and float sample format, interleaved: FFmpeg's samples are scaled exactly
    as libsndfile scales them (u8, s16, s32, flt, dbl)."""
    x = rng.uniform(-1, 1, size=(5000, 3)) * 0.9
    path = tmp_path / "a.wav"
    sf.write(path, x, SR, subtype=subtype)
    a = decoded(path, "libsndfile")
    b = decoded(path, "ffmpeg")
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["m4a_alac", "m4a_alac24", "wavpack", "tta", "flac"])
def test_planar_and_packed_lossless_samples_are_exact(tmp_path, kind):
    """s16p, s32p (ALAC 24-bit), s16 packed: the decoded floats are the 16-bit samples."""
    x = music(2.0)
    path = write(tmp_path / f"a.{FORMATS[kind].ext}", x, SR, kind)
    np.testing.assert_array_equal(decoded(path, "ffmpeg"), x.astype(np.float32))


@pytest.mark.parametrize("block", [1, 1000, 1024, 4097])
def test_codec_frames_split_across_blocks_lose_nothing(tmp_path, block):
    """AAC decodes in frames of 1024, ALAC of 4096: any block size gives the same samples."""
    x = music(1.5)
    for kind in ("m4a_aac", "m4a_alac"):
        path = write(tmp_path / f"{kind}.m4a", x, SR, kind)
        np.testing.assert_array_equal(decoded(path, block=block), decoded(path))


# --------------------------------------------------------------------------------------------
# invariances (issue 14, item 3)


def test_lossless_is_lossless(tmp_path):
    """The same PCM in WAV, FLAC, ALAC, WavPack and TTA, through either decoder where both
    read it: the same fingerprint, bit for bit."""
    x = music()
    pcm = np.round(x * 32767).astype(np.int16)
    sf.write(tmp_path / "a.wav", pcm, SR, subtype="PCM_16")
    sf.write(tmp_path / "a.flac", pcm, SR, subtype="PCM_16")
    write(tmp_path / "alac.m4a", x, SR, "m4a_alac")
    write(tmp_path / "a.wv", x, SR, "wavpack")
    write(tmp_path / "a.tta", x, SR, "tta")
    ref = fingerprint_file(tmp_path / "a.wav").as_array()
    for name in ("a.flac", "alac.m4a", "a.wv", "a.tta"):
        np.testing.assert_array_equal(fingerprint_file(tmp_path / name).as_array(), ref, name)
    for name in ("a.wav", "a.flac"):
        with open_audio(tmp_path / name, decoder="ffmpeg") as s:
            assert s.decoder == "ffmpeg"
        # the API's own path, forced to the other decoder through the same stream
        np.testing.assert_array_equal(_fingerprint(tmp_path / name, "ffmpeg"), ref, name)


def _fingerprint(path: Path, decoder: str) -> np.ndarray:
    from engine.decode import stream
    from kernels import Analyzer

    with open_audio(path, decoder=decoder) as s:
        a = Analyzer(s.samplerate, s.channels)
        stream(s, a, np.empty((65536, s.channels), np.float32))
        return a.finish().as_array()


def recording(seconds: float = 12.0, sr: int = SR) -> np.ndarray:
    """music() over a pink noise floor 34 dB down, as a recording has: without one, the
    synthetic mix leaves mel bands near-empty, which any encoder's noise fills (FFmpeg's AAC
    then moves mfcc_4 by 0.7 IQR; with the floor, no value moves by 0.05)."""
    rng = np.random.default_rng(3)
    bed = sig.pink_noise(seconds, sr, rng, channels=1).reshape(-1, 1)
    x = sig.music_like(seconds, sr, seed=5) + 0.02 * bed / np.abs(bed).max()
    return np.round(np.clip(x, -1, 1) * 32767) / 32768


def test_aac_256k_stays_within_the_codec_tolerance(tmp_path):
    x = recording()
    sf.write(tmp_path / "a.flac", x, SR, subtype="PCM_16")
    src = fingerprint_file(tmp_path / "a.flac").as_array()
    aac = fingerprint_file(write(tmp_path / "a.m4a", x, SR, "m4a_aac")).as_array()
    noise = codec_noise(src, aac)
    assert max(noise.values()) <= CODEC_TOLERANCE, sorted(noise.items(), key=lambda kv: -kv[1])


@pytest.mark.parametrize("kind", ["mp3", "opus_ogg", "ogg_vorbis"])
def test_the_two_decoders_agree_on_lossy_files(tmp_path, kind):
    """Where both decoders read a lossy file, their fingerprints agree within the codec
    tolerance (the decoders differ in rounding, not in what they decode)."""
    if kind == "ogg_vorbis":
        path = tmp_path / "a.ogg"
        sf.write(path, recording(), SR, format="OGG", subtype="VORBIS")
    else:
        sr = FORMATS[kind].rate or SR
        path = write(tmp_path / f"a.{FORMATS[kind].ext}", recording(sr=sr), sr, kind)
    a = _fingerprint(path, "libsndfile")
    b = _fingerprint(path, "ffmpeg")
    noise = codec_noise(a, b)
    assert max(noise.values()) <= CODEC_TOLERANCE, sorted(noise.items(), key=lambda kv: -kv[1])


def test_a_file_the_first_decoder_refuses_goes_to_the_next(tmp_path):
    """A WAV holding WMA: libsndfile, first for WAV, refuses its 'fmt ' chunk; FFmpeg then
    reads the file from its start, wherever libsndfile stopped reading."""
    from encode import Format

    path = tmp_path / "wma.wav"
    path.write_bytes(encode(music(2.0), SR, Format("wav", "wmav2", "wav", bit_rate=128_000)))
    with pytest.raises(DecodeError):
        open_audio(path, decoder="libsndfile")
    with open_audio(path) as s:
        assert (s.decoder, s.format, s.codec) == ("ffmpeg", "wav", "wmav2")
    assert abs(len(decoded(path)) - 2.0 * SR) < 0.05 * SR


def test_the_content_decides_not_the_name(tmp_path):
    x = music(3.0)
    flac = tmp_path / "really_flac.mp3"
    sf.write(flac, np.round(x * 32767).astype(np.int16), SR, format="FLAC", subtype="PCM_16")
    m4a = write(tmp_path / "really_m4a.wav", x, SR, "m4a_alac")
    with open_audio(flac) as s:
        assert (s.decoder, s.format) == ("libsndfile", "flac")
    with open_audio(m4a) as s:
        assert (s.decoder, s.format, s.codec) == ("ffmpeg", "mp4", "alac")
    np.testing.assert_array_equal(fingerprint_file(flac).as_array(),
                                  fingerprint_file(m4a).as_array())


# --------------------------------------------------------------------------------------------
# every engine path (issue 14, item 6)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    lib = tmp_path_factory.mktemp("formats") / "lib"
    lib.mkdir()
    for i, kind in enumerate(["m4a_aac", "m4a_alac", "wavpack", "wma", "mp4_video", "ac3"]):
        f = FORMATS[kind]
        write(lib / f"{i}_{kind}.{f.ext}", music(3.0, seed=10 + i), SR, kind)
    write(lib / "2streams.mka", music(3.0, seed=30), SR, "vorbis_mka", extra_audio=1,
          default_stream=1)
    return lib


def test_engine_run_fingerprints_every_format_with_its_decoder(tmp_path, library):
    run = h.engine_run("--db", str(tmp_path / "db"), "--cores", "2", "--jsonl", str(library))
    assert run.rc == 0, run.stderr
    recs = {Path(r["path"]).name: r for r in run.records}
    assert len(recs) == 7 and all(r["status"] == "ok" for r in recs.values()), recs
    assert {r["decoder"] for r in recs.values()} == {"ffmpeg"}
    assert "stream 2 of 2" in recs["2streams.mka"]["note"]
    assert all(r["note"] is None for n, r in recs.items() if n != "2streams.mka")
    # the API gives the very values the workers stored
    for name in ("0_m4a_aac.m4a", "1_m4a_alac.m4a"):
        assert recs[name]["fingerprint"] == fingerprint_file(library / name).as_dict()
    rerun = h.engine_run("--db", str(tmp_path / "db"), "--cores", "2", "--jsonl", str(library))
    assert {r["status"] for r in rerun.records} == {"cached"}


def test_dask_backend_reads_ffmpeg_formats(tmp_path, library):
    from test_dask import run_dask

    stats = run_dask(tmp_path / "dask", [str(library)])
    assert stats.ok == 7 and stats.failed == 0
    local = h.engine_run("--db", str(tmp_path / "local"), "--cores", "2", str(library))
    assert local.rc == 0
    assert h.store_contents(tmp_path / "dask").bits() == h.store_contents(tmp_path / "local").bits()


def test_similar_file_reads_an_m4a(tmp_path, library):
    db = tmp_path / "db"
    assert h.engine_run("--db", str(db), "--cores", "2", str(library)).rc == 0
    probe = write(tmp_path / "query.m4a", music(3.0, seed=10), SR, "m4a_aac128")
    out = h.engine_query(db, "similar", str(probe), "-k", "3")
    assert out.returncode == 0, out.stderr
    assert "0_m4a_aac.m4a" in out.stdout.splitlines()[2], out.stdout  # the nearest


@pytest.mark.parametrize(("span", "ok"), [(400, True), (20000, False)])
def test_damaged_packets_are_skipped_up_to_a_limit(tmp_path, rng, span, ok):
    """A few bytes of garbage in the middle of an AAC stream cost a packet, as in a player, and
    the note says so; a long run of garbage is a failure that says how much was damaged."""
    data = bytearray(encode(music(10.0), SR, "m4a_aac"))
    at = data.find(b"mdat") + len(data) // 3
    data[at:at + span] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    path = tmp_path / "damaged.m4a"
    path.write_bytes(bytes(data))
    if ok:
        with open_audio(path) as s:
            n = sum(iter(lambda: s.read_into(np.empty((65536, 2), np.float32)), 0))
            assert "damaged packet" in s.note and "skipped" in s.note, s.note
        assert abs(n - 10.0 * SR) < 0.2 * SR
    else:
        with pytest.raises(DecodeError, match=r"damaged.m4a: .*more than 8 damaged packets"):
            fingerprint_file(path)
