"""Spectral ("drip-stone") operators: FFT band power of intraday series, reduced to daily panels.

The reference computation (spectral issue), for one (day, instrument) series x of M minute
slots, missing minutes (NaN, or any non-finite value) being gaps:

1. despike: clip x to median +- 3 * 1.4826 * MAD over the valid minutes (IQR variant:
   [Q1 - 1.5 IQR, Q3 + 1.5 IQR], numpy's linear quantiles); no clipping when the minutes are
   flat, i.e. the spread (MAD or IQR) is <= 1e-12 * |median| (`robust.is_flat`, the rule of
   the robust operators);
2. demean with the mean of the valid (clipped) minutes; then fill the missing minutes with 0
   (a gap contributes no energy, and filling after demeaning keeps it from acting as a level);
3. multiply by a symmetric Hann window of M points (`np.hanning(M)`, over the whole session
   grid, so a minute keeps its place in time);
4. zero-pad to n = 256 points when M < 256; a longer series keeps n = M (no padding), e.g.
   the 391-slot US session uses n = 391;
5. P = |rfft|^2 with frequencies f = rfftfreq(n, d=1 minute);
6. band power ratio = sum(P[1/high <= f <= 1/low, f != 0]) / sum(P[f != 0]) for the band of
   periods (low, high) minutes.

Gaps: step 2 fills missing minutes with 0 in place, so the series keeps the session's clock.
`fft_band_dropna` follows the drip-stone note instead: the valid minutes are packed together
(gaps dropped, the series compressed), the Hann window spans those m minutes (`np.hanning(m)`)
and the FFT length stays that of the session (256 for every grid of up to 256 slots, as the
note's zero-pad to 256; a longer grid keeps n = M where the note would use max(m, 256)). On a
day without gaps the two agree exactly.

Fewer than 10 valid minutes, or a total power ~0 (sum(P[f != 0]) <= 1e-20 * n * sum of the
squared clipped valid minutes: a flat series), give NaN: missing, not neutral.

Every reducer here builds on the same power spectra, computed in batches of whole days: a numba
core despikes and windows each series, one batched `np.fft.rfft` transforms the batch, numba
cores reduce the spectra (`Blocking` bounds the batch memory and sets the threads). A day's value
uses that day's minutes only, and each series is computed on its own: its value does not depend
on the batch it shares.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit

from operators.registry import Arg, operator, window_lookback
from operators.robust import MAD_TO_SIGMA, is_flat

MIN_VALID = 10
PAD_TO = 256
MAD_K = 3.0
IQR_K = 1.5
FLAT_TOL = 1e-20
KURTOSIS_TOL = np.finfo(np.float64).resolution
COHERENCE_NPERSEG = 64

CLIP_MAD = 0
CLIP_IQR = 1

_BLOCK_SERIES = 1 << 13

Reducer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def fft_length(m: int) -> int:
    """FFT length for a series of m slots: zero-pad to 256 when shorter, else keep m."""
    return max(m, PAD_TO)


def band_bins(n: int, low: float, high: float) -> tuple[int, int]:
    """Bins [k0, k1) of rfft(n) whose frequency f != 0 satisfies 1/high <= f <= 1/low."""
    _check_band(low, high)
    freqs = np.fft.rfftfreq(n, d=1.0)
    inside = np.flatnonzero((freqs >= 1.0 / high) & (freqs <= 1.0 / low) & (freqs != 0.0))
    if inside.size == 0:
        return 1, 1
    return int(inside[0]), int(inside[-1]) + 1


def _check_band(low: float, high: float) -> None:
    if not (low >= 1.0 and high >= 1.0):
        raise ValueError(f"band periods must be >= 1, got low={low:g}, high={high:g}")
    if low >= high:
        raise ValueError(f"band needs low < high (periods), got low={low:g}, high={high:g}")


# ----------------------------------------------------------------------------- numba cores


@njit(cache=True, nogil=True)
def _select(a: np.ndarray, m: int, k: int) -> float:
    """Rearrange a[:m] so that a[k] is its k-th smallest value and a[:k] <= a[k]; return it.

    Quickselect with branch-free partitions (< pivot, then == pivot), so ties cost nothing.
    """
    lo = 0
    hi = m
    while hi - lo > 1:
        first = a[lo]
        middle = a[(lo + hi) // 2]
        last = a[hi - 1]
        pivot = max(min(first, middle), min(max(first, middle), last))
        below = lo
        for j in range(lo, hi):
            value = a[j]
            a[j] = a[below]
            a[below] = value
            below += value < pivot
        if k < below:
            hi = below
            continue
        equal = below
        for j in range(below, hi):
            value = a[j]
            a[j] = a[equal]
            a[equal] = value
            equal += value <= pivot
        if k < equal:
            return pivot
        lo = equal
    return a[k]


@njit(cache=True, nogil=True)
def _median(a: np.ndarray, m: int) -> float:
    """Median of a[:m] (m >= 1), reordering a in place."""
    k = m // 2
    upper = _select(a, m, k)
    if m % 2 == 1:
        return upper
    lower = a[0]
    for j in range(1, k):
        if a[j] > lower:
            lower = a[j]
    return 0.5 * (lower + upper)


@njit(cache=True, nogil=True)
def _quantile_sorted(a: np.ndarray, m: int, q: float) -> float:
    """numpy's default ('linear') quantile q of the sorted a[:m]."""
    position = q * (m - 1)
    below = int(np.floor(position))
    above = min(below + 1, m - 1)
    frac = position - below
    return a[below] + (a[above] - a[below]) * frac


@njit(cache=True, nogil=True)
def _clip_bounds(scratch: np.ndarray, m: int, clip: int) -> tuple[float, float, bool]:
    """(lower, upper, clip?) of the despike rule for the m valid values held in scratch."""
    if clip == CLIP_IQR:
        scratch[:m].sort()
        median = _quantile_sorted(scratch, m, 0.5)
        q1 = _quantile_sorted(scratch, m, 0.25)
        q3 = _quantile_sorted(scratch, m, 0.75)
        spread = q3 - q1
        return q1 - IQR_K * spread, q3 + IQR_K * spread, not is_flat(spread, median)
    median = _median(scratch, m)
    for j in range(m):
        scratch[j] = abs(scratch[j] - median)
    mad = _median(scratch, m)
    reach = MAD_K * MAD_TO_SIGMA * mad
    return median - reach, median + reach, not is_flat(mad, median)


@njit(cache=True, nogil=True)
def _prepare(
    x: np.ndarray,
    clip: int,
    window: np.ndarray,
    buf: np.ndarray,
    index: np.ndarray,
    scale: np.ndarray,
    drop_gaps: bool = False,
) -> int:
    """Despike, demean, gap-fill (or, with drop_gaps, pack the valid minutes) and window every
    (day, name) series of x (B, N, M) into buf.

    Only series with at least MIN_VALID valid minutes get a row: rows are packed at the top of
    buf (rows, n), index[row] is the series' flat position b * N + i, scale[row] is
    n * sum(clipped valid values ** 2) (the yardstick of the flat-series rule). Returns the
    number of rows.
    """
    days, names, slots = x.shape
    n = buf.shape[1]
    scratch = np.empty(slots)
    rows = 0
    for b in range(days):
        for i in range(names):
            row = buf[rows]
            m = 0
            for j in range(slots):
                value = x[b, i, j]
                row[j] = value
                if np.isfinite(value):
                    scratch[m] = value
                    m += 1
            if m < MIN_VALID:
                continue
            lower, upper, clipping = _clip_bounds(scratch, m, clip)
            total = 0.0
            squares = 0.0
            for j in range(slots):
                value = row[j]
                if np.isfinite(value):
                    if clipping:
                        value = min(max(value, lower), upper)
                        row[j] = value
                    total += value
                    squares += value * value
            mean = total / m
            if drop_gaps:
                k = 0
                for j in range(slots):
                    if np.isfinite(row[j]):
                        row[k] = (row[j] - mean) * (0.5 - 0.5 * np.cos(2.0 * np.pi * k / (m - 1)))
                        k += 1
                row[m:] = 0.0
            else:
                for j in range(slots):
                    value = row[j]
                    row[j] = (value - mean) * window[j] if np.isfinite(value) else 0.0
                row[slots:] = 0.0
            index[rows] = b * names + i
            scale[rows] = n * squares
            rows += 1
    return rows


@njit(cache=True, nogil=True)
def _power(spectra: np.ndarray, r: int, power: np.ndarray) -> float:
    """Fill power[k] = |F[r, k]|^2 for k >= 1; return their sum (the total non-DC power)."""
    total = 0.0
    for k in range(1, spectra.shape[1]):
        z = spectra[r, k]
        p = z.real * z.real + z.imag * z.imag
        power[k] = p
        total += p
    return total


@njit(cache=True, nogil=True)
def _band_ratio(spectra: np.ndarray, scale: np.ndarray, k0: int, k1: int) -> np.ndarray:
    rows, bins = spectra.shape
    power = np.empty(bins)
    out = np.empty(rows)
    for r in range(rows):
        total = _power(spectra, r, power)
        if total <= FLAT_TOL * scale[r]:
            out[r] = np.nan
            continue
        band = 0.0
        for k in range(k0, k1):
            band += power[k]
        out[r] = band / total
    return out


@njit(cache=True, nogil=True)
def _moments(power: np.ndarray, total: float) -> tuple[float, float, float]:
    """Mean, second and fourth central moments (ddof 0) of power[1:]."""
    count = power.shape[0] - 1
    mean = total / count
    m2 = 0.0
    m4 = 0.0
    for k in range(1, power.shape[0]):
        d = power[k] - mean
        d2 = d * d
        m2 += d2
        m4 += d2 * d2
    return mean, m2 / count, m4 / count


@njit(cache=True, nogil=True)
def _kurtosis(spectra: np.ndarray, scale: np.ndarray) -> np.ndarray:
    rows, bins = spectra.shape
    power = np.empty(bins)
    out = np.empty(rows)
    for r in range(rows):
        total = _power(spectra, r, power)
        mean, m2, m4 = _moments(power, total)
        if total <= FLAT_TOL * scale[r] or m2 <= (KURTOSIS_TOL * mean) ** 2:
            out[r] = np.nan
        else:
            out[r] = m4 / (m2 * m2) - 3.0
    return out


@njit(cache=True, nogil=True)
def _peak_ratio(spectra: np.ndarray, scale: np.ndarray, k0: int, k1: int) -> np.ndarray:
    rows, bins = spectra.shape
    power = np.empty(bins)
    out = np.empty(rows)
    for r in range(rows):
        total = _power(spectra, r, power)
        first = -1.0
        second = -1.0
        for k in range(k0, k1):
            p = power[k]
            if (k > 1 and power[k - 1] >= p) or (k < bins - 1 and power[k + 1] >= p):
                continue
            if p > first:
                second = first
                first = p
            elif p > second:
                second = p
        if total <= FLAT_TOL * scale[r] or second <= 0.0:
            out[r] = np.nan
        else:
            out[r] = first / second
    return out


@njit(cache=True, nogil=True)
def _peak_count(spectra: np.ndarray, scale: np.ndarray, k0: int, k1: int) -> np.ndarray:
    rows, bins = spectra.shape
    power = np.empty(bins)
    out = np.empty(rows)
    for r in range(rows):
        total = _power(spectra, r, power)
        if total <= FLAT_TOL * scale[r]:
            out[r] = np.nan
            continue
        mean, m2, _ = _moments(power, total)
        threshold = mean + 2.0 * np.sqrt(m2)
        count = 0
        for k in range(k0, k1):
            if power[k] > threshold:
                count += 1
        out[r] = count
    return out


# ----------------------------------------------------------------------------- drivers


@dataclass(frozen=True)
class Blocking:
    """How a reducer streams over days; values never depend on it.

    `day_block` days go into one batch (None: about 8k series per batch), and the batches are
    shared among `workers` threads (the numba cores and numpy's FFT release the GIL).
    """

    day_block: int | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        if self.day_block is not None and self.day_block < 1:
            raise ValueError(f"day_block must be >= 1, got {self.day_block}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def days_per_block(self, names: int) -> int:
        return self.day_block or max(1, _BLOCK_SERIES // max(names, 1))

    def run(self, days: int, names: int, make_worker: Callable[[], Callable[[int], None]]) -> None:
        """Call a worker (made once per thread) on the first day of every block of days."""
        starts = list(range(0, days, self.days_per_block(names)))
        shares = [starts[w :: self.workers] for w in range(min(self.workers, len(starts)))]

        def run_share(share: list[int]) -> None:
            worker = make_worker()
            for t0 in share:
                worker(t0)

        if len(shares) == 1:
            run_share(shares[0])
            return
        with ThreadPoolExecutor(len(shares)) as pool:
            list(pool.map(run_share, shares))


SERIAL = Blocking()


def spectral_panel(
    x: np.ndarray,
    reduce: Reducer,
    clip: int = CLIP_MAD,
    blocking: Blocking = SERIAL,
    drop_gaps: bool = False,
) -> np.ndarray:
    """Reduce the power spectrum of every (day, name) series of x (T, N, M) to a (T, N) panel.

    `reduce(spectra, scale)` maps the rfft rows of a block (and their flat-series yardsticks)
    to one value per row; series with fewer than MIN_VALID valid minutes stay NaN.
    """
    days, names, slots = x.shape
    out = np.full((days, names), np.nan)
    if slots < MIN_VALID or days * names == 0:
        return out
    n = fft_length(slots)
    window = np.hanning(slots)
    step = blocking.days_per_block(names)
    capacity = min(step, days) * names

    def make_worker() -> Callable[[int], None]:
        buf = np.empty((capacity, n))
        index = np.empty(capacity, dtype=np.int64)
        scale = np.empty(capacity)

        def process(t0: int) -> None:
            rows = _prepare(x[t0 : t0 + step], clip, window, buf, index, scale, drop_gaps)
            if rows:
                spectra = np.fft.rfft(buf[:rows], axis=1)
                out[t0 : t0 + step].reshape(-1)[index[:rows]] = reduce(spectra, scale[:rows])

        return process

    blocking.run(days, names, make_worker)
    return out


def band_ratio(
    x: np.ndarray,
    low: float,
    high: float,
    clip: int = CLIP_MAD,
    blocking: Blocking = SERIAL,
    drop_gaps: bool = False,
) -> np.ndarray:
    """Band power ratio (steps 1-6 of the module doc) of every (day, name) series of x."""
    k0, k1 = band_bins(fft_length(x.shape[-1]), low, high)
    return spectral_panel(
        x, lambda spectra, scale: _band_ratio(spectra, scale, k0, k1), clip, blocking, drop_gaps
    )


def _session_halves(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Morning slots [0, M // 2) and afternoon slots [M // 2, M) (views)."""
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


# ----------------------------------------------------------------------------- operators
#
# Every kernel takes the keyword-only `blocking` (memory and threads, never the values); the
# evaluator calls them with the declared arguments only.


_LOW = Arg.const("low", default=2.0, lower=1.0)
_HIGH = Arg.const("high", default=5.0, lower=1.0)


@operator(
    "fft_band",
    Arg.intraday("x"),
    _LOW,
    _HIGH,
    family="spectral",
    doc="share of the day's intraday spectral power at periods low..high minutes "
    "(MAD despike, demean, Hann, pad to 256, rfft); NaN under 10 valid minutes or flat",
)
def fft_band(
    x: np.ndarray, low: float = 2.0, high: float = 5.0, *, blocking: Blocking = SERIAL
) -> np.ndarray:
    return band_ratio(x, low, high, CLIP_MAD, blocking)


@operator(
    "fft_band_dropna",
    Arg.intraday("x"),
    _LOW,
    _HIGH,
    family="spectral",
    doc="fft_band over the day's valid minutes packed together (gaps dropped, Hann over them), "
    "as the drip-stone note computes it; fft_band on a day without gaps",
)
def fft_band_dropna(
    x: np.ndarray, low: float = 2.0, high: float = 5.0, *, blocking: Blocking = SERIAL
) -> np.ndarray:
    return band_ratio(x, low, high, CLIP_MAD, blocking, drop_gaps=True)


@operator(
    "fft_band_iqr",
    Arg.intraday("x"),
    _LOW,
    _HIGH,
    family="spectral",
    doc="fft_band with the IQR despike (clip to [Q1 - 1.5 IQR, Q3 + 1.5 IQR]) instead of MAD",
)
def fft_band_iqr(
    x: np.ndarray, low: float = 2.0, high: float = 5.0, *, blocking: Blocking = SERIAL
) -> np.ndarray:
    return band_ratio(x, low, high, CLIP_IQR, blocking)


@operator(
    "fft_kurtosis",
    Arg.intraday("x"),
    family="spectral",
    doc="excess kurtosis (ddof 0) of the day's power-spectrum values over non-zero "
    "frequencies: high when a few lines dominate, NaN when flat",
)
def fft_kurtosis(x: np.ndarray, *, blocking: Blocking = SERIAL) -> np.ndarray:
    return spectral_panel(x, _kurtosis, CLIP_MAD, blocking)


@operator(
    "fft_peak_ratio",
    Arg.intraday("x"),
    _LOW,
    _HIGH,
    family="spectral",
    doc="largest / second-largest spectral peak (strict local maximum of power) with period "
    "in low..high; NaN with fewer than two such peaks",
)
def fft_peak_ratio(
    x: np.ndarray, low: float = 2.0, high: float = 5.0, *, blocking: Blocking = SERIAL
) -> np.ndarray:
    k0, k1 = band_bins(fft_length(x.shape[-1]), low, high)
    return spectral_panel(x, lambda spectra, scale: _peak_ratio(spectra, scale, k0, k1), CLIP_MAD, blocking)


@operator(
    "fft_peak_count",
    Arg.intraday("x"),
    _LOW,
    _HIGH,
    family="spectral",
    doc="number of frequency bins with period in low..high whose power exceeds mean + 2 std "
    "(ddof 0) of the non-zero-frequency power spectrum",
)
def fft_peak_count(
    x: np.ndarray, low: float = 2.0, high: float = 5.0, *, blocking: Blocking = SERIAL
) -> np.ndarray:
    k0, k1 = band_bins(fft_length(x.shape[-1]), low, high)
    return spectral_panel(x, lambda spectra, scale: _peak_count(spectra, scale, k0, k1), CLIP_MAD, blocking)


@operator(
    "fft_band_am",
    Arg.intraday("x"),
    _LOW,
    _HIGH,
    family="spectral",
    doc="fft_band over the morning half of the session (slots [0, M//2))",
)
def fft_band_am(
    x: np.ndarray, low: float = 2.0, high: float = 5.0, *, blocking: Blocking = SERIAL
) -> np.ndarray:
    morning, _ = _session_halves(x)
    return band_ratio(morning, low, high, CLIP_MAD, blocking)


@operator(
    "fft_band_pm",
    Arg.intraday("x"),
    _LOW,
    _HIGH,
    family="spectral",
    doc="fft_band over the afternoon half of the session (slots [M//2, M))",
)
def fft_band_pm(
    x: np.ndarray, low: float = 2.0, high: float = 5.0, *, blocking: Blocking = SERIAL
) -> np.ndarray:
    _, afternoon = _session_halves(x)
    return band_ratio(afternoon, low, high, CLIP_MAD, blocking)


@operator(
    "fft_band_shift",
    Arg.intraday("x"),
    _LOW,
    _HIGH,
    family="spectral",
    doc="periodicity shift: fft_band_pm - fft_band_am",
)
def fft_band_shift(
    x: np.ndarray, low: float = 2.0, high: float = 5.0, *, blocking: Blocking = SERIAL
) -> np.ndarray:
    morning, afternoon = _session_halves(x)
    return band_ratio(afternoon, low, high, CLIP_MAD, blocking) - band_ratio(
        morning, low, high, CLIP_MAD, blocking
    )


# ----------------------------------------------------------------------------- coherence
#
# Welch's magnitude-squared coherence exactly as `scipy.signal.coherence(x, y, fs=1,
# nperseg=64)` defines it (periodic Hann window, 50% overlap, constant detrend per segment,
# trailing minutes that fill no whole segment dropped), written out here because scipy's
# batched version rounds differently with the batch size: a day's value must not depend on
# which other days share its batch.


@njit(cache=True, nogil=True)
def _prepare_pair(
    v: np.ndarray,
    r: np.ndarray,
    min_valid: int,
    buf_v: np.ndarray,
    buf_r: np.ndarray,
    index: np.ndarray,
) -> int:
    """Demean v and r over the minutes where both are valid, zero elsewhere, packed into rows.

    Series with fewer than min_valid joint minutes, or either side flat after demeaning, get
    no row. Returns the number of rows; index[row] is the series' flat position b * N + i.
    """
    days, names, slots = v.shape
    rows = 0
    for b in range(days):
        for i in range(names):
            m = 0
            sum_v = 0.0
            sum_r = 0.0
            for j in range(slots):
                if np.isfinite(v[b, i, j]) and np.isfinite(r[b, i, j]):
                    m += 1
                    sum_v += v[b, i, j]
                    sum_r += r[b, i, j]
            if m < min_valid:
                continue
            mean_v = sum_v / m
            mean_r = sum_r / m
            raw_v = 0.0
            raw_r = 0.0
            dev_v = 0.0
            dev_r = 0.0
            for j in range(slots):
                a = v[b, i, j]
                c = r[b, i, j]
                if np.isfinite(a) and np.isfinite(c):
                    buf_v[rows, j] = a - mean_v
                    buf_r[rows, j] = c - mean_r
                    raw_v += a * a
                    raw_r += c * c
                    dev_v += (a - mean_v) ** 2
                    dev_r += (c - mean_r) ** 2
                else:
                    buf_v[rows, j] = 0.0
                    buf_r[rows, j] = 0.0
            if dev_v <= FLAT_TOL * raw_v or dev_r <= FLAT_TOL * raw_r:
                continue
            index[rows] = b * names + i
            rows += 1
    return rows


@njit(cache=True, nogil=True)
def _segments(y: np.ndarray, rows: int, window: np.ndarray, out: np.ndarray) -> None:
    """Cut y[:rows] into half-overlapping segments, detrended (mean removed) and windowed."""
    length = window.shape[0]
    step = length // 2
    count = (y.shape[1] - length) // step + 1
    for r in range(rows):
        for s in range(count):
            start = s * step
            total = 0.0
            for j in range(length):
                total += y[r, start + j]
            mean = total / length
            segment = out[r * count + s]
            for j in range(length):
                segment[j] = (y[r, start + j] - mean) * window[j]


@njit(cache=True, nogil=True)
def _band_coherence(fv: np.ndarray, fr: np.ndarray, count: int, k0: int, k1: int) -> np.ndarray:
    """Mean over bins [k0, k1) of |sum conj(V) R|^2 / (sum |V|^2 * sum |R|^2), per row."""
    rows = fv.shape[0] // count
    out = np.empty(rows)
    for r in range(rows):
        total = 0.0
        for k in range(k0, k1):
            power_v = 0.0
            power_r = 0.0
            cross = 0.0 + 0.0j
            for s in range(count):
                a = fv[r * count + s, k]
                c = fr[r * count + s, k]
                power_v += a.real * a.real + a.imag * a.imag
                power_r += c.real * c.real + c.imag * c.imag
                cross += a.conjugate() * c
            magnitude = cross.real * cross.real + cross.imag * cross.imag
            total += magnitude / power_v / power_r if power_v > 0.0 and power_r > 0.0 else np.nan
        out[r] = total / (k1 - k0)
    return out


@functools.cache
def _hann_window() -> np.ndarray:
    """scipy's periodic Hann window for Welch segments (scipy.signal is imported on first use:
    it takes half a second, which every scoring worker would pay on start-up)."""
    from scipy.signal import windows

    return windows.hann(COHERENCE_NPERSEG, sym=False)


@operator(
    "fft_coherence",
    Arg.intraday("v"),
    Arg.intraday("r"),
    _LOW,
    _HIGH,
    family="spectral",
    doc="mean magnitude-squared coherence (Welch, Hann, nperseg 64) of two intraday series, "
    "e.g. volume and minute returns, over periods low..high; NaN under 128 joint minutes",
)
def fft_coherence(
    v: np.ndarray,
    r: np.ndarray,
    low: float = 2.0,
    high: float = 5.0,
    *,
    blocking: Blocking = SERIAL,
) -> np.ndarray:
    """`scipy.signal.coherence(fs=1, nperseg=64)` averaged over 1/high <= f <= 1/low, f != 0.

    A minute counts only where both series are valid; each side is demeaned over those
    minutes and the other minutes are set to 0. Fewer than 2 * 64 joint minutes, a flat side,
    or an empty band give NaN.
    """
    _check_band(low, high)
    if v.shape != r.shape:
        raise ValueError(f"fft_coherence needs equal shapes, got {v.shape} and {r.shape}")
    days, names, slots = v.shape
    out = np.full((days, names), np.nan)
    min_valid = 2 * COHERENCE_NPERSEG
    k0, k1 = band_bins(COHERENCE_NPERSEG, low, high)
    if slots < min_valid or days * names == 0 or k0 == k1:
        return out
    window = _hann_window()
    count = (slots - COHERENCE_NPERSEG) // (COHERENCE_NPERSEG // 2) + 1
    step = blocking.days_per_block(names)
    capacity = min(step, days) * names

    def make_worker() -> Callable[[int], None]:
        buf_v = np.empty((capacity, slots))
        buf_r = np.empty((capacity, slots))
        seg_v = np.empty((capacity * count, COHERENCE_NPERSEG))
        seg_r = np.empty((capacity * count, COHERENCE_NPERSEG))
        index = np.empty(capacity, dtype=np.int64)

        def process(t0: int) -> None:
            block_v, block_r = v[t0 : t0 + step], r[t0 : t0 + step]
            rows = _prepare_pair(block_v, block_r, min_valid, buf_v, buf_r, index)
            if not rows:
                return
            _segments(buf_v, rows, window, seg_v)
            _segments(buf_r, rows, window, seg_r)
            spectra_v = np.fft.rfft(seg_v[: rows * count], axis=1)
            spectra_r = np.fft.rfft(seg_r[: rows * count], axis=1)
            values = _band_coherence(spectra_v, spectra_r, count, k0, k1)
            out[t0 : t0 + step].reshape(-1)[index[:rows]] = values

        return process

    blocking.run(days, names, make_worker)
    return out


# ----------------------------------------------------------------------------- daily series


@operator(
    "ts_fft_band",
    Arg.series("x"),
    Arg.window("d"),
    _LOW,
    _HIGH,
    family="spectral",
    lookback=window_lookback("d"),
    doc="fft_band of the trailing d rows of a daily series (periods in rows, window padded "
    "to 256); NaN under 10 valid values in the window",
)
def ts_fft_band(
    x: np.ndarray, d: int, low: float = 2.0, high: float = 5.0, *, blocking: Blocking = SERIAL
) -> np.ndarray:
    """The reference computation on the window x[t-d+1 .. t] of each column (rows = slots).

    The window always has d slots: rows before the first row of x are missing slots, so a
    value depends only on its own window (bit-exact under incremental recomputation). Short
    windows are zero-padded to 256 points as intraday days are, for a smooth spectrum whose
    band edges fall between the same frequencies whatever d is.
    """
    days, names = x.shape
    padded = np.full((days + d - 1, names), np.nan)
    padded[d - 1 :] = x
    windows = np.lib.stride_tricks.sliding_window_view(padded, d, axis=0)
    return band_ratio(windows, low, high, CLIP_MAD, blocking)
