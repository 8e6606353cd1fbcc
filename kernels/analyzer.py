"""The streaming analyzer: PCM blocks in, one 25-value fingerprint out.

The analyzer owns fixed-size state only. It cuts the incoming stream into chunks of
``CHUNK_FRAMES * hop`` samples (whatever block sizes the caller uses) and runs, per chunk::

    PCM chunk --sample_pass--> statistics, K-weighted loudness blocks, mono buffer
    mono buffer --frame_batch--> FFTW rFFT --power_features--> mean spectrum, centroid
                                             |--> chroma filter bank --> chroma energy
                                             |--> spectral peaks --> key chroma
                                             |--> mel bands --> mean log-mel (MFCC)
                                             |--> 24/octave bands --> two fluxes --> onsets,
                                             |                          lag function (tempo)
                                             '--> coarse frames  --> HPSS medians

At the end, small per-track sums become the values: band levels, loudness from histograms,
tempo and pulse clarity from the lag function, the key from the chroma, MFCCs by a DCT.

Every accumulation runs in stream order over that fixed grid, so the same audio in any blocks
gives a bit-identical fingerprint, and memory does not depend on the track's length.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import numpy as np

from . import _fftw as pyfftw  # FFTW without pyfftw's package imports (kernels/_fftw.py)
from . import _hpss, _rhythm, _samples, _spectral, _tonal
from . import design as D
from .errors import BadAudioError, FingerprintError, ParameterError
from .fingerprint import FINGERPRINT_NAMES, Fingerprint
from .key import key_fields

#: Samples beyond this magnitude are not audio (and would overflow float32 spectra).
MAX_ABS_SAMPLE = 1.0e6


class _FFTWorkspace:
    """FFTW arrays and plans for one frame size and batch, shared by the analyzers of a process.

    Plans use FFTW_ESTIMATE: a measured plan may differ between runs, and a different
    algorithm rounds differently, which would break the bit-for-bit promise.
    """

    def __init__(self, n_fft: int, batch: int) -> None:
        n_bins = n_fft // 2 + 1
        flags = ("FFTW_ESTIMATE", "FFTW_DESTROY_INPUT")
        self.frames = pyfftw.empty_aligned((batch, n_fft), dtype="float32")
        self.spec = pyfftw.empty_aligned((batch, n_bins), dtype="complex64")
        self.stft = pyfftw.FFTW(self.frames, self.spec, axes=(1,), flags=flags, threads=1)


_WORKSPACES: dict[tuple[int, int], _FFTWorkspace] = {}
#: The stage context when not profiling (Analyzer._stage).
_UNTIMED = nullcontext()


def _workspace(n_fft: int, batch: int) -> _FFTWorkspace:
    ws = _WORKSPACES.get((n_fft, batch))
    if ws is None:
        ws = _WORKSPACES[n_fft, batch] = _FFTWorkspace(n_fft, batch)
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
    onset_times : bool, keyword-only
        Keep the time of every detected onset; :attr:`onset_times` then holds them in seconds
        (a list that grows with the track; off by default, when memory stays fixed).

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

    def __init__(self, sample_rate: int, channels: int, *, profile: bool = False,
                 onset_times: bool = False) -> None:
        self.params = p = D.make_params(sample_rate, channels)
        self.profile = profile
        self.stage_seconds: dict[str, float] = {}
        self._batch = b = D.FRAME_BATCH
        self._ws = _workspace(p.n_fft, b)
        ch = p.channels
        # mono samples kept from one chunk to the next: the zero-padded last frame may start
        # up to n_fft - 1 samples before the end
        self._history = p.n_fft
        # design
        self._window = D.periodic_hann(p.n_fft)
        self._freqs = np.arange(p.n_bins, dtype=np.float64) * (p.sample_rate / p.n_fft)
        self._kw = D.k_weighting(p.sample_rate)
        self._gains = D.channel_weights(ch)
        self._chroma_fb = D.chroma_filterbank(p.sample_rate, p.n_fft)
        # tonality and timbre (docs/FINGERPRINT.md "Tonality", "Timbre")
        self._key_lo, self._key_hi = D.key_peak_bins(p.sample_rate, p.n_fft)
        self._key_pitch = D.key_bin_pitch(p.sample_rate, p.n_fft)
        self._key_peak_min = D.key_peak_min(p.n_fft)
        self._key_profiles = D.key_profiles()
        self._key_chroma = np.zeros(12, dtype=np.float64)
        self._key_frame = np.zeros(12, dtype=np.float64)
        self._mel_seg, self._mel_rise, self._mel_fall = D.mel_segments(p.sample_rate, p.n_fft)
        self._mel_dct = D.mfcc_dct()
        self._mel_log_sum = np.zeros(D.MEL_BANDS, dtype=np.float64)
        self._mel_prod = np.ones(D.MEL_BANDS, dtype=np.float64)
        self._mel_state = np.zeros(1, dtype=np.int64)
        self._mel_scratch = np.zeros(D.MEL_BANDS, dtype=np.float64)
        self._onset_edges = D.onset_bands(p.sample_rate, p.n_fft)
        n_onset_bands = self._onset_edges.shape[0] - 1
        self._onset_scale = 1.0 / float(np.sum(self._window, dtype=np.float64)) ** 2
        self._pick = D.peak_pick_frames(p.fps)  # pre_max, post_max, pre_avg, post_avg
        self._want_onsets = bool(onset_times)
        #: Onset times in seconds (frame centres), collected only with ``onset_times=True``.
        self.onset_times: list[float] = []
        self._band_weights = D.band_weights(p.sample_rate, p.n_fft)
        # buffers
        self._staging = np.zeros((p.chunk, ch), dtype=np.float32)
        self._mono = np.zeros(self._history + p.chunk, dtype=np.float32)
        self._rms = np.zeros(b, dtype=np.float64)
        self._power = np.zeros((b, p.n_bins), dtype=np.float32)
        self._active = np.zeros(b, dtype=np.bool_)
        self._env_on = np.zeros(b, dtype=np.float64)
        self._env_tp = np.zeros(b, dtype=np.float64)
        self._env_lv = np.zeros(b, dtype=np.float64)
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
        self._hp = _hpss.new_state(p.hpss_bins, time_kernel=D.HPSS_TIME_KERNEL,
                                   freq_kernel=D.HPSS_FREQ_KERNEL)
        ring = 1 << math.ceil(math.log2(p.rhythm_window + p.max_lag + 4 * D.ONSET_MEAN_HALF
                                        + 8))
        self._prev_log = np.zeros(n_onset_bands, dtype=np.float64)
        self._prev_lin = np.zeros(n_onset_bands, dtype=np.float64)
        self._o_ring = np.zeros(ring, dtype=np.float64)
        self._t_ring = np.zeros(ring, dtype=np.float64)
        self._l_ring = np.zeros(ring, dtype=np.float64)
        self._h_ring = np.zeros(ring, dtype=np.float64)
        self._e_ring = np.zeros(ring, dtype=np.float64)
        self._ri = np.zeros(_rhythm.N_RI, dtype=np.int64)
        self._rf = np.zeros(_rhythm.N_RF, dtype=np.float64)
        self._ac_win = np.zeros(p.max_lag + 1, dtype=np.float64)
        self._ac_tot = np.zeros(p.max_lag + 1, dtype=np.float64)
        self._on_new = np.zeros(b + D.ONSET_MEAN_HALF + 1, dtype=np.int64)
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the current track; the analyzer is ready for a new one (same rate, channels)."""
        p = self.params
        state: list[np.ndarray] = [
            self._mono, self._loud_counts, self._loud_energy, self._st_counts, self._st_energy,
            self._kstate, self._sub_sums, self._sub_lens, self._fs, self._is, self._mean_spec,
            self._acc, *self._hp, self._o_ring, self._t_ring, self._l_ring, self._h_ring,
            self._e_ring, self._ri, self._rf, self._ac_win, self._ac_tot, self._prev_log,
            self._prev_lin]
        for arr in state:
            arr.fill(0)
        self._key_chroma.fill(0)
        self._mel_log_sum.fill(0)
        self._mel_prod.fill(1)
        self._mel_state.fill(0)
        self._is[_samples.I_SUB_END] = p.sample_rate // 10
        self._ri[_rhythm.R_TOTAL] = -1
        self.onset_times = []
        self._staged = 0
        self._pos = 0  # samples consumed by the chunk pipeline
        self._next_frame = 0
        self._finished = False
        self.stage_seconds = {}

    @property
    def n_samples(self) -> int:
        """Sample frames fed so far."""
        return self._pos + self._staged

    def _stage(self, name: str) -> AbstractContextManager[None]:
        """A context that adds its time to ``stage_seconds[name]`` with ``profile``; else one
        shared no-op context (a generator-based one per call would cost more than some of the
        kernels it wraps)."""
        return self._timed(name) if self.profile else _UNTIMED

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
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
        # keep the history for the frames that straddle chunks
        self._mono[:h] = self._mono[n : n + h]
        self._pos = end

    def _frames_through(self, last_frame: int, *, last_padded: bool = False) -> None:
        """Analyse frames ``next_frame .. last_frame`` (all in the mono buffer); with
        ``last_padded`` the last of them is the zero-padded end of the track."""
        p = self.params
        ws = self._ws
        b = self._batch
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
                                         self._power, self._mean_spec, self._acc, self._active)
            with self._stage("chroma"):
                _spectral.chroma_energy(self._power, count, self._active, self._chroma_fb,
                                        self._acc)
                _tonal.key_chroma(self._power, count, self._active, self._next_frame,
                                  D.KEY_FRAME_STRIDE, self._key_lo, self._key_hi,
                                  self._key_pitch, self._key_peak_min, self._key_chroma,
                                  self._key_frame)
            with self._stage("timbre"):
                _tonal.log_mel_sum(self._power, count, self._active, self._mel_seg,
                                   self._mel_rise, self._mel_fall, D.MEL_LOG_GROUP,
                                   self._mel_log_sum, self._mel_prod, self._mel_state,
                                   self._mel_scratch)
            with self._stage("rhythm"):
                _rhythm.band_flux(self._power, count, self._onset_edges, self._onset_scale,
                                  D.ONSET_LOG_GAIN, self._prev_log, self._prev_lin,
                                  self._env_on, self._env_tp, self._env_lv)
                if padded:  # the cut at the end is ours, not the music's: no onset there
                    self._env_on[count - 1] = 0.0
                    self._env_tp[count - 1] = 0.0
                _rhythm.rhythm_push(
                    self._env_on, self._env_tp, self._env_lv, count, self._o_ring,
                    self._t_ring, self._l_ring, self._h_ring, self._e_ring, self._ri, self._rf,
                    self._ac_win, self._ac_tot, self._on_new, p.rhythm_window, D.ONSET_MEAN_HALF,
                    *self._pick, D.ONSET_DELTA, D.RHYTHM_FLUX_FLOOR,
                )
                if self._want_onsets:
                    self._collect_onsets()
            with self._stage("hpss"):
                _hpss.hpss_push(self._power, count, D.HPSS_TIME_AVG, *self._hp)
            self._next_frame += count

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
        with self._stage("finish"):
            _rhythm.rhythm_finish(
                self._o_ring, self._t_ring, self._l_ring, self._h_ring, self._e_ring,
                self._ri, self._rf, self._ac_win, self._ac_tot, self._on_new, p.rhythm_window,
                D.ONSET_MEAN_HALF, *self._pick, D.ONSET_DELTA, D.RHYTHM_FLUX_FLOOR,
            )
            if self._want_onsets:
                self._collect_onsets()
            _hpss.hpss_finish(D.HPSS_TIME_AVG, *self._hp)
            values = self._values(total)
        bad = [FINGERPRINT_NAMES[i] for i in np.flatnonzero(~np.isfinite(values))]
        if bad:  # a bug, never an input property: say so loudly
            raise FingerprintError(f"internal: non-finite fingerprint values {bad}")
        return Fingerprint.from_array(values)

    def _values(self, total: int) -> np.ndarray:
        p = self.params
        fs, is_ = self._fs, self._is
        ch = p.channels
        v: dict[str, float] = {}
        v.update(self._band_values())
        v["lufs"] = self._integrated_lufs()
        v["loudness_range"] = self._loudness_range()
        v["crest_db"] = 0.0
        if fs[_samples.F_PEAK] > 0.0 and fs[_samples.F_SUMSQ] > 0.0:
            rms = math.sqrt(fs[_samples.F_SUMSQ] / (total * ch))
            v["crest_db"] = max(0.0, 20.0 * math.log10(fs[_samples.F_PEAK] / rms))
        # per-second statistics
        v["dynamic_range_variation"] = v["peak_consistency"] = 0.0
        n_sec = is_[_samples.I_ACTIVE_SECONDS]
        if n_sec > 0:
            v["dynamic_range_variation"] = math.sqrt(max(0.0, fs[_samples.F_CREST_M2]) / n_sec)
            mean_peak = fs[_samples.F_PEAK_MEAN]
            if mean_peak > 0.0:
                cv = math.sqrt(max(0.0, fs[_samples.F_PEAK_M2]) / n_sec) / mean_peak
                v["peak_consistency"] = 1.0 / (1.0 + cv)
        active_s = float(n_sec)
        tail = int(is_[_samples.I_SEC_FILL])
        if tail > 0 and math.sqrt(fs[_samples.F_SEC_MONO] / tail) >= D.ACTIVE_RMS:
            active_s += tail / p.sample_rate
        v.update(self._rhythm_values(active_s))
        acc = self._acc
        n_act = acc[_spectral.A_ACTIVE]
        v["spectral_centroid"] = acc[_spectral.A_CENTROID] / n_act if n_act > 0 else 0.0
        v["harmonic_ratio"] = self._harmonic_ratio()
        v.update(self._tonal_values())
        v["phase_correlation"] = self._phase_correlation(total)
        if set(v) != set(FINGERPRINT_NAMES):
            raise FingerprintError(  # a bug: every name is written exactly once
                f"internal: values {sorted(set(FINGERPRINT_NAMES) ^ set(v))} missing or unknown")
        return np.array([v[name] for name in FINGERPRINT_NAMES], dtype=np.float64)

    # -- value groups (docs/FINGERPRINT.md, one section each) ---------------------------------

    def _band_values(self) -> dict[str, float]:
        """Band levels relative to the mid band (docs/FINGERPRINT.md "Spectral balance")."""
        s = self._mean_spec
        band = self._band_weights @ s
        mid = band[3]
        out: dict[str, float] = {}
        for i, name in ((0, "sub_bass_db"), (1, "bass_db"), (2, "low_mid_db"),
                        (4, "upper_mid_db"), (5, "presence_db"), (6, "air_db")):
            if band[i] > 0.0 and mid > 0.0:
                out[name] = min(D.BAND_DB_LIMIT,
                                max(-D.BAND_DB_LIMIT, 10.0 * math.log10(band[i] / mid)))
            elif mid > 0.0:
                out[name] = -D.BAND_DB_LIMIT
            elif band[i] > 0.0:
                out[name] = D.BAND_DB_LIMIT
            else:
                out[name] = 0.0
        return out

    def _collect_onsets(self) -> None:
        """Append the onsets of the last push / finish to :attr:`onset_times` (seconds, the
        centre of the onset's frame)."""
        p = self.params
        for i in range(int(self._ri[_rhythm.R_NEW])):
            self.onset_times.append(
                (int(self._on_new[i]) * p.hop + 0.5 * p.n_fft) / p.sample_rate)

    def _rhythm_values(self, active_seconds: float) -> dict[str, float]:
        """tempo_bpm, pulse_clarity, transient_density (docs/FINGERPRINT.md "Rhythm")."""
        p = self.params
        tempo = _rhythm.select_tempo(
            self._ac_tot, p.fps, min_bpm=D.TEMPO_MIN_BPM, max_bpm=D.TEMPO_MAX_BPM,
            prior_bpm=D.TEMPO_PRIOR_BPM, prior_octaves=D.TEMPO_PRIOR_OCTAVES,
            level_octaves=D.TEMPO_LEVEL_OCTAVES, peak_span=D.TEMPO_PEAK_SPAN,
            faster_ratio=D.TEMPO_FASTER_RATIO,
            halftime_bpm=D.TEMPO_HALFTIME_BPM, halftime_ratio=D.TEMPO_HALFTIME_RATIO,
            refine_span=D.TEMPO_REFINE_SPAN, refine_level=D.TEMPO_REFINE_LEVEL,
        )
        clarity = _rhythm.pulse_clarity(self._ac_tot, p.fps, float(self._rf[_rhythm.RF_WEIGHT]),
                                        min_bpm=D.TEMPO_MIN_BPM, max_bpm=D.TEMPO_MAX_BPM)
        density = 0.0
        if active_seconds > 0.0:
            density = self._ri[_rhythm.R_ONSETS] / active_seconds
        return {"tempo_bpm": tempo, "pulse_clarity": clarity, "transient_density": density}

    def _harmonic_ratio(self) -> float:
        """docs/FINGERPRINT.md "Harmonic ratio"."""
        sums = self._hp[-1]
        h2, p2 = sums[_hpss.S_H2], sums[_hpss.S_P2]
        return h2 / (h2 + p2) if h2 + p2 > 0.0 else 0.0

    def _tonal_values(self) -> dict[str, float]:
        """chroma_energy, key_fifths_x/_y, key_mode, mfcc_1..4 (docs/FINGERPRINT.md "Tonality"
        and "Timbre")."""
        acc = self._acc
        n_act = acc[_spectral.A_ACTIVE]
        out = {"chroma_energy": acc[_spectral.A_CHROMA] / n_act if n_act > 0 else 0.0}
        out.update(key_fields(self._key_chroma, self._key_profiles))
        _tonal.log_mel_flush(self._mel_log_sum, self._mel_prod, self._mel_state)
        mfcc = np.zeros(D.N_MFCC, dtype=np.float64)
        if n_act > 0:  # mean ln -> dB, then the DCT (the mean of a DCT is the DCT of the mean)
            mfcc = self._mel_dct @ (self._mel_log_sum * (10.0 / math.log(10.0)) / n_act)
        for i in range(D.N_MFCC):
            out[f"mfcc_{i + 1}"] = float(mfcc[i])
        return out

    def _phase_correlation(self, total: int) -> float:
        """Pearson correlation of L and R (docs/FINGERPRINT.md "Stereo")."""
        fs = self._fs
        if not self._is[_samples.I_DIFFER]:
            return 1.0
        n = float(total)
        sl, sr_ = fs[_samples.F_L], fs[_samples.F_R]
        var_l = fs[_samples.F_LL] - sl * sl / n
        var_r = fs[_samples.F_RR] - sr_ * sr_ / n
        cov = fs[_samples.F_LR] - sl * sr_ / n
        if var_l > 0.0 and var_r > 0.0:
            return min(1.0, max(-1.0, cov / math.sqrt(var_l * var_r)))
        return 0.0

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
