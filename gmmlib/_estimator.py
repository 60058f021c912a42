"""GaussianMixture: the EM loop of chapter 7, run on the blocked engine of ``gmmlib._engine``.

References
----------
The book, chapter 7, "The EM algorithm" (chapters/07_em_algorithm.ipynb).
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
from scipy.special import logsumexp

from ._e_step import _e_step
from ._engine import EMEngine
from ._gaussian import precision_cholesky
from ._init import _initial_responsibilities
from ._m_step import _m_step
from ._mixture import _log_joint, _sample_mixture
from ._validation import NotFittedError as NotFittedError  # re-exported as gmmlib.NotFittedError
from ._validation import (
    check_covariance_type,
    check_covariances,
    check_data,
    check_enough_samples,
    check_finite_log_likelihood,
    check_init_params,
    check_int,
    check_is_fitted,
    check_means,
    check_n_features,
    check_nonnegative,
    check_not_collapsed,
    check_param_names,
    check_sample_weight,
    check_verbose,
    check_warm_start,
    check_weights,
)


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood settled within ``tol``."""


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
    def _check_parameters(self):
        K = check_int(self.n_components, "n_components", minimum=1)
        check_covariance_type(self.covariance_type)
        check_nonnegative(self.tol, "tol")
        check_nonnegative(self.reg_covar, "reg_covar")
        check_int(self.max_iter, "max_iter", minimum=1)
        check_int(self.n_init, "n_init", minimum=1)
        check_init_params(self.init_params)
        check_verbose(self.verbose)
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

    def _check_X_predict(self, X):
        check_is_fitted(self)
        X = check_data(X)
        check_n_features(X, self.n_features_in_)
        return X

    # -- fitting -----------------------------------------------------------------------
    def _initial_parameters(self, X, sample_weight, rng, user):
        if all(part is not None for part in user):
            # A complete user-given start needs no pass over the data (as in scikit-learn),
            # which keeps a fit on a memmap larger than memory within a few blocks.
            return tuple(part.copy() for part in user)
        resp = _initial_responsibilities(X, self.n_components, self.init_params, rng)
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
        history = check_finite_log_likelihood(history)
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

        Returns
        -------
        GaussianMixture
            The fitted estimator itself. A fit that raises leaves a previously
            fitted model unchanged.

        Raises
        ------
        ValueError
            For invalid data or parameters, and when a component collapses (the
            message names it and suggests ``reg_covar``).
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
        K = self._check_parameters()
        X = check_data(X)
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
        rng = np.random.default_rng(self.random_state)
        warm = self.warm_start and hasattr(self, "means_")
        if warm:
            check_warm_start(self.means_.shape[1], X.shape[1])
        best = None
        for _ in range(1 if warm else self.n_init):
            if warm:
                params = (self.weights_.copy(), self.means_.copy(), np.copy(self.covariances_))
            else:
                params = self._initial_parameters(X, sample_weight, rng, user)
            result = self._run_em(X, sample_weight, params)
            check_not_collapsed(result["means_"], result["covariances_"], self.covariance_type)
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
        """log P(x_i | θ) for every sample (:eq:`eq-marginal-density`).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            With the features the model was fitted on.

        Returns
        -------
        ndarray of shape (n_samples,)
            The log-density of the fitted mixture at each sample, as
            :func:`gmmlib.log_mixture_density` computes it.
        """
        X = self._check_X_predict(X)
        return logsumexp(self._log_joint(X), axis=1)

    def score(self, X, y=None) -> float:
        """Average log-likelihood per sample.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        float
            The mean of :meth:`score_samples`: the log-likelihood over N.
        """
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities γ_ik under the fitted model (:eq:`eq-responsibility`).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Every row sums to 1, as in :func:`gmmlib.responsibilities`.
        """
        X = self._check_X_predict(X)
        params = (self.weights_, self.means_, self.precisions_cholesky_, self.covariance_type)
        return np.exp(_e_step(X, *params)[0])

    def predict(self, X) -> np.ndarray:
        """The most responsible component of each sample.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            For every sample, the component k with the largest responsibility.
        """
        X = self._check_X_predict(X)
        return np.argmax(self._log_joint(X), axis=1)

    def sample(self, n_samples: int = 1, random_state=None):
        """Draw ``(X, labels)`` from the fitted mixture (:eq:`eq-generative-model`).

        Parameters
        ----------
        n_samples : int, default 1
        random_state : None, int or numpy.random.Generator
            Defaults to the estimator's own ``random_state``.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
            The component each sample was drawn from, as in
            :func:`gmmlib.sample_mixture`.
        """
        check_is_fitted(self)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        rng = self.random_state if random_state is None else random_state
        return _sample_mixture(
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
        """Bayesian information criterion, −2 log L + p log N (lower is better; :eq:`eq-bic`).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            The data the criterion is computed on (usually the training data).

        Returns
        -------
        float
            With p the number of free parameters of the fitted mixture.
        """
        return self._information_criterion(X, lambda n_samples: np.log(n_samples))

    def aic(self, X) -> float:
        """Akaike information criterion, −2 log L + 2p (lower is better; :eq:`eq-aic`).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        float
            Penalising each of the p free parameters by 2, whatever N.
        """
        return self._information_criterion(X, lambda n_samples: 2)

    def _information_criterion(self, X, cost_per_parameter) -> float:
        """−2 log L + p · cost_per_parameter(N), with log L = N · score(X)."""
        X = self._check_X_predict(X)
        penalty = self._n_parameters() * cost_per_parameter(X.shape[0])
        return float(-2 * self.score(X) * X.shape[0] + penalty)
