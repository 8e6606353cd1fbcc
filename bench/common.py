"""What every bench script shares: one thread, the corpus, decode-only, the report.

Import it before anything else in a bench script (``import common  # noqa: I001``): importing
it sets one thread per numeric library (:data:`SINGLE_THREAD_ENV`), which only works before
numpy, numba, pyfftw, scipy or librosa is first imported. The rest:

- synthetic music-like tracks generated block by block (:func:`music_blocks`,
  :func:`write_synthetic_corpus`) and float to 16-bit conversion (:func:`to_pcm16`);
- a corpus: its audio files (:func:`find_audio`) and an even pick of them
  (:func:`pick_spread`);
- the decode-only loop every speed figure is compared with (:func:`decode_only`);
- timing and summaries: :func:`timed`, :func:`median`, :func:`spread`, :func:`median_by_key`;
- engine-run as a subprocess: :func:`engine_script`, :func:`time_engine_run`, and its memory
  sampled while it runs (:func:`sample_engine_memory`);
- whole processes and other revisions: :func:`time_process` (wall and CPU of one command),
  :func:`round_order` (interleaved rounds), :func:`fmt_spread` ("median [min-max]"),
  :func:`resolve_revision`, :class:`RevisionWorktree`, :func:`tree_env`, :func:`tree_imports`,
  :func:`git_uncommitted`, :func:`use_bytecode_cache` and :func:`parse_importtime`;
- the report: :func:`machine_info`, how busy the rest of the machine was
  (:func:`cpu_snapshot`, :func:`other_cpu`, :func:`round_load`, :func:`run_interference`,
  :func:`interference_warning`), strict JSON (:func:`jsonable`, :func:`write_report`) and the
  scripts' argument parser (:func:`parser`).

The standard-library modules that cost resident memory to load (hashlib, shutil, statistics)
and soundfile are imported inside the functions that need them: bench/profile_memory.py takes
its baseline right after importing this module, and that baseline is meant to be the
interpreter with numpy.
"""

from __future__ import annotations

import os

# One core, one thread. The engine runs one analyzer process per core, so the figure that matters
# is what a single thread achieves; a BLAS/OpenMP/Numba/FFTW thread pool would borrow the other
# core, inflate the result and make it depend on the machine's load. These must be set before
# numpy, numba or pyfftw is first imported (their pools read them once, at import), and they are
# inherited by subprocesses.
SINGLE_THREAD_ENV: dict[str, str] = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYFFTW_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}
os.environ.update(SINGLE_THREAD_ENV)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import psutil  # noqa: E402

#: Bytes in a MB as every bench reports it (2^20).
MB = 1024.0 * 1024.0

#: File extensions taken as audio when a folder is scanned.
AUDIO_EXTENSIONS = frozenset(
    {".flac", ".ogg", ".oga", ".opus", ".mp3", ".wav", ".aif", ".aiff", ".w64", ".caf"}
)

#: Bars per section of the synthetic music, the gain of each of the 4 sections of a cycle, and
#: which section of the cycle is a breakdown (no kick or snare).
SECTION_BARS = 8
SECTION_GAINS = (0.55, 1.0, 0.75, 0.9)
BREAKDOWN_SECTION = 2

#: The repository (bench/..): its commit is recorded in the reports.
REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# Synthetic music
# --------------------------------------------------------------------------------------------


def _bar_library(*, sample_rate: int, seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Render the bars a synthetic track is assembled from.

    A track is a loop of four chords (I V vi IV) in a random key at a random tempo (84-156 BPM):
    kick on every beat, snare on beats 2 and 4, high-passed noise hats on eighths, a bass line,
    a three-voice pad with harmonics, and a plucked melody with vibrato, spread in stereo.

    Parameters
    ----------
    sample_rate : int
        Sample rate in Hz.
    seed : int
        Picks tempo, key, melody and noise; the same seed gives the same samples.

    Returns
    -------
    bars : list of (ndarray, ndarray)
        For each of the 4 chords, the full bar and the breakdown bar, float32 (bar_len, 2).
    bar_len : int
        Frames per bar.
    """
    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(84.0, 156.0))
    bar_len = round(4 * 60.0 / bpm * sample_rate)
    beat_len = bar_len / 4.0
    root = 55.0 * 2.0 ** (int(rng.integers(0, 12)) / 12.0)
    idx = np.arange(bar_len, dtype=np.float64)
    t = idx / sample_rate
    beat_idx = np.minimum((idx / beat_len).astype(np.int64), 3)
    ph = t - beat_idx * beat_len / sample_rate  # seconds since the beat
    half_idx = (idx / (beat_len / 2.0)).astype(np.int64)
    hph = t - half_idx * (beat_len / 2.0) / sample_rate  # seconds since the eighth
    beat_s = beat_len / sample_rate
    bar_s = bar_len / sample_rate
    attack = 1.0 - np.exp(-ph / 0.004)
    release = np.clip((beat_s - ph) / 0.01, 0.0, 1.0)
    two_pi = 2.0 * np.pi

    kick = np.sin(two_pi * (50.0 * ph + 3.0 * (1.0 - np.exp(-ph / 0.03)))) * np.exp(-ph / 0.16)
    snare_on = (beat_idx % 2 == 1).astype(np.float64)
    snare = snare_on * (
        0.6 * rng.standard_normal(bar_len) * np.exp(-ph / 0.08)
        + 0.4 * np.sin(two_pi * 190.0 * ph) * np.exp(-ph / 0.05)
    )
    hats = np.diff(rng.standard_normal(bar_len + 1)) * np.exp(-hph / 0.02)
    drums = np.stack([0.9 * kick + 0.45 * snare + 0.05 * hats,
                      0.9 * kick + 0.40 * snare + 0.09 * hats], axis=1)
    hats_only = np.stack([0.05 * hats, 0.09 * hats], axis=1)

    bar_env = (1.0 - np.exp(-t / 0.05)) * np.clip((bar_s - t) / 0.02, 0.0, 1.0)
    bar_env *= 0.8 + 0.2 * np.cos(two_pi * t / bar_s)
    vibrato = (0.006 / 5.5) * (1.0 - np.cos(two_pi * 5.5 * t))  # phase of a 5.5 Hz, 0.6 % vibrato
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    bars: list[tuple[np.ndarray, np.ndarray]] = []
    raw: list[tuple[np.ndarray, np.ndarray]] = []
    for chord_root, third in ((0, 4), (7, 4), (9, 3), (5, 4)):
        f_bass = root * 2.0 ** (chord_root / 12.0)
        bass = sum(np.sin(two_pi * h * f_bass * t) / h for h in (1, 2, 3, 4))
        bass = bass * (0.35 + 0.65 * np.exp(-ph / 0.2)) * attack * release
        pad = np.zeros((bar_len, 2))
        for voice, interval in enumerate((0, third, 7)):
            f = 4.0 * root * 2.0 ** ((chord_root + interval) / 12.0)
            tone = sum(np.sin(two_pi * h * f * t + voice) / h**1.5 for h in (1, 2, 3, 4))
            pan = (0.3, 0.5, 0.7)[voice]
            pad[:, 0] += (1.0 - pan) * tone
            pad[:, 1] += pan * tone
        pad *= 0.18 * bar_env[:, None]
        notes = scale[rng.integers(0, len(scale), 4)]
        f_mel = 8.0 * root * 2.0 ** ((chord_root + notes[beat_idx]) / 12.0)
        mel_phase = two_pi * f_mel * (t + vibrato)
        mel = sum(np.sin(h * mel_phase) / h**2 for h in (1, 2, 3))
        mel = mel * attack * np.exp(-ph / 0.35) * release * 0.3
        tonal = pad + np.stack([0.5 * bass + 0.4 * mel, 0.5 * bass + 0.6 * mel], axis=1)
        raw.append((tonal + drums, tonal + hats_only))
    peak = max(float(np.max(np.abs(b))) for pair in raw for b in pair)
    for full, breakdown in raw:
        bars.append(((full * (0.89 / peak)).astype(np.float32),
                     (breakdown * (0.89 / peak)).astype(np.float32)))
    return bars, bar_len


def music_blocks(
    *, seconds: float, sample_rate: int = 44100, channels: int = 2, block_frames: int = 65536,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Yield a synthetic music-like track block by block, never holding it whole.

    Sections of 8 bars cycle through 4 gains (quiet, loud, breakdown without drums, medium) so
    loudness, dynamics and rhythm vary over the track; the last second fades out. Memory is a few
    rendered bars plus one block, whatever the length.

    Parameters
    ----------
    seconds : float
        Track length in seconds (at least one frame is produced).
    sample_rate : int
        Sample rate in Hz.
    channels : int
        1 (mean of the stereo mix) or 2.
    block_frames : int
        Frames per yielded block (the last block may be shorter).
    seed : int
        Chooses tempo, key, melody and noise.

    Yields
    ------
    ndarray
        float32 C-contiguous (frames, channels). The buffer is reused: consume it (or copy it)
        before asking for the next block.
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2 for synthetic music, got {channels}")
    bars, bar_len = _bar_library(sample_rate=sample_rate, seed=seed)
    total = max(1, round(seconds * sample_rate))
    fade_start = max(0, total - sample_rate)
    # the fade-out gains, computed once: no allocation while blocks are produced
    fade = ((total - np.arange(fade_start, total)) / float(total - fade_start)).astype(np.float32)
    stereo = np.empty((block_frames, 2), dtype=np.float32)
    mono = np.empty((block_frames, 1), dtype=np.float32)
    pos = 0
    while pos < total:
        n = min(block_frames, total - pos)
        filled = 0
        while filled < n:
            bar, off = divmod(pos + filled, bar_len)
            take = min(bar_len - off, n - filled)
            section = (bar // SECTION_BARS) % len(SECTION_GAINS)
            source = bars[bar % len(bars)][1 if section == BREAKDOWN_SECTION else 0]
            np.multiply(source[off:off + take], np.float32(SECTION_GAINS[section]),
                        out=stereo[filled:filled + take])
            filled += take
        if pos + n > fade_start:
            first = max(fade_start, pos)
            stereo[first - pos:n] *= fade[first - fade_start:pos + n - fade_start, None]
        if channels == 2:
            yield stereo[:n]
        else:
            np.mean(stereo[:n], axis=1, keepdims=True, out=mono[:n])
            yield mono[:n]
        pos += n


def to_pcm16(block: np.ndarray) -> np.ndarray:
    """Quantise float samples to int16 (x * 32768, rounded, clipped), as a FLAC file stores them.

    Parameters
    ----------
    block : ndarray
        Float samples, nominal range [-1, 1).

    Returns
    -------
    ndarray
        int16 array of the same shape.
    """
    return np.clip(np.rint(block * 32768.0), -32768, 32767).astype(np.int16)


def write_music_flac(path: Path, seconds: float, *, seed: int = 3) -> dict[str, Any]:
    """``seconds`` of the synthetic music (:func:`music_blocks`) as a 44.1 kHz stereo 16-bit FLAC
    (the start-up probe of throughput.py and startup.py).

    Returns
    -------
    dict
        ``path``, ``seconds`` (the file's length), ``samplerate``, ``channels``, ``format`` and
        ``bytes``.
    """
    import soundfile as sf

    with sf.SoundFile(path, "w", samplerate=44100, channels=2, format="FLAC",
                      subtype="PCM_16") as out:
        for block in music_blocks(seconds=seconds, sample_rate=44100, channels=2, seed=seed):
            out.write(to_pcm16(block))
    info = sf.info(str(path))
    return {"path": str(path), "seconds": info.frames / info.samplerate,
            "samplerate": info.samplerate, "channels": info.channels, "format": "FLAC PCM_16",
            "bytes": path.stat().st_size}


def write_synthetic_corpus(
    *, directory: Path, count: int, seconds: float, sample_rate: int, block_frames: int,
) -> list[Path]:
    """Write ``count`` synthetic tracks as 16-bit stereo FLAC files.

    Parameters
    ----------
    directory : Path
        Existing folder to write into.
    count : int
        Number of tracks; track ``i`` uses seed ``i``.
    seconds : float
        Length of each track.
    sample_rate : int
        Sample rate in Hz.
    block_frames : int
        Frames generated and written at a time.

    Returns
    -------
    list of Path
        The files written, in order.
    """
    import soundfile as sf

    paths = []
    for i in range(count):
        path = directory / f"synthetic-{i:03d}.flac"
        with sf.SoundFile(path, "w", samplerate=sample_rate, channels=2, format="FLAC",
                          subtype="PCM_16") as out:
            for block in music_blocks(seconds=seconds, sample_rate=sample_rate, channels=2,
                                      block_frames=block_frames, seed=i):
                out.write(to_pcm16(block))
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# The corpus and decode-only
# --------------------------------------------------------------------------------------------


def find_audio(*, root: Path, extensions: frozenset[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """List the audio files under a folder, recursively, sorted.

    Parameters
    ----------
    root : Path
        Folder to scan.
    extensions : frozenset of str
        Lower-case suffixes taken (default :data:`AUDIO_EXTENSIONS`).

    Returns
    -------
    list of Path
        Files whose lower-cased extension is in ``extensions``.
    """
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def pick_spread(*, files: Sequence[Path], limit: int | None, first: bool = False) -> list[Path]:
    """Take ``limit`` files spread evenly over a sorted list (first and last included).

    Parameters
    ----------
    files : sequence of Path
        Sorted audio files.
    limit : int or None
        How many; None or 0 for all.
    first : bool
        Take the first ``limit`` instead of spreading them.

    Returns
    -------
    list of Path
    """
    if not limit or limit >= len(files):
        return list(files)
    if first or limit == 1:
        return list(files[:limit])
    idx = sorted({round(i * (len(files) - 1) / (limit - 1)) for i in range(limit)})
    return [files[i] for i in idx]


def decode_only(*, path: Path, buffer: np.ndarray) -> tuple[float, int]:
    """Time decoding one file into a preallocated float32 buffer and nothing else.

    Parameters
    ----------
    path : Path
        Audio file.
    buffer : ndarray
        float32 (block_frames, channels) buffer matching the file's channel count.

    Returns
    -------
    seconds : float
        Wall time, opening the file included.
    frames : int
        Frames decoded.
    """
    import soundfile as sf

    block = len(buffer)
    frames = 0
    t0 = time.perf_counter()
    with sf.SoundFile(path) as f:
        while True:
            got = f.read(out=buffer)
            frames += len(got)
            if len(got) < block:
                break
    return time.perf_counter() - t0, frames


# --------------------------------------------------------------------------------------------
# Timing and summaries
# --------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], *, collect: bool = False) -> tuple[float, Any]:
    """Call ``fn`` once and time it.

    Parameters
    ----------
    fn : callable
        Called with no argument.
    collect : bool
        Run ``gc.collect()`` first (outside the timing), so no collection of earlier garbage
        lands in this call.

    Returns
    -------
    seconds : float
        Wall time of the call.
    result : object
        What ``fn`` returned.
    """
    if collect:
        import gc

        gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(values: Sequence[float]) -> float:
    """The median of a list of numbers; 0.0 for an empty one.

    Parameters
    ----------
    values : sequence of float

    Returns
    -------
    float
    """
    import statistics

    return float(statistics.median(values)) if len(values) else 0.0


def spread(values: Sequence[float], *, suffix: str = "") -> dict[str, float | None]:
    """Median, smallest and largest of a list of numbers.

    Parameters
    ----------
    values : sequence of float
    suffix : str
        Appended to each key (``"_s"`` gives ``median_s``, ``min_s``, ``max_s``).

    Returns
    -------
    dict
        ``median``, ``min``, ``max`` (each None for an empty list).
    """
    if not len(values):
        return {f"{k}{suffix}": None for k in ("median", "min", "max")}
    return {f"median{suffix}": median(values), f"min{suffix}": min(values),
            f"max{suffix}": max(values)}


def median_by_key(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per key of the first row, the median over every row (runs of the same measurement).

    Parameters
    ----------
    rows : sequence of dict
        Dicts with the same numeric keys.

    Returns
    -------
    dict
        Key -> median; empty for no rows.
    """
    return {k: median([r[k] for r in rows]) for k in rows[0]} if rows else {}


# --------------------------------------------------------------------------------------------
# engine-run in a subprocess
# --------------------------------------------------------------------------------------------


def engine_script(name: str) -> Path:
    """A console script of the project (``engine-run``, ``engine-query``) next to this Python.

    Parameters
    ----------
    name : str

    Returns
    -------
    Path
    """
    return Path(sys.executable).parent / name


def time_engine_run(*, corpus: Path, cores: int, db: Path, extra: Sequence[str] = (),
                    timeout_s: float = 3600.0) -> float:
    """Wall time of ``engine-run [extra] --cores N --db DB -q CORPUS`` into a fresh store.

    The store is removed before and after. The time is taken around the whole subprocess:
    interpreter start, kernel cache load, scan, fork or cluster start and clean-up included.

    Parameters
    ----------
    corpus : Path
        Folder of audio files.
    cores : int
        ``--cores``.
    db : Path
        Where the store goes (removed before and after).
    extra : sequence of str
        More options, before the others (``["--backend", "dask"]``).
    timeout_s : float
        The longest the run may take.

    Returns
    -------
    float
        Seconds.

    Raises
    ------
    RuntimeError
        When engine-run exits with anything but 0 (all stored) or 1 (some files failed).
    """
    import shutil

    shutil.rmtree(db, ignore_errors=True)
    cmd = [str(engine_script("engine-run")), *extra, "--cores", str(cores), "--db", str(db),
           "-q", str(corpus)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, timeout=timeout_s, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    shutil.rmtree(db, ignore_errors=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-3000:]}")
    return wall


def _is_worker(proc: psutil.Process, cache: dict[int, bool]) -> bool:
    """Tell a worker from the multiprocessing resource tracker (cached per pid)."""
    pid = proc.pid
    if pid not in cache:
        try:
            cache[pid] = "resource_tracker" not in " ".join(proc.cmdline())
        except psutil.Error:
            return False
    return cache[pid]


def _vm_hwm_mb(pid: int) -> float | None:
    """The kernel's RSS high-water mark of ``pid`` (VmHWM), or None when unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def sample_engine_memory(cmd: list[str], interval: float, stderr_path: Path) -> dict[str, Any]:
    """Run ``cmd`` (engine-run) and sample its memory every ``interval`` seconds until it exits.

    The supervisor's ``rss`` and ``shared`` are psutil's ``memory_info()`` fields, the very
    ones ``memory_full_info()`` reports (Linux ``/proc/PID/statm``), read without the page-table
    walk of ``smaps_rollup`` that ``memory_full_info()`` adds for USS: on this machine that walk
    costs ~3 ms of CPU per sample for the supervisor, 10 times a worker's. The supervisor's USS
    is not sampled: its file-backed pages count as unique or shared depending on which OTHER
    processes map the same libraries, so it jumps when an unrelated Python starts or exits.
    Each worker's USS comes from ``memory_full_info()`` (the supervisor's children except the
    multiprocessing resource tracker; forked workers share the supervisor's pages, USS is what
    each adds). The list of children is read again every second, at every sample while it is
    empty, and whenever a worker disappears.

    Parameters
    ----------
    cmd : list of str
        The command line (argv, no shell).
    interval : float, s
        Sampling period, start to start.
    stderr_path : Path
        Where the engine's stderr goes (its tail is kept in the result).

    Returns
    -------
    dict
        ``exit_code``, ``wall_s`` (launch to exit), the full-resolution series (``t_s``,
        ``sup_rss_mb``, ``sup_private_mb`` (RSS - shared), ``workers_uss_mb`` (sum),
        ``worker_max_uss_mb``, ``n_workers``, ``total_mb``), each worker's peak USS by pid,
        ``sup_vm_hwm_mb`` (the last VmHWM read) and the sampler's own cost.
    """
    series: dict[str, list[float]] = {k: [] for k in (
        "t_s", "sup_rss_mb", "sup_private_mb", "workers_uss_mb", "worker_max_uss_mb",
        "n_workers", "total_mb")}
    worker_peak: dict[int, float] = {}
    kinds: dict[int, bool] = {}
    hwm: float | None = None
    sample_s = 0.0
    cpu0 = time.process_time()
    with open(stderr_path, "wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err)
        sup = psutil.Process(proc.pid)
        workers: list[psutil.Process] = []
        next_t = t0
        children_t = -1.0
        while proc.poll() is None:
            ts = time.monotonic()
            try:
                info = sup.memory_info()
                if not workers or ts - children_t >= 1.0:
                    workers = [c for c in sup.children() if _is_worker(c, kinds)]
                    children_t = ts
            except psutil.Error:  # exiting between poll() and here
                break
            uss_sum = 0.0
            uss_max = 0.0
            n_workers = 0
            for child in workers:
                try:
                    uss = child.memory_full_info().uss / MB
                except psutil.Error:  # gone (exited or died): look for its successor
                    children_t = -1.0
                    continue
                uss_sum += uss
                uss_max = max(uss_max, uss)
                n_workers += 1
                worker_peak[child.pid] = max(worker_peak.get(child.pid, 0.0), uss)
            hwm = _vm_hwm_mb(proc.pid) or hwm
            rss = info.rss / MB
            row = (ts - t0, rss, (info.rss - info.shared) / MB, uss_sum, uss_max,
                   float(n_workers), rss + uss_sum)
            for key, value in zip(series, row, strict=True):
                series[key].append(value)
            sample_s += time.monotonic() - ts
            next_t += interval
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic()
        proc.wait()
        wall = time.monotonic() - t0
    tail = stderr_path.read_bytes()[-4000:].decode("utf-8", "replace")
    n = len(series["t_s"])
    return {
        "exit_code": proc.returncode,
        "wall_s": wall,
        "series": series,
        "worker_peak_uss_mb": {str(k): round(v, 2) for k, v in sorted(worker_peak.items())},
        "sup_vm_hwm_mb": hwm,
        "sampler": {"samples": n,
                    "mean_sample_ms": round(1000 * sample_s / n, 2) if n else None,
                    "cpu_s": round(time.process_time() - cpu0, 2)},
        "stderr_tail": tail,
    }


# --------------------------------------------------------------------------------------------
# The machine, and how busy the rest of it was
# --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`).

    Returns
    -------
    str
        "unknown" when neither says.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    """The repository's commit (read-only ``git rev-parse HEAD``).

    Returns
    -------
    str or None
        None outside a checkout or before the first commit.
    """
    try:
        res = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def source_digest(*, directory: Path) -> str:
    """SHA-256 over the names and bytes of a package's ``*.py`` files: which code was measured.

    Parameters
    ----------
    directory : Path
        The package's folder.

    Returns
    -------
    str
        Hex digest.
    """
    import hashlib

    h = hashlib.sha256()
    for path in sorted(directory.rglob("*.py")):
        h.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def machine_info(*, kernels: Any) -> dict[str, Any]:
    """Describe the machine and the software measured.

    Parameters
    ----------
    kernels : module
        The imported ``kernels`` package.

    Returns
    -------
    dict
        CPU model, core counts, memory, Python and library versions, the kernels package's path,
        fingerprint version, a digest of its sources and the repository's commit.
    """
    import numba
    import pyfftw
    import soundfile as sf

    kernels_dir = Path(kernels.__file__).resolve().parent
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": psutil.virtual_memory().total / 1e9,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "pyfftw": pyfftw.__version__,
        "soundfile": sf.__version__,
        "libsndfile": getattr(sf, "__libsndfile_version__", None),
        "psutil": psutil.__version__,
        "kernels_path": str(kernels_dir),
        "kernels_source_sha256": source_digest(directory=kernels_dir),
        "fingerprint_version": getattr(kernels, "FINGERPRINT_VERSION", None),
        "git_commit": git_commit(),
    }


def cpu_snapshot() -> dict[str, float]:
    """CPU seconds so far: the whole machine's busy and stolen time, and ours (children too).

    Returns
    -------
    dict
        ``busy``, ``steal`` and ``own`` seconds, for :func:`other_cpu`.
    """
    t = psutil.cpu_times()
    busy = sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))
    own = psutil.Process().cpu_times()
    return {"busy": busy, "steal": getattr(t, "steal", 0.0),
            "own": own.user + own.system + own.children_user + own.children_system}


def other_cpu(*, start: dict[str, float], end: dict[str, float], wall_s: float) -> dict[str, Any]:
    """How much of the machine others used between two snapshots: timings are clean when ~0.

    ``other_cpu_s`` is CPU time every other process used meanwhile (machine busy time minus this
    process's and its children's); on 2 cores the bench uses one, so a value near ``wall_s``
    means the other core was fully taken (shared caches and memory bandwidth then slow the bench
    too). ``steal_s`` is time the hypervisor gave to other guests.

    Parameters
    ----------
    start, end : dict
        :func:`cpu_snapshot` before and after.
    wall_s : float
        Wall time between them.

    Returns
    -------
    dict
        ``wall_s``, ``other_cpu_s``, ``other_cpu_share_of_wall``, ``steal_s``.
    """
    other = max(0.0, (end["busy"] - start["busy"]) - (end["own"] - start["own"]))
    return {
        "wall_s": wall_s,
        "other_cpu_s": other,
        "other_cpu_share_of_wall": other / wall_s if wall_s > 0 else 0.0,
        "steal_s": end["steal"] - start["steal"],
    }


def round_load(
    loads: list[dict[str, Any]],
    *,
    label: str,
    cpu_start: dict[str, float],
    t_start: float,
    log: bool,
    end: dict[str, float] | None = None,
    tail: str = "",
) -> dict[str, Any]:
    """How busy the others were over one round: appended to ``loads`` and, with ``log``, said.

    The stderr line: ``  LABEL: WALL s, other processes SHARE of a core`` then ``tail``.

    Parameters
    ----------
    loads : list
        The rounds so far; this round's :func:`other_cpu` is appended.
    label : str
        The round, e.g. ``repeat 2/5``.
    cpu_start : dict
        :func:`cpu_snapshot` at the round's start.
    t_start : float
        ``time.perf_counter()`` at the round's start.
    log : bool
        Print the line.
    end : dict, optional
        The snapshot at the round's end (default: :func:`cpu_snapshot` now).
    tail : str
        Appended to the line.

    Returns
    -------
    dict
        The round's :func:`other_cpu`.
    """
    load = other_cpu(start=cpu_start, end=cpu_snapshot() if end is None else end,
                     wall_s=time.perf_counter() - t_start)
    loads.append(load)
    if log:
        print(f"  {label}: {load['wall_s']:.1f} s, other processes "
              f"{load['other_cpu_share_of_wall']:.0%} of a core{tail}", file=sys.stderr)
    return load


def run_interference(*, cpu_start: dict[str, float], started: float,
                     load_start: Sequence[float], **parts: Any) -> dict[str, Any]:
    """A report's ``interference``: :func:`other_cpu` over the whole run, ``parts``, load averages.

    Parameters
    ----------
    cpu_start : dict
        :func:`cpu_snapshot` at the run's start.
    started : float
        ``time.perf_counter()`` at the run's start.
    load_start : sequence of float
        ``os.getloadavg()`` at the run's start.
    **parts
        More entries (per round, per phase), placed after the whole run's figures.

    Returns
    -------
    dict
        :func:`other_cpu`'s keys, then ``parts``, ``loadavg_start`` and ``loadavg_end`` (now).
    """
    return {
        **other_cpu(start=cpu_start, end=cpu_snapshot(), wall_s=time.perf_counter() - started),
        **parts,
        "loadavg_start": list(load_start),
        "loadavg_end": list(os.getloadavg()),
    }


def interference_warning(parts: Sequence[tuple[str, dict[str, Any]]]) -> str | None:
    """A warning line naming the phases during which other processes took over 10 % of a core.

    Parameters
    ----------
    parts : sequence of (str, dict)
        Phase name and its :func:`other_cpu` figures.

    Returns
    -------
    str or None
        None when every phase was quiet (under 10 % of a core, or under 0.5 CPU s).
    """
    busy = [f"{name} {r['other_cpu_share_of_wall']:.0%}" for name, r in parts
            if r["other_cpu_share_of_wall"] > 0.1 and r["other_cpu_s"] >= 0.5]
    if not busy:
        return None
    return ("WARNING: other processes took a share of a core while measuring ("
            + ", ".join(busy) + "): those timings are skewed")


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def jsonable(obj: Any) -> Any:
    """Make a result strictly JSON: non-finite floats become null, numpy scalars plain.

    Parameters
    ----------
    obj : object
        Nested dicts, lists, tuples and scalars.

    Returns
    -------
    object
        The same structure, dict keys as str, tuples as lists.
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def report_head(*, schema: str, kernels: Any, **machine_extra: Any) -> dict[str, Any]:
    """The first fields of a report: what it is, when, the command line and the machine.

    Parameters
    ----------
    schema : str
        Names the report's layout (``fingerprint-engine/bench-kernels/1``, ...).
    kernels : module
        The imported ``kernels`` package, for :func:`machine_info`.
    **machine_extra
        More fields for ``machine`` (versions of the peers measured, ...).

    Returns
    -------
    dict
        ``schema``, ``date`` (UTC, ISO 8601), ``command`` and ``machine``.
    """
    import datetime

    return {
        "schema": schema,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": [Path(sys.executable).name, *sys.argv],
        "machine": {**machine_info(kernels=kernels), **machine_extra},
    }


def write_report(*, report: dict[str, Any], output: Path | None, summary: str = "",
                 encode: Callable[[Any], str] | None = None) -> None:
    """The JSON report to ``output`` (stdout for None or "-"), the human summary to stderr.

    Parameters
    ----------
    report : dict
        Passed through :func:`jsonable` first.
    output : Path or None
        The file (its folder is created), or None / "-" for stdout.
    summary : str
        Lines for stderr ("" for none).
    encode : callable, optional
        Turns the report into text (default: ``json.dumps`` with ``indent=1``, NaN refused).
    """
    clean = jsonable(report)
    text = encode(clean) if encode else json.dumps(clean, indent=1, allow_nan=False)
    to_file = output is not None and str(output) != "-"
    if to_file:
        assert output is not None
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    if summary:
        print(summary, file=sys.stderr)
    if to_file:
        print(f"# report written to {output}", file=sys.stderr)


def parser(*, script: str, description: str, output: Path | None = None, quiet: bool = False,
           **kwargs: Any) -> argparse.ArgumentParser:
    """The argument parser of a bench script, with the options every script has.

    Its name is ``bench/NAME.py`` and its epilog points to bench/README.md. It has
    ``-o/--output`` (where :func:`write_report` writes; "-" for stdout) and, with ``quiet``,
    ``-q/--quiet``.

    Parameters
    ----------
    script : str
        The script's ``__file__``.
    description : str
        One line.
    output : Path, optional
        The default of ``--output`` (default: stdout).
    quiet : bool
        Add ``-q/--quiet`` (no progress lines on stderr).
    **kwargs
        Passed to :class:`argparse.ArgumentParser` (``formatter_class``, ...).

    Returns
    -------
    argparse.ArgumentParser
    """
    p = argparse.ArgumentParser(
        prog=f"bench/{Path(script).name}", description=description,
        epilog="See bench/README.md for what each figure means.", **kwargs)
    p.add_argument("-o", "--output", type=Path, default=output,
                   help=f"JSON report (default {output or 'stdout'}; - for stdout)")
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return p


def mp3_level(*, samplerate: int, kbps: int) -> tuple[float, int]:
    """The ``compression_level`` that makes libsndfile's LAME encoder write ``kbps`` CBR.

    libsndfile (mpeg_encode.c) sets ``bitrate = 320 - level * 288`` kbit/s at 32 kHz and up
    (MPEG-1), ``160 - level * 152`` at 16-24 kHz (MPEG-2), ``64 - level * 56`` below
    (MPEG-2.5), truncated to an integer that LAME rounds to the nearest standard bit rate. A
    rate the format cannot reach is clamped to its highest.

    Parameters
    ----------
    samplerate : int, Hz
        The source's rate (the MP3 keeps it).
    kbps : int
        The bit rate wanted.

    Returns
    -------
    level : float
        For ``sf.SoundFile(..., compression_level=level, bitrate_mode="CONSTANT")``.
    nominal_kbps : int
        What that level gives.
    """
    top, span = (320, 288) if samplerate >= 32000 else (160, 152) if samplerate >= 16000 \
        else (64, 56)
    if kbps >= top:
        return 0.0, top
    level = round((top - kbps) / span, 3)
    return level, int(top - level * span)


# --------------------------------------------------------------------------------------------
# Whole processes, interleaved rounds, and another revision of the code beside this one
# --------------------------------------------------------------------------------------------


def time_process(argv: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None, timeout_s: float = 600.0,
                 ok_codes: Sequence[int] = (0,)) -> dict[str, Any]:
    """Run one command to its end and time the whole process: launch to exit.

    stdin and stdout are ``/dev/null`` (nothing is parsed, so no pipe slows the child), stderr is
    kept for the error message. The CPU time is what this process's waited-for children used
    meanwhile (``RUSAGE_CHILDREN``: the command and every descendant it waited for, e.g.
    engine-run's workers); a busy machine stretches the wall time far more than the CPU time.

    Parameters
    ----------
    argv : sequence of str
        The command (no shell).
    env : dict, optional
        Its environment (default: ours).
    cwd : str or Path, optional
        Its working directory.
    timeout_s : float
        The longest it may take.
    ok_codes : sequence of int
        Exit codes taken as success.

    Returns
    -------
    dict
        ``wall_s``, ``cpu_s`` (user + system) and ``exit_code``.

    Raises
    ------
    RuntimeError
        When the command exits with a code outside ``ok_codes`` (its stderr's tail is quoted).
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=timeout_s, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in ok_codes:
        tail = proc.stderr[-3000:].decode("utf-8", "replace")
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "exit_code": proc.returncode}


def round_order(items: Sequence[Any], round_index: int) -> list[Any]:
    """The order of one interleaved round: rotated by the round's number, reversed on odd rounds.

    Every item runs once per round; over the rounds each takes every position, and reversing
    on odd rounds changes which item runs just before it (a plain rotation keeps the cyclic
    neighbours): no item always inherits the same predecessor's caches or the round's start.

    Parameters
    ----------
    items : sequence
        What one round runs.
    round_index : int
        0, 1, 2, ...

    Returns
    -------
    list
        The same items in this round's order.
    """
    seq = list(items)
    if not seq:
        return seq
    k = (round_index // 2) % len(seq)
    seq = seq[k:] + seq[:k]
    return seq[::-1] if round_index % 2 else seq


def fmt_spread(values: Sequence[float] | dict[str, Any], spec: str = ".2f") -> str:
    """``median [min-max]`` of a list of numbers (or of a :func:`spread` dict), as text.

    Parameters
    ----------
    values : sequence of float, or dict
        The numbers, or :func:`spread`'s ``median`` / ``min`` / ``max`` (any suffix).
    spec : str
        Format of each number.

    Returns
    -------
    str
        "-" when there is nothing.
    """
    if isinstance(values, dict):
        got = {k.split("_")[0]: v for k, v in values.items()
               if k.split("_")[0] in ("median", "min", "max")}
    else:
        got = spread(values)
    if any(got.get(k) is None for k in ("median", "min", "max")):
        return "-"
    return f"{got['median']:{spec}} [{got['min']:{spec}}-{got['max']:{spec}}]"


def resolve_revision(*, rev: str, repo: Path = REPO) -> str:
    """The commit hash a git revision names (read-only ``git rev-parse --verify REV^{commit}``).

    Parameters
    ----------
    rev : str
        ``HEAD``, a branch, a tag, a (short) hash.
    repo : Path
        The repository (default: this one).

    Returns
    -------
    str
        40 hex digits.

    Raises
    ------
    ValueError
        When git does not know the revision (or ``repo`` is no repository).
    """
    try:
        res = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                              f"{rev}^{{commit}}"], capture_output=True, text=True, timeout=60,
                             check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ValueError(f"git rev-parse failed: {exc}") from exc
    if res.returncode != 0 or not res.stdout.strip():
        raise ValueError(f"{rev!r} is no commit of {repo} ({res.stderr.strip() or 'unknown'})")
    return res.stdout.strip()


class RevisionWorktree:
    """A temporary detached git worktree of a commit, removed again on leaving (errors too).

    A context manager: ``with RevisionWorktree(commit=..., path=...) as tree:``. Only ``git
    worktree add --detach`` and ``git worktree remove --force`` run: the repository's own
    working tree, index and branch are never touched.

    Parameters
    ----------
    commit : str
        What to check out (a resolved hash, :func:`resolve_revision`).
    path : Path
        Where; must not exist yet.
    repo : Path
        The repository (default: this one).
    log : bool
        Say what happens on stderr.
    what : str
        What the stderr lines call it (``# WHAT of COMMIT at PATH``, ``# WHAT removed``).
    """

    def __init__(self, *, commit: str, path: Path, repo: Path = REPO, log: bool = False,
                 what: str = "worktree") -> None:
        self.commit, self.path, self.repo, self.log, self.what = commit, path, repo, log, what

    def _git(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True,
                              text=True, timeout=300, check=False)

    def __enter__(self) -> Path:
        res = self._git("worktree", "add", "--detach", str(self.path), self.commit)
        if res.returncode != 0:
            raise RuntimeError(f"git worktree add failed ({res.returncode}): "
                               f"{res.stderr.strip()}")
        if self.log:
            print(f"# {self.what} of {self.commit[:12]} at {self.path}", file=sys.stderr)
        return self.path

    def __exit__(self, *exc: object) -> None:
        res = self._git("worktree", "remove", "--force", str(self.path))
        if res.returncode != 0:
            print(f"WARNING: git worktree remove --force {self.path} failed: "
                  f"{res.stderr.strip()}; run `git -C {self.repo} worktree prune` once the "
                  f"folder is gone", file=sys.stderr)
        elif self.log:
            print(f"# {self.what} removed ({self.path})", file=sys.stderr)


def tree_env(tree: Path, *, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment (one thread per library) with ``tree`` first on ``PYTHONPATH``.

    A child started with it and ``cwd=tree`` imports that tree's ``engine`` and ``kernels``:
    PYTHONPATH comes before site-packages, and the editable install's finder comes after
    ``sys.path`` (check it: :func:`tree_imports`).

    Parameters
    ----------
    tree : Path
        A source tree holding ``engine/`` and ``kernels/``.
    extra : dict, optional
        More variables.

    Returns
    -------
    dict
    """
    env = dict(os.environ)
    env.update(SINGLE_THREAD_ENV)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(tree), os.environ.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def tree_imports(tree: Path, *, modules: Sequence[str] = ("engine", "kernels")) -> dict[str, str]:
    """Where a child run with :func:`tree_env` imports each module from; raises if outside ``tree``.

    Parameters
    ----------
    tree : Path
        The source tree.
    modules : sequence of str
        Packages (or modules) to import.

    Returns
    -------
    dict
        Module -> its resolved ``__file__``.

    Raises
    ------
    RuntimeError
        When the child fails, or a module came from elsewhere (PYTHONPATH did not win).
    """
    code = ("import importlib, json, os, sys; print(json.dumps({m: os.path.realpath("
            "importlib.import_module(m).__file__) for m in sys.argv[1:]}))")
    proc = subprocess.run([sys.executable, "-c", code, *modules], env=tree_env(tree),
                          cwd=tree, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"importing {modules} from {tree} failed:\n{proc.stderr[-3000:]}")
    files: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    outside = [f for f in files.values() if not Path(f).is_relative_to(tree.resolve())]
    if outside:
        raise RuntimeError(f"a child meant to run {tree} imported {outside}: PYTHONPATH did "
                           f"not win over the installed packages")
    return files


def parse_importtime(text: str) -> list[dict[str, Any]]:
    """The lines of ``python -X importtime`` (stderr) as rows, in the order printed.

    Each row: ``name``, ``self_ms``, ``cumulative_ms``, ``depth`` (0: imported by the script
    itself, at its top or later inside a function) and ``parent`` (the module whose import
    caused it: the next line one level up, as the output prints children before parents).

    Parameters
    ----------
    text : str
        The stderr of one process (other lines are ignored).

    Returns
    -------
    list of dict
    """
    rows: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:"):].split("|", 2)
        if len(parts) != 3:
            continue
        try:
            self_us, cum_us = int(parts[0]), int(parts[1])
        except ValueError:
            continue
        raw = parts[2].rstrip("\n")
        name = raw.strip()
        depth = max(0, (len(raw) - len(raw.lstrip(" ")) - 1) // 2)
        rows.append({"name": name, "self_ms": self_us / 1000, "cumulative_ms": cum_us / 1000,
                     "depth": depth, "parent": None})
    for i, row in enumerate(rows):
        if row["depth"] == 0:
            continue
        for later in rows[i + 1:]:
            if later["depth"] == row["depth"] - 1:
                row["parent"] = later["name"]
                break
    return rows


def git_uncommitted(*, repo: Path = REPO,
                    paths: Sequence[str] = ("engine", "kernels")) -> list[str]:
    """``git status --porcelain -- PATHS`` (read-only): the uncommitted edits a run measures.

    Parameters
    ----------
    repo : Path
        A checkout (the repository, or a worktree).
    paths : sequence of str
        What to look at (default: the engine's and the kernels' sources).

    Returns
    -------
    list of str
        One line per changed file; empty for a clean tree.
    """
    try:
        res = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", *paths],
                             capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"git status failed: {exc}"]
    return res.stdout.splitlines() if res.returncode == 0 else [
        f"git status failed: {res.stderr.strip()}"]


def use_bytecode_cache(*, directory: Path) -> dict[str, Any]:
    """Let the children this process starts cache their bytecode, under ``directory``.

    Sets ``PYTHONPYCACHEPREFIX`` and drops ``PYTHONDONTWRITEBYTECODE`` in ``os.environ`` (this
    interpreter is not affected: it read them at its start). A whole-process start-up with warm
    caches includes the ``.pyc`` files an installed package has: without them every process
    compiles the engine's sources again (~0.07 s per engine-run here). The prefix keeps the
    ``.pyc`` out of the source trees; Numba's cache is not affected (it stays next to the
    kernels' sources).

    Parameters
    ----------
    directory : Path
        Where the bytecode goes (a scratch folder of the run).

    Returns
    -------
    dict
        What was set and what was there before, for the report.
    """
    before = {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(directory)
    return {"PYTHONPYCACHEPREFIX": str(directory), "PYTHONDONTWRITEBYTECODE": None,
            "environment_before": before}
