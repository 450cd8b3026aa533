"""Exercise: the normalised autocorrelation of a curve, the measure of shattered gradients
(Balduzzi et al. 2017; :func:`nnscratch.experiments.shattered.autocorrelation`).

    r(k) = sum_{t<P-k} (s_t - m)(s_{t+k} - m) / sum_t (s_t - m)^2,   m = mean_t s_t

for k = 0 .. P-1: r(0) = 1; white noise has r(k) near 0 for every k >= 1, a random walk
(brown noise) decays slowly.
"""

from __future__ import annotations

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output, as_floats


def autocorrelation(s) -> np.ndarray:
    """r (P,) of a curve s (P,), an array or a list, as in the module docstring."""
    c = np.asarray(s) - np.mean(s)
    return _lags(c) / (c @ c)


def _cases() -> list[Case]:
    rng = np.random.default_rng(23)
    t = np.linspace(0.0, 1.0, 50)
    curves = (
        ("white noise, 64 points", rng.standard_normal(64)),
        ("a random walk (brown noise), 100 points", np.cumsum(rng.standard_normal(100))),
        ("a slow sine on an offset of 5, 50 points", 5.0 + np.sin(2 * np.pi * t)),
        ("5 points", np.array([0.3, -1.2, 2.0, 0.7, -0.4])),
        ("2 points", np.array([1.5, -0.5])),
    )
    return [Case(words, {"s": s}) for words, s in curves]


def _lags(c: np.ndarray, shift: int = 0) -> np.ndarray:
    """sum_{t<P-k-shift} c_t c_{t+k+shift} for every k (no normalisation): lag k + shift."""
    return np.array([c[: len(c) - k - shift] @ c[k + shift :] for k in range(len(c))])


def _shifted(s: np.ndarray) -> np.ndarray:
    c = s - s.mean()
    return _lags(c, shift=1) / (c @ c)


AUTOCORRELATION = Exercise(
    name="autocorrelation",
    title="the normalised autocorrelation r(k) of a curve",
    signature="autocorrelation(s) -> r",
    task="""
s is a curve of P numbers (float64, not constant), such as the derivative of a network's
output along a line of inputs. Return r (P,), its normalised autocorrelation at every
lag k = 0 .. P-1:

    r(k) = sum_{t=0}^{P-1-k} (s_t - m)(s_{t+k} - m) / sum_{t=0}^{P-1} (s_t - m)^2

with m the mean of s over all P points. So r(0) = 1, and every lag is divided by the same
denominator (not by its own number of terms). np.correlate(c, c, "full") computes the
sums of every lag at once, lag -(P-1) first.
""",
    outputs=(Output("r"),),
    reference=autocorrelation,
    cases=_cases,
    run=as_floats,
    mistakes=(
        Mistake(
            "centre the curve first (subtract its mean m from every s_t): without it a curve "
            "on an offset looks correlated at every lag",
            lambda s: _lags(s) / (s @ s),
        ),
        Mistake(
            "every lag is divided by the same sum_t (s_t - m)^2; dividing the sum of lag k by "
            "its own number of terms P - k (and lag 0 by P) inflates the long lags, which "
            "rest on few pairs",
            lambda s: (
                (_lags(s - s.mean()) / np.arange(len(s), 0, -1))
                / ((s - s.mean()) @ (s - s.mean()) / len(s))
            ),
        ),
        Mistake(
            "normalise: divide the sums by the lag-0 sum, sum_t (s_t - m)^2, so that r(0) = 1",
            lambda s: _lags(s - s.mean()),
        ),
        Mistake(
            "normalise by the lag-0 sum, sum_t (s_t - m)^2, not by the number of points: "
            "that gives the autocovariance, and r(0) is then the variance rather than 1",
            lambda s: _lags(s - s.mean()) / len(s),
        ),
        Mistake(
            'np.correlate(c, c, "full") has 2P - 1 entries, lag -(P-1) first and lag 0 in the '
            "middle: your first P entries are the negative lags, up to lag 0",
            lambda s: (
                np.correlate(s - s.mean(), s - s.mean(), "full")[: len(s)]
                / ((s - s.mean()) @ (s - s.mean()))
            ),
        ),
        Mistake(
            "r is shifted by one lag: r[k] pairs each s_t with s_{t+k}, so r[0] pairs every "
            "point with itself and is 1; check where your slices (or the lags you take from "
            "np.correlate) start",
            _shifted,
        ),
    ),
)
