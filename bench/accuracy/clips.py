"""MIDI clips with known tempo, meter, onsets and key, generated from a seed.

Each clip is a short arrangement for General MIDI instruments (drum kit, bass, chords, lead)
in one of the families of :data:`FAMILIES`: straight 8ths, 16ths, half-time, swing, 3/4, 6/8,
tempo drift, drums alone and solo piano. Everything is placed in seconds on a beat grid, so the
ground truth is exact by construction: the beat times, the tempo, the onset of every note and
the key. The MIDI file (pretty_midi) is what FluidSynth renders (:mod:`accuracy.audio`).

A clip depends only on ``(seed, family, index)`` and :data:`GENERATOR_VERSION`: the tempo of
clip ``index`` comes from a golden-ratio sequence over the family's range (log-spaced, so any
prefix of a family covers its range evenly), everything else from a generator seeded by
``numpy.random.SeedSequence([seed, family number, index])``.

Conventions of the truth:

- **tempo** is beats per minute of the notated beat: the quarter note in 4/4 and 3/4, the
  dotted quarter in 6/8, the notated tempo (hats on its eighths) in the half-time family
  (its snare falls once a bar, so the felt tempo is often half: that counts in Acc2 only); in
  the drift family the tempo moves linearly in time from ``tempo_start_bpm`` to
  ``tempo_end_bpm`` and the truth is the median of the beat-to-beat tempi (the clip's middle);
- **onsets** are the note-on times of every note of every instrument before the end of the
  music, after humanisation, sorted and merged when closer than :data:`ONSET_MERGE_S`
  (a chord, or a kick under a hat, is one onset);
- **key** is ``"<tonic> major"`` or ``"<tonic> minor"`` in mir_eval's spelling; drums alone
  have none (null).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Bumped whenever the same (seed, family, index) would give a different clip: cached clips
#: of another version are rendered again.
GENERATOR_VERSION = 1

#: Onsets closer than this (s) are one onset of the truth.
ONSET_MERGE_S = 0.030

#: Pitch-class names as mir_eval spells keys.
PC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
CHORDS = {"maj": (0, 4, 7), "min": (0, 3, 7), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
          "dom7": (0, 4, 7, 10)}
#: Four-bar progressions: (root in semitones above the tonic, chord quality) per bar.
PROGRESSIONS = {
    "major": (((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")),
              ((0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")),
              ((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")),
              ((0, "maj"), (2, "min"), (7, "maj"), (0, "maj"))),
    "minor": (((0, "min"), (8, "maj"), (3, "maj"), (10, "maj")),
              ((0, "min"), (5, "min"), (7, "maj"), (0, "min")),
              ((0, "min"), (10, "maj"), (8, "maj"), (7, "maj")),
              ((0, "min"), (5, "min"), (8, "maj"), (7, "maj"))),
}
JAZZ_PROGRESSIONS = {
    "major": (((2, "min7"), (7, "dom7"), (0, "maj7"), (9, "min7")),
              ((0, "maj7"), (9, "min7"), (2, "min7"), (7, "dom7"))),
    "minor": (((0, "min7"), (5, "min7"), (7, "dom7"), (0, "min7")),
              ((0, "min7"), (8, "maj7"), (7, "dom7"), (0, "min7"))),
}

# General MIDI percussion keys (channel 10)
KICK, SIDE, SNARE, CLAP, CHH, PHH, OHH, CRASH, RIDE = 36, 37, 38, 39, 42, 44, 46, 49, 51
# General MIDI programs (0-based) by role
KITS_ROCK = (0, 8, 16, 24, 25)  # standard, room, power, electronic, TR-808
KITS_JAZZ = (32, 40, 0)  # jazz, brush, standard
BASSES = (32, 33, 34, 35, 38)  # acoustic, finger, pick, fretless, synth bass 1
COMPS = (0, 1, 4, 5, 24, 25, 26, 27, 29)  # pianos, e-pianos, guitars (nylon .. overdriven)
PADS = (16, 19, 48, 49, 52, 61, 89)  # organs, strings, choir, brass section, warm pad
LEADS = (11, 12, 40, 56, 65, 66, 68, 71, 73, 80)  # vibes, marimba, violin, trumpet, saxes, ...
JAZZ_COMPS = (0, 4, 26)  # piano, e-piano, jazz guitar
JAZZ_LEADS = (11, 56, 65, 66)  # vibes, trumpet, alto and tenor sax
WALTZ_COMPS = (0, 21, 24, 46)  # piano, accordion, nylon guitar, harp
PIANOS = (0, 0, 1, 2, 4)  # acoustic grand (twice as likely), bright, electric grand, e-piano


@dataclass(frozen=True)
class Family:
    """A clip family: its meter, tempo range and what is played.

    Attributes
    ----------
    name : str
        Key in reports and file names.
    label : str
        Name in tables.
    meter : str
        Time signature.
    beats_per_bar : int
        Beats (of the truth's tempo) per bar.
    sub : int
        Grid subdivisions per beat (2 in simple meters, 3 in 6/8).
    bpm : tuple of float
        Tempo range of the family (the truth's beat), log-spaced over the clips.
    what : str
        One line for the README and the report.
    """

    name: str
    label: str
    meter: str
    beats_per_bar: int
    sub: int
    bpm: tuple[float, float]
    what: str


FAMILIES: tuple[Family, ...] = (
    Family("straight8", "straight 8ths", "4/4", 4, 2, (40.0, 220.0),
           "kick 1 & 3, snare 2 & 4, closed hi-hat or ride on 8ths; bass, chords or pad, lead"),
    Family("sixteenths", "16ths", "4/4", 4, 2, (60.0, 160.0),
           "accented 16th hi-hats, syncopated kick, ghost snares; 16th funk bass, stabs, lead"),
    Family("halftime", "half-time", "4/4", 4, 2, (70.0, 220.0),
           "snare once a bar (beat 3), kick on 1; hats on 8ths or 16ths of the notated tempo, "
           "which is the truth"),
    Family("swing", "swing", "4/4", 4, 2, (60.0, 220.0),
           "jazz ride pattern (swung 8ths, ratio 0.58-0.70), pedal hi-hat 2 & 4, walking "
           "bass, comping; or a shuffle (ratio 0.64-0.70)"),
    Family("waltz", "3/4", "3/4", 3, 2, (60.0, 220.0),
           "oom-pah-pah: kick and bass on 1, chords and snare or side stick on 2 and 3"),
    Family("sixeight", "6/8", "6/8", 2, 3, (40.0, 130.0),
           "two dotted-quarter beats a bar (the truth), eighth-note hats and arpeggios"),
    Family("drift", "drift", "4/4", 4, 2, (60.0, 180.0),
           "straight 8ths or 16ths whose tempo moves linearly 5-15 % up or down over the clip; "
           "truth: the median beat tempo"),
    Family("drums", "drums only", "4/4", 4, 2, (40.0, 220.0),
           "drum kit alone, 8th or 16th (up to 150 BPM) patterns; no key"),
    Family("piano", "solo piano", "4/4", 4, 2, (50.0, 180.0),
           "piano alone: bass note and chords or broken chords in the left hand, melody"),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass
class Part:
    """One instrument of a clip (one MIDI track)."""

    name: str
    program: int
    is_drum: bool = False
    volume: int = 100
    pan: int = 64
    reverb: int = 40


@dataclass
class Clip:
    """A generated clip: its instruments, notes (seconds) and ground truth."""

    parts: dict[str, Part] = field(default_factory=dict)
    #: (part, pitch, start s, end s, velocity)
    notes: list[tuple[str, int, float, float, int]] = field(default_factory=list)
    truth: dict[str, Any] = field(default_factory=dict)


def family_tempo(*, family: Family, index: int, seed: int) -> float:
    """The tempo of clip ``index`` of a family: log-spaced golden-ratio sequence over its range.

    Parameters
    ----------
    family : Family
    index : int
    seed : int
        With the family, shifts the sequence's start.

    Returns
    -------
    float
        BPM of the truth's beat (the start tempo in the drift family), rounded to 0.01.
    """
    fam_no = [f.name for f in FAMILIES].index(family.name)
    start = np.random.default_rng([seed, 7919, fam_no]).random()
    u = (start + (index + 1) * _GOLDEN) % 1.0
    lo, hi = family.bpm
    return round(lo * (hi / lo) ** u, 2)


class _Builder:
    """Places notes on a beat grid (swing and humanisation applied) and collects them."""

    def __init__(self, *, rng: np.random.Generator, grid: np.ndarray, music_s: float,
                 swing: float | None, humanize_s: float) -> None:
        self.rng = rng
        self.grid = grid
        self.music_s = music_s
        self.swing = swing
        self.humanize_s = humanize_s
        self.clip = Clip()

    def part(self, name: str, program: int, *, is_drum: bool = False,
             volume: tuple[int, int] = (90, 110)) -> None:
        """Add an instrument: a random channel volume within ``volume``, pan and reverb."""
        self.clip.parts[name] = Part(
            name=name, program=program, is_drum=is_drum,
            volume=int(self.rng.integers(volume[0], volume[1] + 1)),
            pan=64 if name in ("drums", "bass") else int(self.rng.integers(34, 95)),
            reverb=int(self.rng.integers(20, 70)))

    def time(self, beat: float, *, swung: bool = True) -> float:
        """Seconds of a position in beats: linear within the beat, offbeat 8ths swung."""
        k = min(int(math.floor(beat + 1e-9)), len(self.grid) - 2)
        frac = beat - k
        if swung and self.swing is not None and abs(frac - 0.5) < 1e-6:
            frac = self.swing
        return float(self.grid[k] + frac * (self.grid[k + 1] - self.grid[k]))

    def add(self, part: str, pitch: int, beat: float, dur: float, vel: float) -> None:
        """Add a note at ``beat`` (beats from the first downbeat) lasting ``dur`` beats."""
        jitter = self.humanize_s * (0.5 if self.clip.parts[part].is_drum else 1.0)
        start = self.time(beat) + (float(self.rng.normal(0.0, jitter)) if jitter else 0.0)
        start = max(start, 0.0)
        if start >= self.music_s:
            return
        end = max(self.time(beat + dur, swung=False), start + 0.04)
        velocity = int(np.clip(round(vel + self.rng.normal(0.0, 5.0)), 1, 127))
        self.clip.notes.append((part, int(pitch), start, end, velocity))


def _grid(*, rng: np.random.Generator, bpm: float, bpm_end: float, music_s: float) -> np.ndarray:
    """Beat start times from a random lead-in, the tempo moving linearly in time to ``bpm_end``,
    until two beats past the end of the music."""
    t = float(rng.uniform(0.2, 0.6))
    times = [t]
    while t < music_s + 1e-9 or len(times) < 3:
        frac = min(max(t / music_s, 0.0), 1.0)
        t += 60.0 / (bpm + (bpm_end - bpm) * frac)
        times.append(t)
    times.append(t + (times[-1] - times[-2]))
    return np.asarray(times)


def _bass_pitch(pc: int) -> int:
    """The bass note of a pitch class, E1 .. D#2."""
    return 28 + (pc - 4) % 12  # E1 .. D#2


def _voicing(pc: int, quality: str, *, low: int = 52) -> list[int]:
    """A chord in root position, its root in the octave from ``low``."""
    root = low + (pc - low) % 12
    return [root + iv for iv in CHORDS[quality]]


def _scale_pitches(tonic: int, mode: str, lo: int, hi: int) -> list[int]:
    """The MIDI pitches of the key's scale between ``lo`` and ``hi``."""
    pcs = {(tonic + d) % 12 for d in SCALES[mode]}
    return [p for p in range(lo, hi + 1) if p % 12 in pcs]


class _Melody:
    """A random walk on the scale that lands on chord tones on strong beats."""

    def __init__(self, rng: np.random.Generator, tonic: int, mode: str, lo: int, hi: int):
        self.rng = rng
        self.pool = _scale_pitches(tonic, mode, lo, hi)
        self.i = len(self.pool) // 2

    def next(self, chord_pcs: set[int], strong: bool) -> int:
        """The next pitch: a step of up to 2 scale degrees, a nearby chord tone if strong."""
        self.i = int(np.clip(self.i + self.rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0,
                             len(self.pool) - 1))
        pitch = self.pool[self.i]
        if strong:
            lo, hi = self.pool[0], self.pool[-1]
            near = [p for p in range(pitch - 4, pitch + 5) if p % 12 in chord_pcs and lo <= p <= hi]
            if near:
                pitch = min(near, key=lambda p: (abs(p - pitch), p))
        return pitch


def _lead_rhythm(rng: np.random.Generator, sub: int, beats: int) -> list[tuple[float, float]]:
    """(position in the bar, duration) in beats for one bar of a lead line."""
    out: list[tuple[float, float]] = []
    for b in range(beats):
        r = rng.random()
        if r < 0.15:
            continue
        if sub == 3:
            if r < 0.5:
                out.append((b, 1.0))
            elif r < 0.8:
                out += [(b, 2 / 3), (b + 2 / 3, 1 / 3)]
            else:
                out += [(b + k / 3, 1 / 3) for k in range(3)]
        elif r < 0.55:
            out.append((b, 1.0))
        else:
            out += [(b, 0.5), (b + 0.5, 0.5)]
    return out


def _drum_bar(bld: _Builder, *, style: str, bar0: float, bar: int, rng: np.random.Generator,
              fill_hats16: bool) -> None:
    """One bar of drums in a style (positions in beats from the bar's downbeat ``bar0``)."""
    hits: list[tuple[float, int, float]] = []
    if style == "rock":
        hits += [(0, KICK, 110), (2, KICK, 105), (1, SNARE, 105), (3, SNARE, 108)]
        if bar % 2 == 1:
            hits.append((2.5, KICK, 95))
        hits += [(k / 2, CHH, 85 if k % 2 == 0 else 65) for k in range(8)]
    elif style == "rock_ride":
        hits += [(0, KICK, 110), (1.5, KICK, 95), (2, KICK, 105), (1, SNARE, 105),
                 (3, SNARE, 108)]
        hits += [(k / 2, RIDE, 90 if k % 2 == 0 else 70) for k in range(8)]
    elif style == "rock_open":
        hits += [(0, KICK, 110), (2, KICK, 105), (2.5, KICK, 90), (1, SNARE, 105),
                 (3, SNARE, 108), (3.5, OHH, 80)]
        hits += [(k / 2, CHH, 85 if k % 2 == 0 else 65) for k in range(7)]
    elif style == "sixteen":
        hits += [(0, KICK, 110), (0.75, KICK, 90), (2.5, KICK, 100), (1, SNARE, 108),
                 (3, SNARE, 110), (1.75, SNARE, 35), (2.25, SNARE, 32), (3.75, SNARE, 38)]
        hits += [(k / 4, CHH, (90, 50, 70, 50)[k % 4]) for k in range(16)]
    elif style == "sixteen_b":
        hits += [(0, KICK, 110), (1.75, KICK, 95), (2.5, KICK, 100), (3.25, KICK, 85),
                 (1, SNARE, 108), (3, SNARE, 110), (0.75, SNARE, 35)]
        hits += [(k / 4, CHH, (95, 45, 75, 45)[k % 4]) for k in range(16)]
    elif style == "halftime":
        hits += [(0, KICK, 112), (1.5 if bar % 2 == 0 else 2.75, KICK, 95), (2, SNARE, 115)]
        if fill_hats16:
            hits += [(k / 4, CHH, (90, 45, 70, 45)[k % 4]) for k in range(16)]
        else:
            hits += [(k / 2, CHH, 85 if k % 2 == 0 else 65) for k in range(8)]
    elif style == "jazz":
        hits += [(0, RIDE, 80), (1, RIDE, 95), (1.5, RIDE, 65), (2, RIDE, 80), (3, RIDE, 95),
                 (3.5, RIDE, 65), (1, PHH, 70), (3, PHH, 70)]
        hits += [(k, KICK, 35) for k in range(4) if rng.random() < 0.5]
        hits += [(k / 2, SNARE, 45) for k in range(1, 8, 2) if rng.random() < 0.25]
    elif style == "shuffle":
        hits += [(0, KICK, 110), (2, KICK, 105), (2.5, KICK, 85), (1, SNARE, 105),
                 (3, SNARE, 108)]
        hits += [(k / 2, CHH, 85 if k % 2 == 0 else 60) for k in range(8)]
    elif style == "waltz":
        hits += [(0, KICK, 105), (1, SNARE, 70), (2, SNARE, 70)]
        hits += [(k, CHH, 80) for k in range(3)]
    elif style == "waltz_side":
        hits += [(0, KICK, 100), (1, SIDE, 80), (2, SIDE, 80)]
        hits += [(k, RIDE, 75) for k in range(3)]
    elif style == "sixeight":
        hits += [(0, KICK, 110), (1, SNARE, 105)]
        hits += [(k / 3, CHH, 85 if k % 3 == 0 else 60) for k in range(6)]
    elif style == "sixeight_b":
        hits += [(0, KICK, 110), (2 / 3, KICK, 85), (1, SNARE, 105)]
        hits += [(k / 3, RIDE, 85 if k % 3 == 0 else 60) for k in range(6)]
    else:  # pragma: no cover - a programming error
        raise ValueError(style)
    if bar % 4 == 0 and style not in ("jazz",) and rng.random() < 0.6:
        hits.append((0, CRASH, 95))
    for pos, pitch, vel in hits:
        bld.add("drums", pitch, bar0 + pos, 0.25, vel)


def make_clip(*, family: str, index: int, seed: int, music_s: float) -> Clip:
    """Generate clip ``index`` of a family: its parts, notes and ground truth.

    Parameters
    ----------
    family : str
        A name of :data:`FAMILIES`.
    index : int
        Clip number within the family (0-based).
    seed : int
        The harness's seed.
    music_s : float
        Seconds of music: no note starts later (the rendered file is longer, for the tails).

    Returns
    -------
    Clip
    """
    fam = FAMILY_BY_NAME[family]
    fam_no = [f.name for f in FAMILIES].index(family)
    rng = np.random.default_rng(np.random.SeedSequence([seed, fam_no, index]))
    bpm = family_tempo(family=fam, index=index, seed=seed)
    bpm_end = bpm
    if family == "drift":
        bpm_end = round(bpm * (1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.15)), 2)
    grid = _grid(rng=rng, bpm=bpm, bpm_end=bpm_end, music_s=music_s)
    tonic = int(rng.integers(0, 12))
    mode = str(rng.choice(["major", "minor"]))
    has_key = family != "drums"

    style = ""
    swing: float | None = None
    feel = "straight"
    if family in ("straight8", "drift", "drums"):
        style = str(rng.choice(["rock", "rock_ride", "rock_open"]))
        if family in ("drift", "drums") and bpm <= 150 and rng.random() < 0.4:
            style = str(rng.choice(["sixteen", "sixteen_b"]))
    elif family == "sixteenths":
        style = str(rng.choice(["sixteen", "sixteen_b"]))
    elif family == "halftime":
        style, feel = "halftime", "half-time"
    elif family == "swing":
        if rng.random() < 0.7:
            style, feel, swing = "jazz", "swing", float(rng.uniform(0.58, 0.70))
        else:
            style, feel, swing = "shuffle", "shuffle", float(rng.uniform(0.64, 0.70))
    elif family == "waltz":
        style = str(rng.choice(["waltz", "waltz_side"]))
    elif family == "sixeight":
        style = str(rng.choice(["sixeight", "sixeight_b"]))
    humanize = float(rng.choice([0.0, 0.004, 0.008]))
    bld = _Builder(rng=rng, grid=grid, music_s=music_s, swing=swing, humanize_s=humanize)

    bpb = fam.beats_per_bar
    n_beats = int(np.searchsorted(grid, music_s))
    n_bars = math.ceil(n_beats / bpb)
    jazz = style == "jazz"
    prog_set = JAZZ_PROGRESSIONS if jazz else PROGRESSIONS
    prog = prog_set[mode][int(rng.integers(0, len(prog_set[mode])))]
    hats16 = bool(bpm <= 140 and rng.random() < 0.5)

    with_drums = family not in ("piano",) and not (family in ("waltz", "sixeight")
                                                   and rng.random() < 0.2)
    if with_drums:
        kit = KITS_JAZZ if jazz else KITS_ROCK
        bld.part("drums", int(rng.choice(kit)), is_drum=True, volume=(100, 120))

    comp_kind = ""
    lead = None
    if family == "piano":
        bld.part("piano", int(rng.choice(PIANOS)), volume=(100, 110))
        comp_kind = str(rng.choice(["stride", "broken"]))
        lead = _Melody(rng, tonic, mode, 64, 84)
    elif family != "drums":
        bld.part("bass", int(rng.choice((32, 33) if jazz else BASSES)), volume=(95, 115))
        if jazz:
            comp_kind = "charleston"
            bld.part("comp", int(rng.choice(JAZZ_COMPS)), volume=(70, 95))
        elif family == "waltz":
            comp_kind = "oompah"
            bld.part("comp", int(rng.choice(WALTZ_COMPS)), volume=(75, 100))
        elif family == "sixeight":
            comp_kind = "arpeggio"
            bld.part("comp", int(rng.choice((0, 24, 46, 4))), volume=(75, 100))
        elif family == "sixteenths":
            comp_kind = "stabs"
            bld.part("comp", int(rng.choice((4, 5, 27, 61, 16))), volume=(70, 95))
        elif rng.random() < 0.4 or family == "halftime":
            comp_kind = "pad"
            bld.part("comp", int(rng.choice(PADS)), volume=(60, 85))
        else:
            comp_kind = "quarters"
            bld.part("comp", int(rng.choice(COMPS)), volume=(70, 95))
        if rng.random() < 0.75:
            bld.part("lead", int(rng.choice(JAZZ_LEADS if jazz else LEADS)), volume=(90, 110))
            lead = _Melody(rng, tonic, mode, 62, 84)

    walk_pool = _scale_pitches(tonic, mode, 28, 50)
    for bar in range(n_bars):
        b0 = float(bar * bpb)
        root, quality = prog[bar % len(prog)]
        next_root = prog[(bar + 1) % len(prog)][0]
        pc = (tonic + root) % 12
        chord_pcs = {(pc + iv) % 12 for iv in CHORDS[quality]}
        bass = _bass_pitch(pc)
        fifth = bass + 7
        if with_drums:
            _drum_bar(bld, style=style, bar0=b0, bar=bar, rng=rng, fill_hats16=hats16)
        if family == "drums":
            continue
        voicing = _voicing(pc, quality)
        if family == "piano":
            if comp_kind == "stride":
                for k in range(bpb):
                    if k % 2 == 0:  # bass note on 1, its fifth on 3; the chord between
                        bld.add("piano", bass + 12 if k == 0 else fifth + 12, b0 + k, 0.9, 78)
                    else:
                        for p in voicing:
                            bld.add("piano", p, b0 + k, 0.8, 62)
            else:
                arp = [bass + 12, voicing[0] + 7, voicing[0] + 12, voicing[1] + 12]
                for k in range(2 * bpb):
                    bld.add("piano", arp[k % len(arp)], b0 + k / 2, 0.5, 60 if k % 2 else 72)
            for pos, dur in _lead_rhythm(rng, fam.sub, bpb):
                strong = abs(pos - round(pos)) < 1e-9
                bld.add("piano", lead.next(chord_pcs, strong) if lead else 72, b0 + pos, dur,
                        88 if strong else 76)
            continue

        # bass
        if jazz:
            for k in range(4):
                if k == 0:
                    p = bass
                elif k == 3:  # approach the next root from a semitone below or above
                    target = _bass_pitch((tonic + next_root) % 12)
                    p = target + int(rng.choice([-1, 1]))
                else:
                    p = int(rng.choice([q for q in walk_pool if q % 12 in chord_pcs] or [bass]))
                bld.add("bass", p, b0 + k, 0.95, 90)
        elif style == "shuffle":
            for k in range(4):
                bld.add("bass", bass if k % 2 == 0 else fifth, b0 + k, 0.45, 95)
                bld.add("bass", bass + 12 if k % 2 == 0 else fifth, b0 + k + 0.5, 0.4, 80)
        elif family == "sixteenths" or style.startswith("sixteen"):
            for pos, p in ((0, bass), (0.75, bass + 12), (1.5, bass), (2, fifth),
                           (2.75, bass + 12), (3.5, bass)):
                bld.add("bass", p, b0 + pos, 0.2, 95)
        elif family == "halftime":
            bld.add("bass", bass, b0, 1.4, 100)
            bld.add("bass", bass, b0 + (1.5 if bar % 2 == 0 else 2.75), 1.0, 90)
        elif family == "waltz":
            bld.add("bass", bass, b0, 0.9, 100)
        elif family == "sixeight":
            bld.add("bass", bass, b0, 0.9, 100)
            bld.add("bass", fifth, b0 + 1, 0.9, 90)
        else:
            kind = bar // 4 % 2 if rng.random() < 0.5 else 0
            if kind == 0:
                for k in range(8):
                    bld.add("bass", bass, b0 + k / 2, 0.45, 95 if k % 2 == 0 else 80)
            else:
                for pos, p in ((0, bass), (1.5, fifth), (2, bass), (3, fifth)):
                    bld.add("bass", p, b0 + pos, 0.9, 95)

        # chords
        if comp_kind == "charleston":
            pattern = ((0, 0.4), (1.5, 0.4)) if bar % 2 == 0 else ((1.5, 0.4), (3.5, 0.8))
            for pos, dur in pattern:
                for p in voicing:
                    bld.add("comp", p, b0 + pos, dur, 65)
        elif style == "shuffle":
            for k in (1, 3):
                for p in voicing:
                    bld.add("comp", p, b0 + k, 0.45, 70)
        elif comp_kind == "oompah":
            for k in (1, 2):
                for p in voicing:
                    bld.add("comp", p, b0 + k, 0.8, 68)
        elif comp_kind == "arpeggio":
            arp = [voicing[0], voicing[2], voicing[0] + 12, voicing[1] + 12, voicing[0] + 12,
                   voicing[2]]
            for k in range(6):
                bld.add("comp", arp[k], b0 + k / 3, 0.33, 72 if k % 3 == 0 else 60)
        elif comp_kind == "stabs":
            for pos in (0.5, 1.75, 2.5):
                for p in voicing:
                    bld.add("comp", p, b0 + pos, 0.2, 75)
        elif comp_kind == "pad":
            for p in voicing:
                bld.add("comp", p, b0, bpb - 0.05, 60)
        else:
            for k in range(bpb):
                for p in voicing:
                    bld.add("comp", p, b0 + k, 0.9, 70 if k % 2 == 0 else 62)

        # lead
        if lead is not None:
            for pos, dur in _lead_rhythm(rng, fam.sub, bpb):
                strong = abs(pos - round(pos)) < 1e-9
                bld.add("lead", lead.next(chord_pcs, strong), b0 + pos, dur * 0.95,
                        96 if strong else 84)

    clip = bld.clip
    beats = grid[grid < music_s]
    starts = np.sort(np.array([n[2] for n in clip.notes]))
    onsets: list[float] = []
    for t in starts:
        if not onsets or t - onsets[-1] >= ONSET_MERGE_S:
            onsets.append(float(t))
    tempi = 60.0 / np.diff(grid[: max(len(beats), 2) + 1])
    clip.truth = {
        "id": f"{family}-{index:03d}",
        "family": family,
        "family_label": fam.label,
        "index": index,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "meter": fam.meter,
        "beats_per_bar": bpb,
        "beat_unit": "dotted quarter" if fam.sub == 3 else "quarter",
        "tempo_bpm": round(float(np.median(tempi)), 3),
        "tempo_start_bpm": bpm,
        "tempo_end_bpm": bpm_end,
        "feel": feel,
        "style": style or comp_kind,
        "swing_ratio": swing,
        "humanize_s": humanize,
        "key": f"{PC_NAMES[tonic]} {mode}" if has_key else None,
        "tonic": PC_NAMES[tonic] if has_key else None,
        "mode": mode if has_key else None,
        "music_s": music_s,
        "beats": [round(float(t), 6) for t in beats],
        "downbeats": [round(float(t), 6) for t in beats[::bpb]],
        "onsets": [round(t, 6) for t in onsets],
        "onset_merge_s": ONSET_MERGE_S,
        "parts": [{"name": p.name, "program": p.program, "is_drum": p.is_drum,
                   "volume": p.volume, "pan": p.pan} for p in clip.parts.values()],
        "notes": [[part, pitch, round(s, 6), round(e, 6), v]
                  for part, pitch, s, e, v in sorted(clip.notes, key=lambda n: n[2])],
    }
    return clip


def write_midi(clip: Clip, path: str) -> None:
    """Write a clip as a standard MIDI file (pretty_midi; times in seconds, 960 ticks a beat).

    Parameters
    ----------
    clip : Clip
    path : str
    """
    import pretty_midi

    truth = clip.truth
    quarter_bpm = truth["tempo_start_bpm"] * (1.5 if truth["beat_unit"] == "dotted quarter"
                                              else 1.0)
    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=quarter_bpm)
    num, den = (int(x) for x in truth["meter"].split("/"))
    pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, 0.0))
    instruments: dict[str, Any] = {}
    for name, part in clip.parts.items():
        inst = pretty_midi.Instrument(program=part.program, is_drum=part.is_drum, name=name)
        for cc, value in ((7, part.volume), (10, part.pan), (91, part.reverb)):
            inst.control_changes.append(pretty_midi.ControlChange(cc, value, 0.0))
        instruments[name] = inst
        pm.instruments.append(inst)
    for part_name, pitch, start, end, vel in clip.notes:
        instruments[part_name].notes.append(pretty_midi.Note(vel, pitch, start, end))
    pm.write(path)
