"""engine-query on a synthesised library with a known structure: real files, a real engine-run,
a real LMDB store, the real command line.

The library (8 s tracks, 44.1 kHz stereo) holds one "song" four times: the FLAC original, the
same PCM 6 dB quieter, an MP3 at 320 kbit/s, and a byte-identical copy in another folder; the
rest are tracks that differ from it and from each other by construction (click tracks, drum
loops, chord pads, noises, other songs, a glide) and one file that does not decode.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import helpers as h
import numpy as np
import pytest
import signals as sig

from engine import store as st
from engine.errors import QueryError
from engine.query import commands as q
from engine.query.similarity import (
    DEFAULT_WEIGHTS,
    TEMPO_FULL_CLARITY,
    Library,
    Scaling,
    parse_weights,
    playlist,
    transform,
)
from kernels import FINGERPRINT_NAMES, FINGERPRINT_UNITS, FINGERPRINT_VERSION
from kernels.neighbours import near_pairs, weighted_distances

CUR = FINGERPRINT_VERSION
TEMPO = FINGERPRINT_NAMES.index("tempo_bpm")

SR = 44100
SECONDS = 8.0


def _library(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(11)
    tracks: dict[str, tuple[np.ndarray, str]] = {
        "song": (sig.music_like(SECONDS, SR, bpm=120, seed=3), "flac"),
        "other_song": (sig.music_like(SECONDS, SR, bpm=92, seed=8, gain=0.2), "flac"),
        "click90": (sig.click_track(90, SECONDS, SR, channels=2), "flac"),
        "click140": (sig.click_track(140, SECONDS, SR, channels=2), "wav"),
        "drums100": (sig.drum_loop(100, SECONDS, SR, rng, channels=2), "flac"),
        "drums128": (sig.drum_loop(128, SECONDS, SR, rng, amp=0.3, channels=2), "ogg"),
        "pad_low": (sig.chord([110.0, 164.8, 220.0], SECONDS, SR, amp=0.4, channels=2), "flac"),
        "pad_high": (sig.chord([440.0, 554.4, 659.3], SECONDS, SR, amp=0.3, channels=2), "flac"),
        "white": (sig.white_noise(SECONDS, SR, rng, rms=0.1, channels=2), "flac"),
        "pink": (sig.pink_noise(SECONDS, SR, rng, rms=0.1, channels=2), "flac"),
        "glide": (sig.glide(100.0, 0.5, SECONDS, SR, amp=0.4, channels=2), "flac"),
    }
    paths = {}
    (root / "lib" / "copies").mkdir(parents=True)
    for name, (x, ext) in tracks.items():
        paths[name] = sig.write_audio(root / "lib" / f"{name}.{ext}", x, SR)
    song = tracks["song"][0]
    paths["song_quiet"] = sig.write_audio(root / "lib" / "song_quiet.flac",
                                          song * sig.db_to_amp(-6.0), SR)
    paths["song_mp3"] = sig.write_audio(root / "lib" / "song_mp3.mp3", song, SR,
                                        compression_level=0.0)
    paths["song_copy"] = Path(shutil.copy(paths["song"], root / "lib" / "copies" / "song.flac"))
    broken = root / "lib" / "broken.flac"
    broken.write_bytes(b"fLaC" + bytes(range(256)) * 4)
    paths["broken"] = broken
    return paths


SAME_SONG = {"song", "song_quiet", "song_mp3", "song_copy"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("querylib")
    paths = _library(root)
    db = root / "fp.lmdb"
    run = h.engine_run(str(root / "lib"), "--db", str(db), "--cores", "2", "-q", timeout=300)
    assert run.rc == 1, run.stderr  # 1: the broken file failed, the rest is stored
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        ids = {name: s.lookup(os.path.abspath(p))[0] for name, p in paths.items()}
    names = {rec.track_id: name for name, rec in ids.items() if rec is not None}
    return db, paths, {n: r.track_id for n, r in ids.items() if r is not None}, names


@pytest.fixture
def store(built):
    db = built[0]
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        yield s


# --------------------------------------------------------------------------------------------
# similar


def test_same_track_at_another_gain_or_encoding_is_its_nearest_neighbour(built, store):
    _db, _paths, ids, names = built
    for name in ("song_quiet", "song_mp3", "song"):
        res = q.cmd_similar(store, str(ids[name]), io.StringIO(), k=3)
        found = [names[r["track_id"]] for r in res]
        assert found[0] in SAME_SONG - {name}, (name, found)
        assert set(found) == SAME_SONG - {name}, (name, found)


def test_click_track_is_far_from_a_sustained_pad(built, store):
    _db, _paths, ids, names = built
    lib = Library.load(store, cache=False)
    w = parse_weights()
    d_click_pad = lib.distance(lib.row(ids["click90"]), lib.row(ids["pad_low"]), w)
    d_song_gain = lib.distance(lib.row(ids["song"]), lib.row(ids["song_quiet"]), w)
    d_song_mp3 = lib.distance(lib.row(ids["song"]), lib.row(ids["song_mp3"]), w)
    assert d_click_pad > 5 * max(d_song_gain, d_song_mp3), (d_click_pad, d_song_gain, d_song_mp3)
    all_d = [lib.distance(i, j, w) for i in range(len(lib)) for j in range(i + 1, len(lib))]
    assert d_click_pad >= np.median(all_d)
    near_click = [names[r["track_id"]]
                  for r in q.cmd_similar(store, str(ids["click90"]), io.StringIO(), k=3)]
    assert "click140" in near_click and not {"pad_low", "pad_high"} & set(near_click)


def test_similar_table_and_jsonl(built):
    db, paths, ids, names = built
    proc = h.engine_query(db, "similar", str(paths["song_mp3"]), "-k", "2")
    assert proc.returncode == 0, proc.stderr
    assert "similar to" in proc.stdout and str(paths["song"]) in proc.stdout
    proc = h.engine_query(db, "similar", str(ids["pad_low"]), "-k", "4", "--jsonl")
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["rank"] for r in recs] == [1, 2, 3, 4]
    assert all(r["query_track_id"] == ids["pad_low"] for r in recs)
    d = [r["distance"] for r in recs]
    assert d == sorted(d) and d[0] > 0
    for r in recs:
        assert r["path"] == str(paths[names[r["track_id"]]])
        assert 1 <= len(r["differs_most"]) <= 3
        assert {"name", "query", "value"} <= set(r["differs_most"][0])


def test_similar_to_a_file_outside_the_store_fingerprints_it(built, store, tmp_path):
    _db, _paths, _ids, names = built
    outside = sig.write_audio(tmp_path / "elsewhere.ogg",
                              sig.music_like(SECONDS, SR, bpm=120, seed=3), SR,
                              compression_level=0.4)
    out = io.StringIO()
    res = q.cmd_similar(store, str(outside), out, k=4)
    assert "fingerprinted now" in out.getvalue()
    assert {names[r["track_id"]] for r in res} == SAME_SONG


def test_weights_change_the_ranking_and_are_validated(built, store):
    _db, _paths, ids, _names = built
    base = [r["track_id"] for r in q.cmd_similar(store, str(ids["click90"]), io.StringIO(),
                                                 k=12)]
    only_tempo = q.cmd_similar(store, str(ids["click90"]), io.StringIO(), k=12,
                               weights=[f"{n}=0" for n in FINGERPRINT_NAMES if n != "tempo_bpm"])
    assert [r["track_id"] for r in only_tempo] != base
    # with tempo alone, the order is the order of the scaled tempos' differences (log2 tempo
    # in IQRs, times each tempo's confidence)
    lib = Library.load(store)
    tempo = {int(t): v for t, v in zip(lib.track_ids, lib.z[:, TEMPO], strict=True)}
    gaps = [abs(tempo[r["track_id"]] - tempo[ids["click90"]]) for r in only_tempo]
    assert gaps == sorted(gaps) or np.allclose(gaps, sorted(gaps), atol=1e-12)
    for bad in (["tempo=1"], ["tempo_bpm"], ["tempo_bpm=-1"], ["lufs=nan"],
                [f"{n}=0" for n in FINGERPRINT_NAMES]):
        with pytest.raises(QueryError):
            parse_weights(bad)


# --------------------------------------------------------------------------------------------
# playlist


def test_playlist_never_repeats(built, store):
    _db, _paths, ids, names = built
    lib = Library.load(store)
    w = parse_weights()
    for seed in range(len(lib)):
        rows = playlist(lib, seed, len(lib) + 5, w)
        assert rows[0] == seed and len(rows) == len(lib) and len(set(rows)) == len(rows)
    # the command also skips near duplicates of tracks already chosen (song, copy, mp3 ...)
    recs = q.cmd_playlist(store, str(ids["song"]), io.StringIO(), n=50, as_jsonl=True)
    chosen = [names[r["track_id"]] for r in recs]
    assert len(set(chosen)) == len(chosen)
    assert chosen[0] == "song" and not {"song_copy", "song_mp3"} & set(chosen)
    recs = q.cmd_playlist(store, str(ids["song"]), io.StringIO(), n=50, allow_duplicates=True)
    assert len(recs) == len(lib) and len({r["track_id"] for r in recs}) == len(lib)


def test_playlist_between_two_tracks_ends_on_the_target(built, store):
    _db, _paths, ids, _names = built
    recs = q.cmd_playlist(store, str(ids["click90"]), io.StringIO(), n=6,
                          to=str(ids["pad_high"]))
    chosen = [r["track_id"] for r in recs]
    assert len(chosen) == 6 and len(set(chosen)) == 6
    assert chosen[0] == ids["click90"] and chosen[-1] == ids["pad_high"]
    assert recs[0]["step_distance"] == 0 and all(r["step_distance"] > 0 for r in recs[1:])


def test_playlist_m3u_from_the_command_line(built, tmp_path):
    db, paths, _ids, _names = built
    out = tmp_path / "list.m3u"
    proc = h.engine_query(db, "playlist", str(paths["pad_low"]), "-n", "4", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 9
    assert lines[1].startswith("#EXTINF:8,") and lines[2] == str(paths["pad_low"])
    assert all(os.path.isfile(p) for p in lines[2::2])


# --------------------------------------------------------------------------------------------
# duplicates


def test_duplicates_finds_the_flac_mp3_pair_and_the_copy(built, store):
    _db, _paths, _ids, names = built
    recs = q.cmd_duplicates(store, io.StringIO())
    exact = [r for r in recs if r["kind"] == "exact"]
    near = [r for r in recs if r["kind"] == "near"]
    assert [{names[t["track_id"]] for t in r["tracks"]} for r in exact] == [
        {"song", "song_copy"}]
    near_sets = [frozenset(names[t["track_id"]] for t in r["tracks"]) for r in near]
    assert frozenset({"song", "song_mp3"}) in near_sets
    assert frozenset({"song_copy", "song_mp3"}) in near_sets
    assert all(s <= SAME_SONG for s in near_sets), near_sets  # nothing else is a duplicate
    assert all(0 <= r["distance"] <= q.DEFAULT_DUPLICATE_DISTANCE for r in near)


def test_duplicates_cli_lists_and_threshold(built):
    db, paths, _ids, _names = built
    proc = h.engine_query(db, "duplicates")
    assert proc.returncode == 0, proc.stderr
    assert "1 group(s) of identical files" in proc.stdout
    assert str(paths["song_mp3"]) in proc.stdout
    proc = h.engine_query(db, "duplicates", "--jsonl", "--max-distance", "0")
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["kind"] for r in recs] == ["exact"]
    assert h.engine_query(db, "duplicates", "--max-distance", "-1").returncode == 2


# --------------------------------------------------------------------------------------------
# show, export, stats, failures


def test_show_names_every_value_with_its_unit(built):
    db, paths, ids, _names = built
    proc = h.engine_query(db, "show", str(paths["pad_low"]))
    assert proc.returncode == 0, proc.stderr
    for name, unit in zip(FINGERPRINT_NAMES, FINGERPRINT_UNITS, strict=True):
        line = next(ln for ln in proc.stdout.splitlines() if f" {name} " in ln)
        assert line.rstrip().endswith(unit)
    by_id = h.engine_query(db, "show", str(ids["pad_low"]), "--json")
    rec = json.loads(by_id.stdout)
    assert rec["path"] == str(paths["pad_low"]) and rec["current"] is True
    assert list(rec["fingerprint"]) == list(FINGERPRINT_NAMES)


def test_export_formats_agree_bit_for_bit(built, tmp_path):
    db, _paths, _ids, _names = built
    jl = h.engine_query(db, "export")
    recs = {r["track_id"]: r for r in map(json.loads, jl.stdout.splitlines())}
    assert len(recs) == 14
    assert h.engine_query(db, "export", "--format", "csv", "-o",
                          str(tmp_path / "x.csv")).returncode == 0
    with open(tmp_path / "x.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(recs)
    for row in rows:
        rec = recs[int(row["track_id"])]
        assert row["path"] == rec["path"]
        assert [float(row[n]) for n in FINGERPRINT_NAMES] == list(rec["fingerprint"].values())
    proc = h.engine_query(db, "export", "--format", "npy", "-o", str(tmp_path / "m.npy"))
    assert proc.returncode == 0, proc.stderr
    m = np.load(tmp_path / "m.npy")
    assert m.shape == (len(recs), 25) and m.dtype == np.float64
    with open(tmp_path / "m.tracks.csv", newline="") as f:
        side = list(csv.DictReader(f))
    for row in side:
        rec = recs[int(row["track_id"])]
        assert row["path"] == rec["path"]
        assert m[int(row["row"])].tolist() == list(rec["fingerprint"].values())
    assert h.engine_query(db, "export", "--format", "npy").returncode == 2


def test_stats_and_failures(built):
    db, paths, _ids, _names = built
    stats = json.loads(h.engine_query(db, "stats").stdout)
    assert stats["fingerprints"] == stats["current_fingerprints"] == 14
    assert stats["fingerprint_versions"] == {str(FINGERPRINT_VERSION): 14}
    assert stats["failures"] == 1
    assert stats["generation"] >= 1 and stats["evictions"] == 0
    table = h.engine_query(db, "failures")
    assert str(paths["broken"]) in table.stdout and "decode" in table.stdout
    recs = [json.loads(line) for line in h.engine_query(db, "failures", "--jsonl").stdout
            .splitlines()]
    assert len(recs) == 1 and recs[0]["path"] == str(paths["broken"])
    assert recs[0]["attempts"] == 1 and recs[0]["message"]
    assert h.engine_query(db, "failures", "--kind", "timeout").stdout.strip() == "no failures"


def test_unknown_tracks_and_missing_store_have_clear_errors_and_exit_codes(built, tmp_path):
    db, paths, _ids, _names = built
    proc = h.engine_query(db, "show", "/no/such/file.flac")
    assert proc.returncode == 2 and "no track at /no/such/file.flac" in proc.stderr
    proc = h.engine_query(db, "show", "99999")
    assert proc.returncode == 2 and "no track with id 99999" in proc.stderr
    proc = h.engine_query(db, "show", str(paths["broken"]))
    assert proc.returncode == 2 and "failed" in proc.stderr
    proc = h.engine_query(db, "similar", "1", "--weight", "loudness=2")
    assert proc.returncode == 2 and "loudness=2" in proc.stderr
    proc = h.engine_query(tmp_path / "nothing", "stats")
    assert proc.returncode == 3 and "no store" in proc.stderr


# --------------------------------------------------------------------------------------------
# the library cache and the LRU


def test_library_cache_is_keyed_by_the_store_generation(built, tmp_path):
    db = tmp_path / "db"
    shutil.copytree(built[0], db, ignore=shutil.ignore_patterns("query-cache", "reads.log"))
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        gen = s.generation()
        lib = Library.load(s)
        (cached,) = (db / "query-cache").glob(f"library-*-g{gen}-*.npz")
        again = Library.load(s)
        assert np.array_equal(again.z, lib.z) and np.array_equal(again.track_ids, lib.track_ids)
        cached.write_bytes(b"garbage")  # a damaged cache is rebuilt, not trusted
        assert np.array_equal(Library.load(s).values, lib.values)
    with st.Store.open(st.StoreConfig(db)) as w:
        w.commit([st.DeleteTrack(int(lib.track_ids[0]))])
        w.commit([st.Touch((int(lib.track_ids[1]),))])  # a touch does not change the library
        assert w.generation() == gen + 1
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        fresh = Library.load(s)
    assert len(fresh) == len(lib) - 1
    (only,) = os.listdir(db / "query-cache")
    assert f"-g{gen + 1}-" in only  # the old generation's file is gone


def test_reads_feed_the_lru(tmp_path):
    db = tmp_path / "db"
    values = np.linspace(0.0, 1.0, 25)
    with st.Store.open(st.StoreConfig(db, max_entries=3)) as w:
        for tid in (1, 2, 3):
            w.commit([st.PutTrack(st.TrackRecord(tid, f"/m/{tid}.flac", 1, 1, bytes([tid]) * 16)),
                      st.PutFingerprint(st.FingerprintRecord(tid, CUR, values + tid, 60.0, 44100,
                                                             2, 0.0, 0.0))])
        # another process reads track 1 (the least recently used) while the writer is open
        proc = h.engine_query(db, "show", "1")
        assert proc.returncode == 0, proc.stderr
        assert (db / "reads.log").stat().st_size == 8
        res = w.commit([st.PutTrack(st.TrackRecord(4, "/m/4.flac", 1, 1, b"\4" * 16)),
                        st.PutFingerprint(st.FingerprintRecord(4, CUR, values, 60.0, 44100, 2,
                                                               0.0, 0.0))])
        assert res.evicted == (2,)  # not 1: its read made it recent
        assert not (db / "reads.log").exists()
        # the log is bounded: past READS_LOG_MAX, reads are dropped rather than grow it
        n = st.READS_LOG_MAX // 8
        assert w.record_reads(range(1, n + 1))
        assert not w.record_reads([1])
        assert (db / "reads.log").stat().st_size == st.READS_LOG_MAX
        w.commit([])
        assert not (db / "reads.log").exists()


def test_queries_never_block_a_running_engine_run(built, tmp_path):
    """similar, duplicates and stats answer while engine-run writes, and the run is not held."""
    db = tmp_path / "db"
    lib_dir = tmp_path / "lib"
    shutil.copytree(built[1]["song"].parent, lib_dir)
    (lib_dir / "more").mkdir()
    for i in range(24):  # "slow": the fault hook makes each take 0.5 s, the run ~6 s
        sig.write_audio(lib_dir / "more" / f"slow{i:02d}.flac",
                        sig.music_like(6.0, 22050, bpm=80 + 5 * i, seed=i), 22050)
    first = h.engine_run(str(lib_dir / "copies"), "--db", str(db), "-q", timeout=120)
    assert first.rc == 0, first.stderr
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:  # reads before the run
        recorded = 1 + len(q.cmd_similar(s, "1", io.StringIO(), k=3))
        assert s.stats()["pending_reads"] == recorded
    # engine-run with the tests' fault hook (tests/engine_faults.py)
    proc = h.start_fault_runner(db, lib_dir, stdout=subprocess.DEVNULL)
    answered = 0
    try:
        # a reader holding a snapshot open does not hold the writer: its commits go on
        while not (db / "data.mdb").exists():
            time.sleep(0.02)
        with st.Store.open(st.StoreConfig(db), readonly=True) as held:
            snapshot = held.iter_fingerprints()
            next(snapshot, None)
            g0 = json.loads(h.engine_query(db, "stats").stdout)["generation"]
            deadline = time.monotonic() + 60
            while (json.loads(h.engine_query(db, "stats").stdout)["generation"] == g0
                   and proc.poll() is None and time.monotonic() < deadline):
                time.sleep(0.05)
            assert json.loads(h.engine_query(db, "stats").stdout)["generation"] > g0
            snapshot.close()
        while proc.poll() is None:
            t0 = time.monotonic()
            with st.Store.open(st.StoreConfig(db), readonly=True) as s:
                recorded += 1 + len(q.cmd_similar(s, "1", io.StringIO(), k=3))
                q.cmd_duplicates(s, io.StringIO())
                q.cmd_stats(s)
            assert time.monotonic() - t0 < 30
            answered += 1
    finally:
        proc.wait(timeout=180)
    assert proc.returncode == 1, proc.stderr.read() if proc.stderr else ""  # broken.flac
    assert answered >= 1
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        # The run folded the reads into its LRU as it committed: those made before it, and
        # all but the ones made after its last commit.
        pending = s.stats()["pending_reads"]
    assert pending < recorded, (pending, recorded)


# --------------------------------------------------------------------------------------------
# the numeric parts against plain references


def test_scaling_is_median_and_floored_iqr(rng):
    v = rng.random((501, 25))
    v[:, TEMPO] = rng.uniform(60, 200, 501)
    peak = FINGERPRINT_NAMES.index("peak_consistency")
    v[:, peak] = 0.25  # constant: its scale is the floor
    sc = Scaling.fit(v)
    t = transform(v)
    assert np.allclose(sc.center, np.median(t, axis=0))
    iqr = np.subtract(*np.percentile(t, [75, 25], axis=0))
    assert sc.scale[peak] == 0.01 and np.allclose(sc.scale[TEMPO], max(iqr[TEMPO], 0.03))
    assert np.allclose(t[:, TEMPO], np.log2(v[:, TEMPO]))
    z = sc.apply(v)
    assert np.abs(z).max() <= 8.0 and z.flags.c_contiguous


def test_a_tempo_counts_by_its_pulse_clarity(rng):
    """Without a pulse, a tempo says nothing: two tracks that differ only in tempo are one point
    when their pulse clarity is 0, half as far apart at half TEMPO_FULL_CLARITY, and as far as
    their tempos from it up."""
    pulse = FINGERPRINT_NAMES.index("pulse_clarity")
    sc = Scaling.fit(rng.random((101, 25)) * 100.0 + 1.0)
    a = np.full(25, 50.0)
    b = a.copy()
    b[TEMPO] = 100.0
    gaps = []
    for clarity in (0.0, TEMPO_FULL_CLARITY / 2, TEMPO_FULL_CLARITY, 0.9):
        a[pulse] = b[pulse] = clarity
        za, zb = sc.apply(np.stack([a, b]))
        assert np.array_equal(np.delete(za, TEMPO), np.delete(zb, TEMPO))
        gaps.append(abs(za[TEMPO] - zb[TEMPO]))
    full = abs(sc.apply(b)[TEMPO] - sc.apply(a)[TEMPO])  # a[pulse] = b[pulse] = 0.9 now
    assert gaps == pytest.approx([0.0, full / 2, full, full])


def test_weighted_distances_match_numpy(rng):
    z = rng.standard_normal((1000, 25))
    qv = rng.standard_normal(25)
    w = rng.random(25)
    ref = ((z - qv) ** 2 * w).sum(axis=1)
    assert np.allclose(weighted_distances(z, qv, w), ref, rtol=1e-12, atol=0)
    with pytest.raises(Exception, match="C-contiguous float64"):
        weighted_distances(z[:, :24].T.copy().T, qv[:24], w[:24])


def test_near_pairs_match_brute_force(rng):
    n = 400
    z = rng.standard_normal((n, 25)) * 0.3
    z[200:260] = z[:60] + rng.normal(0, 0.01, (60, 25))  # 60 planted near twins
    dur = rng.uniform(100, 110, n)
    dur[200:260] = dur[:60] + rng.uniform(-0.2, 0.2, 60)
    w = np.array([DEFAULT_WEIGHTS[k] for k in FINGERPRINT_NAMES])
    limit, tol = 0.5, 0.3
    i, j, d = near_pairs(z, dur, w, max_sq_distance=limit, duration_tolerance_s=tol)
    got = {(min(a, b), max(a, b)): x for a, b, x in zip(i.tolist(), j.tolist(), d.tolist(),
                                                        strict=True)}
    want = {}
    for a in range(n):
        for b in range(a + 1, n):
            sq = float(np.sum(w * (z[a] - z[b]) ** 2))
            if abs(dur[a] - dur[b]) <= tol and sq <= limit:
                want[(a, b)] = sq
    assert set(got) == set(want) and len(want) >= 60
    assert all(np.isclose(got[k], want[k], rtol=1e-12) for k in want)


def test_plot_and_map_write_images(built, tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    db, paths, ids, _names = built
    proc = h.engine_query(db, "plot", str(paths["pad_low"]), "-o", str(tmp_path / "t.png"))
    assert proc.returncode == 0, proc.stderr
    assert imread(tmp_path / "t.png").shape[0] > 100
    proc = h.engine_query(db, "map", "-o", str(tmp_path / "m.png"), "--color",
                          "spectral_centroid", "--highlight", str(ids["song"]))
    assert proc.returncode == 0, proc.stderr
    assert imread(tmp_path / "m.png").shape[0] > 100
    proc = h.engine_query(db, "map", "-o", str(tmp_path / "x.png"), "--color", "loudness")
    assert proc.returncode == 2 and "loudness" in proc.stderr


# --------------------------------------------------------------------------------------------
# edge cases (a review found each of these wrong once)


def _small_store(db: Path, rows: dict[int, tuple[str, np.ndarray, int]]) -> None:
    """A store written through the Store API: track id -> (path, 25 values, version)."""
    with st.Store.open(st.StoreConfig(db)) as w:
        for tid, (path, values, version) in rows.items():
            w.commit([st.PutTrack(st.TrackRecord(tid, path, 1, 1, tid.to_bytes(16, "big"))),
                      st.PutFingerprint(st.FingerprintRecord(tid, version, values, 60.0 + tid,
                                                             44100, 2, 0.0, 0.0))])


def _values(rng, n: int) -> np.ndarray:
    v = rng.random((n, 25))
    v[:, FINGERPRINT_NAMES.index("tempo_bpm")] = rng.uniform(60, 180, n)
    v[:, FINGERPRINT_NAMES.index("spectral_centroid")] = rng.uniform(500, 5000, n)
    return v


def test_a_recreated_store_never_gets_the_old_stores_cache(tmp_path, rng):
    db = tmp_path / "db"
    v = _values(rng, 6)
    _small_store(db, {i + 1: (f"/m/{i}.flac", v[i], CUR) for i in range(6)})
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        assert len(Library.load(s)) == 6
    cache = db / "query-cache"
    for name in ("data.mdb", "lock.mdb"):
        (db / name).unlink()
    _small_store(db, {1: ("/m/other.flac", v[0], CUR)})  # the same generation count again
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        lib = Library.load(s)
        assert len(lib) == 1 and lib.track_ids.tolist() == [1]
        # a cache file cut short is rebuilt, not a crash
        current = next(cache.glob("library-*.npz"))
        current.write_bytes(current.read_bytes()[:100])
        assert len(Library.load(s)) == 1


def test_non_finite_rows_are_left_out_of_the_library(rng):
    v = _values(rng, 5)
    v[2, 7] = np.nan
    lib = Library.from_arrays(0, np.arange(1, 6), v, np.full(5, 60.0), np.zeros((5, 16)))
    assert lib.track_ids.tolist() == [1, 2, 4, 5] and np.isfinite(lib.z).all()


def test_track_ids_stale_versions_and_ties(tmp_path, rng, monkeypatch):
    db = tmp_path / "db"
    v = _values(rng, 4)
    same = v[0].copy()
    _small_store(db, {1: ("/m/a.flac", same, CUR), 2: ("/m/b.flac", v[1], CUR),
                      3: ("/m/c.flac", v[2], CUR - 1), 5: ("/m/e.flac", same, CUR),
                      4: ("/m/d.flac", same, CUR)})
    monkeypatch.chdir(tmp_path)
    Path("2").write_text("not audio")  # a file named like a track id in the current folder
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        assert q.resolve(s, "2").track_id == 2
        with pytest.raises(QueryError, match=f"version {CUR - 1}, this engine's is {CUR}"):
            q.cmd_similar(s, "3", io.StringIO())
        # equal distances go by track id, also at the k-th place
        res = q.cmd_similar(s, "2", io.StringIO(), k=2)
        assert [r["track_id"] for r in res] == [1, 4]
        with pytest.raises(QueryError, match="target is its seed"):
            q.cmd_playlist(s, "1", io.StringIO(), n=3, to="1")


def test_cli_outputs_keep_files_and_bytes(tmp_path, rng):
    db = tmp_path / "db"
    v = _values(rng, 3)
    odd = os.fsdecode(b"/m/caf\xe9.flac")  # Latin-1 name: not valid UTF-8
    _small_store(db, {1: (odd, v[0], CUR), 2: ("/m/b.flac", v[1], CUR),
                      3: ("/m/c.flac", v[2], CUR)})
    keep = tmp_path / "keep.m3u"
    keep.write_text("#EXTM3U\nprecious\n")
    proc = h.engine_query(db, "playlist", "99", "-o", str(keep))
    assert proc.returncode == 2 and keep.read_text() == "#EXTM3U\nprecious\n"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    out = h.engine_query(db, "export", "--format", "csv", timeout=60, text=False, env=env)
    assert out.returncode == 0, out.stderr
    assert b"/m/caf\xe9.flac" in out.stdout
    pytest.importorskip("matplotlib")
    proc = h.engine_query(db, "plot", "2", "-o", str(tmp_path / "x.foo"))
    assert proc.returncode == 2 and "not one matplotlib writes" in proc.stderr


def test_near_pairs_grow_their_buffer_and_keep_the_window_edges(rng):
    z = np.zeros((60, 25))
    dur = np.array([100.0] * 50 + [100.5] * 5 + [100.5 + 1e-9] * 5)
    w = np.ones(25)
    i, j, _ = near_pairs(z, dur, w, max_sq_distance=0.0, duration_tolerance_s=0.5)
    pairs = {(min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist(), strict=True)}
    # 60 identical rows: every pair, except those of the last 5 with the first 50 (0.5 s + 1e-9)
    assert len(pairs) == len(i) == 60 * 59 // 2 - 50 * 5
    with pytest.raises(Exception, match="more than max_pairs=100"):
        near_pairs(z, dur, w, max_sq_distance=0.0, duration_tolerance_s=0.5, max_pairs=100)
