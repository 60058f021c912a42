"""gmmlib: Gaussian mixtures fitted by EM, one function per formula of the book.

Every public name lives in this one flat namespace (``gmmlib.responsibilities``,
``gmmlib.GaussianMixture``, ...), as in ``sklearn.mixture`` or ``scipy.special``.
The code sits in private modules that follow the derivation: ``_gaussian`` and
``_mixture`` (chapter 1, the generative model), ``_q_function`` (chapter 2),
``_e_step`` (chapter 3), ``_m_step`` (chapters 4 to 6), ``_init`` and
``_estimator`` (chapter 7), the fast engine behind the estimator
(``_engine``, ``_blocks``, ``_kernels``, ``_dask``; the chapter "Making EM fast"),
and EM with missing values (``_missing``, with the estimator's fast path in
``_missing_engine``; part three).
Two public modules hold data rather than code: :mod:`gmmlib.article`, the
source article's worked example, and :mod:`gmmlib.equations`, which pairs each
key equation of the book with the functions implementing it.
"""

from ._e_step import log_likelihood, log_responsibilities, responsibilities
from ._engine import EMEngine
from ._estimator import ConvergenceWarning, GaussianMixture, NotFittedError
from ._gaussian import (
    gaussian_density,
    log_component_densities,
    log_gaussian_density,
    precision_cholesky,
)
from ._init import initial_responsibilities
from ._m_step import m_step, update_covariances, update_means, update_weights
from ._missing import (
    ConditionalMoments,
    ExpectedStatistics,
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
from .article import article_parameters, article_samples
from .equations import EQUATIONS as _EQUATIONS

#: The book's key equations by label (``"eq-responsibility"``, ...). Each value is
#: an :class:`gmmlib.equations.Equation` that names the chapter deriving it, a
#: one-line title, and the functions implementing it.
EQUATIONS = _EQUATIONS

__version__ = "0.1.0"

__all__ = [
    "EQUATIONS",
    "ConditionalMoments",
    "ConvergenceWarning",
    "EMEngine",
    "ExpectedStatistics",
    "GaussianMixture",
    "NotFittedError",
    "article_parameters",
    "article_samples",
    "complete_data_log_likelihood",
    "conditional_moments",
    "expected_statistics",
    "gaussian_density",
    "initial_responsibilities",
    "log_component_densities",
    "log_gaussian_density",
    "log_likelihood",
    "log_mixture_density",
    "log_responsibilities",
    "m_step",
    "m_step_missing",
    "mixture_density",
    "observed_log_density",
    "observed_log_likelihood",
    "observed_responsibilities",
    "precision_cholesky",
    "q_function",
    "q_function_brute_force",
    "q_function_missing",
    "q_gradient_covariances",
    "q_gradient_means",
    "q_gradient_weights",
    "responsibilities",
    "sample_mixture",
    "update_covariances",
    "update_means",
    "update_weights",
]
