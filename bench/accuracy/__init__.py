"""Helpers of bench/accuracy.py: rendered clips with ground truth, and the estimators.

- :mod:`accuracy.clips`: MIDI arrangements with known tempo, meter, onsets and key, generated
  from a seed (pretty_midi), and their ground truth;
- :mod:`accuracy.audio`: FluidSynth rendering, FLAC / MP3 / OGG encodings, the pink-noise bed
  and the active duration of docs/FINGERPRINT.md;
- :mod:`accuracy.estimators`: our fingerprint, librosa and Essentia on one file, scored
  against the truth with mir_eval (runs in the worker processes).
"""
