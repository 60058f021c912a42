"""One plausible wrong variant ("mutant") of the functions behind each key equation.

``tests/book/test_mutations.py`` runs the notebooks that check each equation's functions
with the wrong variant in place of the right one and requires them to fail: a check
that cannot tell the wrong function from the right one checks nothing.

Each mutant is a slip a student (or the source article) makes when deriving or coding
the equation. It replaces every function that ``gmmlib.EQUATIONS[label].functions``
lists for that label and that computes the part it gets wrong. The wrong variants call
the *original* functions (captured here, when this module is imported, before any
patching), so a wrong function never calls another wrong one by accident.

:func:`install` patches a running interpreter: every name in every loaded ``gmmlib``
module that is bound to a replaced function is rebound to its wrong variant (so both
``gmmlib.f(...)`` and ``from gmmlib import f`` see it, and so do gmmlib's own callers,
e.g. ``gmmlib.article.article_samples`` calling ``sample_mixture``); a method is
replaced on its class. This module must be imported before it patches anything, and
importing it patches nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

import gmmlib
from gmmlib import ConditionalMoments, ExpectedStatistics, GaussianMixture

# The originals, captured before any patching.
ORIGINAL: dict[str, Callable] = {
    name: getattr(gmmlib, name)
    for name in (
        "sample_mixture",
        "log_gaussian_density",
        "gaussian_density",
        "log_component_densities",
        "log_mixture_density",
        "mixture_density",
        "complete_data_log_likelihood",
        "q_function_brute_force",
        "q_function",
        "responsibilities",
        "log_responsibilities",
        "log_likelihood",
        "q_gradient_weights",
        "update_weights",
        "q_gradient_means",
        "update_means",
        "q_gradient_covariances",
        "update_covariances",
        "m_step",
        "observed_log_density",
        "observed_log_likelihood",
        "observed_responsibilities",
        "conditional_moments",
        "expected_statistics",
        "q_function_missing",
        "m_step_missing",
    )
}
ORIGINAL["GaussianMixture.bic"] = GaussianMixture.bic
ORIGINAL["GaussianMixture.aic"] = GaussianMixture.aic

_o = ORIGINAL  # short alias used in the wrong variants below


def _log_dets(covariances, covariance_type: str, n_features: int) -> np.ndarray:
    """log|Σ_k| per component (shape (K,), or () for tied)."""
    cov = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return np.linalg.slogdet(cov)[1]
    if covariance_type == "tied":
        return np.linalg.slogdet(cov)[1]
    if covariance_type == "diag":
        return np.log(cov).sum(axis=1)
    return n_features * np.log(cov)


def _full(covariances, covariance_type: str, n_components: int, n_features: int):
    """The covariances of any type as a (K, d, d) stack of full matrices."""
    cov = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov, (n_components, n_features, n_features))
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in cov])
    return cov[:, None, None] * np.eye(n_features)  # spherical


def _weighted(resp, sample_weight) -> np.ndarray:
    resp = np.asarray(resp, dtype=np.float64)
    if sample_weight is None:
        return resp
    return resp * np.asarray(sample_weight, dtype=np.float64)[:, None]


def _counts(resp, sample_weight) -> np.ndarray:
    resp = np.asarray(resp, dtype=np.float64)
    if sample_weight is not None:
        resp = resp * np.asarray(sample_weight, dtype=np.float64)[:, None]
    return resp.sum(axis=0)


# eq-generative-model ---------------------------------------------------------------------------
def sample_mixture_off_by_one(
    n_samples, weights, means, covariances, covariance_type="full", random_state=None
):
    X, labels = _o["sample_mixture"](
        n_samples, weights, means, covariances, covariance_type, random_state
    )
    return X, (labels + 1) % len(np.asarray(weights))


# eq-normal-density -----------------------------------------------------------------------------
def log_gaussian_density_no_logdet(X, mean, covariance):
    log_det = np.linalg.slogdet(np.asarray(covariance, dtype=np.float64))[1]
    return _o["log_gaussian_density"](X, mean, covariance) + 0.5 * log_det


def gaussian_density_no_logdet(X, mean, covariance):
    return np.exp(log_gaussian_density_no_logdet(X, mean, covariance))


def log_component_densities_no_logdet(X, means, covariances, covariance_type="full"):
    log_phi = _o["log_component_densities"](X, means, covariances, covariance_type)
    n_features = np.asarray(means).shape[1]
    return log_phi + 0.5 * _log_dets(covariances, covariance_type, n_features)


# eq-marginal-density ---------------------------------------------------------------------------
def log_mixture_density_jensen(X, weights, means, covariances, covariance_type="full"):
    log_phi = _o["log_component_densities"](X, means, covariances, covariance_type)
    return log_phi @ np.asarray(weights, dtype=np.float64)


def mixture_density_jensen(X, weights, means, covariances, covariance_type="full"):
    return np.exp(log_mixture_density_jensen(X, weights, means, covariances, covariance_type))


# eq-complete-log-likelihood --------------------------------------------------------------------
def complete_data_log_likelihood_no_log_weight(
    X, labels, weights, means, covariances, covariance_type="full"
):
    total = _o["complete_data_log_likelihood"](
        X, labels, weights, means, covariances, covariance_type
    )
    log_weights = np.log(np.asarray(weights, dtype=np.float64))
    return float(total - log_weights[np.asarray(labels)].sum())


# eq-q-definition -------------------------------------------------------------------------------
def q_function_brute_force_new_posterior(
    X,
    weights,
    means,
    covariances,
    old_weights,
    old_means,
    old_covariances,
    covariance_type="full",
):
    # the posterior P(Z | X, θ) of the *new* θ, in place of P(Z | X, θ⁽ᵗ⁾)
    return _o["q_function_brute_force"](
        X, weights, means, covariances, weights, means, covariances, covariance_type
    )


# eq-q-collapsed --------------------------------------------------------------------------------
def q_function_no_log_weight(X, resp, weights, means, covariances, covariance_type="full"):
    log_phi = _o["log_component_densities"](X, means, covariances, covariance_type)
    resp = np.asarray(resp, dtype=np.float64)
    return float(np.sum(np.where(resp > 0, resp * log_phi, 0.0)))


# eq-responsibility -----------------------------------------------------------------------------
def log_responsibilities_no_weight(X, weights, means, covariances, covariance_type="full"):
    log_phi = _o["log_component_densities"](X, means, covariances, covariance_type)
    return log_phi - logsumexp(log_phi, axis=1, keepdims=True)


def responsibilities_no_weight(X, weights, means, covariances, covariance_type="full"):
    return np.exp(log_responsibilities_no_weight(X, weights, means, covariances, covariance_type))


# eq-log-likelihood -----------------------------------------------------------------------------
def log_likelihood_max(X, weights, means, covariances, covariance_type="full", sample_weight=None):
    log_phi = _o["log_component_densities"](X, means, covariances, covariance_type)
    with np.errstate(divide="ignore"):
        log_joint = log_phi + np.log(np.asarray(weights, dtype=np.float64))
    best = log_joint.max(axis=1)
    if sample_weight is None:
        return float(best.sum())
    return float(np.asarray(sample_weight, dtype=np.float64) @ best)


# eq-lagrange-multiplier ------------------------------------------------------------------------
def q_gradient_weights_no_resp(resp, weights):
    resp = np.asarray(resp, dtype=np.float64)
    return resp.shape[0] / np.asarray(weights, dtype=np.float64)


# eq-weights-update -----------------------------------------------------------------------------
def update_weights_n_plus_one(resp, sample_weight=None):
    counts = _counts(resp, sample_weight)
    return counts / (counts.sum() + 1.0)


# eq-q-gradient-means ---------------------------------------------------------------------------
def q_gradient_means_no_precision(X, resp, means, covariances):
    X, resp, means = (np.asarray(a, dtype=np.float64) for a in (X, resp, means))
    return np.stack([resp[:, k] @ (X - means[k]) for k in range(means.shape[0])])


# eq-means-update -------------------------------------------------------------------------------
def update_means_over_n(X, resp, sample_weight=None):
    X, resp = np.asarray(X, dtype=np.float64), np.asarray(resp, dtype=np.float64)
    if sample_weight is not None:
        resp = resp * np.asarray(sample_weight, dtype=np.float64)[:, None]
    return (resp.T @ X) / resp.sum()


# eq-q-gradient-covariances ---------------------------------------------------------------------
def q_gradient_covariances_a_sigma_minus_2(X, resp, means, covariances):
    X, resp, means, cov = (np.asarray(a, dtype=np.float64) for a in (X, resp, means, covariances))
    grad = np.empty_like(cov)
    for k in range(means.shape[0]):
        prec = np.linalg.inv(cov[k])
        diff = X - means[k]
        scatter = (resp[:, k] * diff.T) @ diff
        grad[k] = 0.5 * (scatter @ prec @ prec - resp[:, k].sum() * prec)
    return grad


# eq-covariances-update, eq-covariances-regularised, eq-covariance-types ------------------------
def _regularisation(covariance_type, reg_covar, n_features):
    if covariance_type in ("full", "tied"):
        return reg_covar * np.eye(n_features)
    return reg_covar


def update_covariances_bessel(
    X, resp, means, covariance_type="full", reg_covar=0.0, sample_weight=None
):
    cov = _o["update_covariances"](X, resp, means, covariance_type, reg_covar, sample_weight)
    reg = _regularisation(covariance_type, reg_covar, np.asarray(X).shape[1])
    counts = _counts(resp, sample_weight)
    if covariance_type == "tied":
        n = counts.sum()
        return (cov - reg) * n / (n - 1.0) + reg
    scale = counts / (counts - 1.0)  # one per component
    shape = {"full": (-1, 1, 1), "diag": (-1, 1), "spherical": (-1,)}[covariance_type]
    return (cov - reg) * scale.reshape(shape) + reg


def update_covariances_reg_everywhere(
    X, resp, means, covariance_type="full", reg_covar=0.0, sample_weight=None
):
    cov = _o["update_covariances"](X, resp, means, covariance_type, 0.0, sample_weight)
    return cov + reg_covar  # every entry, not only the diagonal


def update_covariances_spherical_sum(
    X, resp, means, covariance_type="full", reg_covar=0.0, sample_weight=None
):
    cov = _o["update_covariances"](X, resp, means, covariance_type, reg_covar, sample_weight)
    if covariance_type != "spherical":
        return cov
    return (cov - reg_covar) * np.asarray(X).shape[1] + reg_covar


# eq-bic, eq-aic --------------------------------------------------------------------------------
def _n_parameters_all_entries(model) -> int:
    K, d = model.means_.shape
    extra = {"full": K, "tied": 1}.get(model.covariance_type, 0) * d * (d - 1) // 2
    return model._n_parameters() + extra


def bic_all_entries(self, X, sample_weight=None):
    total, weight = self._weighted_log_likelihood(X, sample_weight)
    return -2.0 * total + _n_parameters_all_entries(self) * float(np.log(weight))


def aic_penalty_p(self, X, sample_weight=None):
    total, _ = self._weighted_log_likelihood(X, sample_weight)
    return -2.0 * total + self._n_parameters()


# eq-weighted-log-likelihood --------------------------------------------------------------------
def log_likelihood_weighted_average(
    X, weights, means, covariances, covariance_type="full", sample_weight=None
):
    total = _o["log_likelihood"](X, weights, means, covariances, covariance_type, sample_weight)
    if sample_weight is None:
        return total
    return total / float(np.sum(sample_weight))


# eq-weighted-m-step ----------------------------------------------------------------------------
def m_step_ignores_weights(X, resp, covariance_type="full", reg_covar=0.0, sample_weight=None):
    return _o["m_step"](X, resp, covariance_type, reg_covar)


def update_weights_ignores_weights(resp, sample_weight=None):
    return _o["update_weights"](resp)


def update_means_ignores_weights(X, resp, sample_weight=None):
    return _o["update_means"](X, resp)


def update_covariances_ignores_weights(
    X, resp, means, covariance_type="full", reg_covar=0.0, sample_weight=None
):
    return _o["update_covariances"](X, resp, means, covariance_type, reg_covar)


# eq-observed-marginal --------------------------------------------------------------------------
def observed_log_density_precision_slice(X, mean, covariance):
    # the observed part's covariance taken as (Σ⁻¹_oo)⁻¹, the inverse of a slice of the
    # precision matrix (the covariance of x_o *given* x_m), in place of the sub-block Σ_oo
    X = np.asarray(X, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    precision = np.linalg.inv(np.asarray(covariance, dtype=np.float64))
    observed = ~np.isnan(X)
    out = np.zeros(X.shape[0])
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for p, o in enumerate(patterns):
        rows = np.flatnonzero(inverse == p)
        if o.any():
            sliced = np.linalg.inv(precision[np.ix_(o, o)])
            out[rows] = _o["log_gaussian_density"](X[np.ix_(rows, o)], mean[o], sliced)
    return out


# eq-observed-log-likelihood --------------------------------------------------------------------
def observed_log_likelihood_d_log_2pi(
    X, weights, means, covariances, covariance_type="full", sample_weight=None
):
    total = _o["observed_log_likelihood"](
        X, weights, means, covariances, covariance_type, sample_weight
    )
    n_missing = np.isnan(np.asarray(X, dtype=np.float64)).sum(axis=1)
    w = np.ones(n_missing.size) if sample_weight is None else np.asarray(sample_weight)
    # −d/2 log 2π in every row's density, not −|o|/2 log 2π
    return float(total - 0.5 * np.log(2.0 * np.pi) * (w @ n_missing))


# eq-observed-responsibility --------------------------------------------------------------------
def observed_responsibilities_mean_filled(X, weights, means, covariances, covariance_type="full"):
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    K, d = means.shape
    full = _full(covariances, covariance_type, K, d)
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(weights, dtype=np.float64))
    log_joint = np.column_stack(
        [
            _o["log_gaussian_density"](np.where(np.isnan(X), means[k], X), means[k], full[k])
            + log_weights[k]
            for k in range(K)
        ]
    )
    return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))


# eq-conditional-gaussian -----------------------------------------------------------------------
def conditional_moments_no_schur(X, mean, covariance):
    right = _o["conditional_moments"](X, mean, covariance)
    missing = np.isnan(np.asarray(X, dtype=np.float64))
    block = missing[:, :, None] & missing[:, None, :]
    # C = Σ_mm: the prior covariance of the missing block, the Schur term forgotten
    wrong = np.where(block, np.asarray(covariance, dtype=np.float64), 0.0)
    return ConditionalMoments(right.expected_X, wrong)


# eq-expected-statistics ------------------------------------------------------------------------
def expected_statistics_no_conditional_covariance(
    X, resp, means, covariances, covariance_type="full", sample_weight=None
):
    right = _o["expected_statistics"](X, resp, means, covariances, covariance_type, sample_weight)
    means = np.asarray(means, dtype=np.float64)
    K, d = means.shape
    full = _full(covariances, covariance_type, K, d)
    weighted = _weighted(resp, sample_weight)
    sum_xx = np.empty((K, d, d))
    for k in range(K):
        x_hat = _o["conditional_moments"](X, means[k], full[k]).expected_X
        sum_xx[k] = (weighted[:, k, None] * x_hat).T @ x_hat  # x̂ x̂ᵀ without C
    return ExpectedStatistics(right.Nk, right.sum_x, sum_xx)


# eq-q-missing ----------------------------------------------------------------------------------
def q_function_missing_no_trace_c(X, resp, weights, means, covariances, old_means, old_covariances):
    q = _o["q_function_missing"](X, resp, weights, means, covariances, old_means, old_covariances)
    resp = np.asarray(resp, dtype=np.float64)
    old_means = np.asarray(old_means, dtype=np.float64)
    old_covariances = np.asarray(old_covariances, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    trace_c = 0.0
    for k in range(old_means.shape[0]):
        C = _o["conditional_moments"](X, old_means[k], old_covariances[k])
        per_row = np.einsum("ab,nba->n", np.linalg.inv(covariances[k]), C[1])
        trace_c += resp[:, k] @ per_row
    return float(q + 0.5 * trace_c)  # the −½ Σ γ tr(Σ_k⁻¹ C_ik) term dropped


# eq-missing-m-step -----------------------------------------------------------------------------
def m_step_missing_single_fill(
    X,
    resp,
    means,
    covariances,
    covariance_type="full",
    reg_covar=0.0,
    sample_weight=None,
):
    # one imputed row per point, Σ_k γ_ik x̂_ik, then part one's M-step: no per-component
    # x̂_ik in the sums and no C_ik
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    K, d = means.shape
    full = _full(covariances, covariance_type, K, d)
    filled = np.zeros_like(X)
    for k in range(K):
        filled += resp[:, [k]] * _o["conditional_moments"](X, means[k], full[k]).expected_X
    total = resp.sum(axis=1, keepdims=True)
    filled = np.where(total > 0, filled / np.where(total > 0, total, 1.0), 0.0)
    return _o["m_step"](filled, resp, covariance_type, reg_covar, sample_weight)


class Mutant(NamedTuple):
    """A wrong variant of one equation's functions."""

    name: str
    """A short name for the slip."""
    description: str
    """The slip in one line."""
    replacements: dict[str, Callable]
    """Public name (``"log_likelihood"`` or ``"GaussianMixture.bic"``) -> wrong function."""


MUTANTS: dict[str, Mutant] = {
    "eq-generative-model": Mutant(
        "labels-off-by-one",
        "sample_mixture labels each point drawn from component k as k + 1 (mod K)",
        {"sample_mixture": sample_mixture_off_by_one},
    ),
    "eq-normal-density": Mutant(
        "no-log-det",
        "the normal log-density without its −½ log|Σ| term (and the density without |Σ|^−½)",
        {
            "log_gaussian_density": log_gaussian_density_no_logdet,
            "gaussian_density": gaussian_density_no_logdet,
            "log_component_densities": log_component_densities_no_logdet,
        },
    ),
    "eq-marginal-density": Mutant(
        "log-inside-sum",
        "log P(x) as Σ_k p_k log φ_k (the log moved inside the sum, Jensen's bound)",
        {
            "log_mixture_density": log_mixture_density_jensen,
            "mixture_density": mixture_density_jensen,
        },
    ),
    "eq-complete-log-likelihood": Mutant(
        "no-log-weight",
        "log P(X, Z | θ) without the log p_{z_i} terms",
        {"complete_data_log_likelihood": complete_data_log_likelihood_no_log_weight},
    ),
    "eq-q-definition": Mutant(
        "posterior-of-new-theta",
        "the brute-force Q weights each Z by P(Z | X, θ) of the new θ, not of θ⁽ᵗ⁾",
        {"q_function_brute_force": q_function_brute_force_new_posterior},
    ),
    "eq-q-collapsed": Mutant(
        "no-log-weight",
        "the collapsed Q as Σ_ik γ_ik log φ_ik, without log p_k",
        {"q_function": q_function_no_log_weight},
    ),
    "eq-responsibility": Mutant(
        "no-weight",
        "γ_ik = φ_ik / Σ_j φ_ij, Bayes' rule without the prior weights p_k",
        {
            "responsibilities": responsibilities_no_weight,
            "log_responsibilities": log_responsibilities_no_weight,
        },
    ),
    "eq-log-likelihood": Mutant(
        "max-for-logsumexp",
        "L(θ) as Σ_i max_k (log p_k + log φ_ik), a max in place of the log-sum-exp",
        {"log_likelihood": log_likelihood_max},
    ),
    "eq-lagrange-multiplier": Mutant(
        "no-resp",
        "∂Q/∂p_k as N / p_k, the responsibilities dropped from Σ_i γ_ik / p_k",
        {"q_gradient_weights": q_gradient_weights_no_resp},
    ),
    "eq-weights-update": Mutant(
        "n-plus-one",
        "p_k = N_k / (N + 1)",
        {"update_weights": update_weights_n_plus_one},
    ),
    "eq-q-gradient-means": Mutant(
        "no-precision",
        "∂Q/∂μ_k as Σ_i γ_ik (x_i − μ_k), without Σ_k⁻¹ (same zero, wrong gradient)",
        {"q_gradient_means": q_gradient_means_no_precision},
    ),
    "eq-means-update": Mutant(
        "over-n",
        "μ_k = Σ_i γ_ik x_i / N, divided by N instead of N_k",
        {"update_means": update_means_over_n},
    ),
    "eq-q-gradient-covariances": Mutant(
        "a-sigma-minus-2",
        "∂Q/∂Σ_k with the article's −AΣ⁻² for −Σ⁻¹AΣ⁻¹ (same zero, wrong gradient)",
        {"q_gradient_covariances": q_gradient_covariances_a_sigma_minus_2},
    ),
    "eq-covariances-update": Mutant(
        "bessel",
        "Σ_k divided by N_k − 1 (np.cov's default) instead of N_k",
        {"update_covariances": update_covariances_bessel},
    ),
    "eq-covariances-regularised": Mutant(
        "reg-everywhere",
        "reg_covar added to every entry of Σ_k (cov + ε), not only to its diagonal",
        {"update_covariances": update_covariances_reg_everywhere},
    ),
    "eq-covariance-types": Mutant(
        "spherical-sum",
        "spherical σ_k² = tr(S_k) / N_k, the sum of the variances, not their mean",
        {"update_covariances": update_covariances_spherical_sum},
    ),
    "eq-bic": Mutant(
        "count-every-entry",
        "BIC counting all d² entries of each full covariance, not d(d + 1)/2",
        {"GaussianMixture.bic": bic_all_entries},
    ),
    "eq-aic": Mutant(
        "penalty-p",
        "AIC = −2 log L + p, the penalty's factor 2 dropped",
        {"GaussianMixture.aic": aic_penalty_p},
    ),
    "eq-weighted-log-likelihood": Mutant(
        "weighted-average",
        "with sample_weight, Σ_i w_i log P(x_i) / Σ_i w_i (an average, not the sum)",
        {"log_likelihood": log_likelihood_weighted_average},
    ),
    "eq-weighted-m-step": Mutant(
        "weights-ignored",
        "the M-step functions accept sample_weight and ignore it",
        {
            "m_step": m_step_ignores_weights,
            "update_weights": update_weights_ignores_weights,
            "update_means": update_means_ignores_weights,
            "update_covariances": update_covariances_ignores_weights,
        },
    ),
    "eq-observed-marginal": Mutant(
        "precision-slice",
        "the observed part's density with covariance (Σ⁻¹)_oo⁻¹, a slice of the precision "
        "matrix (the conditional of x_o given x_m), not the sub-block Σ_oo",
        {"observed_log_density": observed_log_density_precision_slice},
    ),
    "eq-observed-log-likelihood": Mutant(
        "d-log-2pi",
        "L_obs with −(d/2) log 2π in every row's density, not −(|o_i|/2) log 2π",
        {"observed_log_likelihood": observed_log_likelihood_d_log_2pi},
    ),
    "eq-observed-responsibility": Mutant(
        "mean-filled",
        "γ_ik from the full density φ_k with each hole filled by μ_k,m, not from the "
        "marginal of x_o",
        {"observed_responsibilities": observed_responsibilities_mean_filled},
    ),
    "eq-conditional-gaussian": Mutant(
        "no-schur",
        "the conditional covariance C = Σ_mm, without the Schur term −Σ_mo Σ_oo⁻¹ Σ_om",
        {"conditional_moments": conditional_moments_no_schur},
    ),
    "eq-expected-statistics": Mutant(
        "impute-then-fit",
        "the second moments Σ_i w_i γ_ik x̂_ik x̂_ikᵀ, without the conditional covariance C_ik",
        {"expected_statistics": expected_statistics_no_conditional_covariance},
    ),
    "eq-q-missing": Mutant(
        "no-trace-c",
        "Q with missing values without the −½ Σ_ik γ_ik tr(Σ_k⁻¹ C_ik) term",
        {"q_function_missing": q_function_missing_no_trace_c},
    ),
    "eq-missing-m-step": Mutant(
        "single-fill",
        "the M-step on one imputed row per point (holes filled with Σ_k γ_ik x̂_ik), then "
        "part one's M-step: no per-component x̂_ik, no C_ik",
        {"m_step_missing": m_step_missing_single_fill},
    ),
}


def install(label: str | None) -> int:
    """Put the wrong variants of ``label``'s functions in place; returns how many bindings.

    ``None`` installs nothing (the unchanged run goes through the same first cell).
    Raises if a replaced function is not found where it must be.
    """
    if label is None:
        return 0
    count = 0
    for public, wrong in MUTANTS[label].replacements.items():
        right = ORIGINAL[public]
        if "." in public:
            owner, attr = public.split(".")
            cls = getattr(gmmlib, owner)
            if cls.__dict__.get(attr) is not right:
                raise RuntimeError(f"gmmlib.{public} is not the original; cannot patch it")
            setattr(cls, attr, wrong)
            count += 1
            continue
        if getattr(gmmlib, public) is not right:
            raise RuntimeError(f"gmmlib.{public} is not the original; cannot patch it")
        for mod_name, module in list(sys.modules.items()):
            if module is None or not (mod_name == "gmmlib" or mod_name.startswith("gmmlib.")):
                continue
            for attr, value in list(vars(module).items()):
                if value is right:
                    setattr(module, attr, wrong)
                    count += 1
        if getattr(gmmlib, public) is not wrong:
            raise RuntimeError(f"gmmlib.{public} was not replaced")
    return count
