"""Starting points for EM: initial responsibilities, then one M-step.

Every method produces responsibilities; the initial (p, μ, Σ) are the M-step
of those (:func:`gmmlib.m_step`), which is also how scikit-learn starts, so a
user-given ``weights_init``, ``means_init`` or ``covariances_init`` simply
replaces the corresponding part.

With sample weights, a row of weight 0 takes no part in the start (the methods run
on the rows of positive weight), so that it is the same as deleting the row; unequal
weights weight the clustering (weighted k-means, seeds drawn in proportion to the
weight). ``initial_parameters`` computes the whole start as the estimator needs it;
on a ``numpy.memmap`` with more rows than ``MAX_START_ROWS`` it clusters a sample of
rows and adds up the M-step in one pass over the file, block by block, so that the
data are never loaded whole.

References
----------
The book, chapter 7, "The EM algorithm" (chapters/07_em_algorithm.ipynb); the
methods compared, part two, "Initialisation and local optima"
(chapters/practice/03_initialisation.ipynb).
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import NamedTuple

import numpy as np
from scipy.cluster.vq import kmeans2

from ._m_step import _m_step, _weighted, far_offset, params_from_sums
from ._validation import (
    check_data,
    check_enough_samples,
    check_finite_covariances,
    check_init_params,
    check_int,
    check_optional_sample_weight,
    is_dask_array,
)

#: A start on a ``numpy.memmap`` clusters at most this many of its rows (drawn at random).
MAX_START_ROWS = 10_000
#: Rows per block of the pass that adds up a memmap's initial M-step.
_START_BLOCK = 4096


def _one_hot(labels, n_components):
    resp = np.zeros((labels.shape[0], n_components))
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


def _nearest(X, centres):
    with np.errstate(over="ignore", invalid="ignore"):  # a row of weight 0 may be anywhere
        d2 = (X**2).sum(1)[:, None] - 2 * X @ centres.T + (centres**2).sum(1)[None]
    return np.argmin(d2, axis=1)


def kmeans_plusplus_centres(
    X, n_components: int, rng: np.random.Generator, sample_weight=None
) -> np.ndarray:
    """Indices of k-means++ seeds: each next seed drawn with probability ∝ w·D(x)².

    ``sample_weight`` (positive, optional) weights every draw, the first one too, as
    repeating a row would; without it the draws are uniform and ∝ D(x)².
    """
    n_samples = X.shape[0]
    if sample_weight is None:
        indices = [int(rng.integers(n_samples))]
    else:
        indices = [int(rng.choice(n_samples, p=sample_weight / sample_weight.sum()))]
    closest = ((X - X[indices[0]]) ** 2).sum(1)
    for _ in range(1, n_components):
        score = closest if sample_weight is None else closest * sample_weight
        total = score.sum()
        if total <= 0:  # every point coincides with a seed: pick any unused one
            unused = np.setdiff1d(np.arange(n_samples), indices)
            nxt = int(rng.choice(unused))
        else:
            nxt = int(rng.choice(n_samples, p=score / total))
        indices.append(nxt)
        closest = np.minimum(closest, ((X - X[nxt]) ** 2).sum(1))
    return np.asarray(indices)


def _kmeans(X, n_components, rng, sample_weight):
    """(labels, centres) of k-means, up to 10 tries for a clustering with no empty cluster.

    Unweighted: scipy's ``kmeans2`` seeded by k-means++. Weighted: the same
    algorithm (k-means++ seeds drawn ∝ w·D², 30 Lloyd iterations of weighted means).
    """
    n_features = X.shape[1]
    for _ in range(10):
        if sample_weight is None:
            with warnings.catch_warnings():
                # an empty cluster is handled below by another try
                warnings.simplefilter("ignore")
                centres, labels = kmeans2(
                    X, n_components, minit="++", seed=rng, missing="warn", iter=30
                )
        else:
            centres = X[kmeans_plusplus_centres(X, n_components, rng, sample_weight)]
            for _ in range(30):
                labels = _nearest(X, centres)
                mass = np.bincount(labels, weights=sample_weight, minlength=n_components)
                sums = np.column_stack(
                    [
                        np.bincount(labels, weights=sample_weight * X[:, j], minlength=n_components)
                        for j in range(n_features)
                    ]
                )
                filled = mass > 0  # an empty cluster keeps its centre
                moved = centres.copy()
                moved[filled] = sums[filled] / mass[filled, None]
                if np.array_equal(moved, centres):
                    break
                centres = moved
            labels = _nearest(X, centres)
        if np.unique(labels).size == n_components:
            break
    return labels, centres


def _responsibilities_and_centres(X, n_components, method, rng, sample_weight):
    """Responsibilities of every row of ``X`` and the method's centres (None for random).

    Every row takes part; ``sample_weight`` is None (all rows alike) or positive.
    """
    n_samples = X.shape[0]
    if method == "random":
        resp = rng.uniform(size=(n_samples, n_components))
        return resp / resp.sum(axis=1, keepdims=True), None
    if method == "random_from_data":
        p = None if sample_weight is None else sample_weight / sample_weight.sum()
        centres = X[rng.choice(n_samples, size=n_components, replace=False, p=p)]
        return _one_hot(_nearest(X, centres), n_components), centres
    if method == "k-means++":
        centres = X[kmeans_plusplus_centres(X, n_components, rng, sample_weight)]
        return _one_hot(_nearest(X, centres), n_components), centres
    labels, centres = _kmeans(X, n_components, rng, sample_weight)
    return _one_hot(labels, n_components), centres


class _Frame(NamedTuple):
    """Where a clustering runs: the rows shifted near the origin and scaled by a power of two.

    Distances between rows far from the origin (``gmmlib._m_step.far_offset``) lose
    their digits, and between rows of size beyond about 1e154 they overflow (scipy's
    ``kmeans2`` then crashes the process); k-means is the same after a translation
    and a scaling, and a power of two scales exactly. Ordinary data get neither
    (``shift`` None, ``exponent`` 0) and are clustered as they are.
    """

    shift: np.ndarray | None
    exponent: int  # rows are multiplied by 2**exponent

    @classmethod
    def of(cls, rows) -> _Frame:
        shift = far_offset(rows)
        if not rows.size:
            return cls(shift, 0)
        low, high = rows.min(axis=0), rows.max(axis=0)  # no copy of the rows
        if shift is not None:
            low, high = low - shift, high - shift
        size = float(max(np.max(high), -np.min(low)))
        exponent = 0
        if size > 0 and not 2.0**-400 < size < 2.0**400:
            exponent = -int(np.frexp(size)[1])  # the largest row entry becomes about 1
        return cls(shift, exponent)

    def into(self, X) -> np.ndarray:
        """``X`` in this frame (a new array unless the frame is the identity)."""
        if self.shift is not None:
            X = X - self.shift
        return np.ldexp(X, self.exponent) if self.exponent else X

    def out_of(self, Y) -> np.ndarray:
        """Points of this frame (centres) back in the data's coordinates."""
        Y = np.ldexp(Y, -self.exponent) if self.exponent else Y
        return Y if self.shift is None else Y + self.shift


def _taking_part(X, sample_weight):
    """The rows a start is computed from and their weights: (rows, weights, mask).

    Rows of weight 0 take no part (``mask`` marks the others; None when all do); the
    weights are None when they are all equal, so that equal weights of any size run
    the unweighted methods.
    """
    if sample_weight is None:
        return X, None, None
    mask = sample_weight > 0
    weights = sample_weight[mask]
    if np.all(weights == weights[0]):
        weights = None
    if np.all(mask):
        return X, weights, None
    return X[mask], weights, mask


def _initial_responsibilities(X, n_components, method, rng, sample_weight=None):
    """Core of :func:`gmmlib.initial_responsibilities`; no argument checking.

    ``method`` is one of ``INIT_METHODS`` (anything else runs k-means), ``rng`` a
    ``numpy.random.Generator`` and ``sample_weight`` None or non-negative weights
    with at least ``n_components`` positive ones. The method runs on the rows of
    positive weight only: a row of weight 0 draws no random number and moves no
    centre (it is given to its nearest centre, or 1/K each with ``random``). Data far
    from the origin, or of extreme size, are clustered in a ``_Frame`` near the origin.
    """
    rows, weights, mask = _taking_part(X, sample_weight)
    frame = _Frame.of(rows)
    rows = frame.into(rows)
    resp, centres = _responsibilities_and_centres(rows, n_components, method, rng, weights)
    if mask is None:
        return resp
    every = np.full((X.shape[0], n_components), 1.0 / n_components)
    every[mask] = resp
    if centres is not None:
        every[~mask] = _one_hot(_nearest(frame.into(X[~mask]), centres), n_components)
    return every


def initial_parameters(
    X,
    n_components: int,
    method: str,
    rng,
    covariance_type: str,
    reg_covar: float,
    sample_weight=None,
    *,
    max_rows: int = MAX_START_ROWS,
):
    """The starting (weights, means, covariances): the M-step of the initial responsibilities.

    What :class:`gmmlib.GaussianMixture` starts from (before user-given parts replace
    theirs); no argument checking. For data in memory it is exactly
    ``_m_step(X, w γ, ...)`` of ``_initial_responsibilities(X, ..., sample_weight)``.
    A ``numpy.memmap`` with at most ``max_rows`` rows of positive weight is read whole
    and gets that same start. A larger one is never loaded: k-means (or the seeds) run
    on ``max_rows`` of its rows of positive weight, drawn with ``rng``, and one pass
    over the file, block by block, gives every row to its nearest centre (or random
    responsibilities, the same numbers as in memory) and adds up the M-step's sums
    (``gmmlib._m_step.params_from_sums``): memory of ``max_rows`` rows and a block.
    """
    if isinstance(X, np.memmap) or is_dask_array(X):
        n_rows = X.shape[0] if sample_weight is None else np.count_nonzero(sample_weight)
        if n_rows > max_rows:
            return _streamed_start(
                X, n_components, method, rng, covariance_type, reg_covar, sample_weight, max_rows
            )
        X = np.asarray(_read(X), dtype=np.float64)
    resp = _initial_responsibilities(X, n_components, method, rng, sample_weight)
    with np.errstate(over="ignore", invalid="ignore"):  # a spread beyond 1e154: refused below
        weights, means, covariances = _m_step(
            X, _weighted(resp, sample_weight), covariance_type, reg_covar
        )
    return weights, means, check_finite_covariances(covariances)


def _sample(n: int, size: int, rng) -> np.ndarray:
    """``size`` distinct integers of range(n), drawn at random, sorted: memory O(size).

    Floyd's algorithm (``rng.choice(n, size, replace=False)`` may permute all of
    range(n), n integers for a sample of ``size``).
    """
    draws = rng.integers(0, np.arange(n - size, n) + 1)
    chosen = set()
    for top, draw in zip(range(n - size, n), draws.tolist(), strict=True):
        chosen.add(top if draw in chosen else draw)
    return np.sort(np.fromiter(chosen, dtype=np.int64, count=size))


def _sampled_centres(X, n_components, method, rng, sample_weight, max_rows):
    """(frame, centres) of the method run on ``max_rows`` rows of positive weight drawn
    with ``rng`` (read from ``X`` by one sorted fancy index), and those rows' weighted mean.
    """
    n_samples = X.shape[0]
    candidates = None if sample_weight is None else np.flatnonzero(sample_weight > 0)
    n_candidates = n_samples if candidates is None else candidates.shape[0]
    chosen = _sample(n_candidates, max_rows, rng)
    if candidates is not None:
        chosen = candidates[chosen]
    rows, weights, _ = _taking_part(
        np.asarray(_read(X[chosen]), dtype=np.float64),
        None if sample_weight is None else sample_weight[chosen],
    )
    mean = np.average(rows, axis=0, weights=weights)
    if method == "random":
        return None, None, mean
    frame = _Frame.of(rows)
    rows = frame.into(rows)
    _, centres = _responsibilities_and_centres(rows, n_components, method, rng, weights)
    return frame, centres, mean


def _read(rows):
    """Rows of a memmap or of a Dask array (computed) as a NumPy array."""
    return rows.compute() if is_dask_array(rows) else rows


def _block_resp(block, w, frame, centres, n_components, rng):
    """(rows of positive weight, their weighted responsibilities) of a block of rows.

    ``centres`` None: uniform random responsibilities drawn with ``rng``, as in memory.
    """
    block = np.asarray(block, dtype=np.float64)
    if w is not None:  # rows of weight 0 take no part
        block, w = block[w > 0], w[w > 0]
    if centres is None:
        resp = rng.uniform(size=(block.shape[0], n_components))
        resp /= resp.sum(axis=1, keepdims=True)
    else:
        resp = _one_hot(_nearest(frame.into(block), centres), n_components)
    return block, _weighted(resp, w)


def _block_moments(block, resp, reference, full):
    """A block's (Σγ, Σγ y, Σγ y yᵀ or Σγ y²) per component k, with y = x - reference_k."""
    n_components, n_features = reference.shape
    sum_y = np.zeros((n_components, n_features))
    sum_yy = np.zeros(
        (n_components, n_features, n_features) if full else (n_components, n_features)
    )
    with np.errstate(over="ignore", invalid="ignore"):  # a spread beyond 1e154: refused later
        for k in range(n_components):
            y = block - reference[k]  # exact for data near their reference, wherever they sit
            sum_y[k] += resp[:, k] @ y
            sum_yy[k] += (resp[:, k] * y.T) @ y if full else resp[:, k] @ (y * y)
    return resp.sum(axis=0), sum_y, sum_yy


def _chunk_moments(x, w, seed, *, frame, centres, reference, full):
    """``_block_moments`` of one Dask chunk (run on a Dask worker)."""
    rng = None if seed is None else np.random.default_rng(seed)
    block, resp = _block_resp(x, w, frame, centres, reference.shape[0], rng)
    return _block_moments(block, resp, reference, full)


def _add_up(parts):
    """The field-by-field sums of several chunks' moments."""
    return tuple(sum(field) for field in zip(*parts, strict=True))


def _streamed_start(
    X, n_components, method, rng, covariance_type, reg_covar, sample_weight, max_rows
):
    """``initial_parameters`` of a memmap or a Dask array larger than ``max_rows`` rows:
    a sample, then one pass (a memmap block by block; a Dask array chunk by chunk, each
    chunk's sums computed where it lies and added up, as ``gmmlib.EMEngine`` does)."""
    n_samples, n_features = X.shape
    frame = centres = None
    dask = is_dask_array(X)
    if dask or method != "random":
        frame, centres, mean = _sampled_centres(
            X, n_components, method, rng, sample_weight, max_rows
        )
    full = covariance_type in ("full", "tied")
    if dask:
        from ._dask import DaskRows

        rows = DaskRows(X, sample_weight)
        n_chunks = len(rows.X.chunks[0])
        seeds = [None] * n_chunks
        if centres is None:  # random: each chunk its own generator, spawned from rng
            seeds = np.random.SeedSequence(int(rng.integers(2**63))).spawn(n_chunks)
            reference = np.repeat(mean[None], n_components, axis=0)
        else:
            reference = frame.out_of(centres)
        chunk = partial(
            _chunk_moments, frame=frame, centres=centres, reference=reference, full=full
        )
        counts, sum_y, sum_yy = rows.map_reduce(chunk, _add_up, per_chunk=seeds)
    else:
        counts = np.zeros(n_components)
        sum_y = np.zeros((n_components, n_features))
        sum_yy = np.zeros(
            (n_components, n_features, n_features) if full else (n_components, n_features)
        )
        reference = None  # the point the sums are taken about: each centre, or one for random
        for start in range(0, n_samples, _START_BLOCK):
            w = None if sample_weight is None else sample_weight[start : start + _START_BLOCK]
            if w is not None and not np.any(w > 0):
                continue
            block, resp = _block_resp(
                X[start : start + _START_BLOCK], w, frame, centres, n_components, rng
            )
            if reference is None:
                if centres is not None:
                    reference = frame.out_of(centres)
                else:
                    mean = resp.sum(axis=1) @ block / resp.sum()
                    reference = np.repeat(mean[None], n_components, axis=0)
            for total, part in zip(
                (counts, sum_y, sum_yy), _block_moments(block, resp, reference, full), strict=True
            ):
                total += part
    identity = {
        "full": np.broadcast_to(np.eye(n_features), (n_components, n_features, n_features)),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type]
    mean_weight = 1.0
    if sample_weight is not None:
        mean_weight = float(sample_weight.sum()) / np.count_nonzero(sample_weight)
    weights, means, covariances = params_from_sums(
        counts, sum_y, sum_yy, reference, identity, covariance_type, reg_covar, mean_weight
    )
    return weights, means, check_finite_covariances(covariances)


def initial_responsibilities(X, n_components: int, method: str, rng, sample_weight=None):
    """Initial responsibilities (n_samples, n_components) for EM.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    n_components : int
        At most the number of samples.
    method : {"kmeans", "k-means++", "random", "random_from_data"}
        * ``kmeans``: hard labels of a k-means clustering (scipy's ``kmeans2``
          seeded by k-means++), the usual and most robust start;
        * ``k-means++``: k-means++ seeds, each sample given to its nearest seed;
        * ``random``: uniform random responsibilities, normalised per row;
        * ``random_from_data``: K distinct data points as seeds, each sample given
          to its nearest seed.
    rng : None, int or numpy.random.Generator
        The random numbers; a generator is used (and advanced) as it is, a seed
        gives a fresh generator.
    sample_weight : array_like of shape (n_samples,), optional
        Non-negative weight per sample. The method runs on the samples of positive
        weight only, so that a weight of 0 is the same as deleting the sample (it
        draws no random number); unequal weights weight the clustering (weighted
        k-means, seeds drawn in proportion to the weight), as repeated rows would.
        A sample of weight 0 is given to its nearest centre (1/K each with
        ``random``). At least ``n_components`` weights must be positive.

    Returns
    -------
    ndarray of shape (n_samples, n_components)
        Every row sums to 1; all methods but ``random`` give rows of 0 and 1.

    Notes
    -----
    scikit-learn gives each seed of ``k-means++`` and ``random_from_data`` a
    single point, so its initial covariances are ``reg_covar * I``; assigning
    every sample to its nearest seed gives data-sized covariances instead and
    works with ``reg_covar=0``.

    Examples
    --------
    Two well separated pairs of points: k-means gives each pair a component,
    and :func:`gmmlib.m_step` turns that into a starting θ:

    >>> import numpy as np
    >>> import gmmlib
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [9.0, 9.0], [9.0, 8.0]])
    >>> resp = gmmlib.initial_responsibilities(X, 2, "kmeans", np.random.default_rng(0))
    >>> print(resp.sum(axis=0), resp.sum(axis=1))
    [2. 2.] [1. 1. 1. 1.]
    >>> print(resp[0] @ resp[1], resp[0] @ resp[2])
    1.0 0.0
    >>> weights, means, covariances = gmmlib.m_step(X, resp, reg_covar=1e-6)
    >>> print(np.round(weights, 4))
    [0.5 0.5]
    """
    X = check_data(X)
    n_components = check_int(n_components, "n_components", minimum=1)
    method = check_init_params(method)
    w = check_optional_sample_weight(sample_weight, X.shape[0])
    if w is None:
        check_enough_samples(n_components, X.shape[0])
    else:
        check_enough_samples(n_components, int(np.count_nonzero(w)), weighted=True)
    rng = np.random.default_rng(rng)
    return _initial_responsibilities(X, n_components, method, rng, w)
