"""The project's error classes: one root; messages name the value, the constraint and the fix."""

from __future__ import annotations


class FingerprintError(Exception):
    """Root of every error this project raises on purpose.

    Catch this to handle any failure of the fingerprint engine; the subclasses say which part
    failed. Messages name the offending value, the constraint it broke and what to do about it.
    """


class ParameterError(FingerprintError, ValueError):
    """An argument is outside what the function accepts (shape, dtype, rate, channel count)."""


class BadAudioError(FingerprintError):
    """Decoded PCM that cannot be described: no samples at all, or NaN / infinite samples."""
