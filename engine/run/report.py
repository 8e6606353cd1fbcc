"""What a run tells its user: JSONL records on stdout, and on stderr the progress bar, the memory
budget, problems and the closing summary.

stdout is a pipe more often than not (``engine-run --jsonl ... | head -1``): :class:`Report`
notices when its reader has gone (EPIPE) or stdout cannot be written (ENOSPC, EIO) and says so
through :attr:`Report.output_closed`; the supervisor then stops feeding and commits what
finished; the command exits 141 without a word for EPIPE, 5 with the reason otherwise
(engine/run/cli.py, NOTE [engine protocol]).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import psutil

from ..store import FingerprintRecord
from ..text import display, fingerprint_fields, jsonl_line
from .scan import SkipCounts

#: Seconds between two memory readings (each reads every worker's /proc smaps_rollup).
MEMORY_EVERY_S = 1.0
#: Extensions of skipped files the summary names before "+N more extensions".
SKIPPED_SHOWN = 8


@dataclass
class RunStats:
    """What a run did; ``summary()`` is the closing line. ``skipped``: the files the scan
    skipped as not audio (engine/run/scan.py, SkipCounter), set when the run ends."""

    tracks: int = 0
    ok: int = 0
    cached: int = 0
    moved: int = 0
    failed: int = 0
    retried: int = 0
    worker_deaths: int = 0
    audio_s: float = 0.0
    decode_s: float = 0.0
    analysis_s: float = 0.0
    wall_s: float = 0.0
    enqueued: int = 0
    max_queue_depth: int = 0
    max_pending: int = 0
    peak_memory_mb: float = 0.0
    interrupted: int = 0  # the signal number that stopped the run, 0 if none
    output_closed: bool = False  # stdout's reader went away (EPIPE): the run stopped early
    output_error: str = ""  # stdout could not be written (ENOSPC, EIO): the run stopped early
    deaths: list[str] = field(default_factory=list)
    skipped: SkipCounts = field(default_factory=SkipCounts)

    def summary(self) -> str:
        """The closing line, counts with thousands separators::

            1,530 tracks: 1,500 ok, 20 cached, 10 failed in 61.2 s (25.0 tracks/s, 412x
            realtime of new audio), peak memory 612 MB (PSS), skipped 1,204: .jpg 1,100,
            .cue 80, .m3u 24

        (one line); the part from "skipped" is :func:`skipped_text`, absent when nothing was.
        """
        rate = self.tracks / self.wall_s if self.wall_s > 0 else 0.0
        xrt = self.audio_s / self.wall_s if self.wall_s > 0 else 0.0
        moved = f" ({self.moved:,} moved)" if self.moved else ""
        return (f"{self.tracks:,} tracks: {self.ok:,} ok, {self.cached:,} cached{moved}, "
                f"{self.failed:,} failed"
                f" in {self.wall_s:.1f} s ({rate:.1f} tracks/s, {xrt:,.0f}x realtime of new "
                f"audio), peak memory {self.peak_memory_mb:,.0f} MB (PSS)"
                f"{skipped_text(self.skipped)}")


def skipped_text(skipped: SkipCounts, *, shown: int = SKIPPED_SHOWN) -> str:
    """The summary's account of the files skipped as not audio.

    Parameters
    ----------
    skipped : SkipCounts
    shown : int, default SKIPPED_SHOWN
        Extensions named at most.

    Returns
    -------
    str
        ``""`` when nothing was skipped; else ``", skipped N: "`` and the extensions by
        descending count (ties by name), each as ``.ext N`` (``(none) N`` for names without
        one), then ``+K more extensions`` for those not named, then ``other N`` for the files
        of extensions met after the counter's last one (engine/run/scan.py,
        MAX_SKIP_EXTENSIONS). Counts have thousands separators; extensions are shown with
        :func:`engine.text.display` (printable).
    """
    if not skipped.total:
        return ""
    parts = [f"{display('.' + ext) if ext else '(none)'} {n:,}"
             for ext, n in skipped.by_extension[:shown]]
    more = len(skipped.by_extension) - shown
    if more > 0:
        parts.append(f"+{more:,} more extension{'s' if more != 1 else ''}")
    if skipped.other:
        parts.append(f"other {skipped.other:,}")
    return f", skipped {skipped.total:,}: " + ", ".join(parts)


def memory_mb(pids: Iterable[int]) -> float:
    """This process and ``pids`` together, MB: the sum of their PSS.

    PSS charges each shared page to the processes that map it in equal parts, so the pages the
    forked workers share with the supervisor (the kernels, numpy) count once in the sum, where
    the sum of RSS would count them once per worker. Where PSS cannot be read, USS plus this
    process's shared memory once stands in.
    """
    total = 0
    for pid in (os.getpid(), *pids):
        with contextlib.suppress(psutil.Error, OSError, AttributeError):
            info = psutil.Process(pid).memory_full_info()
            pss = getattr(info, "pss", None)
            total += pss if pss is not None else info.uss + (
                info.shared if pid == os.getpid() else 0)
    return total / 2**20


class Report:
    """The run's voice (stdout records, stderr messages), kept apart from its logic.

    Parameters
    ----------
    stats : RunStats
        Updated by the supervisor; shown here.
    out, err : TextIO
        stdout (``--jsonl`` records) and stderr (everything else).
    jsonl, quiet, progress : bool
        ``--jsonl``, ``-q``, and whether stderr shows a progress bar (a terminal).
    """

    def __init__(self, stats: RunStats, *, out: TextIO | None = None,
                 err: TextIO | None = None, jsonl: bool = False, quiet: bool = False,
                 progress: bool = False) -> None:
        self.stats = stats
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.jsonl = jsonl
        self.quiet = quiet
        self._want_bar = progress and not quiet
        self._bar: Any = None
        self._t_start = time.monotonic()
        self._last_memory = 0.0
        self._memory = 0.0
        self._held: list[str] = []  # records of the batch not yet committed
        self.output_closed = False
        self._log_lock = threading.Lock()

    # -- records -----------------------------------------------------------------------------

    def record(self, path: str, track_id: int | None, status: str, *,
               fp: FingerprintRecord | None = None,
               error: tuple[str, str] | None = None, decoder: str = "",
               note: str = "") -> None:
        """One ``--jsonl`` record, held until :meth:`release` (nothing without --jsonl, or once
        the reader has gone). ``decoder`` and ``note`` (engine.run.messages.Done) are given for
        a fresh fingerprint; a cached one says null (the store does not keep them)."""
        if not self.jsonl or self.output_closed:
            return
        rec = {
            "path": path,
            "track_id": track_id,
            "status": status,
            **(fingerprint_fields(fp.values) if fp else {"fingerprint": None, "key": None}),
            "duration_s": fp.duration_s if fp else None,
            "sample_rate": fp.sample_rate if fp else None,
            "channels": fp.channels if fp else None,
            "decoder": decoder or None,
            "note": note or None,
            "error": {"kind": error[0], "message": error[1]} if error else None,
        }
        self._held.append(jsonl_line(rec))

    def release(self) -> None:
        """Write and flush the held records: called after each commit, so that what is on
        stdout is in the store, and stdout's buffer is empty whenever a worker is forked
        (multiprocessing flushes it in the parent before every fork)."""
        held, self._held = self._held, []
        if self.output_closed or not held:
            return
        try:
            self.out.write("".join(held))
            self.out.flush()
        except OSError as e:
            self._output_failed(e)
        except ValueError:  # closed by the caller
            pass

    def discard(self) -> None:
        """Drop the held records: their batch was not committed (the store failed)."""
        self._held = []

    def _output_failed(self, e: OSError) -> None:
        """stdout is gone (EPIPE: quietly) or full (ENOSPC, EIO: said by the CLI)."""
        self.output_closed = True
        if isinstance(e, BrokenPipeError):
            self.stats.output_closed = True
        else:
            self.stats.output_error = e.strerror or str(e)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            # the interpreter's own flush at exit must not complain about stdout either
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.out.fileno())

    # -- messages ----------------------------------------------------------------------------

    def log(self, msg: str) -> None:
        """A line on stderr, above the progress bar; best effort (a closed or full stderr
        loses the message, never the run)."""
        with self._log_lock, contextlib.suppress(OSError, ValueError):  # -v: the scan thread too
            if self._bar is not None:
                self._bar.write(msg, file=self.err)
            else:
                self.err.write(msg + "\n")
                self.err.flush()

    def problem(self, message: str) -> None:
        """A failure the user should see now (never with --jsonl, which carries it, or -q)."""
        if not self.jsonl and not self.quiet:
            self.log(message)

    def budget(self, line: str | None) -> None:
        if line is not None and not self.quiet:
            self.log(line)

    def summary(self) -> None:
        if not self.quiet:
            self.log(self.stats.summary())

    # -- progress ----------------------------------------------------------------------------

    def open(self) -> None:
        if self._want_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=0, file=self.err, unit="track", dynamic_ncols=True,
                             desc="fingerprinting")

    def refresh(self, *, scanned: int, queue: int, queue_size: int,
                pids: Callable[[], list[int]]) -> None:
        """Redraw the bar; read the memory of this process and ``pids()`` at most once per
        :data:`MEMORY_EVERY_S`."""
        now = time.monotonic()
        if now - self._last_memory >= MEMORY_EVERY_S:
            self._last_memory = now
            self._memory = memory_mb(pids())
            self.stats.peak_memory_mb = max(self.stats.peak_memory_mb, self._memory)
            if self._bar is not None:
                elapsed = max(1e-9, now - self._t_start)
                self._bar.set_postfix_str(
                    f"{self.stats.audio_s / elapsed:.0f}x rt, failed {self.stats.failed}, "
                    f"queue {queue}/{queue_size}, memory {self._memory:.0f} MB",
                    refresh=False)
        if self._bar is not None:
            self._bar.total = scanned
            self._bar.n = self.stats.tracks
            self._bar.refresh()

    def close(self, *, scanned: int) -> None:
        self.stats.peak_memory_mb = max(self.stats.peak_memory_mb, memory_mb([]))
        if self._bar is not None:
            self._bar.total = scanned
            self._bar.n = self.stats.tracks
            self._bar.close()
            self._bar = None
