"""The one list of the book's key equations and the gmmlib functions implementing them.

Each entry maps an equation label (a labelled display equation in the book,
``$$ … $$ (eq-…)``) to the
chapter that derives it and the functions whose docstrings name it. The test
``tests/test_pairing.py`` checks the pairing both ways: every label here is
defined in its chapter and named by each of its functions' docstrings, and every
``eq-`` label a docstring names is defined somewhere in the book.
"""

from __future__ import annotations

from typing import NamedTuple


class Equation(NamedTuple):
    chapter: str
    title: str
    functions: tuple[str, ...]


EQUATIONS: dict[str, Equation] = {
    "eq-generative-model": Equation(
        "chapters/01_generative_model.ipynb",
        "z ~ Categorical(p), x | z = k ~ N(μ_k, Σ_k)",
        ("gmmlib.mixture.sample_mixture",),
    ),
    "eq-normal-density": Equation(
        "chapters/01_generative_model.ipynb",
        "the d-variate normal density φ(x | μ, Σ)",
        (
            "gmmlib.gaussian.log_gaussian_density",
            "gmmlib.gaussian.gaussian_density",
            "gmmlib.gaussian.log_component_densities",
        ),
    ),
    "eq-marginal-density": Equation(
        "chapters/01_generative_model.ipynb",
        "P(x | θ) = Σ_k p_k φ(x | μ_k, Σ_k)",
        ("gmmlib.mixture.log_mixture_density", "gmmlib.mixture.mixture_density"),
    ),
    "eq-complete-log-likelihood": Equation(
        "chapters/02_q_function.ipynb",
        "log P(X, Z | θ) = Σ_i (log p_{z_i} + log φ(x_i | μ_{z_i}, Σ_{z_i}))",
        ("gmmlib.q_function.complete_data_log_likelihood",),
    ),
    "eq-q-definition": Equation(
        "chapters/02_q_function.ipynb",
        "Q(θ, θ⁽ᵗ⁾) = Σ_Z log P(X, Z | θ) P(Z | X, θ⁽ᵗ⁾)",
        ("gmmlib.q_function.q_function_brute_force",),
    ),
    "eq-q-collapsed": Equation(
        "chapters/02_q_function.ipynb",
        "Q(θ, θ⁽ᵗ⁾) = Σ_i Σ_k γ_ik (log p_k + log φ_ik)",
        ("gmmlib.q_function.q_function",),
    ),
    "eq-responsibility": Equation(
        "chapters/03_e_step.ipynb",
        "γ_ik = p_k φ_ik / Σ_j p_j φ_ij",
        ("gmmlib.e_step.responsibilities", "gmmlib.e_step.log_responsibilities"),
    ),
    "eq-log-likelihood": Equation(
        "chapters/03_e_step.ipynb",
        "L(θ) = Σ_i log P(x_i | θ)",
        ("gmmlib.e_step.log_likelihood",),
    ),
    "eq-lagrange-multiplier": Equation(
        "chapters/04_m_step_weights.ipynb",
        "N_k / p_k + λ = 0, λ = −N",
        ("gmmlib.q_function.q_gradient_weights",),
    ),
    "eq-weights-update": Equation(
        "chapters/04_m_step_weights.ipynb",
        "p_k = N_k / N",
        ("gmmlib.m_step.update_weights",),
    ),
    "eq-q-gradient-means": Equation(
        "chapters/05_m_step_means.ipynb",
        "∂Q/∂μ_k = Σ_i γ_ik Σ_k⁻¹ (x_i − μ_k)",
        ("gmmlib.q_function.q_gradient_means",),
    ),
    "eq-means-update": Equation(
        "chapters/05_m_step_means.ipynb",
        "μ_k = Σ_i γ_ik x_i / Σ_i γ_ik",
        ("gmmlib.m_step.update_means",),
    ),
    "eq-q-gradient-covariances": Equation(
        "chapters/06_m_step_covariances.ipynb",
        "∂Q/∂Σ_k = −½ N_k Σ_k⁻¹ + ½ Σ_k⁻¹ S_k Σ_k⁻¹",
        ("gmmlib.q_function.q_gradient_covariances",),
    ),
    "eq-covariances-update": Equation(
        "chapters/06_m_step_covariances.ipynb",
        "Σ_k = Σ_i γ_ik (x_i − μ_k)(x_i − μ_k)ᵀ / Σ_i γ_ik",
        ("gmmlib.m_step.update_covariances",),
    ),
    "eq-covariances-regularised": Equation(
        "chapters/practice/06_singularities.ipynb",
        "Σ_k = Σ_i γ_ik (x_i − μ_k)(x_i − μ_k)ᵀ / N_k + εI (reg_covar)",
        ("gmmlib.m_step.update_covariances",),
    ),
    "eq-covariance-types": Equation(
        "chapters/practice/05_covariance_types.ipynb",
        "full S_k/N_k, diag diag(S_k)/N_k, spherical tr(S_k)/(d N_k), tied Σ_k S_k / N",
        ("gmmlib.m_step.update_covariances",),
    ),
    "eq-bic": Equation(
        "chapters/practice/05_covariance_types.ipynb",
        "BIC = −2 L(θ̂) + p log N",
        ("gmmlib.estimator.GaussianMixture.bic",),
    ),
    "eq-aic": Equation(
        "chapters/practice/05_covariance_types.ipynb",
        "AIC = −2 L(θ̂) + 2p",
        ("gmmlib.estimator.GaussianMixture.aic",),
    ),
    "eq-weighted-log-likelihood": Equation(
        "chapters/practice/09_weighted_data.ipynb",
        "L_w(θ) = Σ_i w_i log P(x_i | θ)",
        ("gmmlib.e_step.log_likelihood",),
    ),
    "eq-weighted-m-step": Equation(
        "chapters/practice/09_weighted_data.ipynb",
        "N_k = Σ_i w_i γ_ik, p_k = N_k / Σ_i w_i, μ_k and Σ_k with w_i γ_ik",
        (
            "gmmlib.m_step.m_step",
            "gmmlib.m_step.update_weights",
            "gmmlib.m_step.update_means",
            "gmmlib.m_step.update_covariances",
        ),
    ),
}
