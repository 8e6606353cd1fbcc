#!/usr/bin/env python
"""How right is the fingerprint's rhythm? Ground truth for tempo, onsets and key, with mir_eval.

The baseline the next fingerprint version has to beat. Two sets of music with known answers:

- **Rendered clips** (:mod:`accuracy.clips`, :mod:`accuracy.audio`): General MIDI
  arrangements generated from ``--seed``, rendered by FluidSynth with the FluidR3 GM soundfont,
  nine families (straight 8ths, 16ths, half-time, swing, 3/4, 6/8, tempo drift, drums alone,
  solo piano; ``--per-family`` clips each, 40-220 BPM), each as 16-bit FLAC (the source),
  MP3 128 kbit/s and OGG Vorbis q4, and the drum and piano clips also over a pink-noise bed at
  10 dB SNR (FLAC). Beside each clip in ``--work DIR``: the MIDI file and the truth as JSON
  (tempo, beat and downbeat times, the onset of every note, key and mode, instruments). A
  rerun reuses the clips it finds there.
- **The Frets-on-Fire songs** of the shared corpus (``--corpus DIR``, built by
  ``../shared/corpus/make_corpus.sh DIR small``): the tempo that holds longest in each song's
  chart (``tempo-truth.tsv``, ``bpm_dominant``).

Each file goes through our fingerprint (decoded by ``engine.decode``, analysed with
``Analyzer(..., onset_times=True)``: ``tempo_bpm``, ``pulse_clarity``, ``transient_density``
and the onset times it counts, and the key ``kernels.key.key_of`` reads from the values),
librosa (``beat_track``, ``onset_detect``, its defaults) and Essentia
(``RhythmExtractor2013``, ``KeyExtractor``, ``OnsetRate``) where it imports, side by side
(:mod:`accuracy.estimators`). The scores: tempo Acc1 (within 4 %) and Acc2 (also x2, x1/2, x3,
x1/3); onset F-measure at +-50 ms (mir_eval) and the relative error of the onset rate against
the true onset rate; beat F-measure (librosa, Essentia); the MIREX weighted key score; our
pulse clarity per family and its change from FLAC to MP3 and OGG. Broken down by family and
by encoding, with the noisy condition apart.

Usage::

    .venv/bin/python bench/accuracy.py -o bench/results/accuracy-v1.json
    .venv/bin/python bench/accuracy.py --limit 18 --no-essentia     # a quick look

Needs FluidSynth and the soundfont (``apt-get install fluidsynth fluid-soundfont-gm``) for
clips not yet rendered, and ``pretty_midi`` and ``mir_eval`` (``pip install pretty_midi
mir_eval``; ``essentia`` optional). The JSON report goes to ``-o`` (default stdout), a summary
in markdown to stderr. Exit status 1 when a file failed (its row has the error), 2 on a usage
error.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, which must happen
# before numpy, numba, scipy or librosa load.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import argparse
import csv
import json
import multiprocessing
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from accuracy import audio, clips, estimators

SCHEMA = "fingerprint-engine/bench-accuracy/1"
DEFAULT_WORK = Path.home() / ".cache" / "fingerprint-engine" / "accuracy-clips"
DEFAULT_CORPUS = Path.home() / ".cache" / "fingerprint-engine" / "corpus-small"
#: A rate within this relative error counts as "within" in the density tables.
DENSITY_WITHIN = 0.2
ENCODING_LABELS = {"flac": "FLAC (source)", "mp3": "MP3 128k", "ogg": "OGG q4"}
NOISE_CONDITION = f"pink{audio.NOISE_SNR_DB:g}"


# --------------------------------------------------------------------------------------------
# What to run
# --------------------------------------------------------------------------------------------


def plan_clips(*, per_family: int, limit: int | None, seed: int, music_s: float,
               work: Path) -> list[dict[str, Any]]:
    """The clips to render, families interleaved so that ``--limit`` takes some of each.

    Parameters
    ----------
    per_family : int
        Clips per family.
    limit : int or None
        Keep the first ``limit`` of the interleaved order (None or 0: all).
    seed : int
    music_s : float
        Seconds of music per clip (the file has 2 s more, for the tails).
    work : Path
        The work folder.

    Returns
    -------
    list of dict
        Specs for :func:`accuracy.audio.render_clip`.
    """
    specs = [{"family": fam.name, "index": i, "seed": seed, "music_s": music_s,
              "clip_s": music_s + 2.0, "work": str(work)}
             for i in range(per_family) for fam in clips.FAMILIES]
    return specs[:limit] if limit else specs


def clip_jobs(rendered: Sequence[dict[str, Any]], *, work: Path) -> list[dict[str, Any]]:
    """One measurement job per file of each rendered clip (3 encodings, + the noisy copy).

    Parameters
    ----------
    rendered : sequence of dict
        What :func:`accuracy.audio.render_clip` returned.
    work : Path
        The work folder (file names in the rows are relative to it).

    Returns
    -------
    list of dict
        Jobs for :func:`accuracy.estimators.analyse`.
    """
    jobs = []
    for r in rendered:
        truth = json.loads(Path(r["files"]["json"]).read_text())
        t = {"tempo_bpm": truth["tempo_bpm"], "onsets": truth["onsets"],
             "beats": truth["beats"], "key": truth["key"]}
        if truth["tempo_start_bpm"] != truth["tempo_end_bpm"]:
            t["tempo_range"] = [truth["tempo_start_bpm"], truth["tempo_end_bpm"]]
        base = {"set": "rendered", "clip": truth["id"], "family": truth["family"],
                "meter": truth["meter"], "feel": truth["feel"], "style": truth["style"],
                "truth": t}
        variants = [(enc, "clean", r["files"][enc]) for enc in audio.ENCODINGS]
        if "pink" in r["files"]:
            variants.append(("flac", NOISE_CONDITION, r["files"]["pink"]))
        for enc, cond, path in variants:
            jobs.append({**base, "encoding": enc, "condition": cond, "path": path,
                         "file": str(Path(path).relative_to(work))})
    return jobs


def fof_jobs(corpus: Path) -> list[dict[str, Any]]:
    """One job per Frets-on-Fire song of the corpus's ``tempo-truth.tsv``.

    Parameters
    ----------
    corpus : Path
        A corpus made by ``../shared/corpus/make_corpus.sh``.

    Returns
    -------
    list of dict
        Jobs with the chart's dominant tempo as the truth.

    Raises
    ------
    FileNotFoundError
        Without ``tempo-truth.tsv``.
    """
    jobs = []
    with open(corpus / "tempo-truth.tsv", newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f, delimiter="\t"):
            path = corpus / rec["file"]
            jobs.append({
                "set": "fof", "clip": rec["file"], "family": "fof", "encoding":
                    path.suffix.lstrip(".").lower(), "condition": "clean",
                "chart": {"bpm_dominant": float(rec["bpm_dominant"]),
                          "bpm_first": float(rec["bpm_first"]),
                          "tempo_events": int(rec["tempo_events"]),
                          "time_signature": rec["time_signature"]},
                "truth": {"tempo_bpm": float(rec["bpm_dominant"])},
                "path": str(path), "file": rec["file"]})
    return jobs


def run_pool(*, fn: Callable[[dict[str, Any]], dict[str, Any]], jobs: Sequence[dict[str, Any]],
             pool: ProcessPoolExecutor, label: str, quiet: bool) -> list[dict[str, Any]]:
    """Run ``fn`` over the jobs in the pool; results in job order, progress on stderr.

    Parameters
    ----------
    fn : callable
        A module-level function (pickled to the workers).
    jobs : sequence of dict
    pool : ProcessPoolExecutor
    label : str
        Names the phase in progress lines.
    quiet : bool
        No progress lines.

    Returns
    -------
    list of dict
    """
    out: list[dict[str, Any] | None] = [None] * len(jobs)
    futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
    t0 = time.monotonic()
    step = max(1, len(jobs) // 10)
    for done, fut in enumerate(as_completed(futures), 1):
        out[futures[fut]] = fut.result()
        if not quiet and (done % step == 0 or done == len(jobs)):
            print(f"# {label}: {done}/{len(jobs)} in {time.monotonic() - t0:.0f} s",
                  file=sys.stderr)
    return [r for r in out if r is not None]


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def _groups(rows: Iterable[dict[str, Any]], keys: Sequence[str]) -> dict[tuple, list[dict]]:
    """Rows grouped by the values of ``keys`` (one group ``()`` for no keys), in first-seen
    order of the families and encodings."""
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    order = {name: i for i, name in enumerate(
        [f.name for f in clips.FAMILIES] + list(audio.ENCODINGS) + ["clean", NOISE_CONDITION])}
    return dict(sorted(out.items(), key=lambda kv: [order.get(v, 99) for v in kv[0]]))


def _mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there is none."""
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None; None when there is none."""
    v = [x for x in values if x is not None]
    return float(np.median(v)) if v else None


def _present(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The estimators that ran on some of the rows, in report order."""
    return [e for e in estimators.ESTIMATORS if any(e in r for r in rows)]


def tempo_table(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Tempo Acc1 / Acc2 and the relations found, per group and estimator.

    Parameters
    ----------
    rows : sequence of dict
        Measured rows without errors.
    keys : sequence of str
        Row fields to group by (``family``, ``encoding``, ...); empty for one overall row.

    Returns
    -------
    list of dict
        The group's key values, ``estimator``, ``n``, ``acc1``, ``acc2`` (shares) and
        ``relations`` (counts); where the group has drifting clips, ``n_drifting`` and their
        ``acc1_range`` / ``acc2_range`` (the estimate anywhere within the clip's tempo range).
    """
    table = []
    for key, grp in _groups(rows, keys).items():
        for est in _present(grp):
            got = [r[est] for r in grp if est in r]
            entry = {**dict(zip(keys, key, strict=True)), "estimator": est, "n": len(got),
                     "acc1": _mean(float(g["acc1"]) for g in got),
                     "acc2": _mean(float(g["acc2"]) for g in got),
                     "relations": dict(Counter(g["relation"] for g in got))}
            drifting = [g for g in got if "acc1_range" in g]
            if drifting:
                entry.update(n_drifting=len(drifting),
                             acc1_range=_mean(float(g["acc1_range"]) for g in drifting),
                             acc2_range=_mean(float(g["acc2_range"]) for g in drifting))
            table.append(entry)
    return table


def onset_table(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Onset scores per group and estimator.

    For an estimator with onset times (librosa, Essentia): mean F, precision and recall at
    +-50 ms, the mean F after removing the estimator's global latency (``f_shifted``) and the
    median offset. For every estimator: the onset rate's relative error (median signed,
    median absolute, share within +-20 %).

    Parameters
    ----------
    rows : sequence of dict
    keys : sequence of str

    Returns
    -------
    list of dict
    """
    table = []
    for key, grp in _groups(rows, keys).items():
        for est in _present(grp):
            got = [r[est] for r in grp if est in r]
            errs = [g.get("density_rel_err") for g in got]
            errs_v = [e for e in errs if e is not None]
            entry: dict[str, Any] = {
                **dict(zip(keys, key, strict=True)), "estimator": est, "n": len(got),
                "true_rate_median": _median(r["truth"]["onset_rate"] for r in grp),
                "density_median": _median(g.get("transient_density", g.get("density"))
                                          for g in got),
                "density_rel_err_median": _median(errs_v),
                "density_abs_rel_err_median": _median(abs(e) for e in errs_v),
                "density_within_20pct": _mean(float(abs(e) <= DENSITY_WITHIN)
                                              for e in errs_v)}
            ons = [g["onsets"] for g in got if "onsets" in g]
            if ons:
                entry.update(
                    f=_mean(o["f"] for o in ons), p=_mean(o["p"] for o in ons),
                    r=_mean(o["r"] for o in ons),
                    f_shifted=_mean(o.get("f_shifted") for o in ons),
                    offset_ms_median=_median(o["offset_ms"] for o in ons))
            else:
                entry.update(f=None, p=None, r=None, f_shifted=None, offset_ms_median=None,
                             note="gives an onset rate, no onset times")
            table.append(entry)
    return table


def beat_table(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean beat F-measure per group for the estimators that give beat times.

    Parameters
    ----------
    rows : sequence of dict
    keys : sequence of str

    Returns
    -------
    list of dict
    """
    table = []
    for key, grp in _groups(rows, keys).items():
        for est in _present(grp):
            got = [r[est]["beat_f"] for r in grp if est in r and "beat_f" in r[est]]
            if got:
                table.append({**dict(zip(keys, key, strict=True)), "estimator": est,
                              "n": len(got), "beat_f": _mean(got)})
    return table


def key_table(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """MIREX weighted key score per group and estimator (ours, Essentia).

    Parameters
    ----------
    rows : sequence of dict
    keys : sequence of str

    Returns
    -------
    list of dict
    """
    table = []
    keyed = [r for r in rows if r["truth"].get("key")]
    for key, grp in _groups(keyed, keys).items():
        for est in ("ours", "essentia"):
            got = [r[est]["key_scores"] for r in grp if est in r and "key_scores" in r[est]]
            if got:
                table.append({**dict(zip(keys, key, strict=True)), "estimator": est,
                              "n": len(got), "score": _mean(g["score"] for g in got),
                              "correct": _mean(float(g["relation"] == "correct") for g in got),
                              "relations": dict(Counter(g["relation"] for g in got))})
    return table


def clarity_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our pulse clarity per family: its median on the FLAC clips, and the median and largest
    absolute change from a clip's FLAC to its MP3 and OGG.

    Parameters
    ----------
    rows : sequence of dict
        Rendered rows, clean condition.

    Returns
    -------
    list of dict
    """
    by_clip: dict[str, dict[str, float]] = {}
    fam_of: dict[str, str] = {}
    for r in rows:
        if "ours" in r and "pulse_clarity" in r["ours"]:
            by_clip.setdefault(r["clip"], {})[r["encoding"]] = r["ours"]["pulse_clarity"]
            fam_of[r["clip"]] = r["family"]
    table = []
    for fam in [f.name for f in clips.FAMILIES] + [None]:
        ids = [c for c in by_clip if fam is None or fam_of[c] == fam]
        flac = [by_clip[c]["flac"] for c in ids if "flac" in by_clip[c]]
        if not flac:
            continue
        entry: dict[str, Any] = {"family": fam or "all", "n": len(flac),
                                 "median": _median(flac),
                                 "p10": float(np.percentile(flac, 10)),
                                 "p90": float(np.percentile(flac, 90))}
        for enc in ("mp3", "ogg"):
            d = [abs(by_clip[c][enc] - by_clip[c]["flac"]) for c in ids
                 if enc in by_clip[c] and "flac" in by_clip[c]]
            entry[f"{enc}_abs_change_median"] = _median(d)
            entry[f"{enc}_abs_change_max"] = max(d) if d else None
        table.append(entry)
    return table


def apply_latency(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Each onset estimator's global latency, and every row's F with it removed.

    The latency is the median, over the clean FLAC clips, of each clip's median offset
    (estimated - true onset, pairs within +-100 ms). ``f_shifted`` is the F-measure after
    subtracting it from every onset the estimator reported: what its onsets score once a
    constant delay (framing, envelope lag) is taken out.

    Parameters
    ----------
    rows : sequence of dict
        Rendered rows, with their ``_arrays``; ``f_shifted`` is added in place.

    Returns
    -------
    dict
        Estimator -> latency in ms (None without any pair).
    """
    latency: dict[str, float | None] = {}
    for est in ("ours", "librosa", "essentia"):
        offs = [r[est]["onsets"]["offset_ms"] for r in rows
                if est in r and "onsets" in r[est] and r["encoding"] == "flac"
                and r["condition"] == "clean"]
        lat = _median(offs)
        latency[est] = lat
        if lat is None:
            continue
        for r in rows:
            if est in r and "onsets" in r[est] and est in r.get("_arrays", {}):
                r[est]["onsets"]["f_shifted"] = estimators.shifted_onset_f(
                    r["_arrays"]["truth"], r["_arrays"][est], lat / 1000.0)
    return latency


def summarise_rendered(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every summary table of the rendered clips.

    Parameters
    ----------
    rows : sequence of dict
        Rows without errors.

    Returns
    -------
    dict
        ``tempo``, ``onsets``, ``beats`` and ``key``, each ``overall``, ``by_family``,
        ``by_encoding`` and ``by_family_encoding`` (clean files only), ``noise``: the drum
        and piano clips as FLAC, clean against the pink-noise bed, and ``pulse_clarity``
        (:func:`clarity_table`).
    """
    clean = [r for r in rows if r["condition"] == "clean"]
    groupings = {"overall": (), "by_family": ("family",), "by_encoding": ("encoding",),
                 "by_family_encoding": ("family", "encoding")}
    out: dict[str, Any] = {}
    for name, fn in (("tempo", tempo_table), ("onsets", onset_table), ("beats", beat_table),
                     ("key", key_table)):
        out[name] = {g: fn(clean, keys) for g, keys in groupings.items()}
    noisy_ids = {r["clip"] for r in rows if r["condition"] == NOISE_CONDITION}
    pair = [r for r in rows if r["clip"] in noisy_ids and r["encoding"] == "flac"]
    out["noise"] = {"snr_db": audio.NOISE_SNR_DB,
                    "onsets": onset_table(pair, ("family", "condition")),
                    "tempo": tempo_table(pair, ("family", "condition"))}
    out["pulse_clarity"] = clarity_table(clean)
    return out


def summarise_fof(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Tempo Acc1 / Acc2 on the Frets-on-Fire songs, and the per-song table.

    Parameters
    ----------
    rows : sequence of dict

    Returns
    -------
    dict
        ``tempo`` (per estimator) and ``songs`` (chart tempo and each estimate).
    """
    songs = []
    for r in rows:
        songs.append({"file": r["file"], "chart_bpm": r["truth"]["tempo_bpm"],
                      "tempo_events": r["chart"]["tempo_events"],
                      "time_signature": r["chart"]["time_signature"],
                      "duration_s": r["truth"]["duration_s"],
                      **{e: {"tempo_bpm": r[e]["tempo_bpm"], "relation": r[e]["relation"]}
                         for e in estimators.ESTIMATORS if e in r}})
    return {"tempo": tempo_table(rows, ()), "songs": songs}


# --------------------------------------------------------------------------------------------
# The human summary
# --------------------------------------------------------------------------------------------


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.0f} %"


def _label(field: str, value: str) -> str:
    if field == "family":
        return clips.FAMILY_BY_NAME[value].label if value in clips.FAMILY_BY_NAME else value
    if field == "encoding":
        return ENCODING_LABELS.get(value, value)
    return value


def _by(table: list[dict[str, Any]], field: str | None) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for e in table:
        out.setdefault(e[field] if field else "all", {})[e["estimator"]] = e
    return out


def markdown(report: dict[str, Any]) -> str:
    """The summary tables for stderr.

    Parameters
    ----------
    report : dict
        The JSON report.

    Returns
    -------
    str
    """
    lines: list[str] = []
    ests = report["estimators_run"]
    rend = report.get("rendered")
    if rend and rend["summary"]:
        s = rend["summary"]
        lines += [f"## Rendered clips: {rend['clips']} clips, {rend['files']} files "
                  f"(clean: FLAC / MP3 / OGG)", "",
                  "Tempo Acc1 / Acc2 (4 %; Acc2 also x2, x1/2, x3, x1/3):", "",
                  "| group | n | " + " | ".join(ests) + " |",
                  "|---|---|" + "---|" * len(ests)]
        for field, tab in (("family", s["tempo"]["by_family"]),
                           ("encoding", s["tempo"]["by_encoding"]),
                           (None, s["tempo"]["overall"])):
            for grp, per in _by(tab, field).items():
                n = next(iter(per.values()))["n"]
                cells = [f"{_f(per[e]['acc1'])} / {_f(per[e]['acc2'])}" if e in per else "-"
                         for e in ests]
                name = _label(field, grp) if field else "**all**"
                lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
        drift = _by(s["tempo"]["by_family"], "family").get("drift", {})
        if any("acc1_range" in x for x in drift.values()):
            lines += ["", "Drift, anywhere within the clip's tempo range (+-4 %), Acc1 / Acc2: "
                      + ", ".join(f"{e} {_f(x.get('acc1_range'))} / {_f(x.get('acc2_range'))}"
                                  for e, x in drift.items())]
        latency = ", ".join(f"{e} {v:+.0f} ms" for e, v in
                            report["rendered"]["onset_latency_ms"].items() if v is not None)
        lines += ["", "Onsets: F at +-50 ms (in brackets: F with the estimator's median latency "
                      f"removed: {latency}); onset rate error (median signed, median |err|; "
                      "ours: transient_density)", "",
                  "| group | n | true /s | " + " | ".join(
                      f"{e} F (shifted) | {e} rate err" for e in ests) + " |",
                  "|---|---|---|" + "---|---|" * len(ests)]

        def onset_cells(per: dict[str, dict]) -> str:
            cells: list[str] = []
            for e in ests:
                x = per.get(e)
                cells += ([f"{_f(x['f'])} ({_f(x['f_shifted'])})",
                           f"{_pct(x['density_rel_err_median'])}, "
                           f"{_pct(x['density_abs_rel_err_median'])}"] if x else ["-", "-"])
            return " | ".join(cells)

        for field, tab in (("family", s["onsets"]["by_family"]),
                           ("encoding", s["onsets"]["by_encoding"]),
                           (None, s["onsets"]["overall"])):
            for grp, per in _by(tab, field).items():
                any_e = next(iter(per.values()))
                name = _label(field, grp) if field else "**all**"
                lines.append(f"| {name} | {any_e['n']} | {_f(any_e['true_rate_median'])} | "
                             + onset_cells(per) + " |")
        lines += ["", f"Pink noise at {s['noise']['snr_db']:g} dB SNR (FLAC), onsets:", "",
                  "| family | condition | n | true /s | " + " | ".join(
                      f"{e} F (shifted) | {e} rate err" for e in ests) + " |",
                  "|---|---|---|---|" + "---|---|" * len(ests)]
        per_fc: dict[tuple, dict[str, dict]] = {}
        for e in s["noise"]["onsets"]:
            per_fc.setdefault((e["family"], e["condition"]), {})[e["estimator"]] = e
        for (fam, cond), per in per_fc.items():
            any_e = next(iter(per.values()))
            lines.append(f"| {_label('family', fam)} | {cond} | {any_e['n']} | "
                         f"{_f(any_e['true_rate_median'])} | " + onset_cells(per) + " |")
        if s["beats"]["overall"]:
            lines += ["", "Beat F (+-70 ms): " + ", ".join(
                f"{e['estimator']} {_f(e['beat_f'])}" for e in s["beats"]["overall"])
                + " (ours gives no beat times)"]
        key_ests = [e for e in ("ours", "essentia") if e in ests]
        lines += ["", "Key, MIREX weighted score (share correct; ours: kernels.key.key_of):",
                  "", "| group | n | " + " | ".join(key_ests) + " |",
                  "|---|---|" + "---|" * len(key_ests)]
        for field, tab in (("family", s["key"]["by_family"]),
                           ("encoding", s["key"]["by_encoding"]),
                           (None, s["key"]["overall"])):
            for grp, per in _by(tab, field).items():
                name = _label(field, grp) if field else "**all**"
                n = next(iter(per.values()))["n"]
                cells = [f"{_f(per[e]['score'])} ({_f(per[e]['correct'])})" if e in per
                         else "-" for e in key_ests]
                lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
        if s.get("pulse_clarity"):
            lines += ["", "Our pulse_clarity (FLAC median, 10th-90th percentile; median / "
                          "largest |change| FLAC -> MP3 and FLAC -> OGG):", "",
                      "| family | n | median | p10-p90 | MP3 change | OGG change |",
                      "|---|---|---|---|---|---|"]
            for e in s["pulse_clarity"]:
                lines.append(
                    f"| {_label('family', e['family'])} | {e['n']} | {_f(e['median'])} | "
                    f"{_f(e['p10'])}-{_f(e['p90'])} | {_f(e['mp3_abs_change_median'], '.3f')} / "
                    f"{_f(e['mp3_abs_change_max'], '.3f')} | "
                    f"{_f(e['ogg_abs_change_median'], '.3f')} / "
                    f"{_f(e['ogg_abs_change_max'], '.3f')} |")
    fof = report.get("fof")
    if fof and fof.get("summary"):
        fs = fof["summary"]
        lines += ["", f"## Frets-on-Fire songs ({fof['corpus']}): chart's main tempo", "",
                  "| song | chart | " + " | ".join(ests) + " |",
                  "|---|---|" + "---|" * len(ests)]
        for song in fs["songs"]:
            cells = [f"{song[e]['tempo_bpm']:.1f} ({song[e]['relation']})" if e in song else "-"
                     for e in ests]
            lines.append(f"| {Path(song['file']).name} | {song['chart_bpm']:g} | "
                         + " | ".join(cells) + " |")
        per = _by(fs["tempo"], None)["all"]
        lines.append("| **Acc1 / Acc2** | | " + " | ".join(
            f"{_f(per[e]['acc1'])} / {_f(per[e]['acc2'])}" if e in per else "-" for e in ests)
            + " |")
    lines += ["", f"Wall time {report['timing']['total_s']:.0f} s (render "
                  f"{report['timing']['render_s']:.0f} s, measure "
                  f"{report['timing']['measure_s']:.0f} s) on {report['settings']['jobs']} "
                  f"worker(s); failed files: {report['failed']}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _versions(essentia_status: str) -> dict[str, Any]:
    """Versions of the synthesiser, the soundfont and the peers, for ``machine``."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {"fluidsynth": audio.fluidsynth_version(),
                           "soundfont": audio.soundfont_id(), "essentia_status": essentia_status}
    for pkg in ("librosa", "mir_eval", "pretty_midi", "essentia", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _parser() -> argparse.ArgumentParser:
    p = common.parser(
        script=__file__, quiet=True,
        description="Ground-truth accuracy of the fingerprint's tempo, onsets, onset rate and "
                    "key on rendered MIDI clips and the Frets-on-Fire charts, beside librosa "
                    "and Essentia, scored with mir_eval.")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK,
                   help=f"folder of rendered clips, reused by later runs (default {DEFAULT_WORK})")
    p.add_argument("--corpus", type=Path, default=None,
                   help="corpus with tempo-truth.tsv (make_corpus.sh DIR small) for the "
                        f"Frets-on-Fire songs (default {DEFAULT_CORPUS} when it has one)")
    p.add_argument("--no-fof", action="store_true", help="skip the Frets-on-Fire songs")
    p.add_argument("--limit", type=int, default=0,
                   help="only the first N clips, families interleaved (0 = all)")
    p.add_argument("--per-family", type=int, default=24, help="clips per family (24; 9 families)")
    p.add_argument("--seconds", type=float, default=20.0,
                   help="seconds of music per clip (20; the file has 2 s more for the tails)")
    p.add_argument("--seed", type=int, default=0, help="the clips' seed (0)")
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                   help="worker processes (default: the usable cores)")
    p.add_argument("--no-librosa", action="store_true", help="skip librosa")
    p.add_argument("--no-essentia", action="store_true", help="skip Essentia even if installed")
    return p


def main(*, argv: list[str] | None = None) -> int:
    """Render what is missing, measure every file, write the report and the summary.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0; 1 when a file failed; 2 on a usage error.
    """
    args = _parser().parse_args(argv)
    if args.per_family < 1 or args.limit < 0 or args.jobs < 1 or args.seconds < 5:
        print("--per-family and --jobs must be >= 1, --limit >= 0, --seconds >= 5",
              file=sys.stderr)
        return 2
    corpus = args.corpus
    if corpus is None and not args.no_fof and (DEFAULT_CORPUS / "tempo-truth.tsv").is_file():
        corpus = DEFAULT_CORPUS
    if args.no_fof:
        corpus = None
    if corpus is not None and not (corpus / "tempo-truth.tsv").is_file():
        print(f"{corpus} has no tempo-truth.tsv (make it with ../shared/corpus/make_corpus.sh "
              f"{corpus} small)", file=sys.stderr)
        return 2
    work = args.work.expanduser().resolve()
    specs = plan_clips(per_family=args.per_family, limit=args.limit or None, seed=args.seed,
                       music_s=args.seconds, work=work)
    missing_tools = shutil.which("fluidsynth") is None or not audio.SOUNDFONT.is_file()
    if missing_tools:
        need = [s for s in specs if not Path(audio.clip_files(
            work=work, truth_id=f"{s['family']}-{s['index']:03d}",
            family=s["family"])["json"]).is_file()]
        if need:
            print(f"{len(need)} clips must be rendered and fluidsynth or {audio.SOUNDFONT} is "
                  "missing: apt-get install fluidsynth fluid-soundfont-gm", file=sys.stderr)
            return 2
    if args.no_essentia:
        essentia_status = "not run: --no-essentia"
    else:
        es, essentia_status = estimators.load_essentia()
        if es is None:
            print(f"# Essentia {essentia_status}", file=sys.stderr)
    use_essentia = essentia_status.startswith("available")
    use_librosa = not args.no_librosa
    import kernels

    t_start = time.monotonic()
    cpu0 = common.cpu_snapshot()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx,
                             initializer=estimators.init_worker,
                             initargs=(use_librosa, use_essentia)) as pool:
        t0 = time.monotonic()
        rendered = run_pool(fn=audio.render_clip, jobs=specs, pool=pool, label="render",
                            quiet=args.quiet)
        render_s = time.monotonic() - t0
        jobs = fof_jobs(corpus) if corpus is not None else []
        n_fof = len(jobs)
        jobs += clip_jobs(rendered, work=work)  # the long songs first, for the balance
        t0 = time.monotonic()
        rows = run_pool(fn=estimators.analyse, jobs=jobs, pool=pool, label="measure",
                        quiet=args.quiet)
        measure_s = time.monotonic() - t0
    total_s = time.monotonic() - t_start
    interference = common.other_cpu(start=cpu0, end=common.cpu_snapshot(), wall_s=total_s)

    failed = [{"file": r["file"], "error": r["error"]} for r in rows if r["error"]]
    ok = [r for r in rows if not r["error"]]
    fof_rows = [r for r in ok if r["set"] == "fof"]
    clip_rows = [r for r in ok if r["set"] == "rendered"]
    latency = apply_latency(clip_rows)
    for r in rows:
        r.pop("_arrays", None)
    ests = ["ours"] + (["librosa"] if use_librosa else []) + (["essentia"] if use_essentia
                                                              else [])
    est_seconds = {e: sum(r[e]["s"] for r in ok if e in r) for e in ests}
    report: dict[str, Any] = {
        **common.report_head(schema=SCHEMA, kernels=kernels, **_versions(essentia_status)),
        "threads": dict(common.SINGLE_THREAD_ENV),
        "settings": {
            "seed": args.seed, "per_family": args.per_family, "limit": args.limit,
            "music_s": args.seconds, "clip_s": args.seconds + 2.0, "jobs": args.jobs,
            "work": str(work), "corpus": str(corpus) if corpus else None,
            "tempo_tolerance": estimators.TEMPO_TOL,
            "tempo_acc2_factors": [name for name, _ in estimators.TEMPO_FACTORS],
            "onset_window_s": estimators.ONSET_WINDOW,
            "onset_merge_s": clips.ONSET_MERGE_S, "density_within": DENSITY_WITHIN,
            "encodings": audio.ENCODINGS, "noise_snr_db": audio.NOISE_SNR_DB,
            "noise_families": list(audio.NOISE_FAMILIES),
            "families": [{"name": f.name, "label": f.label, "meter": f.meter,
                          "bpm_range": list(f.bpm), "what": f.what} for f in clips.FAMILIES]},
        "estimators_run": ests,
        "estimators": {
            "ours": "engine.decode (open_audio, stream) into kernels.Analyzer(onset_times="
                    f"True), fingerprint version {kernels.FINGERPRINT_VERSION}: tempo_bpm, "
                    "pulse_clarity, transient_density and its onset times; the key from "
                    "kernels.key.key_of; no beat times",
            "librosa": "librosa.load (22.05 kHz mono), beat.beat_track, onset.onset_detect, "
                       "defaults" if use_librosa else "not run: --no-librosa",
            "essentia": "MonoLoader(44.1 kHz), RhythmExtractor2013 (multifeature), "
                        "KeyExtractor (bgate), OnsetRate" if use_essentia else essentia_status},
        "rendered": {
            "clips": len(rendered),
            "rendered_now": sum(not r["cached"] for r in rendered),
            "files": sum(1 for j in jobs if j["set"] == "rendered"),
            "onset_latency_ms": latency,
            "summary": summarise_rendered(clip_rows) if clip_rows else None,
            "rows": [r for r in rows if r["set"] == "rendered"]},
        "fof": {"corpus": str(corpus) if corpus else None, "songs": n_fof,
                "summary": summarise_fof(fof_rows) if fof_rows else None,
                "rows": [r for r in rows if r["set"] == "fof"]} if corpus else None,
        "timing": {"total_s": total_s, "render_s": render_s, "measure_s": measure_s,
                   "estimator_cpu_s": est_seconds},
        "interference": interference,
        "failed": len(failed),
        "failures": failed,
    }
    report = common.jsonable(report)
    summary = markdown(report)
    warning = common.interference_warning([("run", interference)])
    if warning:
        summary += "\n" + warning
    common.write_report(report=report, output=args.output, summary=summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
