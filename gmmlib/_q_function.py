r"""The complete-data log-likelihood and the Q function (chapter 2).

:eq:`eq-q-definition` is the expectation of the complete-data log-likelihood
:eq:`eq-complete-log-likelihood` under the posterior of the hidden assignments:

.. math::

    Q(\theta, \theta^{(t)}) = \sum_Z \log P(X, Z \mid \theta)\, P(Z \mid X, \theta^{(t)}),

a sum over all :math:`K^N` assignments. Because the posterior factorises over
samples and each factor sums to one, it collapses to :eq:`eq-q-collapsed`:

.. math::

    Q(\theta, \theta^{(t)}) = \sum_{i=1}^N \sum_{k=1}^K \gamma_{ik}
        \bigl(\log p_k + \log \phi(x_i \mid \mu_k, \Sigma_k)\bigr).

:func:`gmmlib.q_function_brute_force` evaluates the first form literally (tiny
data only), :func:`gmmlib.q_function` the second; the book and the tests show
they agree. The gradients of Q, which the M-step sets to zero, are here too.

References
----------
The book, chapter 2, "The Q function" (chapters/02_q_function.ipynb); the
gradients, chapters 4 to 6, "The M-step" (chapters/04_m_step_weights.ipynb,
chapters/05_m_step_means.ipynb, chapters/06_m_step_covariances.ipynb).
"""

from __future__ import annotations

import itertools

import numpy as np

from ._e_step import _e_step
from ._gaussian import _precision_cholesky
from ._mixture import _log_joint, _prepare
from ._validation import (
    check_brute_force_size,
    check_gradient_arguments,
    check_labels,
    check_parameters,
    check_positive_weights,
    check_resp,
    check_same_components,
)

#: Largest number of assignments :func:`gmmlib.q_function_brute_force` will enumerate.
MAX_BRUTE_FORCE_ASSIGNMENTS = 2_000_000


def complete_data_log_likelihood(
    X, labels, weights, means, covariances, covariance_type: str = "full"
) -> float:
    r"""log P(X, Z | θ) for one given assignment Z (:eq:`eq-complete-log-likelihood`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    labels : array_like of int, shape (n_samples,)
        The assignment :math:`z_i \in \{0, \dots, K-1\}` of every sample.
    weights, means, covariances, covariance_type
        θ, as in :func:`gmmlib.log_mixture_density`.

    Returns
    -------
    float

    Notes
    -----
    The samples are independent, so the joint factorises and its log is a sum:

    .. math::

        \log P(X, Z \mid \theta) = \sum_{i=1}^N \bigl(\log p_{z_i}
            + \log\phi(x_i \mid \mu_{z_i}, \Sigma_{z_i})\bigr).

    Examples
    --------
    The sum, term by term, from the component log-densities:

    >>> import numpy as np
    >>> import gmmlib
    >>> weights, means, covariances = [0.5, 0.5], [[0.0], [4.0]], np.ones((2, 1, 1))
    >>> X = np.array([[0.0], [1.0], [4.0]])
    >>> labels = np.array([0, 0, 1])
    >>> ll = gmmlib.complete_data_log_likelihood(X, labels, weights, means, covariances)
    >>> print(f"{ll:.4f}")
    -5.3363
    >>> log_phi = gmmlib.log_component_densities(X, means, covariances)
    >>> print(f"{np.sum(np.log(0.5) + log_phi[np.arange(3), labels]):.4f}")
    -5.3363
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    labels = check_labels(labels, X.shape[0], means.shape[0])
    log_joint = _log_joint(X, weights, means, prec_chol, covariance_type)
    return float(log_joint[np.arange(X.shape[0]), labels].sum())


def _xlogy_sum(resp, log_joint):
    """Σ_ik γ_ik log_joint_ik with 0 · (-inf) = 0; a core, no argument checking."""
    # γ = 0 times log p = -inf contributes 0 (the limit), not NaN.
    terms = np.where(resp > 0, resp * np.where(resp > 0, log_joint, 0.0), 0.0)
    return float(terms.sum())


def q_function(X, resp, weights, means, covariances, covariance_type: str = "full") -> float:
    r"""The Q function in its collapsed form (:eq:`eq-q-collapsed`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    resp : array_like of shape (n_samples, n_components)
        :math:`\gamma_{ik} = P(z_i = k \mid x_i, \theta^{(t)})`, computed from the
        *old* parameters by :func:`gmmlib.responsibilities`.
    weights, means, covariances, covariance_type
        The *new* parameters θ at which Q is evaluated.

    Returns
    -------
    float
        :math:`Q(\theta, \theta^{(t)})`, a sum over the samples (not an average).

    Notes
    -----
    .. math::

        Q(\theta, \theta^{(t)}) = \sum_{i=1}^N\sum_{k=1}^K \gamma_{ik}
            \bigl(\log p_k + \log\phi(x_i \mid \mu_k, \Sigma_k)\bigr).

    A term with :math:`\gamma_{ik} = 0` counts 0 even where :math:`p_k = 0`
    (the limit of :math:`\gamma \log p`), not :math:`0 \cdot (-\infty)`.

    Examples
    --------
    The collapsed form equals the sum over all 2³ = 8 assignments:

    >>> import numpy as np
    >>> import gmmlib
    >>> theta = ([0.5, 0.5], [[0.0], [4.0]], np.ones((2, 1, 1)))
    >>> X = np.array([[0.0], [1.0], [4.0]])
    >>> resp = gmmlib.responsibilities(X, *theta)
    >>> print(f"{gmmlib.q_function(X, resp, *theta):.4f}")
    -5.4136
    >>> print(f"{gmmlib.q_function_brute_force(X, *theta, *theta):.4f}")
    -5.4136

    A component of weight 0 that is responsible for nothing adds 0; the
    literal sum of γ times the log-joint gives 0 · (-inf) = nan:

    >>> weights = np.array([1.0, 0.0])
    >>> resp = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    >>> print(f"{gmmlib.q_function(X, resp, weights, *theta[1:]):.4f}")
    -11.2568
    >>> log_phi = gmmlib.log_component_densities(X, *theta[1:])
    >>> with np.errstate(divide="ignore", invalid="ignore"):
    ...     print(np.sum(resp * (np.log(weights) + log_phi)))
    nan
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    resp = check_resp(resp, X.shape[0], means.shape[0])
    return _xlogy_sum(resp, _log_joint(X, weights, means, prec_chol, covariance_type))


def q_function_brute_force(
    X,
    weights,
    means,
    covariances,
    old_weights,
    old_means,
    old_covariances,
    covariance_type: str = "full",
) -> float:
    r"""The Q function as defined, a sum over all K^N assignments (:eq:`eq-q-definition`).

    Only for tiny data: it enumerates every assignment Z and refuses more than
    ``MAX_BRUTE_FORCE_ASSIGNMENTS`` (two million) of them.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    weights, means, covariances
        The parameters θ at which Q is evaluated.
    old_weights, old_means, old_covariances
        The current parameters θ⁽ᵗ⁾ that define the posterior of Z; the same
        number of components as θ.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"

    Returns
    -------
    float
        :math:`Q(\theta, \theta^{(t)})`, equal to :func:`gmmlib.q_function` with the
        responsibilities of θ⁽ᵗ⁾, up to rounding.

    Notes
    -----
    .. math::

        Q(\theta, \theta^{(t)}) = \sum_{z_1=1}^K\cdots\sum_{z_N=1}^K
            \Bigl(\sum_{i=1}^N \log P(x_i, z_i \mid \theta)\Bigr)
            \prod_{i=1}^N P(z_i \mid x_i, \theta^{(t)}).

    Examples
    --------
    Three samples, two components: 2³ = 8 assignments, and the same value as
    the collapsed form of :func:`gmmlib.q_function`:

    >>> import numpy as np
    >>> import gmmlib
    >>> new = ([0.4, 0.6], [[0.0], [3.0]], np.ones((2, 1, 1)))
    >>> old = ([0.5, 0.5], [[0.0], [4.0]], np.ones((2, 1, 1)))
    >>> X = np.array([[0.0], [1.0], [4.0]])
    >>> print(f"{gmmlib.q_function_brute_force(X, *new, *old):.4f}")
    -6.1239
    >>> resp = gmmlib.responsibilities(X, *old)
    >>> print(f"{gmmlib.q_function(X, resp, *new):.4f}")
    -6.1239
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    old_weights, old_means, old_covariances = check_parameters(
        old_weights, old_means, old_covariances, covariance_type, X.shape[1]
    )
    n_samples, n_components = X.shape[0], means.shape[0]
    check_same_components(old_means.shape[0], n_components)
    check_brute_force_size(n_components, n_samples, MAX_BRUTE_FORCE_ASSIGNMENTS)
    old_prec = _precision_cholesky(old_covariances, covariance_type)
    log_joint = _log_joint(X, weights, means, prec_chol, covariance_type)
    log_post = _e_step(X, old_weights, old_means, old_prec, covariance_type)[0]
    rows = np.arange(n_samples)
    total = 0.0
    for z in itertools.product(range(n_components), repeat=n_samples):
        z = np.asarray(z)
        posterior = np.exp(log_post[rows, z].sum())
        if posterior > 0:
            total += log_joint[rows, z].sum() * posterior
    return float(total)


def q_gradient_weights(resp, weights) -> np.ndarray:
    r"""∂Q/∂p_k = N_k / p_k, the gradient of Q in the weights (:eq:`eq-lagrange-multiplier`).

    Parameters
    ----------
    resp : array_like of shape (n_samples, n_components)
        Responsibilities :math:`\gamma_{ik}` from the E-step.
    weights : array_like of shape (n_components,)
        Strictly positive weights at which the gradient is taken.

    Returns
    -------
    ndarray of shape (n_components,)

    Notes
    -----
    Only :math:`\sum_k N_k \log p_k` of Q depends on the weights, so

    .. math::  \frac{\partial Q}{\partial p_k} = \frac{N_k}{p_k}.

    The Lagrangian's stationarity condition is :math:`N_k / p_k + \lambda = 0` for
    every k: at the constrained maximum every entry equals :math:`-\lambda = N`.

    Examples
    --------
    At the M-step's weights every entry equals N = 3, at other weights not:

    >>> import numpy as np
    >>> import gmmlib
    >>> resp = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> print(np.round(gmmlib.q_gradient_weights(resp, gmmlib.update_weights(resp)), 4))
    [3. 3.]
    >>> print(np.round(gmmlib.q_gradient_weights(resp, [0.5, 0.5]), 4))
    [3.4 2.6]
    """
    resp = check_resp(resp)
    weights = check_positive_weights(weights, resp.shape[1])
    return resp.sum(axis=0) / weights


def _full_precisions(covariances):
    return np.linalg.inv(covariances)


def _q_gradient_means(X, resp, means, covariances):
    """Core of :func:`gmmlib.q_gradient_means`; no argument checking."""
    prec = _full_precisions(covariances)
    grad = np.empty_like(means)
    for k in range(means.shape[0]):
        grad[k] = prec[k] @ (resp[:, k] @ (X - means[k]))
    return grad


def q_gradient_means(X, resp, means, covariances) -> np.ndarray:
    r"""∂Q/∂μ_k for full covariances (:eq:`eq-q-gradient-means`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    resp : array_like of shape (n_samples, n_components)
        Responsibilities :math:`\gamma_{ik}` from the E-step.
    means : array_like of shape (n_components, n_features)
        The means :math:`\mu_k` at which the gradient is taken.
    covariances : array_like of shape (n_components, n_features, n_features)
        Full covariances :math:`\Sigma_k`, symmetric positive definite.

    Returns
    -------
    ndarray of shape (n_components, n_features)

    Notes
    -----
    .. math::

        \frac{\partial Q}{\partial \mu_k} = \sum_i \gamma_{ik}\,\Sigma_k^{-1}(x_i - \mu_k).

    Written with an explicit :math:`\Sigma_k^{-1}` because it transcribes the
    derivation; the fitting code never forms it.

    Examples
    --------
    The gradient vanishes at the means of :func:`gmmlib.update_means`, whatever
    the covariances:

    >>> import numpy as np
    >>> import gmmlib
    >>> X = np.array([[0.0, 1.0], [2.0, 0.0], [4.0, 5.0]])
    >>> resp = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> covariances = np.array([[[2.0, 0.5], [0.5, 1.0]], np.eye(2)])
    >>> print(np.round(gmmlib.q_gradient_means(X, resp, np.zeros((2, 2)), covariances), 4))
    [[0.4857 3.6571]
     [3.2    2.1   ]]
    >>> grad = gmmlib.q_gradient_means(X, resp, gmmlib.update_means(X, resp), covariances)
    >>> bool(np.allclose(grad, 0.0, atol=1e-12))
    True
    """
    X, resp, means, covariances = check_gradient_arguments(X, resp, means, covariances)
    return _q_gradient_means(X, resp, means, covariances)


def _q_gradient_covariances(X, resp, means, covariances):
    """Core of :func:`gmmlib.q_gradient_covariances`; no argument checking."""
    prec = _full_precisions(covariances)
    grad = np.empty_like(prec)
    for k in range(means.shape[0]):
        diff = X - means[k]
        scatter = (resp[:, k] * diff.T) @ diff
        grad[k] = 0.5 * (prec[k] @ scatter @ prec[k] - resp[:, k].sum() * prec[k])
    return grad


def q_gradient_covariances(X, resp, means, covariances) -> np.ndarray:
    r"""∂Q/∂Σ_k for full covariances (:eq:`eq-q-gradient-covariances`).

    Parameters
    ----------
    X, resp, means
        As in :func:`gmmlib.q_gradient_means` (the M-step uses the updated means).
    covariances : array_like of shape (n_components, n_features, n_features)
        Full covariances :math:`\Sigma_k` at which the gradient is taken,
        symmetric positive definite.

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features)

    Notes
    -----
    With :math:`S_k = \sum_i \gamma_{ik}(x_i-\mu_k)(x_i-\mu_k)^\top` and
    :math:`N_k = \sum_i\gamma_{ik}`,

    .. math::

        \frac{\partial Q}{\partial \Sigma_k}
            = -\tfrac12 N_k \Sigma_k^{-1} + \tfrac12 \Sigma_k^{-1} S_k \Sigma_k^{-1},

    from :math:`\partial\log|\Sigma|/\partial\Sigma = \Sigma^{-1}` and
    :math:`\partial\,\mathrm{tr}(\Sigma^{-1}S)/\partial\Sigma = -\Sigma^{-1}S\Sigma^{-1}`
    (Σ and S symmetric; not :math:`-S\Sigma^{-2}`, which holds only when they
    commute). It is zero exactly at :eq:`eq-covariances-update`.

    Examples
    --------
    The gradient vanishes at the covariances of :func:`gmmlib.update_covariances`:

    >>> import numpy as np
    >>> import gmmlib
    >>> X = np.array([[0.0, 1.0], [2.0, 0.0], [4.0, 5.0]])
    >>> resp = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> means = gmmlib.update_means(X, resp)
    >>> grad = gmmlib.q_gradient_covariances(X, resp, means, np.array([np.eye(2)] * 2))
    >>> print(np.round(grad[0], 4))
    [[2.0441 2.7882]
     [2.7882 2.6265]]
    >>> covariances = gmmlib.update_covariances(X, resp, means)
    >>> grad = gmmlib.q_gradient_covariances(X, resp, means, covariances)
    >>> bool(np.allclose(grad, 0.0, atol=1e-12))
    True
    """
    X, resp, means, covariances = check_gradient_arguments(X, resp, means, covariances)
    return _q_gradient_covariances(X, resp, means, covariances)
