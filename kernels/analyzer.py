"""The streaming analyzer: PCM blocks in, one 25-value fingerprint out.

The analyzer owns fixed-size state only. It cuts the incoming stream into chunks of
``CHUNK_FRAMES * hop`` samples (whatever block sizes the caller uses) and runs, per chunk::

    PCM chunk --sample_pass--> statistics, K-weighted loudness blocks, mono buffer
    mono buffer --frame_batch--> FFTW rFFT --power_features--> mean spectrum, centroid, ...
                                             |--> chroma filter bank --> chroma energy
                                             |--> onset band sums --> envelope --> rhythm
                                             '--> coarse frames  --> HPSS medians
    mono buffer --decimate--> YIN frames --FFTW--> yin_pick --> pitch histogram

Every accumulation runs in stream order over that fixed grid, so the same audio in any blocks
gives a bit-identical fingerprint, and memory does not depend on the track's length.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import numpy as np
import pyfftw

from . import _hpss, _pitch, _rhythm, _samples, _spectral
from . import design as D
from .errors import BadAudioError, FingerprintError, ParameterError
from .fingerprint import FINGERPRINT_NAMES, Fingerprint

#: Samples beyond this magnitude are not audio (and would overflow float32 spectra).
MAX_ABS_SAMPLE = 1.0e6

YIN_BATCH = 16


class _FFTWorkspace:
    """FFTW arrays and plans for one frame size, shared by the analyzers of a process.

    Plans use FFTW_ESTIMATE: a measured plan may differ between runs, and a different
    algorithm rounds differently, which would break the bit-for-bit promise.
    """

    def __init__(self, n_fft: int, yin_w: int) -> None:
        b = D.CHUNK_FRAMES
        n_bins = n_fft // 2 + 1
        flags = ("FFTW_ESTIMATE", "FFTW_DESTROY_INPUT")
        self.frames = pyfftw.empty_aligned((b, n_fft), dtype="float32")
        self.spec = pyfftw.empty_aligned((b, n_bins), dtype="complex64")
        self.stft = pyfftw.FFTW(self.frames, self.spec, axes=(1,), flags=flags, threads=1)
        n2 = 2 * yin_w
        self.yin_in = pyfftw.empty_aligned((2 * YIN_BATCH, n2), dtype="float64")
        self.yin_spec = pyfftw.empty_aligned((2 * YIN_BATCH, yin_w + 1), dtype="complex128")
        self.yin_fwd = pyfftw.FFTW(self.yin_in, self.yin_spec, axes=(1,), flags=flags, threads=1)
        self.yin_prod = pyfftw.empty_aligned((YIN_BATCH, yin_w + 1), dtype="complex128")
        self.yin_corr = pyfftw.empty_aligned((YIN_BATCH, n2), dtype="float64")
        self.yin_inv = pyfftw.FFTW(self.yin_prod, self.yin_corr, axes=(1,),
                                   direction="FFTW_BACKWARD", flags=flags, threads=1)


_WORKSPACES: dict[tuple[int, int], _FFTWorkspace] = {}
_NETWORKS = {n: D.median_network(n) for n in (D.HPSS_TIME_KERNEL, D.HPSS_FREQ_KERNEL)}


def _workspace(n_fft: int, yin_w: int) -> _FFTWorkspace:
    key = (n_fft, yin_w)
    ws = _WORKSPACES.get(key)
    if ws is None:
        ws = _WORKSPACES[key] = _FFTWorkspace(n_fft, yin_w)
    return ws


class Analyzer:
    """Streaming 25-value fingerprint of one track.

    Parameters
    ----------
    sample_rate : int, Hz
        The file's own rate; nothing is resampled.
    channels : int
        Channel count of the blocks that :meth:`feed` will get.
    profile : bool, keyword-only
        Time each stage; :attr:`stage_seconds` then holds cumulative seconds per stage.

    Examples
    --------
    >>> a = Analyzer(44100, 2)
    >>> for block in blocks:          # float32, (frames, 2), any sizes
    ...     a.feed(block)
    >>> fp = a.finish()               # Fingerprint; fp.as_array() is float64[25]

    Notes
    -----
    Not thread-safe: analyzers of one process share FFTW buffers (one process analyses one track
    at a time; the engine's parallelism is processes).
    """

    def __init__(self, sample_rate: int, channels: int, *, profile: bool = False) -> None:
        self.params = p = D.make_params(sample_rate, channels)
        self.profile = profile
        self.stage_seconds: dict[str, float] = {}
        self._ws = _workspace(p.n_fft, p.yin_w)
        b = D.CHUNK_FRAMES
        ch = p.channels
        # mono samples kept from one chunk to the next: the zero-padded last frame may start
        # up to n_fft - 1 samples before the end, and the decimation FIR needs its taps
        self._history = max(p.n_fft, D.DECIM_TAPS)
        # design
        self._window = D.periodic_hann(p.n_fft)
        self._freqs = np.arange(p.n_bins, dtype=np.float64) * (p.sample_rate / p.n_fft)
        self._kw = D.k_weighting(p.sample_rate)
        self._gains = D.channel_weights(ch)
        self._chroma_fb = D.chroma_filterbank(p.sample_rate, p.n_fft)
        self._onset_edges = D.onset_bands(p.sample_rate, p.n_fft)
        n_onset_bands = self._onset_edges.shape[0] - 1
        self._onset_scale = 1.0 / float(np.sum(self._window, dtype=np.float64)) ** 2
        if p.decim > 1:
            self._fir = D.lowpass_fir(D.DECIM_TAPS, 0.75 * 0.5 / p.decim)
        else:
            self._fir = np.ones(1, dtype=np.float32)
        self._band_bins = D.band_bins(p.sample_rate, p.n_fft)
        # buffers
        self._staging = np.zeros((p.chunk, ch), dtype=np.float32)
        self._mono = np.zeros(self._history + p.chunk, dtype=np.float32)
        self._rms = np.zeros(b, dtype=np.float64)
        self._power = np.zeros((b, p.n_bins), dtype=np.float32)
        self._active = np.zeros(b, dtype=np.bool_)
        self._mag = np.zeros(p.n_bins, dtype=np.float32)
        self._band_power = np.zeros((b, n_onset_bands), dtype=np.float32)
        self._env = np.zeros(b, dtype=np.float64)
        self._yin_frames = np.zeros((YIN_BATCH, 2 * p.yin_w), dtype=np.float64)
        self._f0 = np.zeros(YIN_BATCH, dtype=np.float64)
        self._yin_cs = np.zeros(2 * p.yin_w + 1, dtype=np.float64)
        self._yin_dp = np.zeros(p.yin_w + 2, dtype=np.float64)
        # state
        nh_loud = int(round((D.LOUD_HIST_MAX - D.LOUD_HIST_MIN) / D.LOUD_HIST_STEP))
        self._loud_counts = np.zeros(nh_loud, dtype=np.int64)
        self._loud_energy = np.zeros(nh_loud, dtype=np.float64)
        self._st_counts = np.zeros(nh_loud, dtype=np.int64)
        self._st_energy = np.zeros(nh_loud, dtype=np.float64)
        self._kstate = np.zeros((ch, 4), dtype=np.float64)
        self._sub_sums = np.zeros(_samples.SUB_RING, dtype=np.float64)
        self._sub_lens = np.zeros(_samples.SUB_RING, dtype=np.int64)
        self._fs = np.zeros(_samples.N_F, dtype=np.float64)
        self._is = np.zeros(_samples.N_I, dtype=np.int64)
        self._mean_spec = np.zeros(p.n_bins, dtype=np.float64)
        self._acc = np.zeros(_spectral.N_A, dtype=np.float64)
        hb = p.hpss_bins
        self._hp_group = np.zeros(hb, dtype=np.float64)
        self._hp_ring = np.zeros((D.HPSS_TIME_KERNEL, hb), dtype=np.float32)
        self._hp_state = np.zeros(_hpss.N_H, dtype=np.int64)
        self._hp_nets = (*_NETWORKS[D.HPSS_TIME_KERNEL], *_NETWORKS[D.HPSS_FREQ_KERNEL])
        self._hp_scratch_t = np.zeros((D.HPSS_TIME_KERNEL, hb), dtype=np.float32)
        self._hp_scratch_f = np.zeros((D.HPSS_FREQ_KERNEL, hb), dtype=np.float32)
        self._hp_sums = np.zeros(_hpss.N_S, dtype=np.float64)
        ring = 1 << math.ceil(math.log2(p.max_lag + 4 * D.ONSET_MEAN_HALF + 8))
        self._prev_db = np.zeros(n_onset_bands, dtype=np.float64)
        self._e_ring = np.zeros(ring, dtype=np.float64)
        self._h_ring = np.zeros(ring, dtype=np.float64)
        self._ri = np.zeros(_rhythm.N_RI, dtype=np.int64)
        self._rf = np.zeros(_rhythm.N_RF, dtype=np.float64)
        self._ac_win = np.zeros(p.max_lag + 1, dtype=np.float64)
        self._ac_tot = np.zeros(p.max_lag + 1, dtype=np.float64)
        cap = p.rhythm_window // (D.ONSET_PEAK_HALF + 1) + 2
        self._on_t = np.zeros(cap, dtype=np.float64)
        self._on_s = np.zeros(cap, dtype=np.float64)
        nh_pitch = int(round(D.PITCH_HIST_MAX / D.PITCH_HIST_STEP))
        self._pitch_hist = np.zeros(nh_pitch, dtype=np.int64)
        self._p_state = np.zeros(_pitch.N_P, dtype=np.int64)
        self._p_fstate = np.zeros(_pitch.N_PF, dtype=np.float64)
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the current track; the analyzer is ready for a new one (same rate, channels)."""
        p = self.params
        for arr in (self._mono, self._loud_counts, self._loud_energy, self._st_counts,
                    self._st_energy, self._kstate, self._sub_sums, self._sub_lens, self._fs,
                    self._is, self._mean_spec, self._acc, self._hp_group, self._hp_ring,
                    self._hp_state, self._hp_sums, self._e_ring, self._h_ring, self._ri,
                    self._rf, self._ac_win, self._ac_tot, self._pitch_hist, self._p_state,
                    self._p_fstate, self._yin_frames):
            arr.fill(0)
        self._is[_samples.I_SUB_END] = p.sample_rate // 10
        self._ri[_rhythm.R_TOTAL] = -1
        self._prev_db.fill(D.ONSET_DB_FLOOR)
        self._staged = 0
        self._pos = 0  # samples consumed by the chunk pipeline
        self._next_frame = 0
        self._yin_next = 0  # global index of the YIN frame being filled
        self._yin_fill = 0  # decimated samples of it computed so far
        self._yin_slot = 0  # complete frames waiting in self._yin_frames
        self._finished = False
        self.stage_seconds = {}

    @property
    def n_samples(self) -> int:
        """Sample frames fed so far."""
        return self._pos + self._staged

    @contextmanager
    def _stage(self, name: str):
        if not self.profile:
            yield
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[name] = self.stage_seconds.get(name, 0.0) + (
                time.perf_counter() - t0)

    # -- input -------------------------------------------------------------------------------

    def feed(self, block: np.ndarray) -> None:
        """Analyse the next PCM block.

        Parameters
        ----------
        block : float32[frames, channels]
            Any number of frames (0 included). Other float dtypes are converted; a 1-D array is
            taken as one channel.

        Raises
        ------
        ParameterError
            Wrong shape or channel count, or the analyzer already finished.
        BadAudioError
            The block holds NaN, infinite or absurdly large samples.
        """
        if self._finished:
            raise ParameterError("feed() after finish(); call reset() to analyse another track")
        x = np.asarray(block)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.params.channels:
            raise ParameterError(
                f"block shape {x.shape} does not match channels={self.params.channels}; pass "
                "float32 (frames, channels)"
            )
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        c = self.params.chunk
        i = 0
        if self._staged:
            take = min(c - self._staged, n)
            self._staging[self._staged : self._staged + take] = x[:take]
            self._staged += take
            i = take
            if self._staged == c:
                self._chunk(self._staging)
                self._staged = 0
        while n - i >= c:
            self._chunk(x[i : i + c])
            i += c
        if i < n:
            rest = n - i
            self._staging[:rest] = x[i:]
            self._staged = rest

    # -- the chunk pipeline --------------------------------------------------------------------

    def _chunk(self, x: np.ndarray) -> None:
        p = self.params
        n = x.shape[0]
        h = self._history
        with self._stage("samples"):
            _samples.sample_pass(
                x, self._mono[h : h + n], self._kw, self._gains, self._kstate, self._sub_sums,
                self._sub_lens, self._fs, self._is, p.sample_rate, self._loud_counts,
                self._loud_energy, self._st_counts, self._st_energy, D.LOUD_HIST_MIN,
                D.LOUD_HIST_STEP,
            )
        if self._is[_samples.I_NONFINITE]:
            raise BadAudioError(
                f"{self._is[_samples.I_NONFINITE]} NaN or infinite samples in the first "
                f"{self._pos + n} frames; a fingerprint of them would be meaningless"
            )
        if self._fs[_samples.F_PEAK] > MAX_ABS_SAMPLE:
            raise BadAudioError(
                f"sample magnitude {self._fs[_samples.F_PEAK]:.3g} exceeds {MAX_ABS_SAMPLE:g} "
                "(full scale is 1.0); this is not audio PCM"
            )
        end = self._pos + n
        last_frame = (end - p.n_fft) // p.hop if end >= p.n_fft else -1
        self._frames_through(last_frame)
        self._decimate_through(end)
        # keep the history for frames and the decimation filter
        self._mono[:h] = self._mono[n : n + h]
        self._pos = end

    def _frames_through(self, last_frame: int, *, last_padded: bool = False) -> None:
        """Analyse frames ``next_frame .. last_frame`` (all in the mono buffer); with
        ``last_padded`` the last of them is the zero-padded end of the track."""
        p = self.params
        ws = self._ws
        b = D.CHUNK_FRAMES
        origin = self._pos - self._history  # global index of self._mono[0]
        while self._next_frame <= last_frame:
            count = min(b, last_frame - self._next_frame + 1)
            padded = last_padded and self._next_frame + count - 1 == last_frame
            first = self._next_frame * p.hop - origin
            if first < 0 or first + (count - 1) * p.hop + p.n_fft > self._mono.shape[0]:
                raise FingerprintError(  # numba does not bounds-check: never read outside
                    f"internal: frames {self._next_frame}..{last_frame} fall outside the mono "
                    f"buffer (offset {first}, {self._mono.shape[0]} samples)")
            with self._stage("framing"):
                _spectral.frame_batch(self._mono, first, p.hop, count, self._window, ws.frames,
                                      self._rms)
            with self._stage("fft"):
                ws.stft.execute()
            with self._stage("spectral"):
                _spectral.power_features(ws.spec, count, self._rms, D.ACTIVE_RMS, self._freqs,
                                         self._power, self._mean_spec, self._acc, self._active,
                                         self._mag)
            with self._stage("chroma"):
                _spectral.chroma_energy(self._power, count, self._active, self._chroma_fb,
                                        self._acc)
            with self._stage("rhythm"):
                _spectral.band_sums(self._power, count, self._onset_edges, self._band_power)
                _rhythm.onset_envelope(self._band_power, count, self._onset_scale,
                                       D.ONSET_DB_FLOOR, self._prev_db, self._env)
                if padded:  # the cut at the end is ours, not the music's: no onset there
                    self._env[count - 1] = 0.0
                _rhythm.rhythm_push(
                    self._env, count, self._e_ring, self._h_ring, self._ri, self._rf,
                    self._ac_win, self._ac_tot, self._on_t, self._on_s, p.rhythm_window,
                    D.ONSET_MEAN_HALF, D.ONSET_PEAK_HALF, D.ONSET_DELTA_DB,
                    D.BEAT_STRENGTH_RATIO,
                )
            with self._stage("hpss"):
                _hpss.hpss_push(self._power, count, D.HPSS_TIME_AVG, self._hp_group,
                                self._hp_ring, self._hp_state, *self._hp_nets,
                                self._hp_scratch_t, self._hp_scratch_f, self._hp_sums)
            self._next_frame += count

    def _decimate_through(self, end: int) -> None:
        """Decimate what the YIN frames need of the mono samples before global index ``end``.

        YIN frames (``2 yin_w`` decimated samples every ``yin_hop``) cover under half of the
        decimated signal, so only their samples are computed, straight into the batch of
        frames; a full batch goes through YIN at once.
        """
        p = self.params
        d = p.decim
        w2 = 2 * p.yin_w
        origin = self._pos - self._history  # global index of self._mono[0]
        avail_last = (end - 1) // d  # last decimated index whose input sample is < end
        with self._stage("pitch"):
            while True:
                start = self._yin_next * p.yin_hop + self._yin_fill
                if start > avail_last:
                    break
                upto = min(self._yin_next * p.yin_hop + w2 - 1, avail_last)
                count = upto - start + 1
                row = self._yin_frames[self._yin_slot]
                if start * d - origin - (self._fir.shape[0] - 1) < 0:
                    raise FingerprintError(  # numba does not bounds-check: never read outside
                        f"internal: decimation reads before the mono buffer (sample {start * d})")
                _pitch.decimate(self._mono, start * d - origin, count, d, self._fir,
                                row[self._yin_fill :])
                self._yin_fill += count
                if self._yin_fill < w2:
                    break
                self._yin_fill = 0
                self._yin_next += 1
                self._yin_slot += 1
                if self._yin_slot == YIN_BATCH:
                    self._yin_batch()

    def _yin_batch(self) -> None:
        """YIN on the complete frames waiting in the batch, then the pitch histogram."""
        n = self._yin_slot
        if n == 0:
            return
        p = self.params
        ws = self._ws
        w = p.yin_w
        fr = ws.yin_in
        fr[:] = 0.0
        fr[:n, :w] = self._yin_frames[:n, :w]  # a = first half, zero-padded
        fr[YIN_BATCH : YIN_BATCH + n] = self._yin_frames[:n]  # b = whole frame
        ws.yin_fwd.execute()
        sp = ws.yin_spec
        np.multiply(np.conj(sp[:YIN_BATCH]), sp[YIN_BATCH:], out=ws.yin_prod)
        ws.yin_inv.execute()
        corr = ws.yin_corr
        corr *= 1.0 / (2 * w)
        _pitch.yin_pick(self._yin_frames, corr, n, w, p.yin_tau_min, p.yin_tau_max,
                        D.YIN_THRESHOLD, p.sr_dec, D.ACTIVE_RMS, self._yin_cs, self._yin_dp,
                        self._f0)
        _pitch.pitch_push(self._f0, n, self._p_state, self._p_fstate, self._pitch_hist,
                          D.PITCH_HIST_STEP)
        self._yin_slot = 0

    # -- output ------------------------------------------------------------------------------

    def finish(self) -> Fingerprint:
        """Analyse what is left and return the track's fingerprint.

        Raises
        ------
        BadAudioError
            No samples were fed.
        """
        if self._finished:
            raise ParameterError("finish() called twice; call reset() to analyse another track")
        p = self.params
        if self._staged:
            self._chunk(self._staging[: self._staged])
            self._staged = 0
        self._finished = True
        total = self._pos
        if total == 0:
            raise BadAudioError("no audio samples: the stream is empty (0 frames)")
        n_frames = 1 + max(0, -(-(total - p.n_fft) // p.hop))
        if self._next_frame < n_frames:
            # zero padding after the last sample; the buffer holds the history before it
            self._mono[self._history :] = 0.0
            self._frames_through(n_frames - 1, last_padded=total % p.hop != 0
                                 or total < p.n_fft)
        with self._stage("pitch"):
            self._yin_batch()  # complete YIN frames only; a partial one is dropped
        with self._stage("finish"):
            _rhythm.rhythm_finish(
                self._e_ring, self._h_ring, self._ri, self._rf, self._ac_win, self._ac_tot,
                self._on_t, self._on_s, p.rhythm_window, D.ONSET_MEAN_HALF, D.ONSET_PEAK_HALF,
                D.ONSET_DELTA_DB, D.BEAT_STRENGTH_RATIO,
            )
            _hpss.hpss_finish(D.HPSS_TIME_AVG, self._hp_group, self._hp_ring, self._hp_state,
                              *self._hp_nets, self._hp_scratch_t, self._hp_scratch_f,
                              self._hp_sums)
            values = self._values(total)
        bad = [FINGERPRINT_NAMES[i] for i in np.flatnonzero(~np.isfinite(values))]
        if bad:  # a bug, never an input property: say so loudly
            raise FingerprintError(f"internal: non-finite fingerprint values {bad}")
        return Fingerprint.from_array(values)

    def _values(self, total: int) -> np.ndarray:
        p = self.params
        fs, is_ = self._fs, self._is
        ch = p.channels
        out = np.zeros(len(FINGERPRINT_NAMES), dtype=np.float64)
        # 1-7 bands, 10 bass/mid
        s = self._mean_spec
        band = np.array([s[a:b].sum() for a, b in self._band_bins], dtype=np.float64)
        tot = band.sum()
        if tot > 0.0:
            out[0:7] = band / tot
        bass, mid = band[1], band[2] + band[3]
        if bass > 0.0 and mid > 0.0:
            out[9] = min(60.0, max(-60.0, 10.0 * math.log10(bass / mid)))
        elif bass > 0.0:
            out[9] = 60.0
        elif mid > 0.0:
            out[9] = -60.0
        # 8 integrated loudness, 22 loudness range
        out[7] = self._integrated_lufs()
        out[21] = self._loudness_range()
        # 9 crest
        if fs[_samples.F_PEAK] > 0.0 and fs[_samples.F_SUMSQ] > 0.0:
            rms = math.sqrt(fs[_samples.F_SUMSQ] / (total * ch))
            out[8] = max(0.0, 20.0 * math.log10(fs[_samples.F_PEAK] / rms))
        # 11-13 rhythm
        out[10] = _rhythm.select_tempo(
            self._ac_tot, p.fps, min_bpm=D.TEMPO_MIN_BPM, max_bpm=D.TEMPO_MAX_BPM,
            prior_bpm=D.TEMPO_PRIOR_BPM, tap_max_bpm=D.TEMPO_TAP_MAX_BPM,
            octave_ratio=D.TEMPO_OCTAVE_RATIO,
        )
        ri, rf = self._ri, self._rf
        if ri[_rhythm.R_BEATS] >= 3 and rf[_rhythm.RF_IBI_MEAN] > 0.0:
            cv = math.sqrt(rf[_rhythm.RF_IBI_M2] / ri[_rhythm.R_IBIS]) / rf[_rhythm.RF_IBI_MEAN]
            out[11] = 1.0 / (1.0 + cv)
        active_s = float(is_[_samples.I_ACTIVE_SECONDS])
        tail = int(is_[_samples.I_SEC_FILL])
        if tail > 0 and math.sqrt(fs[_samples.F_SEC_MONO] / tail) >= D.ACTIVE_RMS:
            active_s += tail / p.sample_rate
        if active_s > 0.0:
            out[12] = ri[_rhythm.R_ONSETS] / active_s
        # 14-17, 20 spectral
        acc = self._acc
        n_act = acc[_spectral.A_ACTIVE]
        out[13] = 1.0 - n_act / acc[_spectral.A_FRAMES]
        if n_act > 0:
            out[14] = acc[_spectral.A_CENTROID] / n_act
            out[15] = acc[_spectral.A_ROLLOFF] / n_act
            out[16] = min(1.0, acc[_spectral.A_FLATNESS] / n_act)  # <= 1 (AM-GM) but for rounding
            out[19] = acc[_spectral.A_CHROMA] / n_act
        # 18 harmonic ratio
        h2, p2 = self._hp_sums[_hpss.S_H2], self._hp_sums[_hpss.S_P2]
        if h2 + p2 > 0.0:
            out[17] = h2 / (h2 + p2)
        # 19 pitch stability
        if self._p_state[_pitch.P_PAIRS] > 0:
            med = _pitch.hist_median(self._pitch_hist, D.PITCH_HIST_STEP)
            out[18] = 1.0 / (1.0 + med)
        # 21, 23 per-second
        n_sec = is_[_samples.I_ACTIVE_SECONDS]
        if n_sec > 0:
            out[20] = math.sqrt(max(0.0, fs[_samples.F_CREST_M2]) / n_sec)
            mean_peak = fs[_samples.F_PEAK_MEAN]
            if mean_peak > 0.0:
                cv = math.sqrt(max(0.0, fs[_samples.F_PEAK_M2]) / n_sec) / mean_peak
                out[22] = 1.0 / (1.0 + cv)
        # 24, 25 stereo
        ss, mm = fs[_samples.F_SS], fs[_samples.F_MM]
        if ss + mm > 0.0:
            out[23] = ss / (ss + mm)
        if not is_[_samples.I_DIFFER]:
            out[24] = 1.0
        else:
            n = float(total)
            sl, sr_ = fs[_samples.F_L], fs[_samples.F_R]
            var_l = fs[_samples.F_LL] - sl * sl / n
            var_r = fs[_samples.F_RR] - sr_ * sr_ / n
            cov = fs[_samples.F_LR] - sl * sr_ / n
            if var_l > 0.0 and var_r > 0.0:
                out[24] = min(1.0, max(-1.0, cov / math.sqrt(var_l * var_r)))
        return out

    def _integrated_lufs(self) -> float:
        n = int(self._is[_samples.I_LOUD_N])
        if n == 0:
            return D.LOUD_HIST_MIN
        gate = -0.691 + 10.0 * math.log10(self._fs[_samples.F_LOUD_SUM] / n) - 10.0
        kept = np.empty_like(self._loud_counts)
        energy, count = _samples.hist_gate(self._loud_counts, self._loud_energy,
                                           D.LOUD_HIST_MIN, D.LOUD_HIST_STEP, gate, kept)
        if count == 0 or energy <= 0.0:
            return D.LOUD_HIST_MIN
        return max(D.LOUD_HIST_MIN, -0.691 + 10.0 * math.log10(energy / count))

    def _loudness_range(self) -> float:
        n = int(self._is[_samples.I_ST_N])
        if n < 2:
            return 0.0
        gate = -0.691 + 10.0 * math.log10(self._fs[_samples.F_ST_SUM] / n) - 20.0
        kept = np.empty_like(self._st_counts)
        _, count = _samples.hist_gate(self._st_counts, self._st_energy, D.LOUD_HIST_MIN,
                                      D.LOUD_HIST_STEP, gate, kept)
        if count < 2:
            return 0.0
        hi = _samples.hist_percentile(kept, D.LOUD_HIST_MIN, D.LOUD_HIST_STEP, 95.0)
        lo = _samples.hist_percentile(kept, D.LOUD_HIST_MIN, D.LOUD_HIST_STEP, 10.0)
        return max(0.0, hi - lo)
