"""engine.run.scan: the input scanner, on real files, links, FIFOs and pipes in tmp_path (no
mocks)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

import pytest

from engine.run.scan import (
    AUDIO_EXTENSIONS,
    MAX_ENTRY_BYTES,
    Candidate,
    ScanProblem,
    is_audio_name,
    read_paths,
    scan,
)

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def touch(path: Path | bytes, data: bytes = b"RIFF") -> None:
    """Create a small file (``bytes`` paths allow names that are not UTF-8)."""
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def run(inputs: Iterable[str | Path], **kwargs: bool) -> list[Candidate | ScanProblem]:
    """Scan, with a safety cap so that a broken loop detection fails instead of hanging."""
    items = list(islice(scan((str(p) for p in inputs), **kwargs), 10_000))
    assert len(items) < 10_000, "scan did not terminate"
    return items


def cands(items: Iterable[Candidate | ScanProblem]) -> list[str]:
    return [i.path for i in items if isinstance(i, Candidate)]


def probs(items: Iterable[Candidate | ScanProblem]) -> list[tuple[str, str]]:
    return [(i.path, i.kind) for i in items if isinstance(i, ScanProblem)]


def rel(paths: Iterable[str], root: Path) -> list[str]:
    return [os.path.relpath(p, root) for p in paths]


# --------------------------------------------------------------------------------------------
# extensions, order, nesting
# --------------------------------------------------------------------------------------------


def test_audio_extensions_one_lowercase_frozenset_matched_case_insensitively() -> None:
    libsndfile = (
        "wav flac ogg oga opus mp3 aiff aif aifc w64 caf au snd rf64 wve sd2 voc ircam htk sf "
        "nist mat4 mat5 pvf xi paf svx mpc"
    )
    ffmpeg = (
        "m4a m4b m4p mp4 m4v mov 3gp aac adts wma asf ape wv tta ac3 ec3 eac3 dts mka mkv webm "
        "weba avi mp2 mpga mpp mp+ amr"
    )
    expected = set(libsndfile.split()) | set(ffmpeg.split())
    assert isinstance(AUDIO_EXTENSIONS, frozenset)
    assert expected == AUDIO_EXTENSIONS
    for ext in expected:
        assert ext == ext.lower() and not ext.startswith(".")
        assert is_audio_name(f"track.{ext}")
        assert is_audio_name(f"TRACK.{ext.upper()}")
        assert is_audio_name(f"t.{ext.capitalize()}")
    for name in ("x.txt", "flac", ".flac", "x.flac.part", "x.", "dir/.wav", "x.jpg", "x.cue",
                 "x.m3u", "x.mp4.part", ".m4a"):
        assert not is_audio_name(name), name
    assert is_audio_name("x.MP4") and is_audio_name("Album.m4a") and is_audio_name("a.b.Mp+")
    assert is_audio_name(".hidden.flac")
    assert is_audio_name("/a/b.c/X.FLAC")


def test_nested_folders_mixed_extensions_sorted_and_deterministic(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    for name in (
        "B.wav",
        "a/X.FLAC",
        "a/b.txt",
        "a/c.Mp3",
        "a/sub/z.ogg",
        "a/sub/cover.jpg",
        "a/sub/deeper/01 intro.aiff",
        "a.flac",
        "notes.md",
        "zz.opus",
        "m/Ä.oga",
        "m/A.wav",
        "m/a.wav",
    ):
        touch(lib / name)
    (lib / "c").mkdir()  # an empty folder

    items = run([lib])
    assert probs(items) == []  # non-audio files inside folders are skipped (told to on_skip)
    expected = [
        "B.wav",
        "a/X.FLAC",
        "a/c.Mp3",
        "a/sub/deeper/01 intro.aiff",
        "a/sub/z.ogg",
        "a.flac",
        "m/A.wav",
        "m/a.wav",
        "m/Ä.oga",
        "zz.opus",
    ]
    assert rel(cands(items), lib) == expected
    assert run([lib]) == items  # deterministic, item by item
    c = next(i for i in items if isinstance(i, Candidate))
    st = os.stat(lib / "B.wav")
    assert (c.size, c.mtime_ns, c.dev, c.ino) == (4, st.st_mtime_ns, st.st_dev, st.st_ino)


def test_inputs_are_made_absolute_and_normalised_but_not_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path / "real" / "a.flac")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    monkeypatch.chdir(tmp_path)
    items = run(["alias/./a.flac"])
    assert cands(items) == [str(tmp_path / "alias" / "a.flac")]
    items = run(["real/../alias/"])
    assert cands(items) == [str(tmp_path / "alias" / "a.flac")]


# --------------------------------------------------------------------------------------------
# symbolic links
# --------------------------------------------------------------------------------------------


def test_symlinked_file_and_folder_are_followed_and_keep_the_link_path(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    touch(lib / "real" / "a.flac")
    touch(tmp_path / "outside" / "ext.wav", b"123456")
    touch(tmp_path / "outside_dir" / "o.aiff")
    touch(tmp_path / "outside_dir" / "skip.txt")
    os.symlink("../outside/ext.wav", lib / "link_file.wav")  # relative target
    os.symlink(tmp_path / "outside_dir", lib / "link_dir")  # absolute target
    os.symlink("../outside/ext.wav", lib / "link_named.txt")  # the link's name decides

    items = run([lib])
    assert probs(items) == []
    assert rel(cands(items), lib) == ["link_dir/o.aiff", "link_file.wav", "real/a.flac"]
    linked = next(i for i in items if isinstance(i, Candidate) and i.path.endswith(".wav"))
    target = os.stat(tmp_path / "outside" / "ext.wav")
    assert (linked.size, linked.ino) == (6, target.st_ino)  # the target's metadata

    # Not following: links met inside the walk are skipped silently ...
    items = run([lib], follow_symlinks=False)
    assert rel(cands(items), lib) == ["real/a.flac"]
    assert probs(items) == []
    # ... but inputs named explicitly are always followed (like find -H).
    items = run([lib / "link_file.wav", lib / "link_dir"], follow_symlinks=False)
    assert rel(cands(items), lib) == ["link_file.wav", "link_dir/o.aiff"]


def test_file_reached_twice_through_links_or_inputs_is_yielded_once(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    touch(tmp_path / "t.flac")
    touch(lib / "own.mp3")
    os.symlink(tmp_path / "t.flac", lib / "one.flac")
    os.symlink(tmp_path / "t.flac", lib / "two.flac")
    (tmp_path / "d").mkdir()
    touch(tmp_path / "d" / "in_d.wav")
    os.symlink(tmp_path / "d", lib / "d1")
    os.symlink(tmp_path / "d", lib / "d2")

    items = run([lib])
    assert probs(items) == []  # a folder reached twice (not a loop) is skipped silently
    assert rel(cands(items), lib) == ["d1/in_d.wav", "one.flac", "own.mp3"]

    f = tmp_path / "t.flac"
    assert cands(run([f, f])) == [str(f)]
    assert cands(run([f, lib / "one.flac", tmp_path / ".." / tmp_path.name / "t.flac"])) == [str(f)]
    # The same folder twice, or a folder inside one already walked: walked once.
    assert rel(cands(run([lib, lib, lib / "d1", tmp_path / "d"])), lib) == rel(cands(items), lib)
    # An explicit file whose folder was walked earlier or later: once.
    assert rel(cands(run([lib, lib / "own.mp3"])), lib) == rel(cands(items), lib)
    assert rel(cands(run([lib / "own.mp3", lib])), lib) == [
        "own.mp3",
        "d1/in_d.wav",
        "one.flac",
    ]


def test_hard_links_met_in_a_plain_walk_are_separate_files(tmp_path: Path) -> None:
    """Documented memory choice: plain walked files are not remembered, so each link counts."""
    touch(tmp_path / "a.flac")
    os.link(tmp_path / "a.flac", tmp_path / "b.flac")
    assert rel(cands(run([tmp_path])), tmp_path) == ["a.flac", "b.flac"]
    # Named explicitly they are the same file.
    assert rel(cands(run([tmp_path / "a.flac", tmp_path / "b.flac"])), tmp_path) == ["a.flac"]


def test_symlink_loops_terminate_and_are_reported_once(tmp_path: Path) -> None:
    a = tmp_path / "a"
    touch(a / "f.flac")
    touch(a / "b" / "g.wav")
    os.symlink(a, a / "link")  # a/link -> a
    os.symlink("../..", a / "b" / "up")  # a/b/up -> tmp_path, an ancestor of the input
    os.symlink("self.flac", a / "self.flac")  # a link to itself
    os.symlink("pong", a / "ping")
    os.symlink("ping", a / "pong")

    items = run([a])
    assert rel(cands(items), a) == ["b/g.wav", "f.flac"]
    assert sorted(rel((p for p, _ in probs(items)), a)) == [
        "b/up/a",  # b/up -> tmp_path, whose "a" is the input itself: an ancestor
        "link",
        "ping",
        "pong",
        "self.flac",
    ]
    assert {k for _, k in probs(items)} == {"symlink_loop"}
    loop = next(i for i in items if isinstance(i, ScanProblem) and i.path.endswith("link"))
    assert str(a / "link") in loop.message and "loop" in loop.message

    # Starting from a/b, tmp_path and a are not ancestors yet: they are walked, once.
    items = run([a / "b"])
    assert rel(cands(items), a) == ["b/g.wav", "b/up/a/f.flac"]
    assert sorted(rel((p for p, _ in probs(items)), a)) == [
        "b/up/a/b",  # the walk meets a/b again through tmp_path/a: an ancestor of b/up
        "b/up/a/link",
        "b/up/a/ping",
        "b/up/a/pong",
        "b/up/a/self.flac",
    ]

    assert probs(run([a / "self.flac"])) == [(str(a / "self.flac"), "symlink_loop")]


# --------------------------------------------------------------------------------------------
# problems
# --------------------------------------------------------------------------------------------


def test_broken_symlink_and_missing_path_are_problems_not_errors(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    touch(lib / "ok.flac")
    os.symlink("gone.flac", lib / "dead.flac")
    os.symlink(tmp_path / "nowhere", lib / "dead_dir")

    items = run([lib, tmp_path / "missing.flac", lib / "dead.flac", lib / "ok.flac" / "x"])
    assert cands(items) == [str(lib / "ok.flac")]
    assert probs(items) == [
        (str(lib / "dead.flac"), "broken_symlink"),
        (str(lib / "dead_dir"), "broken_symlink"),
        (str(tmp_path / "missing.flac"), "missing"),
        (str(lib / "dead.flac"), "broken_symlink"),
        (str(lib / "ok.flac" / "x"), "missing"),
    ]
    problems = [i for i in items if isinstance(i, ScanProblem)]
    assert problems[0].message == f"{lib / 'dead.flac'} is a broken symbolic link (to gone.flac)"
    assert problems[2].message == f"{tmp_path / 'missing.flac'} does not exist"


def test_explicit_non_audio_special_files_and_odd_inputs(tmp_path: Path) -> None:
    touch(tmp_path / "notes.txt")
    touch(tmp_path / "README")
    os.mkfifo(tmp_path / "pipe.flac")  # stat never opens it, so this cannot block
    os.mkfifo(tmp_path / "pipe.txt")

    items = run(
        [tmp_path / "notes.txt", tmp_path / "README", tmp_path / "pipe.flac", "", "a\0b.flac"]
    )
    assert probs(items) == [
        (str(tmp_path / "notes.txt"), "not_audio"),
        (str(tmp_path / "README"), "not_audio"),
        (str(tmp_path / "pipe.flac"), "not_a_file"),
        ("", "missing"),
        (os.path.abspath("a\0b.flac"), "os_error"),
    ]
    msgs = [i.message for i in items if isinstance(i, ScanProblem)]
    assert str(tmp_path / "notes.txt") in msgs[0] and '".txt"' in msgs[0]
    assert "no extension" in msgs[1]
    assert msgs[2] == f"{tmp_path / 'pipe.flac'} is a named pipe (FIFO), not a regular file"
    assert "-0/--null" in msgs[4]
    # Inside a walk: an audio-named FIFO is reported, a FIFO named otherwise skipped.
    assert probs(run([tmp_path])) == [(str(tmp_path / "pipe.flac"), "not_a_file")]


def test_folder_named_like_an_audio_file(tmp_path: Path) -> None:
    touch(tmp_path / "x.flac" / "inner.wav")
    touch(tmp_path / "x.flac" / "y.mp3" / "deep.ogg")
    items = run([tmp_path / "x.flac"])
    assert probs(items) == []
    assert rel(cands(items), tmp_path) == ["x.flac/inner.wav", "x.flac/y.mp3/deep.ogg"]
    assert run([tmp_path]) == items  # met inside a walk: just a folder


def _permission_tree(root: Path) -> None:
    touch(root / "ok" / "a.flac")
    touch(root / "locked" / "b.flac")
    touch(root / "listonly" / "c.flac")
    touch(root / "noread" / "d.flac")
    touch(root / "z.wav")
    (root / "locked").chmod(0)
    (root / "noread").chmod(0o311)  # cannot be listed, but a file named inside can be read
    (root / "listonly").chmod(0o444)  # names can be listed, entries not stat'ed


def _restore_permissions(root: Path) -> None:
    for sub in ("locked", "listonly", "noread"):
        if (root / sub).exists():
            (root / sub).chmod(0o755)


def test_unreadable_directory_is_reported_and_the_scan_goes_on(tmp_path: Path) -> None:
    _permission_tree(tmp_path)
    try:
        items = run([tmp_path])
        found = rel(cands(items), tmp_path)
        assert "ok/a.flac" in found and "z.wav" in found  # the rest of the library is scanned
        if os.access(tmp_path / "locked", os.R_OK):
            pytest.skip("running as root: permissions are not enforced (see the *_as_nobody test)")
        assert found == ["ok/a.flac", "z.wav"]
        assert probs(items) == [
            (str(tmp_path / "listonly" / "c.flac"), "permission"),
            (str(tmp_path / "locked"), "permission"),
            (str(tmp_path / "noread"), "permission"),
        ]
        locked = next(i for i in items if isinstance(i, ScanProblem) and i.path.endswith("ed"))
        assert "permission denied" in locked.message and str(tmp_path) in locked.message
    finally:
        _restore_permissions(tmp_path)


def _as_nobody(fn: Callable[[], object]) -> object:
    """Run ``fn`` in a forked child that dropped root to the ``nobody`` user; return its value."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(r)
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                payload = {"ok": fn()}
            except BaseException as exc:
                payload = {"error": repr(exc)}
            with os.fdopen(w, "wb") as f:
                f.write(json.dumps(payload).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    result = json.loads(data or b'{"error": "child died"}')
    if "error" in result:
        pytest.skip(f"cannot run as nobody here: {result['error']}")
    return result["ok"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop")
def test_unreadable_directory_as_nobody() -> None:
    """As root the test above cannot see permissions; a forked child that drops to nobody can."""
    root = Path(tempfile.mkdtemp(prefix="engine-scan-perm-"))
    try:
        root.chmod(0o755)
        if any(not p.stat().st_mode & stat.S_IXOTH for p in root.parents):
            pytest.skip(f"{root.parent} is not traversable by other users")
        _permission_tree(root)

        def scan_all() -> list[list[str]]:
            inputs = [root, root / "locked" / "b.flac", root / "noread" / "d.flac"]
            return [[type(i).__name__, i.path, getattr(i, "kind", "")] for i in run(inputs)]

        got = _as_nobody(scan_all)
    finally:
        _restore_permissions(root)
        shutil.rmtree(root)
    assert got == [
        ["ScanProblem", str(root / "listonly" / "c.flac"), "permission"],
        ["ScanProblem", str(root / "locked"), "permission"],
        ["ScanProblem", str(root / "noread"), "permission"],
        ["Candidate", str(root / "ok" / "a.flac"), ""],
        ["Candidate", str(root / "z.wav"), ""],
        ["ScanProblem", str(root / "locked" / "b.flac"), "permission"],
        ["Candidate", str(root / "noread" / "d.flac"), ""],
    ]


# --------------------------------------------------------------------------------------------
# names: bytes that are not UTF-8, newlines
# --------------------------------------------------------------------------------------------


def test_non_utf8_names_round_trip(tmp_path: Path) -> None:
    base = os.fsencode(tmp_path)
    os.mkdir(base + b"/d\xff")
    touch(base + b"/caf\xe9.wav")
    touch(base + b"/d\xff/x.flac")
    os.symlink(b"gone\xe9", base + b"/dead\xe9.flac")

    items = run([tmp_path])
    assert [os.fsencode(p) for p in cands(items)] == [
        base + b"/caf\xe9.wav",
        base + b"/d\xff/x.flac",
    ]
    for p in cands(items):
        os.stat(p)  # the str path opens the right file
    (problem,) = (i for i in items if isinstance(i, ScanProblem))
    assert problem.kind == "broken_symlink"
    assert os.fsencode(problem.path) == base + b"/dead\xe9.flac"
    assert "dead\\xe9.flac" in problem.message and "gone\\xe9" in problem.message
    problem.message.encode("utf-8")  # printable: no lone surrogates

    explicit = os.fsdecode(base + b"/caf\xe9.wav")
    assert cands(run([explicit])) == [explicit]


def test_names_with_newlines_through_find_print0(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    touch(lib / "line\nbreak.flac")
    touch(lib / "sub" / "tab\there.mp3")
    touch(lib / "sub" / "cr\r.wav")
    touch(lib / "sub" / "skip\n.txt")
    expected = run([lib])
    assert rel(cands(expected), lib) == ["line\nbreak.flac", "sub/cr\r.wav", "sub/tab\there.mp3"]

    def through_find(*args: str) -> list[Candidate | ScanProblem]:
        # A real pipe from a real `find`, argv only: no shell anywhere.
        with subprocess.Popen(["find", str(lib), *args, "-print0"], stdout=subprocess.PIPE) as p:
            assert p.stdout is not None
            items = run(read_paths(p.stdout, null_separated=True))
        assert p.returncode == 0
        return items

    # find lists the folder first, then everything in it: each file still comes out once.
    assert cands(through_find()) == cands(expected)
    # -depth lists the files before their folders.
    assert sorted(cands(through_find("-depth"))) == sorted(cands(expected))
    assert sorted(cands(through_find("-type", "f"))) == sorted(cands(expected))
    # Files listed after their walked folder are skipped silently; before it, they are explicit.
    assert probs(through_find()) == []
    assert probs(through_find("-depth")) == [(str(lib / "sub" / "skip\n.txt"), "not_audio")]
    # A name with a newline in a problem message is escaped: one message, one line.
    os.symlink("x", lib / "dead\nlink.flac")
    (problem,) = (i for i in run([lib]) if isinstance(i, ScanProblem))
    assert "\n" in problem.path and "\n" not in problem.message and "dead\\nlink" in problem.message


# --------------------------------------------------------------------------------------------
# read_paths
# --------------------------------------------------------------------------------------------


def test_read_paths_newline_mode_strips_crlf_and_skips_empty_entries() -> None:
    data = b"a.flac\r\nb c.flac\n\n\r\n/abs/d.wav\ncaf\xe9.wav\r\nlast.ogg\r"
    got = list(read_paths(io.BytesIO(data), null_separated=False))
    assert got == ["a.flac", "b c.flac", "/abs/d.wav", "caf\udce9.wav", "last.ogg"]
    assert os.fsencode(got[3]) == b"caf\xe9.wav"
    assert list(read_paths(io.BytesIO(b"x\ny"), null_separated=False)) == ["x", "y"]
    assert list(read_paths(io.BytesIO(b""), null_separated=False)) == []
    # In newline mode a NUL stays in the entry; scan() then explains that -0 is needed.
    (entry,) = read_paths(io.BytesIO(b"a.flac\0b.flac\0"), null_separated=False)
    (problem,) = run([entry])
    assert isinstance(problem, ScanProblem) and "-0/--null" in problem.message


def test_read_paths_null_mode_keeps_newlines_and_carriage_returns() -> None:
    data = b"a\nb.flac\0\0c\r\0tail\n\0d.wav"
    got = list(read_paths(io.BytesIO(data), null_separated=True))
    assert got == ["a\nb.flac", "c\r", "tail\n", "d.wav"]


def test_read_paths_entries_straddling_chunk_boundaries() -> None:
    names = [f"dir {i % 7}/{i}\nname-{i}\r.flac" for i in range(12_000)]  # ~300 KB: 5 chunks
    data = b"\0".join(os.fsencode(n) for n in names) + b"\0"
    assert len(data) > 4 * 64 * 1024
    assert list(read_paths(io.BytesIO(data), null_separated=True)) == names
    crlf = b"\r\n".join(n.replace("\n", " ").encode() for n in names)
    assert list(read_paths(io.BytesIO(crlf), null_separated=False)) == [
        n.replace("\n", " ") for n in names
    ]


def test_read_paths_rejects_an_endless_entry_without_holding_it() -> None:
    blob = io.BytesIO(b"x" * (MAX_ENTRY_BYTES + 100_000))
    with pytest.raises(ValueError, match="-0/--null"):
        list(read_paths(blob, null_separated=False))
    assert blob.tell() < MAX_ENTRY_BYTES + 2 * 64 * 1024  # stopped reading soon after the cap


def test_read_paths_streams_from_a_pipe_before_the_writer_is_done() -> None:
    r, w = os.pipe()
    reader = os.fdopen(r, "rb")
    done = threading.Event()

    def safety_net() -> None:  # if read_paths waited for EOF, the test fails instead of hanging
        if not done.wait(10):
            os.close(w)

    guard = threading.Thread(target=safety_net)
    guard.start()
    try:
        os.write(w, b"first.flac\0sec")
        it = read_paths(reader, null_separated=True)
        t0 = time.monotonic()
        assert next(it) == "first.flac"
        assert time.monotonic() - t0 < 5
        os.write(w, b"ond.flac\0")
        assert next(it) == "second.flac"
    finally:
        done.set()
        guard.join()
        with contextlib.suppress(OSError):
            os.close(w)
        reader.close()


# --------------------------------------------------------------------------------------------
# scale: depth, 50 000 files, memory, per-file cost
# --------------------------------------------------------------------------------------------


def test_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    depth = 1200
    assert depth > sys.getrecursionlimit()
    paths = [str(tmp_path)]
    for _ in range(depth):
        paths.append(paths[-1] + "/d")
        os.mkdir(paths[-1])
    bottom = paths[-1] + "/bottom.flac"
    touch(bottom.encode())
    try:
        assert cands(run([tmp_path])) == [bottom]
    finally:  # remove it bottom-up: a recursive rmtree would hit the recursion limit
        os.remove(bottom)
        for p in reversed(paths[1:]):
            os.rmdir(p)


N_DIRS = 10
PER_DIR = 5_000
#: Seconds the scan may spend per file of the big library (warm cache, best of 2).
PER_FILE_LIMIT_S = 100e-6


@pytest.fixture(scope="module")
def big_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """50 000 tiny "tracks": hard links of one seed file per folder, cheap to create."""
    root = tmp_path_factory.mktemp("big")
    lib = root / "lib"
    for d in range(N_DIRS):
        folder = lib / f"album{d:02d}"
        folder.mkdir(parents=True)
        seed = root / f"seed{d:02d}.flac"
        touch(seed)
        base = f"{folder}/track"
        for i in range(PER_DIR):
            os.link(seed, f"{base}{i:05d}.flac")
        touch(folder / "cover.jpg")  # skipped without a stat
    yield lib
    shutil.rmtree(root)


def test_streaming_50k_files_in_bounded_memory(big_library: Path) -> None:
    limit = 5 * 1024 * 1024
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        count = 0
        last = None
        for item in scan([str(big_library)]):
            assert isinstance(item, Candidate)
            count += 1
            last = item
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == N_DIRS * PER_DIR
    assert last is not None and last.path == f"{big_library}/album09/track04999.flac"
    # Just holding every Candidate and its path would need more than the limit (9 MB).
    assert count * (sys.getsizeof(last) + sys.getsizeof(last.path)) > limit
    assert peak < limit, f"tracemalloc peak {peak / 1e6:.2f} MB"
    print(f"\n[scan] 50 000 files: tracemalloc peak {peak / 1e6:.2f} MB (limit 5 MB)")


def test_per_file_cost(big_library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        count = sum(1 for _ in scan([str(big_library)]))
        best = min(best, time.perf_counter() - t0)
    assert count == N_DIRS * PER_DIR
    with capsys.disabled():
        print(
            f"\n[scan] {count} files in {best * 1e3:.0f} ms: "
            f"{best / count * 1e6:.2f} µs per file (warm cache, best of 2)"
        )
    # ~4 µs on a 2-core CI machine: the bound leaves room for a loaded one, and still catches
    # a scan that opens, reads or re-stats each file, or slows down as the walk goes on
    assert best / count < PER_FILE_LIMIT_S
