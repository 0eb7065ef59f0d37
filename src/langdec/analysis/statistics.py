"""Every statistic and threshold the analysis uses, defined once: the report, its study units and the study's
files (`langdec study-tables`) import them from here.

Thresholds: the study's conclusion-flip band (`FLIP_THRESHOLD`), its no-movement band (`NOISE`), the
significance level (`ALPHA`, Bonferroni over the comparisons), the report's bootstrap rounds and its
mostly-one-label share. Tests: a one-sample t test, Welch's t test, a pooled two-proportion z test, a paired
bootstrap interval. The tests hand back what scipy and numpy hand back (numpy floats): the study's files round
them as its script did, and numpy rounds a numpy float differently from Python's `round` on a float.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

FLIP_THRESHOLD = 0.01  # the study's: a conclusion flips when |delta| exceeds it under both extractors, signs opposite
NOISE = 0.005  # the study's figures and tables: |delta| below half a point is no movement
ALPHA = 0.05
BOOTSTRAP_ROUNDS = 2000
CONSTANT_LABEL_SHARE = 0.8  # a cell answering one label this often is flagged "mostly one label"
NAN = float("nan")


@dataclass(frozen=True)
class TTest:
    statistic: Any  # numpy float (nan when the test cannot run)
    p: Any
    df: Any


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Zero-variance samples give nan with a warning: nan is the honest answer, the warning is noise."""
    import numpy as np

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def one_sample_t(sample: "np.ndarray", popmean: float) -> TTest:
    """One-sample t test of `sample` against `popmean`; nan (df 0) with fewer than two observations."""
    from scipy import stats

    if len(sample) < 2:
        return TTest(NAN, NAN, 0)
    with _quiet():
        t, p = stats.ttest_1samp(sample, popmean=popmean)
    return TTest(t, p, len(sample) - 1)


def welch_t(a: "np.ndarray", b: "np.ndarray") -> TTest:
    """Welch's t test (unequal variances) with its Welch-Satterthwaite df; nan unless both have two observations."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return TTest(NAN, NAN, NAN)
    with _quiet():
        t, p = stats.ttest_ind(a, b, equal_var=False)
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        df = float("inf") if va == 0 and vb == 0 else (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return TTest(t, p, df)


def two_proportion_z(difference: float, k_a: int, n_a: int, k_b: int, n_b: int) -> tuple[Any, Any]:
    """(z, two-sided p) of `difference` over the pooled standard error of k_a/n_a against k_b/n_b; nan when the
    pooled proportion is 0 or 1."""
    import numpy as np
    from scipy import stats

    pooled = (k_a + k_b) / (n_a + n_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if not se > 0:
        return NAN, NAN
    z = difference / se
    return z, 2 * stats.norm.sf(abs(z))


def bonferroni(comparisons: int, alpha: float = ALPHA) -> float:
    """The per-comparison p threshold of `comparisons` tests at family level `alpha` (nan for none)."""
    return alpha / comparisons if comparisons else NAN


def is_nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def flip_sign(delta: float, threshold: float = FLIP_THRESHOLD) -> int:
    """+1 above +threshold, -1 below -threshold, 0 inside the band (and for nan)."""
    return 1 if delta > threshold else -1 if delta < -threshold else 0


def flips(before: float, after: float, threshold: float = FLIP_THRESHOLD) -> bool:
    """The study's conclusion flip: beyond the band on both sides of zero, one delta each."""
    return flip_sign(before, threshold) * flip_sign(after, threshold) < 0


def bootstrap_interval(deltas: "np.ndarray", rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of paired per-item deltas over `rounds` resamples of the items.
    Resampling n items with replacement is drawing multinomial counts of the distinct delta values, which
    is the same distribution at a fraction of the work (deltas take few distinct values)."""
    import numpy as np

    values, counts = np.unique(deltas, return_counts=True)
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(len(deltas), counts / counts.sum(), size=rounds)
    means = drawn @ values / len(deltas)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
