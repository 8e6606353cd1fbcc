"""The fingerprint value: 25 named floats in the order of docs/FINGERPRINT.md (version 2)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: Bumped whenever a definition in docs/FINGERPRINT.md changes meaning; stored fingerprints
#: carrying an older version are recomputed by the engine.
FINGERPRINT_VERSION = 2

#: The 25 value names, in docs/FINGERPRINT.md order (the order of :meth:`Fingerprint.as_array`).
FINGERPRINT_NAMES: tuple[str, ...] = (
    "sub_bass_db",
    "bass_db",
    "low_mid_db",
    "upper_mid_db",
    "presence_db",
    "air_db",
    "lufs",
    "crest_db",
    "loudness_range",
    "dynamic_range_variation",
    "peak_consistency",
    "tempo_bpm",
    "pulse_clarity",
    "transient_density",
    "spectral_centroid",
    "harmonic_ratio",
    "chroma_energy",
    "key_fifths_x",
    "key_fifths_y",
    "key_mode",
    "mfcc_1",
    "mfcc_2",
    "mfcc_3",
    "mfcc_4",
    "phase_correlation",
)

#: Unit of each value, for display (same order as FINGERPRINT_NAMES).
FINGERPRINT_UNITS: tuple[str, ...] = (
    "dB", "dB", "dB", "dB", "dB", "dB",
    "LUFS", "dB", "LU", "dB", "0..1",
    "BPM", "0..1", "onsets/s",
    "Hz", "0..1", "1/12..1",
    "-1..1", "-1..1", "-1..1",
    "dB", "dB", "dB", "dB",
    "-1..1",
)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One track's 25 values (docs/FINGERPRINT.md defines each)."""

    sub_bass_db: float
    bass_db: float
    low_mid_db: float
    upper_mid_db: float
    presence_db: float
    air_db: float
    lufs: float
    crest_db: float
    loudness_range: float
    dynamic_range_variation: float
    peak_consistency: float
    tempo_bpm: float
    pulse_clarity: float
    transient_density: float
    spectral_centroid: float
    harmonic_ratio: float
    chroma_energy: float
    key_fifths_x: float
    key_fifths_y: float
    key_mode: float
    mfcc_1: float
    mfcc_2: float
    mfcc_3: float
    mfcc_4: float
    phase_correlation: float

    @classmethod
    def from_array(cls, values: np.ndarray) -> Fingerprint:
        """Build from a float64[25] array in spec order."""
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != (len(FINGERPRINT_NAMES),):
            from .errors import ParameterError

            raise ParameterError(
                f"a fingerprint needs {len(FINGERPRINT_NAMES)} values, got shape {arr.shape}"
            )
        return cls(*(float(v) for v in arr))

    def as_array(self) -> np.ndarray:
        """The 25 values as float64[25], spec order."""
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float64)

    def as_dict(self) -> dict[str, float]:
        """Spec name -> value, spec order."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


if tuple(f.name for f in fields(Fingerprint)) != FINGERPRINT_NAMES:
    raise AssertionError("Fingerprint's fields are not FINGERPRINT_NAMES, in the same order")
if len(FINGERPRINT_UNITS) != len(FINGERPRINT_NAMES):
    raise AssertionError("FINGERPRINT_UNITS does not give one unit per FINGERPRINT_NAMES entry")
