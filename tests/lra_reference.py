"""Plain BS.1770-4 integrated loudness and EBU Tech 3342 loudness range (LRA), from the texts.

Written for clarity, not speed, from the published standards and docs/FINGERPRINT.md:

- K-weighting: two biquads designed at the signal's own rate with the formulas of R. Bristow-
  Johnson's "Audio EQ Cookbook": a high shelf (+4 dB, 1500 Hz, Q = 1/sqrt(2)) followed by a
  high-pass (38 Hz, Q = 0.5), run with :func:`scipy.signal.lfilter` from zero state over the
  whole track.
- 100 ms sub-blocks ``j`` cover samples ``[floor(j sr / 10), floor((j + 1) sr / 10))``; a block
  of ``m`` sub-blocks is complete when its last sub-block is; only complete blocks count.
- Block energy: per channel, mean square of the K-weighted samples of the block; summed over
  channels with the BS.1770-4 weights of :func:`channel_weights` (LFE 0, surrounds 1.41). Loudness
  ``L = -0.691 + 10 log10(energy)``.
- Integrated loudness (BS.1770-4): 400 ms blocks (4 sub-blocks) every 100 ms; absolute gate
  ``L > -70`` LUFS; relative gate ``L > L_abs - 10`` where ``L_abs`` is the loudness of the mean
  energy of the absolutely gated blocks; result = loudness of the mean energy of the blocks
  that pass both. -70.0 when no block passes.
- Loudness range (EBU Tech 3342): 3 s short-term windows (30 sub-blocks) every 100 ms; absolute
  gate -70 LUFS; relative gate 20 LU below the loudness of the mean energy of the absolutely
  gated windows; LRA = 95th - 10th percentile (``np.percentile``, linear) of the surviving
  short-term loudness values; 0.0 when fewer than 2 windows survive.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

__all__ = [
    "ABSOLUTE_GATE_LUFS",
    "block_energies",
    "block_loudness",
    "channel_weights",
    "integrated_loudness",
    "k_weight",
    "k_weighting_filters",
    "loudness_range",
    "rbj_high_pass",
    "rbj_high_shelf",
    "short_term_loudness",
    "subblock_bounds",
]

#: Absolute gate of BS.1770-4 and EBU Tech 3342, LUFS.
ABSOLUTE_GATE_LUFS = -70.0
#: Relative gate of integrated loudness (BS.1770-4), LU below the absolutely gated mean.
RELATIVE_GATE_INTEGRATED_LU = -10.0
#: Relative gate of the loudness range (EBU Tech 3342), LU below the absolutely gated mean.
RELATIVE_GATE_LRA_LU = -20.0
#: The -0.691 dB offset that makes a 997 Hz 0 dBFS sine in one channel read -3.01 LUFS.
LOUDNESS_OFFSET_DB = -0.691


# ----------------------------------------------------------------------------------------------
# K-weighting (RBJ Audio EQ Cookbook biquads)
# ----------------------------------------------------------------------------------------------


def rbj_high_shelf(f0: float, gain_db: float, q: float, sr: float) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook high-shelf biquad.

    ``A = 10^(gain/40)``, ``w0 = 2 pi f0 / sr``, ``alpha = sin(w0) / (2 Q)``::

        b0 =    A ((A+1) + (A-1) cos w0 + 2 sqrt(A) alpha)
        b1 = -2 A ((A-1) + (A+1) cos w0)
        b2 =    A ((A+1) + (A-1) cos w0 - 2 sqrt(A) alpha)
        a0 =       (A+1) - (A-1) cos w0 + 2 sqrt(A) alpha
        a1 =    2 ((A-1) - (A+1) cos w0)
        a2 =       (A+1) - (A-1) cos w0 - 2 sqrt(A) alpha

    Returns
    -------
    b, a : float64 ndarray, shape (3,), normalised so that ``a[0] = 1``
    """
    big_a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * f0 / sr
    cw = np.cos(w0)
    alpha = np.sin(w0) / (2.0 * q)
    sa = 2.0 * np.sqrt(big_a) * alpha
    b = np.array(
        [
            big_a * ((big_a + 1) + (big_a - 1) * cw + sa),
            -2.0 * big_a * ((big_a - 1) + (big_a + 1) * cw),
            big_a * ((big_a + 1) + (big_a - 1) * cw - sa),
        ]
    )
    a = np.array(
        [
            (big_a + 1) - (big_a - 1) * cw + sa,
            2.0 * ((big_a - 1) - (big_a + 1) * cw),
            (big_a + 1) - (big_a - 1) * cw - sa,
        ]
    )
    return b / a[0], a / a[0]


def rbj_high_pass(f0: float, q: float, sr: float) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook second-order high-pass biquad.

    ``w0 = 2 pi f0 / sr``, ``alpha = sin(w0) / (2 Q)``: ``b = [(1+cos w0)/2, -(1+cos w0),
    (1+cos w0)/2]``, ``a = [1 + alpha, -2 cos w0, 1 - alpha]``.

    Returns
    -------
    b, a : float64 ndarray, shape (3,), normalised so that ``a[0] = 1``
    """
    w0 = 2.0 * np.pi * f0 / sr
    cw = np.cos(w0)
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([(1.0 + cw) / 2.0, -(1.0 + cw), (1.0 + cw) / 2.0])
    a = np.array([1.0 + alpha, -2.0 * cw, 1.0 - alpha])
    return b / a[0], a / a[0]


def k_weighting_filters(sr: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two K-weighting stages for rate ``sr``, in the order they are applied.

    Returns
    -------
    list of (b, a), each float64 ndarray shape (3,)
        Stage 1: high shelf +4 dB at 1500 Hz, Q = 1/sqrt(2); stage 2: high-pass 38 Hz, Q = 0.5.
    """
    return [
        rbj_high_shelf(1500.0, 4.0, 1.0 / np.sqrt(2.0), sr),
        rbj_high_pass(38.0, 0.5, sr),
    ]


def k_weight(x: np.ndarray, sr: float) -> np.ndarray:
    """K-weight every channel from zero filter state.

    Parameters
    ----------
    x : float ndarray, shape (frames, channels) or (frames,)
    sr : float, Hz

    Returns
    -------
    float64 ndarray, shape (frames, channels)
    """
    y = np.asarray(x, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    for b, a in k_weighting_filters(sr):
        y = lfilter(b, a, y, axis=0)
    return y


# ----------------------------------------------------------------------------------------------
# blocks
# ----------------------------------------------------------------------------------------------


def channel_weights(n_channels: int) -> np.ndarray:
    """BS.1770-4 channel weights (its table 3) for the WAVE default channel orders.

    1.0 for L, R and C; 0 for the LFE (excluded); 1.41 for every surround or back channel.
    The orders: 4 = FL FR BL BR, 5 = FL FR FC BL BR, 6 = FL FR FC LFE BL BR, 7 = FL FR FC LFE
    BC SL SR, 8 = FL FR FC LFE BL BR SL SR; 1-3 and more than 8 channels weigh 1.0 each.

    Returns
    -------
    float64 ndarray, shape (n_channels,)
    """
    g = np.ones(n_channels)
    if 4 <= n_channels <= 8:
        front = 2 if n_channels == 4 else 3
        g[front:] = 1.41
        if n_channels >= 6:
            g[3] = 0.0  # the LFE
    return g


def subblock_bounds(n_samples: int, sr: int) -> np.ndarray:
    """Sample bounds of the complete 100 ms sub-blocks.

    Sub-block ``j`` covers ``[floor(j sr / 10), floor((j + 1) sr / 10))``; it is complete when
    ``floor((j + 1) sr / 10) <= n_samples``.

    Returns
    -------
    int64 ndarray, shape (n_complete + 1,)
        ``bounds[j]`` = first sample of sub-block ``j``; the last entry ends the last one.
    """
    bounds = []
    j = 0
    while (j * sr) // 10 <= n_samples:
        bounds.append((j * sr) // 10)
        j += 1
    return np.asarray(bounds, dtype=np.int64)


def block_energies(x: np.ndarray, sr: int, n_sub: int) -> np.ndarray:
    """Channel-weighted mean-square energy of every complete block of ``n_sub`` sub-blocks.

    Block ``b`` covers sub-blocks ``b .. b + n_sub - 1`` (a hop of one sub-block, 100 ms). Its
    energy is ``sum_c G_c * mean(y_c^2)`` over the block's samples, ``y`` = K-weighted ``x``.

    Parameters
    ----------
    x : float ndarray, shape (frames, channels)
    sr : int, Hz
    n_sub : int
        4 for 400 ms momentary blocks, 30 for 3 s short-term windows.

    Returns
    -------
    float64 ndarray, shape (n_blocks,)
        Possibly empty.
    """
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    y = k_weight(x, sr)
    bounds = subblock_bounds(y.shape[0], sr)
    n_complete_sub = bounds.size - 1
    n_blocks = max(0, n_complete_sub - n_sub + 1)
    g = channel_weights(y.shape[1])
    # sum of squares of every complete sub-block, per channel: shape (n_complete_sub, channels)
    sub_sums = np.array(
        [np.sum(y[bounds[j] : bounds[j + 1]] ** 2, axis=0) for j in range(n_complete_sub)]
    ).reshape(n_complete_sub, y.shape[1])
    out = np.zeros(n_blocks)
    for b in range(n_blocks):
        n_samples = bounds[b + n_sub] - bounds[b]
        mean_sq = np.sum(sub_sums[b : b + n_sub], axis=0) / n_samples
        out[b] = float(np.sum(g * mean_sq))
    return out


def block_loudness(energy: np.ndarray) -> np.ndarray:
    """``-0.691 + 10 log10(energy)`` in LUFS; ``-inf`` for zero energy.

    Returns
    -------
    float64 ndarray, same shape as ``energy``
    """
    e = np.asarray(energy, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return LOUDNESS_OFFSET_DB + 10.0 * np.log10(e)


def _gated(energy: np.ndarray, relative_lu: float) -> np.ndarray:
    """Energies of the blocks passing the absolute gate and then the relative gate."""
    loud = block_loudness(energy)
    abs_pass = energy[loud > ABSOLUTE_GATE_LUFS]
    if abs_pass.size == 0:
        return abs_pass
    gate = float(block_loudness(np.mean(abs_pass))) + relative_lu
    return abs_pass[block_loudness(abs_pass) > gate]


# ----------------------------------------------------------------------------------------------
# the two measures
# ----------------------------------------------------------------------------------------------


def integrated_loudness(x: np.ndarray, sr: int) -> float:
    """BS.1770-4 integrated loudness, LUFS.

    Parameters
    ----------
    x : float ndarray, shape (frames, channels) or (frames,)
    sr : int, Hz

    Returns
    -------
    float
        LUFS; -70.0 when no 400 ms block passes the gates (silence, DC, shorter than 400 ms).
    """
    energy = block_energies(x, sr, 4)
    kept = _gated(energy, RELATIVE_GATE_INTEGRATED_LU)
    if kept.size == 0:
        return ABSOLUTE_GATE_LUFS
    return float(block_loudness(np.mean(kept)))


def short_term_loudness(x: np.ndarray, sr: int) -> np.ndarray:
    """Short-term loudness (3 s windows every 100 ms, complete windows only), LUFS.

    Returns
    -------
    float64 ndarray, shape (n_windows,)
        ``-inf`` for a window of zero energy.
    """
    return block_loudness(block_energies(x, sr, 30))


def loudness_range(x: np.ndarray, sr: int) -> float:
    """EBU Tech 3342 loudness range (LRA), LU.

    Parameters
    ----------
    x : float ndarray, shape (frames, channels) or (frames,)
    sr : int, Hz

    Returns
    -------
    float
        ``P95 - P10`` of the gated short-term loudness values (linear interpolation);
        0.0 when fewer than 2 windows pass the gates.
    """
    kept = _gated(block_energies(x, sr, 30), RELATIVE_GATE_LRA_LU)
    if kept.size < 2:
        return 0.0
    p10, p95 = np.percentile(block_loudness(kept), [10.0, 95.0])
    return float(p95 - p10)
