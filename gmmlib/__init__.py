"""gmmlib: Gaussian mixtures fitted by EM, one function per formula of the book.

The modules follow the derivation: :mod:`gmmlib.gaussian` and
:mod:`gmmlib.mixture` (chapter 1), :mod:`gmmlib.q_function` (chapter 2),
:mod:`gmmlib.e_step` (chapter 3), :mod:`gmmlib.m_step` (chapters 4–6) and
:mod:`gmmlib.estimator` (chapter 7). :mod:`gmmlib.equations` lists which
function implements which equation of the book.
"""

from .article import article_parameters, article_samples
from .e_step import log_likelihood, log_responsibilities, responsibilities
from .equations import EQUATIONS
from .estimator import ConvergenceWarning, GaussianMixture, NotFittedError
from .gaussian import (
    gaussian_density,
    log_component_densities,
    log_gaussian_density,
    precision_cholesky,
)
from .init import initial_responsibilities
from .m_step import m_step, update_covariances, update_means, update_weights
from .mixture import log_mixture_density, mixture_density, sample_mixture
from .q_function import (
    complete_data_log_likelihood,
    q_function,
    q_function_brute_force,
    q_gradient_covariances,
    q_gradient_means,
    q_gradient_weights,
)

__version__ = "0.1.0"

__all__ = [
    "EQUATIONS",
    "ConvergenceWarning",
    "GaussianMixture",
    "NotFittedError",
    "article_parameters",
    "article_samples",
    "complete_data_log_likelihood",
    "gaussian_density",
    "initial_responsibilities",
    "log_component_densities",
    "log_gaussian_density",
    "log_likelihood",
    "log_mixture_density",
    "log_responsibilities",
    "m_step",
    "mixture_density",
    "precision_cholesky",
    "q_function",
    "q_function_brute_force",
    "q_gradient_covariances",
    "q_gradient_means",
    "q_gradient_weights",
    "responsibilities",
    "sample_mixture",
    "update_covariances",
    "update_means",
    "update_weights",
]
