"""The musical key of a track, read back from its fingerprint (docs/FINGERPRINT.md "Tonality").

The fingerprint stores the key as three numbers: ``key_fifths_x``, ``key_fifths_y`` (the key's
strength times the cosine / sine of the angle of its relative major's tonic on the circle of
fifths, C = 0 deg, G = 30 deg, D = 60 deg, ..., F = 330 deg) and ``key_mode`` (positive for
major, negative for minor). :func:`key_of` recovers the tonic, the mode, the strength and the
Camelot code from them exactly; pure Python, no numba.

Examples
--------
>>> k = key_of({"key_fifths_x": 0.8, "key_fifths_y": 0.0, "key_mode": -0.1})
>>> k.label, k.camelot, round(k.strength, 2)
('A minor', '8A', 0.8)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .design import KEY_R0

#: Pitch-class names (0 = C), spelled as the bench's truth files spell them.
PITCH_NAMES: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

#: Below this strength (the length of ``(key_fifths_x, key_fifths_y)``) a track has no key.
MIN_STRENGTH = 1e-6


@dataclass(frozen=True, slots=True)
class Key:
    """A key as the fingerprint states it.

    Attributes
    ----------
    tonic : str
        Pitch-class name of the tonic, e.g. ``"A"``, ``"F#"``, ``"Bb"``.
    mode : str
        ``"major"`` or ``"minor"``.
    strength : float, 0..1
        How clearly the mean chroma fits the key's profile (docs/FINGERPRINT.md "Tonality").
    fifths : int, 0..11
        Position of the relative major's tonic on the circle of fifths (C = 0, G = 1, ... F =
        11): A minor and C major share 0.
    """

    tonic: str
    mode: str
    strength: float
    fifths: int

    @property
    def camelot(self) -> str:
        """Camelot wheel code: ``"8B"`` for C major, ``"8A"`` for A minor, ``"9B"`` for G."""
        return f"{(self.fifths + 7) % 12 + 1}{'B' if self.mode == 'major' else 'A'}"

    @property
    def label(self) -> str:
        """``"A minor"``: the tonic and the mode (mir_eval's key format)."""
        return f"{self.tonic} {self.mode}"

    @property
    def pitch_class(self) -> int:
        """The tonic as a pitch class, 0 = C .. 11 = B."""
        return PITCH_NAMES.index(self.tonic)


def key_values(pitch_class: int, mode: str, strength: float, mode_value: float) -> dict[str, float]:
    """The three fingerprint values of a key (the inverse of :func:`key_of`).

    Parameters
    ----------
    pitch_class : int
        Tonic, 0 = C .. 11 = B.
    mode : {"major", "minor"}
    strength : float, 0..1
    mode_value : float, -1..1
        ``key_mode``; its sign is forced to agree with ``mode`` (0 counts as major).

    Returns
    -------
    dict with ``key_fifths_x``, ``key_fifths_y``, ``key_mode``.
    """
    major_tonic = pitch_class if mode == "major" else (pitch_class + 3) % 12
    p = (7 * major_tonic) % 12  # 7 is its own inverse mod 12: semitones -> fifths
    a = 2.0 * math.pi * p / 12.0
    m = abs(mode_value)
    if mode == "minor" and m == 0.0:
        m = 1e-12
    return {"key_fifths_x": strength * math.cos(a), "key_fifths_y": strength * math.sin(a),
            "key_mode": m if mode == "major" else -m}


def key_of(values: Mapping[str, float]) -> Key | None:
    """The key a fingerprint states, or None when the track has none.

    Parameters
    ----------
    values : mapping
        At least ``key_fifths_x``, ``key_fifths_y`` and ``key_mode`` (a fingerprint's
        ``as_dict()``, a JSONL record's ``fingerprint``, ...).

    Returns
    -------
    Key or None
        None when the strength ``hypot(key_fifths_x, key_fifths_y)`` is below
        :data:`MIN_STRENGTH` (silence, noise, unpitched drums: see docs/FINGERPRINT.md) or a
        value is not finite.

    Notes
    -----
    ``p = round(atan2(y, x) / 30 deg) mod 12`` is the relative major's tonic on the circle of
    fifths; the major tonic is ``7 p mod 12`` semitones above C, a minor tonic 3 semitones
    below its relative major; the mode is major when ``key_mode >= 0``.
    """
    x = float(values["key_fifths_x"])
    y = float(values["key_fifths_y"])
    m = float(values["key_mode"])
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(m)):
        return None
    strength = math.hypot(x, y)
    if strength < MIN_STRENGTH:
        return None
    p = round(math.atan2(y, x) / (math.pi / 6.0)) % 12
    mode = "major" if m >= 0.0 else "minor"
    major_tonic = (7 * p) % 12
    tonic = major_tonic if mode == "major" else (major_tonic + 9) % 12
    return Key(tonic=PITCH_NAMES[tonic], mode=mode, strength=min(1.0, strength), fifths=p)


def key_fields(chroma: np.ndarray, profiles: np.ndarray) -> dict[str, float]:
    """``key_fifths_x``, ``key_fifths_y`` and ``key_mode`` of a track's mean chroma.

    Parameters
    ----------
    chroma : float64[12]
        The key chroma summed over active frames (``_tonal.key_chroma``; class 0 = C). Only
        its shape matters: the sum and the mean give the same key.
    profiles : float64[24, 12]
        ``design.key_profiles()``: 12 major then 12 minor keys, centred, unit norm.

    Returns
    -------
    dict
        With ``r = profiles @ (c - mean c) / |c - mean c|`` (Pearson's correlation with each
        key; Krumhansl 1990), the key is ``argmax r`` (ties: the first, majors before
        minors), ``strength = clip((r_best - KEY_R0) / (1 - KEY_R0), 0, 1)``,
        ``key_fifths_x, key_fifths_y = strength (cos, sin)(2 pi p / 12)`` with ``p`` the
        relative major's tonic on the circle of fifths, and ``key_mode = max r_major -
        max r_minor`` clipped to [-1, 1]. All three are 0 for a chroma without contrast
        (silence, no peak) and for a track without a key (strength 0).
    """
    c = np.asarray(chroma, dtype=np.float64)
    d = c - c.mean()
    norm = math.sqrt(float(np.dot(d, d)))
    out = {"key_fifths_x": 0.0, "key_fifths_y": 0.0, "key_mode": 0.0}
    if not norm > 1e-12 * max(1e-300, float(np.abs(c).max())):
        return out
    r = profiles @ (d / norm)
    best = int(np.argmax(r))
    mode = "major" if best < 12 else "minor"
    strength = min(1.0, max(0.0, (float(r[best]) - KEY_R0) / (1.0 - KEY_R0)))
    if strength == 0.0:  # no key: no mode either (a keyless track's mode would be noise)
        return out
    mode_value = min(1.0, max(-1.0, float(r[:12].max()) - float(r[12:].max())))
    return key_values(best % 12, mode, strength, mode_value)
