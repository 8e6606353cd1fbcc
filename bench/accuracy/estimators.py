"""The estimators of bench/accuracy.py on one file, and the scores against the truth.

Runs in the worker processes (:func:`init_worker` once, then :func:`analyse` per file):

- **ours**: the file decoded by ``engine.decode`` (``open_audio``, ``stream``: what
  ``fingerprint_file`` does) into ``kernels.Analyzer(..., onset_times=True)``: ``tempo_bpm``,
  ``pulse_clarity``, ``transient_density`` (onsets per active second), the onset times the
  density counts, and the key label ``kernels.key.key_of`` reads from the fingerprint; no beat
  times;
- **librosa** as a user runs it, defaults throughout: ``librosa.load(path)`` (22.05 kHz mono),
  ``librosa.beat.beat_track(y=y, sr=sr, units="time")`` and
  ``librosa.onset.onset_detect(y=y, sr=sr, units="time")``;
- **Essentia** (when it imports): ``MonoLoader(sampleRate=44100)``, ``RhythmExtractor2013()``
  (method multifeature: bpm, beat ticks, confidence), ``KeyExtractor()`` (profile bgate) and
  ``OnsetRate()`` (onset times).

Scores (all from mir_eval where it has the metric): tempo Acc1 (within :data:`TEMPO_TOL` of the
truth) and Acc2 (within it of the truth x 1, 2, 1/2, 3 or 1/3), the relation found; onset
``mir_eval.onset.f_measure`` at +-50 ms; beat ``mir_eval.beat.f_measure`` (+-70 ms, the first
5 s trimmed from both lists as mir_eval's evaluate does); key
``mir_eval.key.weighted_score``; the onset rate's relative error against the true rate (true
onsets per active second of the same file).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

#: Tempo tolerance of Acc1 and Acc2 (relative).
TEMPO_TOL = 0.04
#: Metrical levels Acc2 accepts, and how the relation is named.
TEMPO_FACTORS: tuple[tuple[str, float], ...] = (
    ("x1", 1.0), ("x2", 2.0), ("x1/2", 0.5), ("x3", 3.0), ("x1/3", 1.0 / 3.0))
#: Onset F-measure window (s).
ONSET_WINDOW = 0.05
#: Window within which onsets are paired to measure an estimator's timing offset (s).
OFFSET_WINDOW = 0.1
#: Key score -> the relation mir_eval's weights stand for.
KEY_RELATIONS = {1.0: "correct", 0.5: "fifth", 0.3: "relative", 0.2: "parallel", 0.0: "other"}

ESTIMATORS = ("ours", "librosa", "essentia")

_STATE: dict[str, Any] = {}


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def tempo_scores(est: float | None, ref: float,
                 ref_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """Acc1, Acc2 and the metrical relation of an estimated tempo.

    Parameters
    ----------
    est : float or None
        Estimated BPM (None or <= 0: no estimate, every score false).
    ref : float
        True BPM.
    ref_range : tuple of float, optional
        The lowest and highest tempo of a clip whose tempo drifts: adds ``acc1_range`` (the
        estimate lies within the range widened by the tolerance) and ``acc2_range`` (so does
        the estimate at one of the metrical levels).

    Returns
    -------
    dict
        ``acc1``, ``acc2`` (bool), ``relation`` (``x1``, ``x2``, ``x1/2``, ``x3``, ``x1/3`` or
        ``other``; ``none`` without an estimate), ``ratio`` (est / ref), and with
        ``ref_range`` ``acc1_range`` and ``acc2_range``.
    """
    out: dict[str, Any]
    if est is None or not est > 0:
        out = {"acc1": False, "acc2": False, "relation": "none", "ratio": None}
        if ref_range is not None:
            out.update(acc1_range=False, acc2_range=False)
        return out
    relation = "other"
    for name, factor in TEMPO_FACTORS:
        if abs(est - ref * factor) <= TEMPO_TOL * ref * factor:
            relation = name
            break
    out = {"acc1": relation == "x1", "acc2": relation != "other", "relation": relation,
           "ratio": est / ref}
    if ref_range is not None:
        lo, hi = min(ref_range), max(ref_range)

        def within(factor: float) -> bool:
            return bool(lo * factor * (1 - TEMPO_TOL) <= est <= hi * factor * (1 + TEMPO_TOL))

        out["acc1_range"] = within(1.0)
        out["acc2_range"] = any(within(f) for _, f in TEMPO_FACTORS)
    return out


def onset_scores(ref: np.ndarray, est: np.ndarray) -> dict[str, Any]:
    """Onset F-measure, precision and recall at +-50 ms, and the timing offset.

    Parameters
    ----------
    ref, est : ndarray
        Onset times in seconds, sorted.

    Returns
    -------
    dict
        ``f``, ``p``, ``r``, ``n_est``, and ``offset_ms``: the median of est - ref over the
        pairs mir_eval matches within +-100 ms (None without a pair).
    """
    import mir_eval

    ref = np.asarray(ref, dtype=float)
    est = np.asarray(est, dtype=float)
    out: dict[str, Any] = {"n_est": int(est.size)}
    if ref.size == 0 or est.size == 0:
        out.update(f=0.0, p=0.0, r=0.0, offset_ms=None)
        return out
    f, p, r = mir_eval.onset.f_measure(ref, est, window=ONSET_WINDOW)
    pairs = mir_eval.util.match_events(ref, est, OFFSET_WINDOW)
    offset = (1000.0 * float(np.median([est[j] - ref[i] for i, j in pairs]))
              if pairs else None)
    out.update(f=float(f), p=float(p), r=float(r), offset_ms=offset)
    return out


def beat_f(ref: np.ndarray, est: np.ndarray) -> float:
    """Beat F-measure (mir_eval, +-70 ms) after trimming the first 5 s of both lists.

    Parameters
    ----------
    ref, est : ndarray
        Beat times in seconds.

    Returns
    -------
    float
    """
    import mir_eval

    ref_t = mir_eval.beat.trim_beats(np.asarray(ref, dtype=float))
    est_t = mir_eval.beat.trim_beats(np.asarray(est, dtype=float))
    if ref_t.size == 0 or est_t.size == 0:
        return 0.0
    return float(mir_eval.beat.f_measure(ref_t, est_t))


def key_scores(ref: str, est: str | None) -> dict[str, Any]:
    """MIREX weighted key score and the relation it stands for.

    Parameters
    ----------
    ref : str
        True key, e.g. ``"Eb minor"``.
    est : str or None
        Estimated key in the same spelling (None: no estimate, score 0).

    Returns
    -------
    dict
        ``score`` (1 correct, 0.5 fifth, 0.3 relative, 0.2 parallel, 0 other) and
        ``relation``.
    """
    import mir_eval

    if est is None:
        return {"score": 0.0, "relation": "none"}
    score = float(mir_eval.key.weighted_score(ref, est))
    return {"score": score, "relation": KEY_RELATIONS.get(score, "other")}


def density_error(est_rate: float | None, true_rate: float | None) -> float | None:
    """Relative error of an onset rate: est / true - 1 (None when either is missing or 0).

    Parameters
    ----------
    est_rate, true_rate : float or None
        Onsets per second.

    Returns
    -------
    float or None
    """
    if est_rate is None or not true_rate:
        return None
    return est_rate / true_rate - 1.0


# --------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------


def load_essentia() -> tuple[Any, str]:
    """Import ``essentia.standard`` if it is installed, quietly.

    Returns
    -------
    module or None
        ``essentia.standard``, or None.
    str
        ``"available, essentia <version>"`` or ``"not available: <reason>"``.
    """
    try:
        import essentia
        import essentia.standard as es
    except Exception as e:  # ImportError, or a broken wheel (missing shared library, ABI)
        return None, f"not available: {type(e).__name__}: {e}"
    essentia.log.infoActive = False
    essentia.log.warningActive = False
    missing = [n for n in ("RhythmExtractor2013", "KeyExtractor", "OnsetRate", "MonoLoader")
               if not hasattr(es, n)]
    if missing:
        return None, f"not available: essentia {essentia.__version__} lacks {missing}"
    return es, f"available, essentia {essentia.__version__}"


def init_worker(use_librosa: bool, use_essentia: bool) -> None:
    """Load the kernels and the peers once per worker process, compile what compiles.

    Parameters
    ----------
    use_librosa, use_essentia : bool
        Which peers this run measures.
    """
    import warnings

    import kernels

    warnings.filterwarnings("ignore")  # librosa / mir_eval warnings on empty or short input
    kernels.warmup()
    _STATE["librosa"] = use_librosa
    _STATE["essentia"] = None
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(22050 * 4)).astype(np.float32)
    if use_librosa:
        import librosa

        librosa.beat.beat_track(y=noise, sr=22050)  # numba-compiled parts, once
        librosa.onset.onset_detect(y=noise, sr=22050)
    if use_essentia:
        es, _status = load_essentia()
        if es is not None:
            _STATE["essentia"] = es


def _ours(path: str) -> tuple[dict[str, Any], np.ndarray]:
    """Our fingerprint's rhythm values and key, and the onset times behind its density."""
    from engine.decode import DEFAULT_BLOCK_FRAMES, open_audio, stream
    from kernels import Analyzer
    from kernels.key import key_of

    t0 = time.perf_counter()
    with open_audio(path) as source:
        analyzer = Analyzer(source.samplerate, source.channels, onset_times=True)
        pcm = np.empty((DEFAULT_BLOCK_FRAMES, source.channels), dtype=np.float32)
        stream(source, analyzer, pcm)
        values = analyzer.finish().as_dict()
    key = key_of(values)
    return ({"tempo_bpm": float(values["tempo_bpm"]),
             "pulse_clarity": float(values["pulse_clarity"]),
             "transient_density": float(values["transient_density"]),
             "key": key.label if key is not None else None,
             "key_strength": key.strength if key is not None else None,
             "n_onsets": len(analyzer.onset_times), "s": time.perf_counter() - t0},
            np.asarray(analyzer.onset_times, dtype=float))


def _librosa(path: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """librosa's tempo, beat times and onset times, its defaults throughout."""
    import librosa

    t0 = time.perf_counter()
    y, sr = librosa.load(path)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    onsets = librosa.onset.onset_detect(y=y, sr=sr, units="time")
    bpm = float(np.atleast_1d(tempo)[0])
    return ({"tempo_bpm": bpm, "n_onsets": len(onsets), "s": time.perf_counter() - t0},
            np.asarray(beats, dtype=float), np.asarray(onsets, dtype=float))


def _essentia(path: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Essentia's tempo, key, beat ticks and onset times."""
    es = _STATE["essentia"]
    t0 = time.perf_counter()
    # fresh algorithms for every file: a reused OnsetRate returns no onsets after the first
    # file (essentia 2.1b6)
    audio = es.MonoLoader(filename=path, sampleRate=44100)()
    bpm, ticks, confidence, _estimates, _intervals = es.RhythmExtractor2013()(audio)
    key, scale, strength = es.KeyExtractor()(audio)
    onsets, _rate = es.OnsetRate()(audio)
    return ({"tempo_bpm": float(bpm), "tempo_confidence": float(confidence),
             "key": f"{key} {scale}" if key else None, "key_strength": float(strength),
             "n_onsets": len(onsets), "s": time.perf_counter() - t0},
            np.asarray(ticks, dtype=float), np.asarray(onsets, dtype=float))


def analyse(job: dict[str, Any]) -> dict[str, Any]:
    """Run every estimator on one file and score it against the truth.

    Parameters
    ----------
    job : dict
        ``path``; ``truth``: ``tempo_bpm`` and, for rendered clips, ``onsets``, ``beats`` and
        ``key`` (None for drums), and for drifting clips ``tempo_range`` (start and end BPM);
        everything else is copied into the row.

    Returns
    -------
    dict
        The row: the job's fields (without the truth's lists), ``truth`` (tempo, key, active
        duration, true onset rate), one dict per estimator run with its values and scores,
        ``error`` (None, or the message of what failed) and ``_arrays`` (onset times per
        estimator and the true ones, for the offset-compensated scores; not reported).
    """
    import soundfile as sf

    path = job["path"]
    truth_in = job["truth"]
    row: dict[str, Any] = {k: v for k, v in job.items() if k not in ("truth", "path")}
    row["file"] = job.get("file", path)
    ref_onsets = np.asarray(truth_in.get("onsets") or [], dtype=float)
    has_onsets = "onsets" in truth_in
    ref_beats = np.asarray(truth_in.get("beats") or [], dtype=float)
    ref_tempo = float(truth_in["tempo_bpm"])
    ref_range = truth_in.get("tempo_range")
    arrays: dict[str, Any] = {"truth": ref_onsets}
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
        from .audio import active_seconds

        active = active_seconds(data.mean(axis=1), sr)
        true_rate = len(ref_onsets) / active if has_onsets and active > 0 else None
        row["truth"] = {"tempo_bpm": ref_tempo, "key": truth_in.get("key"),
                        "active_s": active, "duration_s": len(data) / sr,
                        "n_onsets": len(ref_onsets) if has_onsets else None,
                        "onset_rate": true_rate}
        del data
        ours, onsets = _ours(path)
        ours.update(tempo_scores(ours["tempo_bpm"], ref_tempo, ref_range))
        ours["density_rel_err"] = density_error(ours["transient_density"], true_rate)
        if has_onsets:
            ours["onsets"] = onset_scores(ref_onsets, onsets)
        if truth_in.get("key"):
            ours["key_scores"] = key_scores(truth_in["key"], ours["key"])
        row["ours"] = ours
        arrays["ours"] = onsets
        if _STATE.get("librosa"):
            lib, beats, onsets = _librosa(path)
            lib.update(tempo_scores(lib["tempo_bpm"], ref_tempo, ref_range))
            lib["density"] = len(onsets) / active if active > 0 else None
            if has_onsets:
                lib["density_rel_err"] = density_error(lib["density"], true_rate)
                lib["onsets"] = onset_scores(ref_onsets, onsets)
            if ref_beats.size:
                lib["beat_f"] = beat_f(ref_beats, beats)
            row["librosa"] = lib
            arrays["librosa"] = onsets
        if _STATE.get("essentia") is not None:
            ess, ticks, onsets = _essentia(path)
            ess.update(tempo_scores(ess["tempo_bpm"], ref_tempo, ref_range))
            ess["density"] = len(onsets) / active if active > 0 else None
            if has_onsets:
                ess["density_rel_err"] = density_error(ess["density"], true_rate)
                ess["onsets"] = onset_scores(ref_onsets, onsets)
            if ref_beats.size:
                ess["beat_f"] = beat_f(ref_beats, ticks)
            if truth_in.get("key"):
                ess["key_scores"] = key_scores(truth_in["key"], ess["key"])
            row["essentia"] = ess
            arrays["essentia"] = onsets
        row["error"] = None
    except Exception as e:  # one bad file is a row with its error, not a dead run
        row["error"] = f"{type(e).__name__}: {e}"
    row["_arrays"] = arrays
    return row


def shifted_onset_f(ref: np.ndarray, est: np.ndarray, shift_s: float) -> float | None:
    """Onset F-measure after moving every estimated onset by ``-shift_s`` (a fixed latency).

    Parameters
    ----------
    ref, est : ndarray
        Onset times (s).
    shift_s : float
        The estimator's typical lateness, subtracted.

    Returns
    -------
    float or None
        None when either list is empty.
    """
    import mir_eval

    if len(ref) == 0 or len(est) == 0 or not math.isfinite(shift_s):
        return None
    moved = np.sort(np.asarray(est, dtype=float) - shift_s)
    moved = moved[moved >= 0]
    if moved.size == 0:
        return 0.0
    return float(mir_eval.onset.f_measure(np.asarray(ref, dtype=float), moved,
                                          window=ONSET_WINDOW)[0])
