"""The two-sided Kolmogorov-Smirnov distribution's survival function without scipy.stats
(its import costs ~0.7 CPU-s, more than comparing a million rows' sketches).

`kstwo_sf(d, n)` equals `scipy.stats.kstwo.sf(d, n)`: the same branches as SciPy's
`_kolmogn` (Simard and L'Ecuyer 2011) for n > 100,000, where it uses scipy.special's
exact one-sided `smirnov` or the Pelz-Good approximation (copied below from SciPy 1.17,
BSD licence); the other cases (smaller samples, where SciPy runs exact matrix methods)
ask scipy.stats itself.
"""

from __future__ import annotations

import math

import numpy as np

_PI_SQUARED = math.pi ** 2
_PI_FOUR = math.pi ** 4
_PI_SIX = math.pi ** 6
_SQRT2PI = math.sqrt(2 * math.pi)
_SQRT3 = math.sqrt(3)
_MIN_LOG = -708
LARGE_N = 100_000  # above this, no exact method: SciPy too uses smirnov or Pelz-Good


def kstwo_sf(d: float, n: int) -> float:
    """P(D_n > d) for the two-sided one-sample KS statistic D_n (two samples: n = n1 n2 / (n1 + n2))."""
    if d >= 1.0:
        return 0.0
    if d <= 0.0:
        return 1.0
    t = n * d
    if n <= LARGE_N or t <= 1.0:
        from scipy import stats

        return float(stats.kstwo.sf(d, n))
    if t >= n - 1:
        return _clip(2 * (1.0 - d) ** n)
    nxsquared = t * d
    if d >= 0.5 or 2.2 <= nxsquared < 370.0:
        from scipy.special import smirnov  # imported only here (~0.2 s)

        return _clip(2 * smirnov(n, d))
    if nxsquared >= 370.0:
        return 0.0
    return _clip(1.0 - _pelz_good_cdf(n, d))


def _clip(p: float) -> float:
    return float(min(max(p, 0.0), 1.0))


def _pelz_good_cdf(n: int, x: float) -> float:
    """The Pelz-Good approximation to P(D_n <= x), 0 < x < 1 (SciPy's _kolmogn_PelzGood)."""
    z = np.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z ** 2, z ** 3, z ** 4, z ** 6
    qlog = -_PI_SQUARED / 8 / zsquared
    if qlog < _MIN_LOG:
        return 0.0
    q = np.exp(qlog)
    k1a, k1b = -zsquared, _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z ** 8
    terms = np.zeros(4)
    maxk = int(np.ceil(16 * z / np.pi))
    for k in range(maxk, 0, -1):  # Horner: sum over odd m of c_m q^(m^2)
        m = 2 * k - 1
        msquared, mfour, msix = m ** 2, m ** 4, m ** 6
        coeffs = np.array([1.0, k1a + k1b * msquared, k2a + k2b * msquared + k2c * mfour,
                           k3a + k3b * msquared + k3c * mfour + k3d * msix])
        terms *= np.power(q, 8 * k)
        terms += coeffs
    terms *= q
    terms *= _SQRT2PI
    terms /= np.array([z, 6 * zfour, 72 * z ** 7, 6480 * z ** 10])
    q = np.exp(-_PI_SQUARED / 2 / zsquared)
    ks = np.arange(maxk, 0, -1)
    ksquared = ks ** 2
    sqrt3z, kspi = _SQRT3 * z, np.pi * ks
    qpowers = q ** ksquared
    terms[2] += np.sum(ksquared * qpowers) * _PI_SQUARED * _SQRT2PI / (-36 * zthree)
    terms[3] += np.sum((sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpowers) * _PI_SQUARED * _SQRT2PI / (216 * zsix)
    terms /= np.power(n * 1.0, np.arange(len(terms)) / 2.0)
    return float(sum(terms))
