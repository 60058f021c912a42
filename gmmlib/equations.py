"""The one list of the book's key equations and the gmmlib functions implementing them.

Each entry maps an equation label (a labelled display equation in the book,
``$$ … $$ (eq-…)``) to the chapter that derives it and the functions whose
docstrings name it. The functions are held as objects, not as dotted strings, so
a renamed or removed function fails at import. The test
``tests/book/test_pairing.py`` checks the pairing both ways: every label here is
defined in its chapter and named by each of its functions' docstrings, and every
``eq-`` label a docstring names is defined somewhere in the book.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ._e_step import log_likelihood, log_responsibilities, responsibilities
from ._estimator import GaussianMixture
from ._gaussian import gaussian_density, log_component_densities, log_gaussian_density
from ._m_step import m_step, update_covariances, update_means, update_weights
from ._missing import (
    conditional_moments,
    expected_statistics,
    m_step_missing,
    observed_log_density,
    observed_log_likelihood,
    observed_responsibilities,
    q_function_missing,
)
from ._mixture import log_mixture_density, mixture_density, sample_mixture
from ._q_function import (
    complete_data_log_likelihood,
    q_function,
    q_function_brute_force,
    q_gradient_covariances,
    q_gradient_means,
    q_gradient_weights,
)


class Equation(NamedTuple):
    """A key equation: where the book derives it and what computes it."""

    chapter: str
    """The notebook, relative to the book's root, that defines the label."""
    title: str
    """The equation in one line of plain text."""
    functions: tuple[Callable, ...]
    """The gmmlib functions (or methods) whose docstrings name the label."""

    @property
    def names(self) -> tuple[str, ...]:
        """The functions' public names, ``gmmlib.X`` (or ``gmmlib.Class.method``)."""
        return tuple(f"gmmlib.{f.__qualname__}" for f in self.functions)


EQUATIONS: dict[str, Equation] = {
    "eq-generative-model": Equation(
        "chapters/01_generative_model.ipynb",
        "z ~ Categorical(p), x | z = k ~ N(μ_k, Σ_k)",
        (sample_mixture,),
    ),
    "eq-normal-density": Equation(
        "chapters/01_generative_model.ipynb",
        "the d-variate normal density φ(x | μ, Σ)",
        (
            log_gaussian_density,
            gaussian_density,
            log_component_densities,
        ),
    ),
    "eq-marginal-density": Equation(
        "chapters/01_generative_model.ipynb",
        "P(x | θ) = Σ_k p_k φ(x | μ_k, Σ_k)",
        (log_mixture_density, mixture_density),
    ),
    "eq-complete-log-likelihood": Equation(
        "chapters/02_q_function.ipynb",
        "log P(X, Z | θ) = Σ_i (log p_{z_i} + log φ(x_i | μ_{z_i}, Σ_{z_i}))",
        (complete_data_log_likelihood,),
    ),
    "eq-q-definition": Equation(
        "chapters/02_q_function.ipynb",
        "Q(θ, θ⁽ᵗ⁾) = Σ_Z log P(X, Z | θ) P(Z | X, θ⁽ᵗ⁾)",
        (q_function_brute_force,),
    ),
    "eq-q-collapsed": Equation(
        "chapters/02_q_function.ipynb",
        "Q(θ, θ⁽ᵗ⁾) = Σ_i Σ_k γ_ik (log p_k + log φ_ik)",
        (q_function,),
    ),
    "eq-responsibility": Equation(
        "chapters/03_e_step.ipynb",
        "γ_ik = p_k φ_ik / Σ_j p_j φ_ij",
        (responsibilities, log_responsibilities),
    ),
    "eq-log-likelihood": Equation(
        "chapters/03_e_step.ipynb",
        "L(θ) = Σ_i log P(x_i | θ)",
        (log_likelihood,),
    ),
    "eq-lagrange-multiplier": Equation(
        "chapters/04_m_step_weights.ipynb",
        "N_k / p_k + λ = 0, λ = −N",
        (q_gradient_weights,),
    ),
    "eq-weights-update": Equation(
        "chapters/04_m_step_weights.ipynb",
        "p_k = N_k / N",
        (update_weights,),
    ),
    "eq-q-gradient-means": Equation(
        "chapters/05_m_step_means.ipynb",
        "∂Q/∂μ_k = Σ_i γ_ik Σ_k⁻¹ (x_i − μ_k)",
        (q_gradient_means,),
    ),
    "eq-means-update": Equation(
        "chapters/05_m_step_means.ipynb",
        "μ_k = Σ_i γ_ik x_i / Σ_i γ_ik",
        (update_means,),
    ),
    "eq-q-gradient-covariances": Equation(
        "chapters/06_m_step_covariances.ipynb",
        "∂Q/∂Σ_k = −½ N_k Σ_k⁻¹ + ½ Σ_k⁻¹ S_k Σ_k⁻¹",
        (q_gradient_covariances,),
    ),
    "eq-covariances-update": Equation(
        "chapters/06_m_step_covariances.ipynb",
        "Σ_k = Σ_i γ_ik (x_i − μ_k)(x_i − μ_k)ᵀ / Σ_i γ_ik",
        (update_covariances,),
    ),
    "eq-covariances-regularised": Equation(
        "chapters/practice/06_singularities.ipynb",
        "Σ_k = Σ_i γ_ik (x_i − μ_k)(x_i − μ_k)ᵀ / N_k + εI (reg_covar)",
        (update_covariances,),
    ),
    "eq-covariance-types": Equation(
        "chapters/practice/05_covariance_types.ipynb",
        "full S_k/N_k, diag diag(S_k)/N_k, spherical tr(S_k)/(d N_k), tied Σ_k S_k / N",
        (update_covariances,),
    ),
    "eq-bic": Equation(
        "chapters/practice/05_covariance_types.ipynb",
        "BIC = −2 L(θ̂) + p log N",
        (GaussianMixture.bic,),
    ),
    "eq-aic": Equation(
        "chapters/practice/05_covariance_types.ipynb",
        "AIC = −2 L(θ̂) + 2p",
        (GaussianMixture.aic,),
    ),
    "eq-weighted-log-likelihood": Equation(
        "chapters/practice/09_weighted_data.ipynb",
        "L_w(θ) = Σ_i w_i log P(x_i | θ)",
        (log_likelihood,),
    ),
    "eq-weighted-m-step": Equation(
        "chapters/practice/09_weighted_data.ipynb",
        "N_k = Σ_i w_i γ_ik, p_k = N_k / Σ_i w_i, μ_k and Σ_k with w_i γ_ik",
        (
            m_step,
            update_weights,
            update_means,
            update_covariances,
        ),
    ),
    "eq-observed-marginal": Equation(
        "chapters/missing/01_model.ipynb",
        "x_o ~ N(μ_o, Σ_oo): log φ(x_o | μ_o, Σ_oo), with the sub-vector and the sub-block",
        (observed_log_density,),
    ),
    "eq-observed-log-likelihood": Equation(
        "chapters/missing/01_model.ipynb",
        "L_obs(θ) = Σ_i w_i log Σ_k p_k φ(x_i,o | μ_k,o, Σ_k,oo)",
        (observed_log_likelihood,),
    ),
    "eq-observed-responsibility": Equation(
        "chapters/missing/02_e_step.ipynb",
        "γ_ik = p_k φ(x_i,o | μ_k,o, Σ_k,oo) / Σ_j p_j φ(x_i,o | μ_j,o, Σ_j,oo)",
        (observed_responsibilities,),
    ),
    "eq-conditional-gaussian": Equation(
        "chapters/missing/02_e_step.ipynb",
        "x_m | x_o ~ N(μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o), Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om)",
        (conditional_moments,),
    ),
    "eq-expected-statistics": Equation(
        "chapters/missing/02_e_step.ipynb",
        "N_k = Σ_i w_i γ_ik, Σ_i w_i γ_ik x̂_ik, Σ_i w_i γ_ik (x̂_ik x̂_ikᵀ + C_ik)",
        (expected_statistics,),
    ),
    "eq-q-missing": Equation(
        "chapters/missing/03_m_step.ipynb",
        "Q = Σ_i Σ_k γ_ik [log p_k − ½ log|2πΣ_k| − ½ tr(Σ_k⁻¹((x̂_ik − μ_k)(x̂_ik − μ_k)ᵀ + C_ik))]",
        (q_function_missing,),
    ),
    "eq-missing-m-step": Equation(
        "chapters/missing/03_m_step.ipynb",
        "p_k = N_k / Σ w, μ_k = Σ w γ x̂ / N_k, Σ_k = Σ w γ [(x̂ − μ_k)(x̂ − μ_k)ᵀ + C] / N_k",
        (m_step_missing,),
    ),
}
