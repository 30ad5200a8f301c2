"""liftwise's uplift random forest: histogram-binned, numba-compiled, several arms, honest,
with per-unit confidence intervals for the effects (little-bags bootstrap).

See ``docs/forest.md`` for the algorithm, the split criteria, honesty, the interval formula
and the memory layout.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numba
import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from liftwise.learn import _forest_kernels as kernels
from liftwise.learn.base import UpliftLearner, check_uplift_data, outcome_kind
from liftwise.learn.binning import MAX_BINS, apply_bins, compute_bin_edges

_CRITERIA = ("auto", *kernels.CRITERIA)
_SEED_HIGH = 2**63 - 1


def _n_threads(n_jobs: int | None) -> int:
    """scikit-learn convention: None -> 1, -1 -> every numba thread, -2 -> all but one."""
    available = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]  # set at runtime
    if n_jobs is None:
        return 1
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive count or -1")
    if n_jobs < 0:
        return max(1, available + 1 + n_jobs)
    return min(int(n_jobs), available)


class _Threads:
    """Set numba's thread count for the calling thread inside a ``with`` block."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.old = 1

    def __enter__(self) -> None:
        self.old = numba.get_num_threads()
        numba.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        numba.set_num_threads(self.old)


def _arm_means(
    treatment: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, n_arms: int
) -> np.ndarray:
    """Each arm's weighted outcome mean (unweighted where an arm's weights sum to 0): the
    root's shrinkage target."""
    counts = np.bincount(treatment, minlength=n_arms)
    arm_w = np.bincount(treatment, weights=sample_weight, minlength=n_arms)
    arm_wy = np.bincount(treatment, weights=sample_weight * y, minlength=n_arms)
    arm_y = np.bincount(treatment, weights=y, minlength=n_arms)
    return np.where(arm_w > 0, arm_wy / np.where(arm_w > 0, arm_w, 1.0), arm_y / counts)


def _stack_trees(trees: list[dict[str, np.ndarray]], n_trees: int) -> dict[str, np.ndarray]:
    """The trees' node arrays padded to the largest tree (-1 for links and features, 0
    elsewhere) and stacked with a leading tree axis."""
    width = max(len(tree["left"]) for tree in trees)
    forest: dict[str, np.ndarray] = {}
    for name, template in trees[0].items():
        shape = (n_trees, width, *template.shape[1:])
        fill = -1 if name in ("feature", "left", "right") else 0
        forest[name] = np.full(shape, fill, dtype=template.dtype)
        for i, tree in enumerate(trees):
            forest[name][i, : len(tree[name])] = tree[name]
    return forest


def _importances(forest: dict[str, np.ndarray], n_features: int) -> np.ndarray:
    """Each feature's share of the splits' gains (zeros when no tree split)."""
    splits = forest["feature"] >= 0
    importances = np.bincount(
        forest["feature"][splits], weights=forest["gain"][splits], minlength=n_features
    )
    total = importances.sum()
    return importances / total if total > 0 else importances


class UpliftRandomForest(UpliftLearner):
    """Uplift random forest for several treatment arms, binary or continuous outcomes.

    Parameters
    ----------
    n_estimators : number of trees; a multiple of ``ci_group_size``.
    criterion : "auto" (KL for binary outcomes, "mse" for continuous), "kl", "ed", "chi"
        (binary outcomes only: divergences of Rzepakowski & Jaroszewicz), "ddp" or "mse"
        (any outcome: absolute / squared difference of the children's effects).
    max_depth : maximum depth of a tree (root at depth 0); None for no limit.
    min_samples_leaf : minimum structure-sample rows in each child of a split.
    min_samples_treatment : minimum structure-sample rows of every arm in each child.
    max_features : features drawn per node: "sqrt", "log2", an int, a float fraction or None
        (all).
    n_bins : finite bins per feature (2..255); NaN has its own bin on top.
    subsample : share of the rows each tree draws, without replacement. With
        ``ci_group_size >= 2`` it must be <= 0.5: a tree draws from its group's half-sample.
    honest : split each tree's rows in two halves, one choosing the splits (structure), the
        other filling the leaf means (estimation).
    ci_group_size : trees per little-bags group sharing one half-sample; 2 or more enables
        ``predict_interval``, 1 turns intervals off.
    shrinkage : pseudo-count pulling an arm's mean in a candidate child toward its mean in
        the node when scoring a split: ``(sum w y + s * node) / (sum w + s)`` (causalml's
        ``n_reg``); keeps thin arms from producing spurious divergences.
    leaf_prior : the same pseudo-count for the node values (leaf means), toward the parent
        node's value; the root shrinks toward the arm's overall mean. Matters only when an
        arm is thin in a leaf (an empty arm gets its parent's value).
    min_impurity_gain : a split must gain strictly more than this (criterion units).
    random_state : seed; the same data and seed give identical predictions at any
        ``n_jobs``.
    n_jobs : numba threads (None: 1, -1: all); trees grow in parallel.
    """

    supports_interval = True

    def __init__(
        self,
        n_estimators: int = 100,
        *,
        criterion: str = "auto",
        max_depth: int | None = 8,
        min_samples_leaf: int = 100,
        min_samples_treatment: int = 10,
        max_features: str | int | float | None = "sqrt",
        n_bins: int = 64,
        subsample: float = 0.5,
        honest: bool = True,
        ci_group_size: int = 2,
        shrinkage: float = 10.0,
        leaf_prior: float = 1.0,
        min_impurity_gain: float = 0.0,
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.min_samples_treatment = min_samples_treatment
        self.max_features = max_features
        self.n_bins = n_bins
        self.subsample = subsample
        self.honest = honest
        self.ci_group_size = ci_group_size
        self.shrinkage = shrinkage
        self.leaf_prior = leaf_prior
        self.min_impurity_gain = min_impurity_gain
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ validation

    def _check_params(self, n_features: int) -> None:
        def positive_int(name: str, value: object, minimum: int = 1) -> None:
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")

        positive_int("n_estimators", self.n_estimators)
        positive_int("min_samples_leaf", self.min_samples_leaf)
        positive_int("min_samples_treatment", self.min_samples_treatment, 0)
        positive_int("ci_group_size", self.ci_group_size)
        if self.max_depth is not None:
            positive_int("max_depth", self.max_depth, 0)
        positive_int("n_bins", self.n_bins, 2)
        if self.n_bins > MAX_BINS:
            raise ValueError(f"n_bins must be <= {MAX_BINS}, got {self.n_bins}")
        if self.criterion not in _CRITERIA:
            raise ValueError(f"criterion must be one of {_CRITERIA}, got {self.criterion!r}")
        if self.n_estimators % self.ci_group_size:
            raise ValueError(
                f"n_estimators ({self.n_estimators}) must be a multiple of ci_group_size "
                f"({self.ci_group_size})"
            )
        limit = 0.5 if self.ci_group_size >= 2 else 1.0
        if not (isinstance(self.subsample, float | int) and 0.0 < self.subsample <= limit):
            raise ValueError(
                f"subsample must be in (0, {limit}] (ci_group_size={self.ci_group_size}), "
                f"got {self.subsample!r}"
            )
        if not (math.isfinite(self.shrinkage) and self.shrinkage >= 0.0):
            raise ValueError(f"shrinkage must be finite and >= 0, got {self.shrinkage!r}")
        if not (math.isfinite(self.leaf_prior) and self.leaf_prior >= 0.0):
            raise ValueError(f"leaf_prior must be finite and >= 0, got {self.leaf_prior!r}")
        if not math.isfinite(self.min_impurity_gain):
            raise ValueError("min_impurity_gain must be finite")
        self.max_features_ = self._resolve_max_features(n_features)

    def _resolve_max_features(self, p: int) -> int:
        mf = self.max_features
        if mf is None:
            return p
        if mf == "sqrt":
            return max(1, int(math.sqrt(p)))
        if mf == "log2":
            return max(1, int(math.log2(p)))
        if isinstance(mf, bool):
            raise ValueError(f"max_features must be 'sqrt', 'log2', int, float or None, got {mf!r}")
        if isinstance(mf, int | np.integer):
            if not 1 <= mf <= p:
                raise ValueError(f"max_features must be in [1, {p}], got {mf}")
            return int(mf)
        if isinstance(mf, float):
            if not 0.0 < mf <= 1.0:
                raise ValueError(f"max_features as a fraction must be in (0, 1], got {mf}")
            return max(1, int(mf * p))
        raise ValueError(f"max_features must be 'sqrt', 'log2', int, float or None, got {mf!r}")

    # ------------------------------------------------------------------------- fit

    def fit(
        self,
        X: object,
        treatment: object,
        y: object,
        sample_weight: object = None,
    ) -> UpliftRandomForest:
        """Grow the forest. ``treatment``: integer arms, 0 = control; ``y`` binary or real."""
        X, treatment, y, sample_weight, n_arms = check_uplift_data(X, treatment, y, sample_weight)
        n, p = X.shape
        self._check_params(p)
        if n_arms > 255:
            raise ValueError(f"at most 255 arms are supported, got {n_arms}")
        kind = outcome_kind(y)
        criterion = self._resolve_criterion(kind)
        sampling = self._sampling(n)
        bin_seed, group_of_tree, tree_seeds = self._draw_seeds()
        n_threads = _n_threads(self.n_jobs)
        edges, n_edges = compute_bin_edges(X, self.n_bins, seed=bin_seed)
        with _Threads(n_threads):
            codes = apply_bins(X, edges, n_edges, self.n_bins)
        settings = kernels.SplitSettings(
            n_arms=n_arms,
            n_bins=(n_edges + 1).astype(np.int64),
            nan_code=np.uint8(self.n_bins),
            prior=_arm_means(treatment, y, sample_weight, n_arms),
            criterion=kernels.CRITERIA[criterion],
            max_depth=64 if self.max_depth is None else int(self.max_depth),
            min_leaf=int(self.min_samples_leaf),
            min_treatment=int(self.min_samples_treatment),
            mtry=int(self.max_features_),
            shrinkage=float(self.shrinkage),
            leaf_prior=float(self.leaf_prior),
            min_gain=float(self.min_impurity_gain),
        )
        data = kernels.TrainData(codes, y, treatment, sample_weight)
        trees = self._grow_trees(data, settings, sampling, (group_of_tree, tree_seeds), n_threads)
        del codes, data
        forest = _stack_trees(trees, self.n_estimators)

        self.n_features_in_ = p
        self.n_arms_ = n_arms
        self.outcome_kind_ = kind
        self.criterion_ = criterion
        self.bin_edges_ = edges
        self.n_bin_edges_ = n_edges
        self.n_nodes_ = np.array([len(tree["left"]) for tree in trees], dtype=np.int64)
        self.trees_ = forest
        self.feature_importances_ = _importances(forest, p)
        return self

    def _resolve_criterion(self, kind: str) -> str:
        """The split criterion for this outcome kind ("auto": KL if binary, else MSE)."""
        criterion = self.criterion
        if criterion == "auto":
            criterion = "kl" if kind == "binary" else "mse"
        if criterion in kernels.BINARY_ONLY and kind != "binary":
            raise ValueError(
                f"criterion {criterion!r} needs a binary (0/1) outcome; use 'mse' or 'ddp'"
            )
        return criterion

    def _sampling(self, n: int) -> kernels.Sampling:
        """How many of the ``n`` rows each tree (and its structure sample) draws; refuses
        a structure sample too small for one split."""
        use_groups = self.ci_group_size >= 2
        n_half = n // 2 if use_groups else 0
        n_tree = round(self.subsample * n)
        if use_groups:
            n_tree = min(n_tree, n_half)
        n_struct = n_tree // 2 if self.honest else n_tree
        min_rows = 2 * self.min_samples_leaf
        if n_struct < min_rows:
            raise ValueError(
                f"each tree's structure sample has {n_struct} rows, fewer than "
                f"2 * min_samples_leaf = {min_rows}: use more data, a larger subsample "
                f"or a smaller min_samples_leaf"
            )
        return kernels.Sampling(bool(self.honest), use_groups, n_half, n_tree, n_struct)

    def _draw_seeds(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(binning seed, each tree's group seed, each tree's own seed) from
        ``random_state``, in that order."""
        rng = check_random_state(self.random_state)
        group_size = self.ci_group_size
        bin_seed = int(rng.randint(0, 2**31 - 1))
        n_groups = self.n_estimators // group_size
        group_seeds = rng.randint(0, _SEED_HIGH, size=n_groups, dtype=np.int64)
        tree_seeds = rng.randint(0, _SEED_HIGH, size=self.n_estimators, dtype=np.int64)
        return (
            bin_seed,
            np.repeat(group_seeds, group_size).astype(np.uint64),
            tree_seeds.astype(np.uint64),
        )

    def _grow_trees(
        self,
        data: kernels.TrainData,
        settings: kernels.SplitSettings,
        sampling: kernels.Sampling,
        seeds: tuple[np.ndarray, np.ndarray],
        n_threads: int,
    ) -> list[dict[str, np.ndarray]]:
        """Every tree's node arrays (trimmed to its nodes), grown ``n_threads`` at a time
        in reused buffers; ``seeds`` = (group seed, tree seed) per tree."""
        group_of_tree, tree_seeds = seeds
        n, p = data.codes.shape
        leaves = max(1, sampling.n_struct // self.min_samples_leaf)
        max_nodes = int(min(2 ** min(settings.max_depth + 1, 40) - 1, 2 * leaves - 1))
        batch = max(1, min(n_threads, self.n_estimators))
        index_type = np.int64 if n > 2**31 - 2 else np.int32
        n_tree = sampling.n_tree
        work_draws = np.empty((batch, sampling.n_half + n_tree), dtype=index_type)
        work_rows = kernels.TreeRows(
            codes=np.empty((batch, n_tree, p), dtype=np.uint8),
            weight=np.empty((batch, n_tree), dtype=np.float64),
            weighted_y=np.empty((batch, n_tree), dtype=np.float64),
            arm=np.empty((batch, n_tree), dtype=np.uint8),
        )
        out = kernels.TreeArrays(
            feature=np.empty((batch, max_nodes), dtype=np.int32),
            threshold=np.empty((batch, max_nodes), dtype=np.int32),
            nan_left=np.empty((batch, max_nodes), dtype=np.uint8),
            left=np.empty((batch, max_nodes), dtype=np.int32),
            right=np.empty((batch, max_nodes), dtype=np.int32),
            value=np.empty((batch, max_nodes, settings.n_arms), dtype=np.float64),
            gain=np.empty((batch, max_nodes), dtype=np.float64),
        )
        n_nodes = np.zeros(batch, dtype=np.int64)
        trees: list[dict[str, np.ndarray]] = []
        with _Threads(n_threads):
            for start in range(0, self.n_estimators, batch):
                stop = min(start + batch, self.n_estimators)
                kernels.grow_batch(
                    data,
                    settings,
                    sampling,
                    group_of_tree[start:stop],
                    tree_seeds[start:stop],
                    work_draws,
                    work_rows,
                    out,
                    n_nodes,
                )
                for b in range(stop - start):
                    size = int(n_nodes[b])
                    trees.append(
                        {name: arr[b, :size].copy() for name, arr in out._asdict().items()}
                    )
        return trees

    # --------------------------------------------------------------------- predict

    def _check_interval(self) -> None:
        check_is_fitted(self, "trees_")
        if self.ci_group_size < 2 or self.n_estimators < 2 * self.ci_group_size:
            raise ValueError(
                "intervals need ci_group_size >= 2 and at least two groups of trees "
                f"(n_estimators >= 2 * ci_group_size); got ci_group_size={self.ci_group_size}, "
                f"n_estimators={self.n_estimators}"
            )

    def _predict(self, X: object, want_var: bool) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "trees_")
        values: np.ndarray = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
        if values.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {values.shape[1]} features, but UpliftRandomForest was fitted with "
                f"{self.n_features_in_}"
            )
        m = values.shape[0]
        mean = np.empty((m, self.n_arms_))
        var = np.empty((m if want_var else 0, self.n_arms_ - 1))
        f = self.trees_
        with _Threads(_n_threads(self.n_jobs)):
            codes = apply_bins(values, self.bin_edges_, self.n_bin_edges_, self.n_bins)
            kernels.predict_forest(
                codes,
                np.uint8(self.n_bins),
                kernels.TreeArrays(**f),
                int(self.ci_group_size),
                want_var,
                mean,
                var,
            )
        return mean, var

    def predict_outcomes(self, X: object) -> np.ndarray:
        """Expected outcome under every arm, shape (n, n_arms); column 0 is control."""
        return self._predict(X, want_var=False)[0]

    def predict_interval(self, X: object, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) normal intervals of each arm's effect at level 1 - alpha, each
        (n, n_arms - 1), from the little-bags variance of the forest (see docs/forest.md)."""
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        self._check_interval()
        mean, var = self._predict(X, want_var=True)
        effect = mean[:, 1:] - mean[:, :1]
        half = NormalDist().inv_cdf(1.0 - alpha / 2.0) * np.sqrt(var)
        return effect - half, effect + half

    def predict_variance(self, X: object) -> np.ndarray:
        """Little-bags variance of each arm's effect estimate, shape (n, n_arms - 1)."""
        self._check_interval()
        return self._predict(X, want_var=True)[1]
