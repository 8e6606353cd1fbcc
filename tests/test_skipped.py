"""What the scan skips as not audio: counted by extension in bounded memory (scan.SkipCounter),
told by scan(on_skip=...) for walked folders only, shown in engine-run's summary line and, with
-v, file by file; an explicitly named non-audio file stays a failed record (no mocks: real
files, links, FIFOs, and engine-run as a process)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import helpers as h
import numpy as np
import pytest
import soundfile as sf

from engine.run.report import RunStats, skipped_text
from engine.run.scan import (
    MAX_SKIP_EXTENSIONS,
    Candidate,
    ScanProblem,
    SkipCounter,
    SkipCounts,
    scan,
)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def told(inputs: list[Path], **kwargs: bool) -> tuple[list[tuple[str, str]], list[object]]:
    """(path, extension) for each on_skip call, and what the scan yielded."""
    calls: list[tuple[str, str]] = []
    items = list(scan([str(p) for p in inputs], on_skip=lambda p, e: calls.append((p, e)),
                      **kwargs))
    return calls, items


def counted(inputs: list[Path], **kwargs: object) -> SkipCounts:
    counter = SkipCounter(**kwargs)  # type: ignore[arg-type]
    for _ in scan([str(p) for p in inputs], on_skip=counter.add):
        pass
    return counter.counts()


# --------------------------------------------------------------------------------------------
# counting
# --------------------------------------------------------------------------------------------


def test_counts_by_lowercase_extension_none_and_dotfiles(tmp_path: Path) -> None:
    for name in ("a/cover.jpg", "b/Cover.JPG", "c/COVER.Jpg", "album.cue", "list.m3u", "README",
                 ".DS_Store", ".hidden.TXT", "trailing.", "x.tar.gz", "song.flac", "Song.M4A"):
        touch(tmp_path / name)
    got = counted([tmp_path])
    # "", ".DS_Store" and "trailing." have no extension; ".hidden.TXT" is a .txt
    assert got == SkipCounts(10, (("", 3), ("jpg", 3), ("cue", 1), ("gz", 1), ("m3u", 1),
                                  ("txt", 1)), 0)
    assert skipped_text(got) == (", skipped 10: (none) 3, .jpg 3, .cue 1, .gz 1, .m3u 1, "
                                 ".txt 1")


def test_at_most_64_extensions_are_told_apart_the_rest_is_other(tmp_path: Path) -> None:
    assert MAX_SKIP_EXTENSIONS == 64
    for i in range(70):
        touch(tmp_path / f"f.e{i:03d}")
    got = counted([tmp_path])  # the first 64 met (in the directory's order) are told apart
    assert got.total == 70 and len(got.by_extension) == 64 and got.other == 6
    assert {n for _, n in got.by_extension} == {1}
    assert {e for e, _ in got.by_extension} < {f"e{i:03d}" for i in range(70)}
    assert skipped_text(got).endswith(", +56 more extensions, other 6")

    # A hostile number of distinct extensions costs no more than 64 of them.
    counter = SkipCounter()
    for i in range(100_000):
        assert counter.add("/x", f"ext{i}")
    for _ in range(5):
        counter.add("/x", "EXT0")  # lowercased: the same as "ext0"
    big = counter.counts()
    assert len(big.by_extension) == 64 and big.other == 100_000 - 64
    assert big.by_extension[0] == ("ext0", 6) and big.total == 100_005
    # the rest of the kept ones tie at 1: by name
    assert [e for e, _ in big.by_extension[1:4]] == sorted(f"ext{i}" for i in range(1, 64))[:3]
    assert skipped_text(big) == (", skipped 100,005: .ext0 6, .ext1 1, .ext10 1, .ext11 1, "
                                 ".ext12 1, .ext13 1, .ext14 1, .ext15 1, +56 more extensions, "
                                 "other 99,936")

    small = SkipCounter(max_extensions=0)
    small.add("/x", "jpg")
    assert small.counts() == SkipCounts(1, (), 1)
    with pytest.raises(ValueError):
        SkipCounter(max_extensions=-1)


def test_a_closed_counter_counts_nothing_more() -> None:
    counter = SkipCounter()
    assert counter.add("/a.jpg", "jpg") and counter.total == 1
    final = counter.close()
    assert final == SkipCounts(1, (("jpg", 1),), 0)
    assert not counter.add("/b.jpg", "jpg")
    assert counter.counts() == final


# --------------------------------------------------------------------------------------------
# what scan tells, and what it does not
# --------------------------------------------------------------------------------------------


def test_only_regular_non_audio_files_of_walks_are_told(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    touch(lib / "a.flac")
    touch(lib / "cover.jpg")
    touch(lib / "sub" / "notes.txt")
    (lib / "empty.d").mkdir()  # a folder is no file
    os.mkfifo(lib / "pipe.txt")  # neither is a FIFO: skipped silently as before
    touch(tmp_path / "outside" / "art.png")
    os.symlink(tmp_path / "outside" / "art.png", lib / "link.png")  # followed: told
    os.symlink(tmp_path / "outside", lib / "linked_dir")  # its files are told
    os.symlink("nowhere.jpg", lib / "dead.jpg")  # a broken link is a problem, as before

    calls, items = told([lib])
    assert sorted(calls) == [
        (str(lib / "cover.jpg"), "jpg"),
        (str(lib / "link.png"), "png"),
        (str(lib / "linked_dir" / "art.png"), "png"),
        (str(lib / "sub" / "notes.txt"), "txt"),
    ]
    assert [i.path for i in items if isinstance(i, Candidate)] == [str(lib / "a.flac")]
    assert [(i.path, i.kind) for i in items if isinstance(i, ScanProblem)] == [
        (str(lib / "dead.jpg"), "broken_symlink")]

    # Links not followed are skipped as links, not told as non-audio files.
    calls, _ = told([lib], follow_symlinks=False)
    assert sorted(calls) == [(str(lib / "cover.jpg"), "jpg"), (str(lib / "sub" / "notes.txt"),
                                                               "txt")]


def test_repeats_and_explicit_files_are_not_told(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    touch(lib / "a.flac")
    touch(lib / "cover.jpg")
    touch(lib / "sub" / "b.cue")
    notes = touch(tmp_path / "notes.txt")

    # The folder twice, a folder inside it, a file of a walked folder: each told once.
    calls, _ = told([lib, lib, lib / "sub", lib / "cover.jpg", lib / "sub" / "b.cue"])
    assert sorted(calls) == [(str(lib / "cover.jpg"), "jpg"), (str(lib / "sub" / "b.cue"), "cue")]

    # Named explicitly (its folder not walked): a not_audio problem, never a skip.
    calls, items = told([notes, lib / "cover.jpg"])
    assert calls == []
    assert [(i.path, i.kind) for i in items if isinstance(i, ScanProblem)] == [
        (str(notes), "not_audio"), (str(lib / "cover.jpg"), "not_audio")]
    message = next(i for i in items if isinstance(i, ScanProblem)).message
    assert message == (f'{notes} is not an audio file: ".txt" is not an extension libsndfile '
                       "or FFmpeg decodes")


def test_ffmpeg_extensions_are_candidates_not_skips(tmp_path: Path) -> None:
    names = ["a.m4a", "b.MP4", "c.webm", "d.wv", "e.ape", "f.mp+", "g.mkv", "h.wma"]
    for name in names:
        touch(tmp_path / name)
    touch(tmp_path / "i.jpg")
    calls, items = told([tmp_path])
    assert [Path(i.path).name for i in items if isinstance(i, Candidate)] == names
    assert calls == [(str(tmp_path / "i.jpg"), "jpg")]


# --------------------------------------------------------------------------------------------
# the summary's text
# --------------------------------------------------------------------------------------------


def test_summary_text_format() -> None:
    assert skipped_text(SkipCounts()) == ""
    assert "skipped" not in RunStats().summary()
    counts = SkipCounts(1204, (("jpg", 1100), ("cue", 80), ("m3u", 24)), 0)
    assert skipped_text(counts) == ", skipped 1,204: .jpg 1,100, .cue 80, .m3u 24"
    stats = RunStats(tracks=1530, ok=1500, cached=20, failed=10, wall_s=61.2, skipped=counts)
    line = stats.summary()
    assert line.startswith("1,530 tracks: 1,500 ok, 20 cached, 10 failed in 61.2 s")
    assert line.endswith("MB (PSS), skipped 1,204: .jpg 1,100, .cue 80, .m3u 24")
    assert "\n" not in line

    nine = tuple((f"x{i}", 10 - i) for i in range(9))
    assert skipped_text(SkipCounts(54, nine, 0)) == (
        ", skipped 54: .x0 10, .x1 9, .x2 8, .x3 7, .x4 6, .x5 5, .x6 4, .x7 3, "
        "+1 more extension")
    # An extension is shown printable; the counter's order is kept.
    odd = SkipCounts(3, (("a\nb", 2), ("\udcff", 1)), 0)
    assert skipped_text(odd) == ", skipped 3: .a\\nb 2, .\\xff 1"
    assert skipped_text(SkipCounts(2, (("", 1),), 1)) == ", skipped 2: (none) 1, other 1"


# --------------------------------------------------------------------------------------------
# engine-run end to end
# --------------------------------------------------------------------------------------------


def _summary(stderr: str) -> str:
    (line,) = [x for x in stderr.splitlines() if " tracks: " in x]
    return line


def test_engine_run_summary_and_verbose_listing(tmp_path: Path) -> None:
    """One run (each costs seconds): the folder, a non-audio file named explicitly, and then
    on stdin find's list of the folder and all its files, as ``find LIB -print0 | engine-run -0
    -`` feeds them: the walk tells each file once, the names after it are not told again."""
    lib, db = tmp_path / "lib", tmp_path / "db"
    t = np.arange(11025) / 22050.0
    for i, name in enumerate(("a.wav", "disc1/b.wav", "disc2/c.flac")):
        (lib / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(lib / name, (0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t)).astype(np.float32),
                 22050)
    skipped = [touch(lib / n) for n in ("cover.jpg", "disc1/cover.jpg", "disc2/COVER.JPG",
                                        "a.cue", "b.m3u", "README", "liner\nnotes.txt")]
    notes = touch(tmp_path / "notes.txt", b"not audio")
    found = subprocess.run(["find", str(lib), "-print0"], capture_output=True, check=True).stdout

    run = h.engine_run(str(lib), str(notes), "-", "-0", "--db", str(db), "--cores", "1",
                       "--jsonl", "-v", stdin=found)
    assert run.rc == 1, run.stderr  # notes.txt failed
    (line,) = [x for x in run.stderr.splitlines() if " tracks: " in x]
    assert line.startswith("4 tracks: 3 ok, 0 cached, 1 failed in ")
    # notes.txt, named explicitly, is not counted; nor are the names find repeats
    assert line.endswith("MB (PSS), skipped 7: .jpg 3, (none) 1, .cue 1, .m3u 1, .txt 1")
    listed = [x.removeprefix("skipped (not audio): ") for x in run.stderr.splitlines()
              if x.startswith("skipped (not audio): ")]
    assert sorted(listed) == sorted(str(p).replace("\n", "\\n") for p in skipped)

    (failed,) = [r for r in run.records if r["status"] == "failed"]
    assert failed["path"] == str(notes) and failed["error"]["kind"] == "not_audio"
    assert failed["error"]["message"] == (f'{notes} is not an audio file: ".txt" is not an '
                                          "extension libsndfile or FFmpeg decodes")
    assert sorted(r["path"] for r in run.records if r["status"] == "ok") == sorted(
        str(p) for p in lib.rglob("*.*") if p.suffix in (".wav", ".flac"))
