"""engine-run throughput against the decoder's own limit, at 1..N cores, start-up apart; JSON out.

Usage::

    python bench/throughput.py CORPUS_DIR [--cores 1 2] [--repeats 3] [-o out.json] [--png x.png]

For each core count: a fresh store, ``engine-run --cores N -q CORPUS_DIR`` in a subprocess,
wall time measured around it (this includes start-up: interpreter, kernel cache load, fork).
Start-up is measured apart in every repeat: the same ``engine-run --cores N`` on a 1 s FLAC
into a fresh store. In the same run, decode-only: every file decoded with soundfile into one
preallocated float32 buffer, nothing else, one process. Reported for each figure as the median
[min-max] over the repeats, each repeat's figures taken from that repeat's own runs:

- ``x_realtime``: audio seconds / wall seconds, whole process;
- per audio: audio seconds / (wall seconds - start-up seconds), start-up apart;
- ``per_core_ratio_to_decode``: (x-realtime / cores) / decode-only x-realtime, the fraction
  of the decoder's single-core speed each core keeps end to end (whole, and per audio);
- ``scaling``: x-realtime at N cores / x-realtime at the first core count (whole, per audio).

Decode-only, the start-up runs and the engine runs are interleaved within each repeat (in an
order rotated from repeat to repeat, :func:`common.round_order`), so all see the same page
cache state and the same share of the machine's noise. The engine runs keep their bytecode
(:func:`common.use_bytecode_cache`), as an installed package does. The top-level ``x_realtime``,
``per_core_ratio_to_decode`` and ``scaling`` of each row are, as before, from the medians of
the wall times.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from engine.decode import DEFAULT_BLOCK_FRAMES


def decode_corpus(files: list[Path], block: int = DEFAULT_BLOCK_FRAMES) -> tuple[float, float]:
    """Decode every file once, nothing else (:func:`common.decode_only`).

    Parameters
    ----------
    files : list of Path
        Audio files.
    block : int
        Frames per block; one buffer per channel count, reused.

    Returns
    -------
    seconds : float
        Wall time of the decoding, summed over the files.
    audio_s : float
        Seconds of audio decoded.
    """
    buffers: dict[int, np.ndarray] = {}
    seconds = audio = 0.0
    for p in files:
        info = sf.info(str(p))
        buf = buffers.setdefault(info.channels,
                                 np.empty((block, info.channels), dtype=np.float32))
        s, _ = common.decode_only(path=p, buffer=buf)
        seconds += s
        audio += info.frames / info.samplerate
    return seconds, audio


def engine_wall(corpus: Path, cores: int, workdir: Path) -> float:
    """Wall time of ``engine-run --cores N -q CORPUS`` into a fresh store under ``workdir``."""
    return common.time_engine_run(corpus=corpus, cores=cores, db=workdir / f"db-{cores}")


def startup_wall(probe: Path, cores: int, workdir: Path) -> float:
    """Wall time of ``engine-run --cores N -q PROBE`` (the 1 s file) into a fresh store."""
    return common.time_engine_run(corpus=probe, cores=cores, db=workdir / f"db-start-{cores}")


def per_repeat(*, audio: float, tracks: int, cores: list[int], decode_s: list[float],
               walls: dict[int, list[float]], startups: dict[int, list[float]],
               ) -> dict[int, dict[str, dict[str, list[float]]]]:
    """Each repeat's figures from that repeat's own runs: whole process and per audio.

    Parameters
    ----------
    audio : float
        Seconds of audio in the corpus.
    tracks : int
        Files in the corpus.
    cores : list of int
        The core counts, the first being the reference of ``scaling``.
    decode_s : list of float
        Decode-only seconds per repeat.
    walls, startups : dict
        Per core count, engine-run's wall seconds on the corpus, and on the 1 s probe, per
        repeat.

    Returns
    -------
    dict
        Per core count: ``whole`` and ``per_audio``, each ``wall_s``, ``x_realtime``,
        ``tracks_per_s``, ``per_core_ratio_to_decode``, ``scaling`` and ``scaling_efficiency``
        as lists over the repeats.
    """
    out: dict[int, dict[str, dict[str, list[float]]]] = {}
    for kind in ("whole", "per_audio"):
        xrt = {}
        for c in cores:
            wall = [w - (s if kind == "per_audio" else 0.0)
                    for w, s in zip(walls[c], startups[c], strict=True)]
            xrt[c] = [audio / w if w > 0 else float("nan") for w in wall]
            out.setdefault(c, {})[kind] = {
                "wall_s": wall,
                "x_realtime": xrt[c],
                "tracks_per_s": [tracks / w if w > 0 else float("nan") for w in wall],
                "per_core_ratio_to_decode": [x / c / (audio / d)
                                             for x, d in zip(xrt[c], decode_s, strict=True)],
            }
        for c in cores:
            scaling = [x / b for x, b in zip(xrt[c], xrt[cores[0]], strict=True)]
            out[c][kind]["scaling"] = scaling
            out[c][kind]["scaling_efficiency"] = [x / c for x in scaling]
    return out


def plot(result: dict[str, Any], png: Path) -> None:
    """x-realtime per core count against the ideal (1 core x N) and the decode-only limit.

    Parameters
    ----------
    result : dict
        The report :func:`main` writes.
    png : Path
        The image to write (its folder is created).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["engine"]
    cores = [r["cores"] for r in rows]
    xrt = [r["x_realtime"] for r in rows]
    dec = result["decode_only"]["x_realtime"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.plot(cores, xrt, "o-", label="engine-run, end to end (whole process)")
    if all("per_audio" in r for r in rows):
        pa = [r["per_audio"]["x_realtime"] for r in rows]
        ax.errorbar(cores, [p["median"] for p in pa],
                    yerr=[[p["median"] - p["min"] for p in pa],
                          [p["max"] - p["median"] for p in pa]],
                    fmt="s-", capsize=3, color="tab:green",
                    label="per audio (start-up apart), median [min-max]")
        for c, r in zip(cores, rows, strict=True):
            ax.annotate(f"{r['per_audio']['x_realtime']['median']:.0f}x "
                        f"({r['per_audio']['per_core_ratio_to_decode']['median']:.2f})",
                        (c, r["per_audio"]["x_realtime"]["median"]), textcoords="offset points",
                        xytext=(6, 6), fontsize=8, color="tab:green")
    ax.plot(cores, [xrt[0] * c for c in cores], "--", color="grey", label="ideal scaling")
    ax.plot(cores, [dec * c for c in cores], ":", color="black",
            label="decode-only x cores (the limit)")
    ax.plot(cores, [0.5 * dec * c for c in cores], "-.", color="tab:red",
            label="goal (issue 15): 0.5 x decode-only per core, per audio")
    for c, x, r in zip(cores, xrt, rows, strict=True):
        ax.annotate(f"{x:.0f}x ({r['per_core_ratio_to_decode']:.2f})", (c, x),
                    textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax.set_xlabel("cores")
    ax.set_ylabel("x realtime")
    ax.set_xticks(cores)
    corpus = result["corpus"]
    ax.set_title(f"{Path(corpus['path']).name}: {corpus['files']} files, "
                 f"{corpus['audio_s'] / 60:.0f} min ({result['date']})", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)


def human_summary(result: dict[str, Any]) -> str:
    """The table on stderr: every figure as median [min-max] over the repeats."""
    f = common.fmt_spread
    dec = result["decode_only"]
    lines = [f"{result['corpus']['files']} files, {result['corpus']['audio_s'] / 60:.1f} min; "
             f"{result['repeats']} interleaved repeats, median [min-max]; decode-only "
             f"{f(dec['x_realtime_spread'], '.0f')}x realtime (one process)",
             "| cores | wall s | start-up s | x-realtime, whole | x-realtime, per audio | "
             "per core / decode-only, whole | per audio | scaling, whole | per audio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["engine"]:
        w, a = r["whole"], r["per_audio"]
        lines.append(
            f"| {r['cores']} | {f(w['wall_s'])} | {f(r['startup'])} | "
            f"{f(w['x_realtime'], '.0f')} | {f(a['x_realtime'], '.0f')} | "
            f"{f(w['per_core_ratio_to_decode'])} | {f(a['per_core_ratio_to_decode'])} | "
            f"{f(w['scaling'])} | {f(a['scaling'])} |")
    inter = result["interference"]
    warning = common.interference_warning(
        [(f"repeat {i + 1}", x) for i, x in enumerate(inter["repeats"])])
    lines.append(f"other processes used {inter['other_cpu_share_of_wall']:.0%} of a core "
                 f"over the run" + (f"; {warning}" if warning else ""))
    if result["machine"].get("uncommitted_engine_edits"):
        lines.append("uncommitted engine edits measured: " + ", ".join(
            x.strip() for x in result["machine"]["uncommitted_engine_edits"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the throughput bench from the command line; returns the exit status (2: no audio)."""
    ap = common.parser(script=__file__, description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--png", type=Path, help="also plot x-realtime and scaling (matplotlib)")
    args = ap.parse_args(argv)
    files = common.find_audio(root=args.corpus)
    if not files:
        print(f"no audio files under {args.corpus}", file=sys.stderr)
        return 2
    # warm the kernel cache and the page cache once, and the start-up probe
    started = time.perf_counter()
    cpu_start = common.cpu_snapshot()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        bytecode = common.use_bytecode_cache(directory=Path(tmp) / "pycache")
        probe = Path(tmp) / "probe-1s.flac"
        probe_s = float(common.write_music_flac(probe, 1.0)["seconds"])
        engine_wall(args.corpus, 1, Path(tmp))
        for c in args.cores:
            startup_wall(probe, c, Path(tmp))
        decode_s: list[float] = []
        walls: dict[int, list[float]] = {c: [] for c in args.cores}
        startups: dict[int, list[float]] = {c: [] for c in args.cores}
        audio = 0.0
        steps = [("decode", 0)] + [(kind, c) for c in args.cores
                                   for kind in ("startup", "engine")]
        order = []
        repeats_load = []
        for r in range(args.repeats):
            t_rep, cpu0 = time.perf_counter(), common.cpu_snapshot()
            seq = common.round_order(steps, r)
            order.append([kind if kind == "decode" else f"{kind}-{c}" for kind, c in seq])
            for kind, c in seq:
                if kind == "decode":
                    d, audio = decode_corpus(files)
                    decode_s.append(d)
                elif kind == "startup":
                    startups[c].append(startup_wall(probe, c, Path(tmp)))
                else:
                    walls[c].append(engine_wall(args.corpus, c, Path(tmp)))
            common.round_load(
                repeats_load, label=f"repeat {r + 1}", cpu_start=cpu0, t_start=t_rep, log=True,
                tail=f"; decode {decode_s[-1]:.2f} s, " + ", ".join(
                    f"{c} cores {walls[c][-1]:.2f} s (start-up {startups[c][-1]:.2f})"
                    for c in args.cores))
    dec = common.median(decode_s)
    dec_xrt = audio / dec
    figures = per_repeat(audio=audio, tracks=len(files), cores=args.cores, decode_s=decode_s,
                         walls=walls, startups=startups)
    rows = []
    base = None
    for c in args.cores:
        w = common.median(walls[c])
        xrt = audio / w
        base = base or xrt
        rows.append({"cores": c, "wall_s": w, "walls_s": walls[c], "x_realtime": xrt,
                     "tracks_per_s": len(files) / w,
                     "per_core_ratio_to_decode": xrt / c / dec_xrt, "scaling": xrt / base,
                     "scaling_efficiency": xrt / base / c,
                     "startup_s": common.median(startups[c]), "startups_s": startups[c],
                     "startup": common.spread(startups[c]),
                     **{kind: {k: {**common.spread(v), "runs": v} for k, v in f.items()}
                        for kind, f in figures[c].items()}})
    import kernels

    result = {
        **common.report_head(schema="fingerprint-engine/bench-throughput/2", kernels=kernels,
                             uncommitted_engine_edits=common.git_uncommitted()),
        "corpus": {"path": str(args.corpus), "files": len(files), "audio_s": audio},
        "decode_only": {"wall_s": dec, "walls_s": decode_s, "x_realtime": dec_xrt,
                        "x_realtime_spread": common.spread([audio / d for d in decode_s])},
        "startup_probe": {"seconds": probe_s, "file": "44.1 kHz stereo 16-bit FLAC, music-like",
                          "command": "engine-run --cores N -q --db FRESH probe.flac",
                          "note": "per audio = audio_s / (wall_s - startup_s), both from the "
                                  "same repeat; the probe's 1 s of audio counts as start-up"},
        "engine": rows,
        "repeats": args.repeats,
        "bytecode": bytecode,
        "statistic": "median, min and max over the repeats of each repeat's figure; "
                     "top-level x_realtime, per_core_ratio_to_decode and scaling of a row: "
                     "from the median wall time",
        "order": order,
        "bench_wall_s": time.perf_counter() - started,
        "interference": common.run_interference(cpu_start=cpu_start, started=started,
                                                load_start=load_start, repeats=repeats_load),
    }
    if args.png:
        plot(result, args.png)
    summary = human_summary(result)
    common.write_report(report=result, output=args.output, summary=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
