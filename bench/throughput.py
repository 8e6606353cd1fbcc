"""engine-run throughput against the decoder's own limit, at 1..N cores; JSON out.

Usage::

    python bench/throughput.py CORPUS_DIR [--cores 1 2] [--repeats 3] [-o out.json] [--png x.png]

For each core count: a fresh store, ``engine-run --cores N -q CORPUS_DIR`` in a subprocess,
wall time measured around it (this includes start-up: interpreter, kernel cache load, fork).
In the same run, decode-only: every file decoded with soundfile into one preallocated float32
buffer, nothing else, one process. Reported, as medians of the repeats:

- ``x_realtime``: audio seconds / wall seconds;
- ``per_core_ratio_to_decode``: (x-realtime / cores) / decode-only x-realtime, the fraction
  of the decoder's single-core speed each core keeps end to end;
- ``scaling``: x-realtime at N cores / x-realtime at 1 core.

Decode-only and the engine runs are interleaved within each repeat so both see the same page
cache state.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import platform
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
    ax.plot(cores, xrt, "o-", label="engine-run, end to end")
    ax.plot(cores, [xrt[0] * c for c in cores], "--", color="grey", label="ideal scaling")
    ax.plot(cores, [dec * c for c in cores], ":", color="black",
            label="decode-only x cores (the limit)")
    ax.plot(cores, [0.45 * dec * c for c in cores], "-.", color="tab:red",
            label="goal: 0.45 x decode-only per core")
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
    # warm the kernel cache and the page cache once
    with tempfile.TemporaryDirectory() as tmp:
        engine_wall(args.corpus, 1, Path(tmp))
        decode_s: list[float] = []
        walls: dict[int, list[float]] = {c: [] for c in args.cores}
        audio = 0.0
        for r in range(args.repeats):
            d, audio = decode_corpus(files)
            decode_s.append(d)
            for c in args.cores:
                walls[c].append(engine_wall(args.corpus, c, Path(tmp)))
            print(f"repeat {r + 1}: decode {d:.2f} s, " + ", ".join(
                f"{c} cores {walls[c][-1]:.2f} s" for c in args.cores), file=sys.stderr)
    dec = common.median(decode_s)
    dec_xrt = audio / dec
    rows = []
    base = None
    for c in args.cores:
        w = common.median(walls[c])
        xrt = audio / w
        base = base or xrt
        rows.append({"cores": c, "wall_s": w, "walls_s": walls[c], "x_realtime": xrt,
                     "tracks_per_s": len(files) / w,
                     "per_core_ratio_to_decode": xrt / c / dec_xrt, "scaling": xrt / base,
                     "scaling_efficiency": xrt / base / c})
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": common.cpu_model(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "git_commit": common.git_commit()},
        "corpus": {"path": str(args.corpus), "files": len(files), "audio_s": audio},
        "decode_only": {"wall_s": dec, "walls_s": decode_s, "x_realtime": dec_xrt},
        "engine": rows,
        "repeats": args.repeats,
    }
    if args.png:
        plot(result, args.png)
    summary = "\n".join(
        f"{row['cores']} cores: {row['x_realtime']:.0f}x realtime, per core "
        f"{row['per_core_ratio_to_decode']:.2f} x decode-only ({dec_xrt:.0f}x), scaling "
        f"{row['scaling']:.2f}" for row in rows)
    common.write_report(report=result, output=args.output, summary=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
