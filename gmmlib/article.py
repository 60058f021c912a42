r"""The worked example of the source article: three 2-D Gaussians, 2000 samples.

The article prints :math:`\Sigma_2 = [[3, 2], [1, 2]]`, which is not symmetric
and so is not a covariance matrix. The book uses its symmetric part
:math:`[[3, 1.5], [1.5, 2]]` (the nearest symmetric matrix, positive definite
with eigenvalues ≈ 4.1 and 0.9) and keeps the printed matrix as
:data:`SIGMA2_AS_PRINTED` to show what NumPy does with it.

References
----------
The book, chapter 1, "The generative model" (chapters/01_generative_model.ipynb),
and the appendix "Errata: the slips of the source article"
(chapters/appendix/errata.ipynb).
"""

from __future__ import annotations

import numpy as np

from ._mixture import sample_mixture

#: Mixture weights p = (0.3, 0.6, 0.1).
WEIGHTS = np.array([0.3, 0.6, 0.1])
#: Component means μ₁, μ₂, μ₃.
MEANS = np.array([[2.5, 8.0], [8.0, 2.5], [10.0, 10.0]])
#: Σ₂ exactly as the article prints it (not symmetric).
SIGMA2_AS_PRINTED = np.array([[3.0, 2.0], [1.0, 2.0]])
#: Covariances, with Σ₂ replaced by the symmetric part of the printed matrix.
COVARIANCES = np.array(
    [
        [[2.0, 1.0], [1.0, 2.0]],
        (SIGMA2_AS_PRINTED + SIGMA2_AS_PRINTED.T) / 2,
        [[2.0, 0.0], [0.0, 2.0]],
    ]
)
#: Number of samples the article draws.
N_SAMPLES = 2000
#: The seed the book uses for the article's data.
SEED = 2019

#: The numbers the article's own code printed after 100 iterations (its data,
#: drawn with the asymmetric Σ₂, are not published, so these are for comparison).
REPORTED_WEIGHTS = np.array([0.298, 0.598, 0.104])
REPORTED_MEANS = np.array([[2.49, 8.22], [7.96, 2.46], [10.04, 9.96]])


def article_parameters():
    """(weights, means, covariances) of the article's example, as fresh copies.

    Returns
    -------
    weights : ndarray of shape (3,)
        :data:`~gmmlib.article.WEIGHTS`.
    means : ndarray of shape (3, 2)
        :data:`~gmmlib.article.MEANS`.
    covariances : ndarray of shape (3, 2, 2)
        :data:`~gmmlib.article.COVARIANCES`, with the symmetric Σ₂.

    Examples
    --------
    >>> import gmmlib
    >>> weights, means, covariances = gmmlib.article_parameters()
    >>> print(weights)
    [0.3 0.6 0.1]
    >>> print(covariances[1])
    [[3.  1.5]
     [1.5 2. ]]
    """
    return WEIGHTS.copy(), MEANS.copy(), COVARIANCES.copy()


def article_samples(n_samples: int = N_SAMPLES, random_state=SEED):
    """The article's data set, reproducibly: ``(X, labels)`` of 2000 samples by default.

    Draws from :func:`gmmlib.article_parameters` with :func:`gmmlib.sample_mixture`;
    the same ``random_state`` always gives the same samples.

    Parameters
    ----------
    n_samples : int, default 2000
    random_state : None, int or numpy.random.Generator, default 2019
        The book's seed (:data:`~gmmlib.article.SEED`) by default.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
    labels : ndarray of shape (n_samples,)
        The component (0, 1 or 2) each sample was drawn from.

    Examples
    --------
    >>> import numpy as np
    >>> import gmmlib
    >>> X, labels = gmmlib.article_samples()
    >>> X.shape
    (2000, 2)
    >>> print(np.round(np.bincount(labels) / len(labels), 1))
    [0.3 0.6 0.1]
    """
    weights, means, covariances = article_parameters()
    return sample_mixture(n_samples, weights, means, covariances, "full", random_state)


#: The weights of the book's "current guess" θ⁽ᵗ⁾, the one imperfect set of parameters
#: that every chapter saying "the current guess" starts from (equal weights, means moved
#: by about 1.5 from the truth, covariances of the wrong shape), as EM might hold it
#: early on. :func:`~gmmlib.article.current_guess` returns copies of all three.
CURRENT_WEIGHTS = np.full(3, 1 / 3)
#: The means of the current guess.
CURRENT_MEANS = MEANS + np.array([[1.0, -1.0], [-1.5, 1.0], [-1.0, -1.5]])
#: The covariances of the current guess.
CURRENT_COVARIANCES = np.array(
    [[[1.5, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 2.0]], [[2.5, 0.0], [0.0, 1.2]]]
)


def current_guess():
    """The book's current guess θ⁽ᵗ⁾ = (weights, means, covariances), as fresh copies.

    Chapters 2 to 6 and the errata take one E-step and one M-step from this guess, so
    that L(θ⁽ᵗ⁾), Q(θ⁽ᵗ⁾, θ⁽ᵗ⁾) and the responsibilities are the same numbers in every
    chapter.

    Returns
    -------
    weights : ndarray of shape (3,)
        Equal weights, 1/3 each.
    means : ndarray of shape (3, 2)
        :data:`~gmmlib.article.MEANS` moved by (1, −1), (−1.5, 1) and (−1, −1.5).
    covariances : ndarray of shape (3, 2, 2)

    Examples
    --------
    >>> import gmmlib
    >>> from gmmlib.article import current_guess
    >>> weights, means, covariances = current_guess()
    >>> X, _ = gmmlib.article_samples()
    >>> print(f"{gmmlib.log_likelihood(X, weights, means, covariances):.2f}")
    -12324.95
    """
    return CURRENT_WEIGHTS.copy(), CURRENT_MEANS.copy(), CURRENT_COVARIANCES.copy()
