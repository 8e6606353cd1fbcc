"""The fingerprint value: 25 named floats in the order of shared/FINGERPRINT-SPEC.md."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: Bumped whenever a definition in docs/FINGERPRINT.md changes meaning; stored fingerprints
#: carrying an older version are recomputed by the engine.
FINGERPRINT_VERSION = 1

#: The 25 value names, in spec order (the order of :meth:`Fingerprint.as_array`).
FINGERPRINT_NAMES: tuple[str, ...] = (
    "sub_bass_pct",
    "bass_pct",
    "low_mid_pct",
    "mid_pct",
    "upper_mid_pct",
    "presence_pct",
    "air_pct",
    "lufs",
    "crest_db",
    "bass_mid_ratio",
    "tempo_bpm",
    "rhythm_stability",
    "transient_density",
    "silence_ratio",
    "spectral_centroid",
    "spectral_rolloff",
    "spectral_flatness",
    "harmonic_ratio",
    "pitch_stability",
    "chroma_energy",
    "dynamic_range_variation",
    "loudness_range",
    "peak_consistency",
    "stereo_width",
    "phase_correlation",
)

#: Unit of each value, for display (same order as FINGERPRINT_NAMES).
FINGERPRINT_UNITS: tuple[str, ...] = (
    "share", "share", "share", "share", "share", "share", "share",
    "LUFS", "dB", "dB", "BPM", "0..1", "onsets/s", "share",
    "Hz", "Hz", "0..1", "0..1", "0..1", "1/12..1", "dB", "LU", "0..1", "0..1", "-1..1",
)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One track's 25 values (docs/FINGERPRINT.md defines each)."""

    sub_bass_pct: float
    bass_pct: float
    low_mid_pct: float
    mid_pct: float
    upper_mid_pct: float
    presence_pct: float
    air_pct: float
    lufs: float
    crest_db: float
    bass_mid_ratio: float
    tempo_bpm: float
    rhythm_stability: float
    transient_density: float
    silence_ratio: float
    spectral_centroid: float
    spectral_rolloff: float
    spectral_flatness: float
    harmonic_ratio: float
    pitch_stability: float
    chroma_energy: float
    dynamic_range_variation: float
    loudness_range: float
    peak_consistency: float
    stereo_width: float
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
