"""GaussianMixture: the EM loop of chapter 7, run on the blocked engine of ``gmmlib._engine``.

The estimator is also a scikit-learn estimator, without importing scikit-learn: it
implements what scikit-learn's tools look for (``get_params``/``set_params``, the
``__sklearn_tags__`` and ``__sklearn_is_fitted__`` protocols, ``n_features_in_`` and
``feature_names_in_``, ``y`` accepted and ignored), and raises the subclasses of
scikit-learn's ``NotFittedError`` and ``ConvergenceWarning`` once scikit-learn is
loaded (``gmmlib._validation``). The class docstring's Notes say why and what differs.

References
----------
The book, chapter 7, "The EM algorithm" (chapters/07_em_algorithm.ipynb); with
missing values (``missing="em"``), part three, chapters/missing/.
"""

from __future__ import annotations

import inspect
import time
from functools import partial

import numpy as np

from ._engine import EMEngine, from_e_step, improves, row_results
from ._gaussian import (
    CovarianceCholesky,
    _covariance_cholesky,
    _precision_cholesky,
    _precision_from_cholesky,
    precision_cholesky,
)
from ._init import initial_parameters
from ._missing import _impute, _observed_e_step, filled_with_column_means, full_covariances
from ._missing import missingness_patterns as _missingness_patterns
from ._missing_engine import MissingEngine
from ._mixture import _sample_mixture
from ._validation import ConvergenceWarning as ConvergenceWarning  # gmmlib.ConvergenceWarning
from ._validation import NotFittedError as NotFittedError  # re-exported as gmmlib.NotFittedError
from ._validation import (
    all_starts_failed,
    check_backend,
    check_bool,
    check_covariance_type,
    check_covariances,
    check_data,
    check_dense,
    check_enough_samples,
    check_feature_names,
    check_finite,
    check_finite_log_likelihood,
    check_init_params,
    check_int,
    check_is_fitted,
    check_means_init,
    check_missing,
    check_missing_structure,
    check_n_features,
    check_n_samples_to_draw,
    check_nonnegative,
    check_not_collapsed,
    check_one_covariance_init,
    check_param_names,
    check_positive_variances,
    check_precisions_init,
    check_random_state,
    check_sample_weight,
    check_verbose,
    check_warm_start,
    check_weights_init,
    dask_with_missing_values,
    feature_names,
    is_dask_array,
    warn_not_converged,
    warn_start_skipped,
)

#: The fitted parameters, stored in the dtype of the data (float32 or float64).
_PARAMETERS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


def _precisions(prec_chol, covariance_type):
    """Σ⁻¹ from its Cholesky factor U (U Uᵀ for full and tied, U² for diag and spherical)."""
    if covariance_type == "full":
        return prec_chol @ np.swapaxes(prec_chol, 1, 2)
    if covariance_type == "tied":
        return prec_chol @ prec_chol.T
    return prec_chol**2


def _covariances_from_precisions(precisions, covariance_type):
    """Σ from a checked Σ⁻¹, symmetrised against rounding."""
    if covariance_type in ("diag", "spherical"):
        return 1.0 / precisions
    covariances = np.linalg.inv(precisions)
    return 0.5 * (covariances + np.swapaxes(covariances, -1, -2))


def _predict_rows(
    X, what, params, covariance_type, backend, n_threads=None, covariances=None, verify=None
):
    """``what`` ("score_samples", "predict" or "predict_proba") of X's rows, in float64.

    ``params`` are the fitted (weights, means, precisions_cholesky) in float64. Complete
    rows go through ``row_results`` (the engine's blocks and threads, no (N, K)
    temporaries). With ``covariances`` (the fitted ones as a (K, d, d) stack:
    ``missing="em"``), the rows holding NaN get the quantities of their observed
    coordinates (:func:`gmmlib.observed_log_likelihood`,
    :func:`gmmlib.observed_responsibilities`). ``verify``: see ``row_results``.
    """
    rows = partial(row_results, backend=backend, n_threads=n_threads, verify=verify)
    holes = None if covariances is None else np.isnan(X).any(axis=1)
    if holes is None or not holes.any():
        return rows(X, *params, covariance_type, what)
    weights, means, _ = params
    shape = (X.shape[0], means.shape[0]) if what == "predict_proba" else (X.shape[0],)
    out = np.empty(shape, dtype=np.intp if what == "predict" else np.float64)
    if not holes.all():
        out[~holes] = rows(np.asarray(X[~holes], dtype=np.float64), *params, covariance_type, what)
    with_holes = np.asarray(X[holes], dtype=np.float64)
    patterns = _missingness_patterns(np.isnan(with_holes))
    log_resp, log_norm = _observed_e_step(with_holes, weights, means, covariances, patterns)
    out[holes] = from_e_step(what, log_resp, log_norm)
    return out


def _chunk_result(x, *, what, params, covariance_type, dtype, backend, covariances=None):
    """score_samples, predict_proba or predict of one chunk of a Dask array's rows, from
    the fitted (weights, means, precisions_cholesky) in float64 (run where the chunk is,
    on one thread: Dask's workers take the chunks), a block of rows at a time, so that a
    worker's memory is the chunk and a few blocks. With ``covariances``
    (``missing="em"``), rows with NaN as in ``_predict_rows``."""
    x = np.asarray(x)
    result = _predict_rows(x, what, params, covariance_type, backend, 1, covariances)
    return result.astype(dtype, copy=False)


def _impute_chunk(x, *, params, covariances, dtype):
    """``x`` with each NaN replaced by Σ_k γ_ik x̂_ik (a copy; observed entries as they are)."""
    out = np.array(x, dtype=dtype, copy=True)
    holes = np.isnan(out).any(axis=1)
    if not holes.any():
        return out
    rows = np.asarray(x[holes], dtype=np.float64)
    missing = np.isnan(rows)
    weights, means = params
    imputed = _impute(rows, weights, means, covariances, _missingness_patterns(missing))
    part = out[holes]
    part[missing] = imputed[missing]  # only the NaN positions are written
    out[holes] = part
    return out


def _factor(covariances, covariance_type, covariance_factors=False):
    """The precisions' Cholesky factors of an M-step's covariances (with
    ``covariance_factors``, full or tied: the covariances' own, a ``CovarianceCholesky``).

    :func:`gmmlib.precision_cholesky` without its layout and symmetry checks, which
    the engine's covariances pass by construction (a symmetry test costs as much as
    a Cholesky factorisation for d in the hundreds); variances of 0 (a collapsed
    component, with reg_covar = 0) and factorisations that fail still raise.
    """
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        check_positive_variances(covariances)
    elif covariance_factors:
        return _covariance_cholesky(covariances, covariance_type)
    return _precision_cholesky(covariances, covariance_type)


class GaussianMixture:
    r"""A Gaussian mixture fitted by Expectation-Maximisation.

    Each iteration is the E-step of :func:`gmmlib.log_responsibilities`
    (:eq:`eq-responsibility`) followed by the M-step of :func:`gmmlib.m_step`
    (:eq:`eq-weights-update`, :eq:`eq-means-update`, :eq:`eq-covariances-update`),
    computed by :class:`gmmlib.EMEngine` in one blocked pass over the data
    (tested equal to those functions to 1e-10); the estimator runs the loop, tests
    convergence and keeps the best of ``n_init`` starts. Arguments and attributes
    are scikit-learn's ``GaussianMixture``'s, so from the same start both run the
    same iterations, and it works in scikit-learn's tools (pipelines,
    ``GridSearchCV``, ``cross_val_score``, ``clone``); see the Notes.

    Parameters
    ----------
    n_components : int, default 1
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    tol : float, default 1e-3
        Stop when the average log-likelihood per sample changes by less than this.
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance; keeps a collapsing component
        positive definite (a ridge, or in Bayesian terms a weak prior on Σ).
    max_iter : int, default 100
        Number of EM iterations (E-step + M-step) at most; 0 only initialises
        (the fitted parameters are the start's, and no warning is issued).
    n_init : int, default 1
        Number of starts; the fit with the highest final log-likelihood is kept. A
        start in which a component collapses is skipped with a warning that names
        it; the fit raises only when every start fails.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default "kmeans"
        See :func:`gmmlib.initial_responsibilities`. On a ``numpy.memmap`` or a Dask
        array of more than 10 000 rows (of positive weight) the clustering runs on
        10 000 of them drawn at random, and one pass over all rows, every row given
        to its nearest centre, makes the starting parameters, so that the data are
        never read into memory whole; that start differs from the one an in-memory
        copy of the same rows gets (the fits usually end at the same optimum). Give
        ``weights_init``, ``means_init`` and ``precisions_init`` (or
        ``covariances_init``) for a start that does not depend on the input type.
    weights_init : array_like of shape (n_components,), optional
        User-given starting weights.
    means_init : array_like of shape (n_components, n_features), optional
        User-given starting means.
    precisions_init : array_like, optional
        User-given starting precisions Σ⁻¹, shaped as ``precisions_`` for the
        covariance type (as in scikit-learn).
    covariances_init : array_like, optional
        The same start given as covariances Σ, shaped as ``covariances_``; at most
        one of ``precisions_init`` and ``covariances_init``.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        The starts' random numbers. A generator or a ``RandomState`` is advanced
        by each fit, so repeated fits differ (as in scikit-learn).
    warm_start : bool, default False
        If True, a second ``fit`` starts from the previous solution (``n_init`` is
        ignored) and continues its convergence test, so that a loop of warm fits
        with a small ``max_iter`` stops once EM has converged. If
        ``n_components`` or ``covariance_type`` changed since, the previous
        solution no longer fits the model and the fit starts afresh.
    verbose : int, default 0
        1 prints each start and the mean log-likelihood every ``verbose_interval``
        iterations; 2 adds the change and the time per iteration.
    verbose_interval : int, default 10
        Iterations between two printed lines.
    missing : {"raise", "em"}, default "raise"
        What NaN in ``X`` means. "raise": an error, as in scikit-learn. "em": a
        missing entry, missing at random; :meth:`fit` runs EM over the labels and
        the missing coordinates, and :meth:`predict`, :meth:`predict_proba`,
        :meth:`score_samples`, :meth:`score`, :meth:`bic` and :meth:`aic` use each
        row's observed coordinates (see the Notes). Infinity is an error either way.
    backend : {"auto", "numba", "numpy"}, default "auto"
        The engine's block kernel (see :class:`gmmlib.EMEngine`); the results do
        not depend on it beyond rounding.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        full (K, d, d), tied (d, d), diag (K, d) or spherical (K,).
    precisions_ : ndarray
        The inverses Σ⁻¹ of the covariances, in the same shape.
    precisions_cholesky_ : ndarray
        Cholesky factors of the precision matrices (see :func:`gmmlib.precision_cholesky`).
    converged_ : bool
    n_iter_ : int
        EM iterations run by the best start.
    lower_bound_ : float
        Average log-likelihood per sample at the start of the last iteration of
        the kept start, as in scikit-learn (for EM on a GMM the lower bound
        equals the likelihood); ``-inf`` when ``max_iter=0``.
    lower_bounds_ : ndarray
        The same at the start of every iteration of the kept start (``n_iter_``
        values).
    log_likelihood_history_ : ndarray
        Average log-likelihood per sample of the initial parameters and after
        every iteration (``n_iter_ + 1`` values); the last value is that of the
        fitted parameters.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray
        The column names of a data frame given to ``fit``, one per feature (set
        only when they are all strings); data passed later must have the same
        columns in the same order.

    Notes
    -----
    **Sample weights.** ``sample_weight`` in :meth:`fit` scales every
    responsibility :math:`\gamma_{ik}` by :math:`w_i` (see :func:`gmmlib.m_step`),
    so integer weights are the same as repeated rows; :meth:`score`,
    :meth:`bic` and :meth:`aic` take them too.

    **Missing values** (``missing="em"``). NaN entries are treated as missing at
    random (MCAR or MAR; not values missing *because* of what they are). Each
    iteration takes the responsibilities from every row's observed coordinates
    (:eq:`eq-observed-responsibility`) and the M-step from the expected statistics
    (:eq:`eq-expected-statistics`, :eq:`eq-missing-m-step`): each component's
    conditional mean of the missing coordinates *and* their conditional
    covariance. ``reg_covar`` is added once, after the M-step; the
    log-likelihoods (``lower_bound_``, ``lower_bounds_``,
    ``log_likelihood_history_``, the ``tol`` test) are the observed-data ones
    (:eq:`eq-observed-log-likelihood`), per sample; ``max_iter``, ``tol``,
    ``n_init``, ``warm_start`` and ``sample_weight`` mean what they mean without
    missing values. The rows are grouped by their pattern of missing entries and
    each pattern runs through the engine's block kernel (the complete rows are
    one such pattern); the data are copied once, grouped (8 bytes per entry).
    The start: ``init_params`` runs on the data with every missing entry
    replaced by its column's mean over the rows that observe it (weighted by
    ``sample_weight``), and the initial M-step is computed on those filled
    data; from the first iteration on, the entries are missing again. A row
    with every coordinate missing carries no information and is refused by
    :meth:`fit`, as is a feature missing in every row; :meth:`score_samples`
    gives such a row 0 (the density of no observation is 1) and
    :meth:`predict_proba` the weights. :meth:`impute` fills the NaN entries of
    new data with their conditional expectation under the fitted mixture. With
    no NaN in the data, ``missing="em"`` fits exactly as ``missing="raise"``. A
    Dask array with NaN entries is refused by :meth:`fit` (compute it first);
    one without NaN is fitted as usual.

    **What EM guarantees.** With ``reg_covar=0`` every M-step maximises Q
    exactly, so the log-likelihood never decreases from one iteration to the
    next (``log_likelihood_history_`` is non-decreasing, to rounding). With
    ``reg_covar > 0`` (the default) each M-step adds ``reg_covar`` · I to that
    maximiser: the iterations then follow a penalised, MAP-like objective, and
    the plain log-likelihood may fall from one iteration to the next, by an
    amount that is negligible for well-spread components and noticeable for a
    nearly singular one (a variance not large against ``reg_covar``).

    **scikit-learn.** gmmlib does not import scikit-learn, and does not need
    it: the estimator implements the protocol scikit-learn's tools use
    (``get_params``/``set_params``, ``__sklearn_tags__``, which imports
    scikit-learn's tag classes only when scikit-learn asks for them,
    ``__sklearn_is_fitted__``, ``n_features_in_``, ``feature_names_in_``).
    :class:`gmmlib.NotFittedError` and :class:`gmmlib.ConvergenceWarning` are
    gmmlib's classes; once scikit-learn is loaded, the instances gmmlib raises
    are also instances of ``sklearn.exceptions.NotFittedError`` and
    ``sklearn.exceptions.ConvergenceWarning``, so ``except`` clauses and
    warning filters written for either library apply.

    **float32.** EM is always computed in float64. For float32 data, the fitted
    parameters are then stored as float32 (the float64 results rounded once),
    and :meth:`predict_proba` and :meth:`score_samples` return float32, as in
    scikit-learn; everything else is float64.

    **Stricter than scikit-learn.** A component that collapses (a singular
    covariance, when ``reg_covar`` is too small) raises an error naming it
    instead of returning a model with a meaninglessly large likelihood (with
    ``n_init > 1`` that start is skipped); a bool is refused where a number is
    expected; a warm start after ``n_components`` or ``covariance_type`` changed
    starts afresh (scikit-learn continues with the old shapes).

    Examples
    --------
    The source article's three clusters (weights 0.3, 0.6, 0.1; means (2.5, 8),
    (8, 2.5), (10, 10)), found again from its 2000 samples:

    >>> import numpy as np
    >>> import gmmlib
    >>> X, labels = gmmlib.article_samples()
    >>> gm = gmmlib.GaussianMixture(3, random_state=0).fit(X)
    >>> gm.converged_
    True
    >>> order = np.argsort(gm.means_[:, 0])
    >>> print(np.round(gm.means_[order], 1))
    [[ 2.4  8. ]
     [ 8.   2.5]
     [10.  10. ]]
    >>> print(np.round(gm.weights_[order], 2))
    [0.3  0.61 0.1 ]
    >>> print(gm.predict(gm.means_))
    [0 1 2]
    >>> print(f"{gm.score(X):.4f}")
    -4.3275
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        covariances_init=None,
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        missing: str = "raise",
        backend: str = "auto",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.covariances_init = covariances_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.missing = missing
        self.backend = backend

    # -- scikit-learn's estimator protocol ----------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        """The constructor's parameters and their current values, as in scikit-learn.

        Parameters
        ----------
        deep : bool, default True
            Accepted for scikit-learn compatibility; a GaussianMixture holds no
            other estimator, so it changes nothing.

        Returns
        -------
        dict
            Parameter name to value, for every argument of the constructor.
        """
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params):
        """Set constructor parameters by name, as in scikit-learn; returns ``self``.

        The values are checked by the next :meth:`fit`, not here.

        Parameters
        ----------
        **params
            Constructor parameters and their new values, e.g. ``reg_covar=1e-4``.

        Returns
        -------
        GaussianMixture
            The estimator itself, so that ``gm.set_params(...).fit(X)`` works.
        """
        check_param_names(params, self.get_params())
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        # Called by scikit-learn only (>= 1.6), so scikit-learn is there to import from:
        # an unsupervised density estimator of dense 2-D data, scikit-learn's defaults.
        from sklearn.utils import Tags, TargetTags

        tags = Tags(estimator_type="density_estimator", target_tags=TargetTags(required=False))
        tags.input_tags.allow_nan = self.missing == "em"  # NaN entries are missing values
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "means_")

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = []
        for name, value in self.get_params().items():
            default = defaults[name]
            if isinstance(value, np.ndarray) or value is not default and value != default:
                changed.append(
                    f"{name}={value!r}"
                    if not isinstance(value, np.ndarray)
                    else f"{name}=array(...)"
                )
        return f"GaussianMixture({', '.join(changed)})"

    # -- validation (every check and message is in gmmlib._validation) -----------------
    def _check_parameters(self) -> dict:
        check_one_covariance_init(self.precisions_init, self.covariances_init)
        return {
            "n_components": check_int(self.n_components, "n_components", minimum=1),
            "covariance_type": check_covariance_type(self.covariance_type),
            "tol": check_nonnegative(self.tol, "tol"),
            "reg_covar": check_nonnegative(self.reg_covar, "reg_covar"),
            "max_iter": check_int(self.max_iter, "max_iter", minimum=0),
            "n_init": check_int(self.n_init, "n_init", minimum=1),
            "init_params": check_init_params(self.init_params),
            "warm_start": check_bool(self.warm_start, "warm_start"),
            "verbose": check_verbose(self.verbose),
            "verbose_interval": check_int(self.verbose_interval, "verbose_interval", minimum=1),
            "missing": check_missing(self.missing),
            "backend": check_backend(self.backend),
        }

    def _check_init_parameters(self, n_features):
        K, cov_type = self.n_components, self.covariance_type
        weights = means = covariances = None
        if self.weights_init is not None:
            weights = check_weights_init(self.weights_init, K)
        if self.means_init is not None:
            means = check_means_init(self.means_init, K, n_features)
        if self.covariances_init is not None:
            covariances = check_covariances(self.covariances_init, cov_type, K, n_features)
        if self.precisions_init is not None:
            precisions = check_precisions_init(self.precisions_init, cov_type, K, n_features)
            covariances = _covariances_from_precisions(precisions, cov_type)
        return weights, means, covariances

    @staticmethod
    def _as_data(X, lazy=False, allow_nan=False, check_values=True):
        """(X as checked float64 data, the dtype of the fitted results): float32 for float32.

        A Dask array stays one (``lazy``: its values checked when it is computed). With
        ``allow_nan``, NaN entries (missing values) are kept.
        """
        check_dense(X)
        if not isinstance(X, np.ndarray) and not is_dask_array(X):
            X = np.asarray(X)  # a list, or a data frame (its names were read before)
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        checked = check_data(X, lazy=lazy, allow_nan=allow_nan, check_values=check_values)
        return checked, dtype

    def _check_X_predict(self, X, stacklevel=3, allow_nan=None, defer_values=False):
        """New data, checked against the fitted model; returns (X, output dtype, input dtype).

        ``stacklevel`` points a warning at the caller of the public method. NaN entries
        are allowed with ``missing="em"`` (or ``allow_nan=True``). ``defer_values``
        (for ``_rows``, which verifies them): an ndarray's values are not checked for
        NaN and infinity here unless NaN is allowed.
        """
        check_is_fitted(self)
        if allow_nan is None:
            allow_nan = check_missing(self.missing) == "em"
        fitted = getattr(self, "feature_names_in_", None)
        check_feature_names(fitted, feature_names(X), stacklevel=stacklevel + 1)
        X, dtype = self._as_data(
            X, lazy=True, allow_nan=allow_nan, check_values=allow_nan or not defer_values
        )
        check_n_features(X, self.n_features_in_)
        return X, np.result_type(dtype, self.means_.dtype), dtype

    def _fitted_covariances(self):
        """The fitted covariances as a (K, d, d) float64 stack, for rows with NaN; None
        unless ``missing="em"`` (then NaN never gets this far)."""
        if self.missing != "em":
            return None
        K, d = self.means_.shape
        covariances = np.asarray(self.covariances_, dtype=np.float64)
        return full_covariances(covariances, self.covariance_type, K, d)

    def _fitted_float64(self):
        return tuple(
            np.asarray(getattr(self, name), dtype=np.float64)
            for name in ("weights_", "means_", "precisions_cholesky_")
        )

    def _per_chunk(self, X, what, dtype, n_columns=None):
        """``what`` of every chunk of rows of a Dask array, as a Dask array (nothing
        computed): ``_chunk_result`` on each, with the fitted parameters."""
        chunk = partial(
            _chunk_result,
            what=what,
            params=self._fitted_float64(),
            covariance_type=self.covariance_type,
            dtype=dtype,
            backend=self.backend,
            covariances=self._fitted_covariances(),
        )
        if n_columns is None:
            return X.map_blocks(chunk, drop_axis=1, dtype=dtype)
        return X.map_blocks(chunk, chunks=(X.chunks[0], (n_columns,)), dtype=dtype)

    # -- fitting -----------------------------------------------------------------------
    def _initial_parameters(self, X, sample_weight, rng, user, reg_covar):
        if all(part is not None for part in user):
            # A complete user-given start needs no pass over the data (as in scikit-learn),
            # which keeps a fit on a memmap larger than memory within a few blocks.
            return tuple(part.copy() for part in user)
        weights, means, covariances = initial_parameters(
            X,
            self.n_components,
            self.init_params,
            rng,
            self.covariance_type,
            reg_covar,
            sample_weight,
        )
        user_weights, user_means, user_covariances = user
        if user_weights is not None:
            weights = user_weights.copy()
        if user_means is not None:
            means = user_means.copy()
        if user_covariances is not None:
            covariances = user_covariances.copy()
        return weights, means, covariances

    def _fitted_parameters(self):
        """The fitted (weights, means, covariances) in float64: a warm start's start."""
        return tuple(
            np.array(getattr(self, name), dtype=np.float64)
            for name in ("weights_", "means_", "covariances_")
        )

    def _continues(self, n_features: int) -> bool:
        """Whether this fit is a warm start from the previous solution."""
        if not hasattr(self, "means_"):
            return False
        n_components, n_features_fitted = self.means_.shape
        if (
            n_components != self.n_components
            or getattr(self, "_covariance_type_fitted", None) != self.covariance_type
        ):
            return False  # the settings changed: the previous solution is no start for them
        check_warm_start(n_features_fitted, n_features)
        return True

    def _run_em(self, X, sample_weight, params, lower_bound, settings, engine=None):
        """EM from ``params``; returns a dict of everything a fit sets.

        The iterations run on :class:`gmmlib.EMEngine`: the same E-step
        (:func:`gmmlib.log_responsibilities`) and M-step
        (:func:`gmmlib.m_step`) in one blocked pass over the data. ``lower_bound``
        is the previous one (``-inf``, or the last of the fit a warm start continues).
        For data with missing values ``engine`` is the ``MissingEngine`` of the fit
        (``gmmlib._missing_engine``): the same loop, with the E-step of
        :func:`gmmlib.observed_responsibilities` and the M-step of
        :func:`gmmlib.m_step_missing`.
        """
        cov_type, tol = settings["covariance_type"], settings["tol"]
        verbose, interval = settings["verbose"], settings["verbose_interval"]
        weights, means, covariances = params
        prec_chol = precision_cholesky(covariances, cov_type)
        if engine is None:
            engine = EMEngine(
                X, cov_type, settings["reg_covar"], sample_weight, backend=settings["backend"]
            )
        history, converged, n_iter = [], False, 0
        # many features, full or tied: the engine solves with the covariances' factors,
        # and the precisions' (a triangular inverse per component) are made once, below
        covariance_factors = getattr(engine, "takes_covariance_factors", False)
        tick = time.perf_counter()
        with engine:  # BLAS held to one thread per engine thread, restored on exit
            for n_iter in range(1, settings["max_iter"] + 1):
                previous = lower_bound
                # mean log-likelihood of the parameters at the start of the iteration
                lower_bound, weights, means, covariances = engine.step(weights, means, prec_chol)
                history.append(lower_bound)
                prec_chol = _factor(covariances, cov_type, covariance_factors)
                change = lower_bound - previous
                if verbose and n_iter % interval == 0:
                    line = f"  iteration {n_iter:4d}  mean log-likelihood {lower_bound:.8f}"
                    if verbose >= 2:
                        now = time.perf_counter()
                        line += f"  change {change:.5g}  time {now - tick:.5f}s"
                        tick = now
                    print(line)
                if abs(change) < tol:
                    converged = True
                    break
            history.append(engine.mean_log_likelihood(weights, means, prec_chol))
        if isinstance(prec_chol, CovarianceCholesky):
            prec_chol = _precision_from_cholesky(prec_chol)
        history = check_finite_log_likelihood(history)
        return {
            "weights_": weights,
            "means_": means,
            "covariances_": covariances,
            "precisions_cholesky_": prec_chol,
            "converged_": converged,
            "n_iter_": n_iter,
            "lower_bound_": float(lower_bound) if n_iter else -np.inf,
            "lower_bounds_": history[:-1].copy(),
            "log_likelihood_history_": history,
        }

    def _missing_values(self, X, sample_weight, settings, user):
        """(X in memory, X for the start, the engine) for data with NaN entries.

        The start runs on the data with each missing entry replaced by its column's
        (weighted) mean over the rows that observe it (not made when the user gave the
        whole start); EM runs on the data as they are.
        """
        X = np.asarray(X, dtype=np.float64)  # a memmap with NaN entries is read
        missing = np.isnan(X)
        check_missing_structure(missing)
        start_X = None
        if any(part is None for part in user):
            start_X = filled_with_column_means(X, missing, sample_weight)
        del missing
        engine = MissingEngine(
            X,
            settings["covariance_type"],
            settings["reg_covar"],
            sample_weight,
            backend=settings["backend"],
        )
        return X, start_X, engine

    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture to ``X`` by EM; returns ``self``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            An array, or a data frame (its column names are kept as
            ``feature_names_in_``).
        y : ignored
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weight per sample (integer weights equal repeated rows).

        Returns
        -------
        GaussianMixture
            The fitted estimator itself. A fit that raises leaves a previously
            fitted model unchanged.

        Raises
        ------
        ValueError
            For invalid data or parameters, and when a component collapses (the
            message names it and suggests ``reg_covar``); with ``n_init > 1``,
            only when every start collapses.
        """
        return self._fit(X, sample_weight)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit by EM, then return the most responsible component of each sample.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array_like of shape (n_samples,), optional
            As in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples,)
            For every sample, the component k with the largest responsibility.
        """
        return self._fit(X, sample_weight).predict(X)

    def _fit(self, X, sample_weight):
        settings = self._check_parameters()
        names = feature_names(X)
        X, dtype = self._as_data(X, allow_nan=settings["missing"] == "em")
        K = settings["n_components"]
        if sample_weight is None:
            # Not np.ones(N): memory added by a fit must not grow with N. EMEngine reads
            # None as all ones, and the initial M-step then uses the unweighted
            # responsibilities, which is the same.
            n_effective = X.shape[0]
        else:
            sample_weight = check_sample_weight(sample_weight, X.shape[0])
            n_effective = int(np.count_nonzero(sample_weight))
        check_enough_samples(K, n_effective, weighted=True)
        user = self._check_init_parameters(X.shape[1])
        rng = check_random_state(self.random_state)
        start_X, engine = X, None
        if settings["missing"] == "em" and _has_nan(X):
            X, start_X, engine = self._missing_values(X, sample_weight, settings, user)
        warm = settings["warm_start"] and self._continues(X.shape[1])
        n_starts = 1 if warm else settings["n_init"]
        best, errors = None, []
        for start in range(n_starts):
            if settings["verbose"]:
                print(f"Initialisation {start}")
            try:
                if warm:
                    params, lower_bound = self._fitted_parameters(), self.lower_bound_
                else:
                    params = self._initial_parameters(
                        start_X, sample_weight, rng, user, settings["reg_covar"]
                    )
                    lower_bound = -np.inf
                result = self._run_em(X, sample_weight, params, lower_bound, settings, engine)
                check_not_collapsed(result["means_"], result["covariances_"], self.covariance_type)
            except ValueError as error:  # the inputs were checked: a component collapsed
                if n_starts == 1:
                    raise
                warn_start_skipped(start, n_starts, error, stacklevel=3)
                errors.append(error)
                continue
            if settings["verbose"]:
                state = "converged" if result["converged_"] else "did not converge"
                print(
                    f"Initialisation {start} {state}: {result['n_iter_']} iterations, mean "
                    f"log-likelihood {result['log_likelihood_history_'][-1]:.8f}"
                )
            final = result["log_likelihood_history_"][-1]
            # a later start must be better beyond rounding: starts that reach the same
            # clusters tie to the last bit, and the kernel's rounding must not pick
            if best is None or improves(final, best["log_likelihood_history_"][-1]):
                best = result
        if best is None:
            raise all_starts_failed(n_starts, errors) from errors[0]
        if not best["converged_"] and settings["max_iter"] > 0:
            warn_not_converged(settings["max_iter"], settings["tol"], stacklevel=3)
        best["precisions_"] = _precisions(best["precisions_cholesky_"], self.covariance_type)
        for name in _PARAMETERS:
            best[name] = np.asarray(best[name], dtype=dtype)
        # Everything was computed before this point: a fit that raised above left a
        # previously fitted model untouched.
        for name, value in best.items():
            setattr(self, name, value)
        self._covariance_type_fitted = self.covariance_type
        self.n_features_in_ = X.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    # -- using a fitted model ----------------------------------------------------------
    def _rows(self, X, what):
        """``what`` of every row of X (an ndarray or memmap) under the fitted model, in
        float64 (``_predict_rows``: blocks on the engine's threads, no (N, K)
        temporaries; a row with NaN, ``missing="em"``, from its observed coordinates).

        X's values may be unchecked (``_check_X_predict(defer_values=True)``): a pass
        over X to look for NaN and infinity took a tenth of a prediction's time, and
        the compiled kernels flag every row with such an entry, so ``row_results``
        checks X (and raises ``check_data``'s error) only when some row was flagged,
        or before its NumPy path.
        """
        return _predict_rows(
            X,
            what,
            self._fitted_float64(),
            self.covariance_type,
            self.backend,
            covariances=self._fitted_covariances(),
            verify=partial(check_finite, allow_nan=self.missing == "em"),
        )

    def score_samples(self, X) -> np.ndarray:
        """log P(x_i | θ) for every sample (:eq:`eq-marginal-density`).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            With the features the model was fitted on; with ``missing="em"``, NaN
            marks a missing entry.

        Returns
        -------
        ndarray of shape (n_samples,)
            The log-density of the fitted mixture at each sample, as
            :func:`gmmlib.log_mixture_density` computes it (float32 for float32
            data and a model fitted on float32 data, float64 otherwise); for a row
            with NaN entries, the log-density of its observed coordinates, as
            :func:`gmmlib.observed_log_likelihood` (0 for a row with nothing
            observed).
        """
        X, dtype, _ = self._check_X_predict(X, defer_values=True)
        if is_dask_array(X):
            return self._per_chunk(X, "score_samples", dtype)
        return self._rows(X, "score_samples").astype(dtype, copy=False)

    def _weighted_log_likelihood(self, X, sample_weight):
        """(Σ w_i log P(x_i | θ), Σ w_i), in float64; all w_i = 1 without weights.

        On a Dask array, a sum over its chunks (each chunk's log-densities stay there).
        """
        X, _, _ = self._check_X_predict(X, stacklevel=4)
        if not is_dask_array(X) and self._fitted_covariances() is None:
            # one blocked pass that only adds up (the engine's scores-only pass): no
            # per-row array, whatever N is
            engine = EMEngine(
                X, self.covariance_type, sample_weight=sample_weight, backend=self.backend
            )
            mean = engine.mean_log_likelihood(*self._fitted_float64())
            return mean * engine.total_weight, engine.total_weight
        if is_dask_array(X):
            log_density = self._per_chunk(X, "score_samples", np.float64)
        else:
            log_density = self._rows(X, "score_samples")
        if sample_weight is None:
            return float(log_density.sum()), float(X.shape[0])
        w = check_sample_weight(sample_weight, X.shape[0])
        if not is_dask_array(X):
            return float(w @ log_density), float(w.sum())
        import dask.array as da

        w_chunks = da.from_array(w, chunks=(log_density.chunks[0],))
        return float((w_chunks * log_density).sum().compute()), float(w.sum())

    def score(self, X, y=None, sample_weight=None) -> float:
        """Average log-likelihood per sample (weighted by ``sample_weight``).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weight per sample; as in :meth:`fit`, integer weights
            equal repeated rows.

        Returns
        -------
        float
            Σ w_i log P(x_i | θ) / Σ w_i: without weights, the mean of
            :meth:`score_samples`, the log-likelihood over N.
        """
        total, weight = self._weighted_log_likelihood(X, sample_weight)
        return total / weight

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities γ_ik under the fitted model (:eq:`eq-responsibility`).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Every row sums to 1, as in :func:`gmmlib.responsibilities`; a row with
            NaN entries (``missing="em"``) gets those of its observed coordinates,
            as in :func:`gmmlib.observed_responsibilities`.
        """
        X, dtype, _ = self._check_X_predict(X, defer_values=True)
        if is_dask_array(X):
            return self._per_chunk(X, "predict_proba", dtype, self.n_components)
        return self._rows(X, "predict_proba").astype(dtype, copy=False)

    def predict(self, X) -> np.ndarray:
        """The most responsible component of each sample.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            For every sample, the component k with the largest responsibility (from
            the observed coordinates of a row with NaN entries, ``missing="em"``).
        """
        X, _, _ = self._check_X_predict(X, defer_values=True)
        if is_dask_array(X):
            return self._per_chunk(X, "predict", np.intp)
        return self._rows(X, "predict")

    def impute(self, X) -> np.ndarray:
        r"""A copy of ``X``, each NaN replaced by its expectation (:eq:`eq-conditional-gaussian`).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            NaN marks a missing entry (whatever ``missing`` is: this method is
            for them); infinity is refused.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            A new array (float32 for float32 data, float64 otherwise): the observed
            entries exactly as they were, each missing one replaced by
            :math:`\sum_k \gamma_{ik}\hat x_{ik,j}`, with the posterior
            responsibilities of the row's observed coordinates
            (:func:`gmmlib.observed_responsibilities`) and each component's
            conditional mean (:func:`gmmlib.conditional_moments`). A row with
            nothing observed gets the mixture's mean :math:`\sum_k p_k\mu_k`.
            ``X`` itself is not changed.

        Notes
        -----
        This is :math:`E[x_{i,m} \mid x_{i,o}, \theta]` under the mixture: the best
        guess in squared error, one value per entry. It does not carry the
        conditional spread of the missing values: statistics computed on the
        imputed data understate their variance (:meth:`fit` accounts for it).

        Examples
        --------
        >>> import numpy as np
        >>> import gmmlib
        >>> X, _ = gmmlib.article_samples()
        >>> gm = gmmlib.GaussianMixture(3, random_state=0).fit(X)
        >>> new = np.array([[2.5, np.nan], [np.nan, 2.5], [10.0, 10.0]])
        >>> print(np.round(gm.impute(new), 1))
        [[ 2.5  8. ]
         [ 8.  2.5]
         [10. 10. ]]
        """
        X, _, dtype = self._check_X_predict(X, allow_nan=True)
        K, d = self.means_.shape
        chunk = partial(
            _impute_chunk,
            params=self._fitted_float64()[:2],
            covariances=full_covariances(
                np.asarray(self.covariances_, dtype=np.float64), self.covariance_type, K, d
            ),
            dtype=dtype,
        )
        if is_dask_array(X):
            return X.map_blocks(chunk, dtype=dtype)
        return chunk(X)

    def sample(self, n_samples: int = 1, random_state=None):
        """Draw ``(X, labels)`` from the fitted mixture (:eq:`eq-generative-model`).

        Parameters
        ----------
        n_samples : int, default 1
            At least 1.
        random_state : None, int, numpy.random.Generator or numpy.random.RandomState
            Defaults to the estimator's own ``random_state`` (as in scikit-learn,
            a seed then gives the same samples at every call).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            In float64.
        labels : ndarray of shape (n_samples,)
            The component each sample was drawn from, as in
            :func:`gmmlib.sample_mixture`.
        """
        check_is_fitted(self)
        n_samples = check_n_samples_to_draw(n_samples)
        rng = check_random_state(self.random_state if random_state is None else random_state)
        weights, means, covariances = self._fitted_parameters()
        weights = weights / weights.sum()  # float32 weights sum to 1 within float32 only
        return _sample_mixture(n_samples, weights, means, covariances, self.covariance_type, rng)

    def _n_parameters(self) -> int:
        K, d = self.means_.shape
        cov = {
            "full": K * d * (d + 1) // 2,
            "tied": d * (d + 1) // 2,
            "diag": K * d,
            "spherical": K,
        }[self.covariance_type]
        return int(cov + K * d + K - 1)

    def bic(self, X, sample_weight=None) -> float:
        r"""Bayesian information criterion, −2 log L + p log N (lower is better; :eq:`eq-bic`).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            The data the criterion is computed on (usually the training data).
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weight per sample. The weighted log-likelihood
            :math:`\sum_i w_i \log P(x_i \mid \theta)` is the log-likelihood of the
            rows repeated :math:`w_i` times, and N is then their number
            :math:`\sum_i w_i`: a fit on weighted, compressed data reports the BIC
            of the repeated rows.

        Returns
        -------
        float
            With p the number of free parameters of the fitted mixture.
        """
        total, weight = self._weighted_log_likelihood(X, sample_weight)
        return -2.0 * total + self._n_parameters() * float(np.log(weight))

    def aic(self, X, sample_weight=None) -> float:
        r"""Akaike information criterion, −2 log L + 2p (lower is better; :eq:`eq-aic`).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        sample_weight : array_like of shape (n_samples,), optional
            As in :meth:`bic`: log L is :math:`\sum_i w_i \log P(x_i \mid \theta)`,
            the log-likelihood of the repeated rows.

        Returns
        -------
        float
            Penalising each of the p free parameters by 2, whatever N.
        """
        total, _ = self._weighted_log_likelihood(X, sample_weight)
        return -2.0 * total + 2.0 * self._n_parameters()


def _has_nan(X, block: int = 1 << 16) -> bool:
    """Whether ``X`` holds a NaN: in blocks (constant extra memory); a Dask array with one
    is refused (``missing="em"`` fits in memory)."""
    if is_dask_array(X):
        if bool(np.isnan(X).any().compute()):
            raise dask_with_missing_values()
        return False
    return any(np.isnan(X[start : start + block]).any() for start in range(0, X.shape[0], block))
