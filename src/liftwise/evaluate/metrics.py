"""Uplift metrics as small pure functions over NumPy arrays (see docs/metrics.md).

Inputs everywhere: ``y`` float outcome (binary 0/1 or continuous), ``treatment`` integer
arm codes (0 = control, 1..K treatment arms; arms are never folded together), ``score``
the predicted uplift (higher = treat first), shape (n,) or (n, K) as returned by
``UpliftLearner.predict`` (then column ``arm - 1`` is used).

Single-arm metrics compare one ``arm`` with control on the units with treatment in
{0, arm}; units of the other arms are dropped. The multi-arm policy metrics
(``policy_profit_*``) give every unit its best arm and use inverse-propensity weights.

Ties: equal scores form one group that is never split. Curves have points only at the
ends of tie groups; a value inside a group (uplift@k, Profit@K) counts each tied unit as
its group's average, which makes every result independent of the row order.

Every curve costs one sort plus cumulative sums, O(n log n).

Validation: every metric's arrays go once through ``_check_arrays``, built on
scikit-learn's validators as the learners' inputs are (:mod:`liftwise.learn.validation`);
a bad input raises :class:`~liftwise.errors.ParameterError` naming the parameter (a
``UserError`` the CLI prints as one line, and a ``ValueError``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from liftwise.errors import ParameterError
from liftwise.learn.validation import (
    check_arm_codes,
    check_matrix,
    check_same_length,
    check_vector,
    check_vector_or_matrix,
)

Normalization = Literal["sklift", "causalml"] | None
Convention = Literal["sklift", "causalml"]
Strategy = Literal["overall", "by_group"]
Count = int | float

__all__ = [
    "Curve",
    "auuc",
    "max_profit",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "policy_max_profit",
    "policy_profit_at_k",
    "policy_profit_curve",
    "profit_at_k",
    "profit_curve",
    "qini_coefficient",
    "qini_curve",
    "roi",
    "uplift_at_k",
    "uplift_curve",
]


@dataclass(frozen=True)
class Curve:
    """A gain curve: ``x`` units targeted (0..n, ascending, from 0), ``y`` the gain there."""

    x: np.ndarray
    y: np.ndarray

    def area(self) -> float:
        """Trapezoid area under the points (scikit-learn's ``auc`` on the same points)."""
        return float(np.trapezoid(self.y, self.x))

    def best(self) -> tuple[int, float]:
        """(x, y) of the highest point; the smallest x wins a tie."""
        i = int(np.argmax(self.y))
        return int(self.x[i]), float(self.y[i])


# ---------------------------------------------------------------------------- validation


class _Checked(NamedTuple):
    """A metric's arrays after the one validation: y finite floats, treatment arm codes with
    a control, score (n,) or (n, K) (None: the metric brings its own ranking), conversion
    flags when given; all of the same length."""

    y: np.ndarray
    codes: np.ndarray
    score: np.ndarray | None
    conversion: np.ndarray | None


def _check_arrays(
    y: object,
    treatment: object,
    score: object = None,
    conversion: object = None,
    *,
    per_arm_scores: bool = False,
) -> _Checked:
    """The validation every metric's arrays go through, once, with scikit-learn's
    validators (:mod:`liftwise.learn.validation`, shared with the learners): a
    ParameterError naming ``y``, ``treatment``, ``score`` (``scores`` for the (n, K) matrix
    of the policy metrics) or ``conversion``."""
    outcome = check_vector(y, "y")
    codes = check_arm_codes(treatment)
    score_name = "scores" if per_arm_scores else "score"
    ranking: np.ndarray | None = None
    if per_arm_scores:
        ranking = check_matrix(score, score_name)
    elif score is not None:
        ranking = check_vector_or_matrix(score, score_name)
    flags = None if conversion is None else check_vector(conversion, "conversion")
    check_same_length(
        "y", {"y": outcome, "treatment": codes, score_name: ranking, "conversion": flags}
    )
    if not (codes == 0).any():
        raise ParameterError("treatment has no control units (code 0)", parameter="treatment")
    return _Checked(outcome, codes, ranking, flags)


def _arm_score(score: np.ndarray, arm: int) -> np.ndarray:
    """The ranking score of ``arm``: the array itself, or column arm - 1 of an (n, K) matrix."""
    if score.ndim == 1:
        return score
    if not 1 <= arm <= score.shape[1]:
        raise ParameterError(
            f"score has {score.shape[1]} arm columns, no column for arm={arm}", parameter="arm"
        )
    return score[:, arm - 1]


def _check_arm(arm: int) -> int:
    if isinstance(arm, bool) or not isinstance(arm, int | np.integer) or arm < 1:
        raise ParameterError(f"arm must be a treatment code >= 1, got {arm!r}", parameter="arm")
    return int(arm)


def _binary(values: np.ndarray) -> bool:
    """Every value is 0 or 1."""
    return bool(np.isin(values, (0.0, 1.0)).all())


class _ArmSample(NamedTuple):
    """The units of one arm and control: outcome, treated flag (1.0/0.0), score, conversion."""

    y: np.ndarray
    treated: np.ndarray
    score: np.ndarray
    conversion: np.ndarray


def _conversion_flags(
    y: np.ndarray, conversion: np.ndarray | None, redemption_cost: object
) -> np.ndarray:
    """Who converted, for redemption costs: ``conversion`` (0/1 per unit), else y itself
    when binary; a continuous y needs ``conversion`` unless no redemption cost applies."""
    if conversion is None:
        if _binary(y):
            return y
        if np.all(np.asarray(redemption_cost) == 0):
            return np.zeros_like(y)
        raise ParameterError(
            "conversion is required when y is continuous and redemption_cost is non-zero",
            parameter="conversion",
        )
    if not _binary(conversion):
        raise ParameterError("conversion must hold 0/1 flags", parameter="conversion")
    return conversion


def _arm_sample(
    y: object,
    treatment: object,
    score: object,
    arm: int,
    conversion: object = None,
    redemption_cost: object = 0.0,
) -> _ArmSample:
    """Validate the inputs and keep the units in {control, arm}; other arms are dropped.
    ``score`` None: an oracle curve that ranks the units itself."""
    arm = _check_arm(arm)
    checked = _check_arrays(y, treatment, score, conversion)
    codes = checked.codes
    ranking = np.zeros(len(codes)) if checked.score is None else _arm_score(checked.score, arm)
    flags = _conversion_flags(checked.y, checked.conversion, redemption_cost)
    if not (codes == arm).any():
        present = np.unique(codes[codes > 0]).tolist()
        raise ParameterError(
            f"arm={arm} is absent from treatment (arms present: {present})", parameter="arm"
        )
    keep = (codes == 0) | (codes == arm)
    return _ArmSample(
        y=checked.y[keep],
        treated=(codes[keep] == arm).astype(np.float64),
        score=ranking[keep],
        conversion=flags[keep],
    )


def _top_count(k: Count, n: int) -> int:
    """Units in the top k: an int is a count in 1..n, a float a fraction of n in (0, 1].

    A fraction is floored after rounding to 6 decimals, so 0.29 of 100 units is 29
    (scikit-uplift's int(n * k) gives 28 there).
    """
    if isinstance(k, bool) or not isinstance(k, int | float | np.integer | np.floating):
        raise ParameterError(
            f"k must be an int count or a float fraction, got {k!r}", parameter="k"
        )
    if isinstance(k, int | np.integer):
        count = int(k)
    else:
        if not 0.0 < k <= 1.0:
            raise ParameterError(f"k={k} as a fraction must be in (0, 1]", parameter="k")
        count = math.floor(round(n * float(k), 6))
    if not 1 <= count <= n:
        raise ParameterError(f"k={k} selects {count} units; it must select 1..{n}", parameter="k")
    return count


# -------------------------------------------------------------------- ranking and sums


@dataclass(frozen=True)
class _Cumulative:
    """Column sums over the top k units of a ranking, exact at the ends of tie groups."""

    k: np.ndarray  # (m + 1,): 0, then the end of every tie group (strictly increasing)
    sums: np.ndarray  # (m + 1, c)

    def at(self, k: np.ndarray) -> np.ndarray:
        """Sums at any k: linear inside a tie group, i.e. every tied unit counts as the
        group's average, so the result does not depend on the order of tied rows."""
        k = np.asarray(k, dtype=np.float64)
        return np.column_stack([np.interp(k, self.k, column) for column in self.sums.T])

    def everywhere(self) -> tuple[np.ndarray, np.ndarray]:
        """(k, sums) at every k = 0..n, k as float."""
        k = np.arange(self.k[-1] + 1, dtype=np.float64)
        return k, self.at(k)


def _cumulate(score: np.ndarray, columns: np.ndarray) -> _Cumulative:
    """One descending sort of ``score``, then cumulative sums of ``columns`` (n, c) taken
    at the end of each group of equal scores."""
    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    ends = np.r_[np.flatnonzero(ranked[1:] != ranked[:-1]) + 1, len(score)]
    sums = np.cumsum(columns[order], axis=0)[ends - 1]
    return _Cumulative(np.r_[0, ends], np.vstack([np.zeros((1, columns.shape[1])), sums]))


class _Sums(NamedTuple):
    """Treated and control counts and outcome sums, and treated conversions, in the top k."""

    n_t: np.ndarray
    n_c: np.ndarray
    y_t: np.ndarray
    y_c: np.ndarray
    conv_t: np.ndarray


def _arm_cumulative(sample: _ArmSample) -> _Cumulative:
    control = 1.0 - sample.treated
    columns = np.column_stack(
        [
            sample.treated,
            control,
            sample.y * sample.treated,
            sample.y * control,
            sample.conversion * sample.treated,
        ]
    )
    return _cumulate(sample.score, columns)


def _sums(values: np.ndarray) -> _Sums:
    return _Sums(*values.T)


# --------------------------------------------------------------------- named formulas


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Group mean with scikit-uplift's convention: 0 where the group is empty."""
    return np.divide(total, count, out=np.zeros_like(total), where=count != 0)


def _cumulative_uplift(k: np.ndarray, s: _Sums) -> np.ndarray:
    """Uplift curve (scikit-uplift): (mean_t(top k) - mean_c(top k)) * k."""
    return (_mean(s.y_t, s.n_t) - _mean(s.y_c, s.n_c)) * k


def _qini_gain(k: np.ndarray, s: _Sums) -> np.ndarray:
    """Qini curve (Radcliffe): y_t(k) - y_c(k) * n_t(k) / n_c(k); 0 ratio without controls.
    (``k`` is unused: every gain formula takes (k, sums).)"""
    return s.y_t - s.y_c * _mean(s.n_t, s.n_c)


def _fill_leading_gap(k: np.ndarray, values: np.ndarray) -> np.ndarray:
    """causalml's convention for the top points where a group is still empty (NaN): the
    straight line from (0, 0) to the first defined point, as pandas ``interpolate()`` does
    on causalml's curve with one row per k."""
    defined = np.flatnonzero(~np.isnan(values[1:])) + 1
    if defined.size == 0:
        raise ParameterError(
            "the ranking never has both treated and control units", parameter="treatment"
        )
    first = defined[0]
    filled = values.copy()
    filled[0] = 0.0
    filled[1:first] = values[first] * k[1:first] / k[first]
    return filled


def _causalml_uplift(k: np.ndarray, s: _Sums) -> np.ndarray:
    """causalml ``get_cumgain``: k * (mean_t - mean_c), the mean difference (lift) filled
    linearly from 0 over the top points where a group is empty."""
    both = (s.n_t > 0) & (s.n_c > 0)
    lift = np.full(len(k), np.nan)
    lift[both] = s.y_t[both] / s.n_t[both] - s.y_c[both] / s.n_c[both]
    return _fill_leading_gap(k, lift) * k


def _causalml_qini(k: np.ndarray, s: _Sums) -> np.ndarray:
    """causalml ``get_qini``: y_t - y_c * n_t / n_c, filled linearly from 0 over the top
    points without control units."""
    gain = np.full(len(k), np.nan)
    has_control = s.n_c > 0
    gain[has_control] = s.y_t[has_control] - s.y_c[has_control] * (
        s.n_t[has_control] / s.n_c[has_control]
    )
    return _fill_leading_gap(k, gain)


def _treatment_cost(
    k: np.ndarray, s: _Sums, contact_cost: float, redemption_cost: float
) -> np.ndarray:
    """Cost of treating the top k: contact for all k plus redemption for the k * c_t
    expected to convert under treatment (c_t the treated conversion rate)."""
    return k * (contact_cost + redemption_cost * _mean(s.conv_t, s.n_t))


def _net_profit(
    k: np.ndarray, s: _Sums, value: float, contact_cost: float, redemption_cost: float
) -> np.ndarray:
    """Profit(k) = k * [value * (r_t - r_c) - contact_cost - redemption_cost * conv_t]."""
    return value * _cumulative_uplift(k, s) - _treatment_cost(k, s, contact_cost, redemption_cost)


def _baseline_area(curve: Curve) -> float:
    """Area under the random-targeting line from (0, 0) to the curve's last point."""
    return 0.5 * float(curve.x[-1]) * float(curve.y[-1])


def _relative_to_perfect(actual: Curve, perfect: Curve) -> float:
    """scikit-uplift: (area(actual) - area(random)) / (area(perfect) - area(random))."""
    random = _baseline_area(perfect)
    denominator = perfect.area() - random
    if denominator == 0:
        raise ParameterError(
            "the perfect curve has no area above random; score is undefined", parameter="y"
        )
    return (actual.area() - random) / denominator


def _check_normalize(normalize: object) -> None:
    if normalize not in ("sklift", "causalml", None):
        raise ParameterError(
            f"normalize must be 'sklift', 'causalml' or None, got {normalize!r}",
            parameter="normalize",
        )


def _check_convention(convention: object) -> None:
    if convention not in ("sklift", "causalml"):
        raise ParameterError(
            f"convention must be 'sklift' or 'causalml', got {convention!r}",
            parameter="convention",
        )


# -------------------------------------------------------------------------- curves


CurveKind = Literal["uplift", "qini"]
_SKLIFT_GAINS = {"uplift": _cumulative_uplift, "qini": _qini_gain}
_CAUSALML_GAINS = {"uplift": _causalml_uplift, "qini": _causalml_qini}


def _gain_everywhere(sample: _ArmSample, kind: CurveKind) -> np.ndarray:
    """causalml's curve at every k = 0..n (its leading-gap fill needs the full grid)."""
    k, values = _arm_cumulative(sample).everywhere()
    return _CAUSALML_GAINS[kind](k, _sums(values))


def _arm_curve(sample: _ArmSample, kind: CurveKind, convention: Convention) -> Curve:
    """The curve at 0 and at the end of every tie group."""
    cumulative = _arm_cumulative(sample)
    if convention == "causalml":
        return Curve(cumulative.k, _gain_everywhere(sample, kind)[cumulative.k])
    k = cumulative.k.astype(np.float64)
    return Curve(cumulative.k, _SKLIFT_GAINS[kind](k, _sums(cumulative.sums)))


def uplift_curve(
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    arm: int = 1,
    *,
    convention: Convention = "sklift",
) -> Curve:
    """Cumulative uplift (mean_t - mean_c) * k over the top k, at the end of each tie group.

    ``convention`` only changes the top points where one group is still empty:
    scikit-uplift takes an empty group's mean as 0, causalml draws a straight line from 0.
    """
    _check_convention(convention)
    return _arm_curve(_arm_sample(y, treatment, score, arm), "uplift", convention)


def qini_curve(
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    arm: int = 1,
    *,
    convention: Convention = "sklift",
) -> Curve:
    """Qini curve y_t(k) - y_c(k) * n_t(k) / n_c(k), at the end of each tie group.

    Without control units in the top k, scikit-uplift takes the ratio as 0 and causalml
    draws a straight line from 0 (``convention``).
    """
    _check_convention(convention)
    return _arm_curve(_arm_sample(y, treatment, score, arm), "qini", convention)


def _perfect_uplift_score(sample: _ArmSample) -> np.ndarray:
    """scikit-uplift's oracle ranking for binary y: treated responders, control
    non-responders, then control responders and treated non-responders in the order that
    suits the data. For continuous y (liftwise's extension) the oracle ranking of
    scikit-uplift's perfect Qini curve: treated by y descending, then control by y ascending.
    """
    y, t = sample.y, sample.treated
    if not _binary(y):
        return np.where(t == 1, y, -y)
    control_responders = np.sum((y == 1) & (t == 0))
    treated_non_responders = np.sum((y == 0) & (t == 1))
    summand = y if control_responders > treated_non_responders else t
    return 2.0 * (y == t) + summand


def _unscored_sample(y: object, treatment: object, arm: int) -> _ArmSample:
    """The {control, arm} units for an oracle curve, which brings its own ranking."""
    return _arm_sample(y, treatment, None, arm)


def _perfect_uplift(sample: _ArmSample) -> Curve:
    return _arm_curve(sample._replace(score=_perfect_uplift_score(sample)), "uplift", "sklift")


def _perfect_qini(sample: _ArmSample, negative_effect: bool) -> Curve:
    if negative_effect:
        oracle = np.where(sample.treated == 1, sample.y, -sample.y)
        return _arm_curve(sample._replace(score=oracle), "qini", "sklift")
    cumulative = _arm_cumulative(sample)
    total = float(_qini_gain(cumulative.k[-1:], _sums(cumulative.sums[-1:]))[0])
    n = len(sample.y)
    if not 0 <= total <= n:
        raise ParameterError(
            f"negative_effect=False needs a Qini gain Q(n) in [0, n], got {total:.6g}: that "
            "perfect curve rises with slope 1 to Q(n), so it only fits binary outcomes "
            "with a non-negative overall effect",
            parameter="negative_effect",
        )
    return Curve(np.array([0.0, total, n]), np.array([0.0, total, total]))


def perfect_uplift_curve(y: np.ndarray, treatment: np.ndarray, arm: int = 1) -> Curve:
    """The uplift curve of scikit-uplift's oracle ranking (the ``sklift`` AUUC's upper bound)."""
    return _perfect_uplift(_unscored_sample(y, treatment, arm))


def perfect_qini_curve(
    y: np.ndarray, treatment: np.ndarray, arm: int = 1, *, negative_effect: bool = True
) -> Curve:
    """scikit-uplift's optimum Qini curve: with ``negative_effect`` the Qini curve of the
    ranking treated by y descending then control by y ascending; without, the curve that
    rises with slope 1 to the overall gain Q(n) and stays there (binary y only)."""
    return _perfect_qini(_unscored_sample(y, treatment, arm), negative_effect)


# ------------------------------------------------------------------------ AUUC / Qini


def _causalml_normalized(gain: np.ndarray) -> np.ndarray:
    """causalml's area: the mean of the curve over k = 0..n after dividing by |gain(n)|."""
    if gain[-1] == 0:
        raise ParameterError(
            "the curve ends at 0, so causalml's normalisation is undefined", parameter="y"
        )
    return gain / abs(gain[-1])


def auuc(
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    arm: int = 1,
    normalize: Normalization = "sklift",
) -> float:
    """Area under the uplift curve.

    - ``"sklift"`` (scikit-uplift ``uplift_auc_score``): (A - A_random) / (A_perfect - A_random),
      trapezoid areas; 1 = perfect ranking, 0 = random.
    - ``"causalml"`` (causalml ``auuc_score``): mean over k = 0..n of G(k) / |G(n)|;
      a random ranking scores about 0.5.
    - ``None``: the raw trapezoid area of ``uplift_curve`` (outcome units x units).
    """
    _check_normalize(normalize)
    sample = _arm_sample(y, treatment, score, arm)
    if normalize == "causalml":
        return float(_causalml_normalized(_gain_everywhere(sample, "uplift")).mean())
    actual = _arm_curve(sample, "uplift", "sklift")
    if normalize is None:
        return actual.area()
    return _relative_to_perfect(actual, _perfect_uplift(sample))


def qini_coefficient(
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    arm: int = 1,
    normalize: Normalization = "sklift",
    *,
    negative_effect: bool = True,
) -> float:
    """Area between the Qini curve and the random line.

    - ``"sklift"`` (scikit-uplift ``qini_auc_score``): (A - A_random) / (A_perfect - A_random)
      with the perfect Qini curve of ``perfect_qini_curve(negative_effect=...)``.
    - ``"causalml"`` (causalml ``qini_score``): mean over k = 0..n of Q(k) / |Q(n)| minus
      the random line's mean, sign(Q(n)) / 2.
    - ``None``: the raw trapezoid area of ``qini_curve`` minus the random triangle n * Q(n) / 2.
    """
    _check_normalize(normalize)
    sample = _arm_sample(y, treatment, score, arm)
    if normalize == "causalml":
        normalized = _causalml_normalized(_gain_everywhere(sample, "qini"))
        random_mean = 0.5 * (normalized[0] + normalized[-1])  # the straight line's mean
        return float(normalized.mean() - random_mean)
    actual = _arm_curve(sample, "qini", "sklift")
    if normalize is None:
        return actual.area() - _baseline_area(actual)
    return _relative_to_perfect(actual, _perfect_qini(sample, negative_effect))


# -------------------------------------------------------------------------- uplift@k


def _mean_difference(s: _Sums, k: Count) -> float:
    if s.n_t[0] == 0 or s.n_c[0] == 0:
        group = "treated" if s.n_t[0] == 0 else "control"
        raise ParameterError(f"k={k}: the top units hold no {group} units", parameter="k")
    return float(s.y_t[0] / s.n_t[0] - s.y_c[0] / s.n_c[0])


def _group_top_mean(y: np.ndarray, score: np.ndarray, count: int) -> float:
    """Mean outcome of the top ``count`` units of one group (ties averaged)."""
    total = _cumulate(score, y[:, None]).at(np.array([count]))[0, 0]
    return float(total / count)


def uplift_at_k(
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    k: Count,
    arm: int = 1,
    strategy: Strategy = "overall",
) -> float:
    """Mean outcome difference treated - control among the top k (scikit-uplift's
    ``uplift_at_k``); k is a count (int) or a fraction (float in (0, 1]).

    ``"overall"``: the top k of all units; ``"by_group"``: the top k (or fraction k) of
    each group ranked separately.
    """
    if strategy not in ("overall", "by_group"):
        raise ParameterError(
            f"strategy must be 'overall' or 'by_group', got {strategy!r}", parameter="strategy"
        )
    sample = _arm_sample(y, treatment, score, arm)
    if strategy == "overall":
        count = _top_count(k, len(sample.y))
        values = _arm_cumulative(sample).at(np.array([count]))
        return _mean_difference(_sums(values), k)
    means = []
    for flag in (1.0, 0.0):
        group = sample.treated == flag
        count = _top_count(k, int(group.sum()))
        means.append(_group_top_mean(sample.y[group], sample.score[group], count))
    return means[0] - means[1]


# --------------------------------------------------------------------------- profit


def _finite_scalar(name: str, value: object) -> float:
    if not isinstance(value, int | float | np.integer | np.floating) or not math.isfinite(value):
        raise ParameterError(f"{name} must be a finite number, got {value!r}", parameter=name)
    return float(value)


class _ProfitInputs(NamedTuple):
    sample: _ArmSample
    value: float
    contact_cost: float
    redemption_cost: float


def _profit_inputs(
    y: object,
    treatment: object,
    score: object,
    arm: int,
    conversion: object,
    value_per_outcome: object,
    contact_cost: object,
    redemption_cost: object,
) -> _ProfitInputs:
    value = _finite_scalar("value_per_outcome", value_per_outcome)
    contact = _finite_scalar("contact_cost", contact_cost)
    redemption = _finite_scalar("redemption_cost", redemption_cost)
    sample = _arm_sample(y, treatment, score, arm, conversion, redemption)
    return _ProfitInputs(sample, value, contact, redemption)


def profit_curve(
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    *,
    value_per_outcome: float,
    contact_cost: float,
    redemption_cost: float,
    arm: int = 1,
    conversion: np.ndarray | None = None,
) -> Curve:
    """Incremental net profit of treating the top k with ``arm`` versus treating nobody,
    at the end of each tie group:

    profit(k) = k * [value * (r_t - r_c) - contact_cost - redemption_cost * c_t]

    with r_t, r_c the treated / control mean outcomes and c_t the treated conversion rate
    in the top k (``conversion``, default ``y`` when binary; required for a continuous y
    with a redemption cost). An empty group's mean counts as 0, as in ``uplift_curve``.
    """
    inputs = _profit_inputs(
        y, treatment, score, arm, conversion, value_per_outcome, contact_cost, redemption_cost
    )
    cumulative = _arm_cumulative(inputs.sample)
    k = cumulative.k.astype(np.float64)
    profit = _net_profit(
        k, _sums(cumulative.sums), inputs.value, inputs.contact_cost, inputs.redemption_cost
    )
    return Curve(cumulative.k, profit)


def _profit_and_cost_at(
    y: object,
    treatment: object,
    score: object,
    k: Count,
    arm: int,
    conversion: object,
    value_per_outcome: object,
    contact_cost: object,
    redemption_cost: object,
) -> tuple[float, float]:
    inputs = _profit_inputs(
        y, treatment, score, arm, conversion, value_per_outcome, contact_cost, redemption_cost
    )
    count = np.array([float(_top_count(k, len(inputs.sample.y)))])
    s = _sums(_arm_cumulative(inputs.sample).at(count))
    profit = _net_profit(count, s, inputs.value, inputs.contact_cost, inputs.redemption_cost)
    cost = _treatment_cost(count, s, inputs.contact_cost, inputs.redemption_cost)
    return float(profit[0]), float(cost[0])


def profit_at_k(
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    k: Count,
    *,
    value_per_outcome: float,
    contact_cost: float,
    redemption_cost: float,
    arm: int = 1,
    conversion: np.ndarray | None = None,
) -> float:
    """Profit@K: ``profit_curve`` at K units (int) or K as a fraction of the units (float);
    inside a tie group each tied unit counts as the group's average."""
    return _profit_and_cost_at(
        y, treatment, score, k, arm, conversion, value_per_outcome, contact_cost, redemption_cost
    )[0]


def max_profit(
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    *,
    value_per_outcome: float,
    contact_cost: float,
    redemption_cost: float,
    arm: int = 1,
    conversion: np.ndarray | None = None,
) -> tuple[int, float]:
    """(K*, profit(K*)) at the best point of ``profit_curve``; K* = 0 when treating anyone
    loses money. K* is always a tie-group end: a tie cannot be split without an arbitrary rule."""
    return profit_curve(
        y,
        treatment,
        score,
        value_per_outcome=value_per_outcome,
        contact_cost=contact_cost,
        redemption_cost=redemption_cost,
        arm=arm,
        conversion=conversion,
    ).best()


def roi(
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    k: Count,
    *,
    value_per_outcome: float,
    contact_cost: float,
    redemption_cost: float,
    arm: int = 1,
    conversion: np.ndarray | None = None,
) -> float:
    """Return on treatment spend at K: profit(K) / cost(K), where
    cost(K) = K * (contact_cost + redemption_cost * c_t) is what treating the top K costs.
    0 = break-even; raises a ParameterError (a ValueError) when the cost is 0."""
    profit, cost = _profit_and_cost_at(
        y, treatment, score, k, arm, conversion, value_per_outcome, contact_cost, redemption_cost
    )
    if cost == 0:
        raise ParameterError(
            "treating the top k costs nothing, so ROI is undefined", parameter="contact_cost"
        )
    return profit / cost


# ------------------------------------------------------------------ multi-arm policy


def _arm_costs(name: str, cost: object, n_arms: int) -> np.ndarray:
    """Per treatment arm costs, shape (K,); a scalar applies to every arm."""
    if np.asarray(cost).ndim == 0:
        return np.full(n_arms, _finite_scalar(name, np.asarray(cost).item()))
    array = check_vector(cost, name)
    if array.shape != (n_arms,):
        raise ParameterError(
            f"{name} must be a scalar or have one entry per arm ({n_arms})", parameter=name
        )
    return array


def _propensity_matrix(propensity: object, n: int, n_codes: int) -> np.ndarray:
    """Design probabilities as (n, K + 1): a (K + 1,) vector is the same for every unit."""
    given = check_vector_or_matrix(propensity, "propensity")
    p = np.broadcast_to(given, (n, given.shape[0])) if given.ndim == 1 else given
    if p.shape != (n, n_codes):
        raise ParameterError(
            f"propensity must have shape ({n_codes},) or ({n}, {n_codes}) "
            f"(control and every arm), got {given.shape}",
            parameter="propensity",
        )
    if (p < 0).any() or (p > 1).any():
        raise ParameterError("propensity must hold probabilities in [0, 1]", parameter="propensity")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ParameterError(
            "propensity must sum to 1 over control and the arms", parameter="propensity"
        )
    return p


class _PolicyInputs(NamedTuple):
    best_score: np.ndarray
    contribution: np.ndarray


def _policy_contributions(
    y: object,
    treatment: object,
    scores: object,
    propensity: object,
    value_per_outcome: object,
    contact_cost: object,
    redemption_cost: object,
    conversion: object,
) -> _PolicyInputs:
    """Per-unit Horvitz-Thompson terms of the incremental profit of the recommended arm:

    value * y * (1{T=a}/p_a - 1{T=0}/p_0) - contact_cost[a] - redemption_cost[a] * c * 1{T=a}/p_a
    """
    checked = _check_arrays(y, treatment, scores, conversion, per_arm_scores=True)
    y, codes, matrix = checked.y, checked.codes, checked.score
    assert matrix is not None  # per_arm_scores: always a matrix
    n, n_arms = matrix.shape
    if codes.max() > n_arms:
        raise ParameterError(
            f"treatment has code {codes.max()} but scores has {n_arms} arm columns",
            parameter="treatment",
        )
    value = _finite_scalar("value_per_outcome", value_per_outcome)
    contact = _arm_costs("contact_cost", contact_cost, n_arms)
    redemption = _arm_costs("redemption_cost", redemption_cost, n_arms)
    conv = _conversion_flags(y, checked.conversion, redemption)
    p = _propensity_matrix(propensity, n, n_arms + 1)

    recommended = np.argmax(matrix, axis=1) + 1  # first best arm on a tie: lowest code
    rows = np.arange(n)
    p_arm, p_control, p_observed = p[rows, recommended], p[:, 0], p[rows, codes]
    if (p_arm <= 0).any() or (p_control <= 0).any() or (p_observed <= 0).any():
        raise ParameterError(
            "propensity must be > 0 for control, each unit's recommended arm and its observed arm",
            parameter="propensity",
        )
    w_arm = (codes == recommended) / p_arm
    w_control = (codes == 0) / p_control
    contribution = (
        value * y * (w_arm - w_control)
        - contact[recommended - 1]
        - redemption[recommended - 1] * conv * w_arm
    )
    return _PolicyInputs(matrix.max(axis=1), contribution)


def policy_profit_curve(
    y: np.ndarray,
    treatment: np.ndarray,
    scores: np.ndarray,
    *,
    propensity: np.ndarray,
    value_per_outcome: float,
    contact_cost: float | np.ndarray,
    redemption_cost: float | np.ndarray,
    conversion: np.ndarray | None = None,
) -> Curve:
    """Inverse-propensity estimate of the incremental net profit of treating the top k
    units (ranked by their best arm's score) with their best arm versus treating nobody.

    ``scores`` is (n, K), column j for arm j + 1; ``propensity`` the design probabilities
    of control and every arm, (K + 1,) or per unit (n, K + 1); costs are per arm (K,) or a
    scalar. Unbiased for any fixed ranking when the propensities are the true ones.
    """
    inputs = _policy_contributions(
        y,
        treatment,
        scores,
        propensity,
        value_per_outcome,
        contact_cost,
        redemption_cost,
        conversion,
    )
    cumulative = _cumulate(inputs.best_score, inputs.contribution[:, None])
    return Curve(cumulative.k, cumulative.sums[:, 0])


def policy_profit_at_k(
    y: np.ndarray,
    treatment: np.ndarray,
    scores: np.ndarray,
    k: Count,
    *,
    propensity: np.ndarray,
    value_per_outcome: float,
    contact_cost: float | np.ndarray,
    redemption_cost: float | np.ndarray,
    conversion: np.ndarray | None = None,
) -> float:
    """``policy_profit_curve`` at K units (int) or a fraction K of the units (float)."""
    inputs = _policy_contributions(
        y,
        treatment,
        scores,
        propensity,
        value_per_outcome,
        contact_cost,
        redemption_cost,
        conversion,
    )
    count = _top_count(k, len(inputs.contribution))
    cumulative = _cumulate(inputs.best_score, inputs.contribution[:, None])
    return float(cumulative.at(np.array([count]))[0, 0])


def policy_max_profit(
    y: np.ndarray,
    treatment: np.ndarray,
    scores: np.ndarray,
    *,
    propensity: np.ndarray,
    value_per_outcome: float,
    contact_cost: float | np.ndarray,
    redemption_cost: float | np.ndarray,
    conversion: np.ndarray | None = None,
) -> tuple[int, float]:
    """(K*, estimated profit) at the best point of ``policy_profit_curve``."""
    return policy_profit_curve(
        y,
        treatment,
        scores,
        propensity=propensity,
        value_per_outcome=value_per_outcome,
        contact_cost=contact_cost,
        redemption_cost=redemption_cost,
        conversion=conversion,
    ).best()
