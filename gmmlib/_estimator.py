"""GaussianMixture: the EM loop of chapter 7, run on the blocked engine of gmmlib._engine."""

from __future__ import annotations

import inspect
import numbers
import warnings

import numpy as np
from scipy.special import logsumexp

from ._e_step import _e_step
from ._engine import EMEngine
from ._gaussian import _check_not_collapsed, precision_cholesky
from ._init import INIT_METHODS, initial_responsibilities
from ._m_step import _m_step
from ._mixture import _log_joint, sample_mixture
from ._validation import (
    check_covariance_type,
    check_covariances,
    check_data,
    check_int,
    check_means,
    check_nonnegative,
    check_sample_weight,
    check_weights,
)


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood settled within ``tol``."""


class NotFittedError(ValueError, AttributeError):
    """The model was used before ``fit`` (a ValueError and AttributeError, as in scikit-learn)."""


class GaussianMixture:
    r"""A Gaussian mixture fitted by Expectation-Maximisation.

    Each iteration is the E-step of :func:`gmmlib.log_responsibilities`
    (:eq:`eq-responsibility`) followed by the M-step of :func:`gmmlib.m_step`
    (:eq:`eq-weights-update`, :eq:`eq-means-update`, :eq:`eq-covariances-update`),
    computed by :class:`gmmlib.EMEngine` in one blocked pass over the data
    (tested equal to those functions to 1e-10); the estimator runs the loop, tests
    convergence and keeps the best of ``n_init`` starts. Arguments and attributes
    follow scikit-learn's ``GaussianMixture``, so from the same start both run the
    same iterations.

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
        Number of EM iterations (E-step + M-step) at most.
    n_init : int, default 1
        Number of starts; the fit with the highest final log-likelihood is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default "kmeans"
        See :func:`gmmlib.initial_responsibilities`.
    weights_init, means_init, covariances_init : array_like, optional
        User-given starting parameters; ``covariances_init`` is shaped as
        ``covariances_`` for the covariance type.
    random_state : None, int or numpy.random.Generator
    warm_start : bool, default False
        If True, a second ``fit`` starts from the previous solution (``n_init`` is ignored).
    verbose : int, default 0
        If positive, print the log-likelihood at every iteration.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        full (K, d, d), tied (d, d), diag (K, d) or spherical (K,).
    precisions_cholesky_ : ndarray
        Cholesky factors of the precision matrices (see :func:`gmmlib.precision_cholesky`).
    converged_ : bool
    n_iter_ : int
        EM iterations run by the best start.
    lower_bound_ : float
        Average log-likelihood per sample at the start of the last iteration, as
        in scikit-learn (for EM on a GMM the lower bound equals the likelihood).
    log_likelihood_history_ : ndarray
        Average log-likelihood per sample of the initial parameters and after
        every iteration (``n_iter_ + 1`` values); EM never lets it decrease.
    n_features_in_ : int

    Notes
    -----
    ``sample_weight`` in :meth:`fit` scales every responsibility
    :math:`\gamma_{ik}` by :math:`w_i` (see :func:`gmmlib.m_step`), so integer
    weights are the same as repeated rows.
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
        covariances_init=None,
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
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
        self.covariances_init = covariances_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    # -- scikit-learn style parameter access -------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params):
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Unknown parameter {name!r}; valid ones are {sorted(valid)}.")
            setattr(self, name, value)
        return self

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

    # -- validation --------------------------------------------------------------------
    def _check_parameters(self):
        K = check_int(self.n_components, "n_components", minimum=1)
        check_covariance_type(self.covariance_type)
        check_nonnegative(self.tol, "tol")
        check_nonnegative(self.reg_covar, "reg_covar")
        check_int(self.max_iter, "max_iter", minimum=1)
        check_int(self.n_init, "n_init", minimum=1)
        if self.init_params not in INIT_METHODS:
            raise ValueError(
                f"init_params must be one of {', '.join(map(repr, INIT_METHODS))}; "
                f"got {self.init_params!r}."
            )
        if not isinstance(self.verbose, numbers.Integral):
            raise ValueError(f"verbose must be an integer; got {self.verbose!r}.")
        return K

    def _check_init_parameters(self, n_features):
        K = self.n_components
        weights = means = covariances = None
        if self.weights_init is not None:
            weights = check_weights(self.weights_init, K)
        if self.means_init is not None:
            means = check_means(self.means_init, K, n_features)
        if self.covariances_init is not None:
            covariances = check_covariances(
                self.covariances_init, self.covariance_type, K, n_features
            )
        return weights, means, covariances

    def _check_fitted(self):
        if not hasattr(self, "means_"):
            raise NotFittedError(
                "This GaussianMixture instance is not fitted yet. Call 'fit' with "
                "appropriate data before using this method."
            )

    def _check_X_predict(self, X):
        self._check_fitted()
        X = check_data(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but this GaussianMixture was fitted with "
                f"{self.n_features_in_} features; pass data with the same columns."
            )
        return X

    # -- fitting -----------------------------------------------------------------------
    def _initial_parameters(self, X, sample_weight, rng, user):
        if all(part is not None for part in user):
            # A complete user-given start needs no pass over the data (as in scikit-learn),
            # which keeps a fit on a memmap larger than memory within a few blocks.
            return tuple(part.copy() for part in user)
        resp = initial_responsibilities(X, self.n_components, self.init_params, rng)
        if sample_weight is not None:
            resp = resp * sample_weight[:, None]
        weights, means, covariances = _m_step(X, resp, self.covariance_type, self.reg_covar)
        user_weights, user_means, user_covariances = user
        if user_weights is not None:
            weights = user_weights.copy()
        if user_means is not None:
            means = user_means.copy()
        if user_covariances is not None:
            covariances = user_covariances.copy()
        return weights, means, covariances

    def _run_em(self, X, sample_weight, params):
        """EM from ``params``; returns a dict of everything a fit sets.

        The iterations run on :class:`gmmlib.EMEngine`: the same E-step
        (:func:`gmmlib.log_responsibilities`) and M-step
        (:func:`gmmlib.m_step`) in one blocked pass over the data.
        """
        cov_type = self.covariance_type
        weights, means, covariances = params
        prec_chol = precision_cholesky(covariances, cov_type)
        engine = EMEngine(X, cov_type, self.reg_covar, sample_weight)
        history, lower_bound, converged, n_iter = [], -np.inf, False, 0
        with engine:  # BLAS held to one thread per engine thread, restored on exit
            for n_iter in range(1, self.max_iter + 1):
                previous = lower_bound
                # mean log-likelihood of the parameters at the start of the iteration
                lower_bound, weights, means, covariances = engine.step(weights, means, prec_chol)
                history.append(lower_bound)
                prec_chol = precision_cholesky(covariances, cov_type)
                if self.verbose:
                    print(f"  iteration {n_iter:4d}  mean log-likelihood {lower_bound:.8f}")
                if abs(lower_bound - previous) < self.tol:
                    converged = True
                    break
            history.append(engine.mean_log_likelihood(weights, means, prec_chol))
        history = np.asarray(history)
        if not np.all(np.isfinite(history)):
            raise ValueError(
                "The log-likelihood became NaN or infinite during EM. "
                "Increase reg_covar, standardise the data, or use fewer components."
            )
        return {
            "weights_": weights,
            "means_": means,
            "covariances_": covariances,
            "precisions_cholesky_": prec_chol,
            "converged_": converged,
            "n_iter_": n_iter,
            "lower_bound_": lower_bound,
            "log_likelihood_history_": history,
        }

    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture to ``X`` by EM; returns ``self``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weight per sample (integer weights equal repeated rows).
        """
        return self._fit(X, sample_weight)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit by EM, then return the most responsible component of each sample."""
        return self._fit(X, sample_weight).predict(X)

    def _fit(self, X, sample_weight):
        K = self._check_parameters()
        X = check_data(X)
        if sample_weight is None:
            # Not np.ones(N): memory added by a fit must not grow with N (EMEngine reads
            # None as all ones, and initialisation makes its own when it needs them).
            n_effective = X.shape[0]
        else:
            sample_weight = check_sample_weight(sample_weight, X.shape[0])
            n_effective = int(np.count_nonzero(sample_weight))
        if n_effective < K:
            raise ValueError(
                f"n_components={K} needs at least {K} samples with positive weight; "
                f"got {n_effective}. Use fewer components or more data."
            )
        user = self._check_init_parameters(X.shape[1])
        rng = np.random.default_rng(self.random_state)
        warm = self.warm_start and hasattr(self, "means_")
        if warm and self.means_.shape[1] != X.shape[1]:
            raise ValueError(
                f"warm_start: the model was fitted with {self.means_.shape[1]} features and X "
                f"has {X.shape[1]}; set warm_start=False to fit afresh."
            )
        best = None
        for _ in range(1 if warm else self.n_init):
            if warm:
                params = (self.weights_.copy(), self.means_.copy(), np.copy(self.covariances_))
            else:
                params = self._initial_parameters(X, sample_weight, rng, user)
            result = self._run_em(X, sample_weight, params)
            _check_not_collapsed(result["means_"], result["covariances_"], self.covariance_type)
            if (
                best is None
                or result["log_likelihood_history_"][-1] > best["log_likelihood_history_"][-1]
            ):
                best = result
        if not best["converged_"]:
            warnings.warn(
                f"EM did not converge within max_iter={self.max_iter} iterations (the change "
                f"in mean log-likelihood stayed above tol={self.tol}). Increase max_iter or "
                "tol, or check the initialisation.",
                ConvergenceWarning,
                stacklevel=2,
            )
        # Everything was computed before this point: a fit that raised above left a
        # previously fitted model untouched.
        for name, value in best.items():
            setattr(self, name, value)
        self.n_features_in_ = X.shape[1]
        return self

    # -- using a fitted model ----------------------------------------------------------
    def _log_joint(self, X):
        return _log_joint(
            X, self.weights_, self.means_, self.precisions_cholesky_, self.covariance_type
        )

    def score_samples(self, X) -> np.ndarray:
        """log P(x_i | θ) for every sample (:eq:`eq-marginal-density`)."""
        X = self._check_X_predict(X)
        return logsumexp(self._log_joint(X), axis=1)

    def score(self, X, y=None) -> float:
        """Average log-likelihood per sample."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities γ_ik under the fitted model (:eq:`eq-responsibility`)."""
        X = self._check_X_predict(X)
        return np.exp(
            _e_step(X, self.weights_, self.means_, self.precisions_cholesky_, self.covariance_type)[
                0
            ]
        )

    def predict(self, X) -> np.ndarray:
        """The most responsible component of each sample."""
        X = self._check_X_predict(X)
        return np.argmax(self._log_joint(X), axis=1)

    def sample(self, n_samples: int = 1, random_state=None):
        """Draw ``(X, labels)`` from the fitted mixture (:eq:`eq-generative-model`).

        ``random_state`` defaults to the estimator's own.
        """
        self._check_fitted()
        rng = self.random_state if random_state is None else random_state
        return sample_mixture(
            n_samples, self.weights_, self.means_, self.covariances_, self.covariance_type, rng
        )

    def _n_parameters(self) -> int:
        K, d = self.means_.shape
        cov = {
            "full": K * d * (d + 1) // 2,
            "tied": d * (d + 1) // 2,
            "diag": K * d,
            "spherical": K,
        }[self.covariance_type]
        return int(cov + K * d + K - 1)

    def bic(self, X) -> float:
        """Bayesian information criterion, −2 log L + p log N (lower is better; :eq:`eq-bic`)."""
        X = self._check_X_predict(X)
        return float(-2 * self.score(X) * X.shape[0] + self._n_parameters() * np.log(X.shape[0]))

    def aic(self, X) -> float:
        """Akaike information criterion, −2 log L + 2p (lower is better; :eq:`eq-aic`)."""
        X = self._check_X_predict(X)
        return float(-2 * self.score(X) * X.shape[0] + 2 * self._n_parameters())
