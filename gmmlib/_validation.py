"""Every check of gmmlib, and every message it raises, in one module.

Each public function of gmmlib is a wrapper that checks its arguments with the
functions here and then calls a private core (``_log_component_densities``,
``_e_step``, ``_m_step``, ``_initial_responsibilities``, ...) whose docstring
says "no argument checking": the cores never validate, they trust these checks
(the pattern of SciPy's ``special/_logsumexp.py``). Every check raises
``ValueError`` with a message that says what was wrong and what to do about it.

Three checks look at the result of a computation rather than at an argument,
because only the computation can tell: a covariance whose Cholesky
factorisation fails (:func:`gmmlib.precision_cholesky`), a component that
collapsed during EM, and a log-likelihood that became NaN. Their messages live
here too, so that the collapse advice is written once.

References
----------
The book, part two, chapter 6, "Singularities: when the likelihood runs off to
infinity" (chapters/practice/06_singularities.ipynb), shows the collapse
messages at work.
"""

from __future__ import annotations

import numbers

import numpy as np

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def check_data(X, *, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """Return ``X`` as a finite float64 array of shape (n_samples, n_features)."""
    X = np.asarray(X)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise ValueError(
            f"{name} must be numeric; got an array of dtype {X.dtype}. "
            "Convert it with np.asarray(X, dtype=float)."
        )
    if X.ndim == 1:
        raise ValueError(
            f"{name} is 1-D (shape {X.shape}) but a 2-D array of shape "
            "(n_samples, n_features) is expected. Use X.reshape(-1, 1) if it holds "
            "one feature, or X.reshape(1, -1) if it is a single sample."
        )
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D, of shape (n_samples, n_features); got shape {X.shape}."
        )
    if np.iscomplexobj(X):
        raise ValueError(f"{name} is complex; a Gaussian mixture needs real data.")
    # float32 input is computed in float64: the responsibilities and the
    # covariance sums lose too much accuracy in single precision. A memmap is left
    # as it is (the EM engine converts it block by block), so a file larger than
    # memory is never loaded whole.
    if not (isinstance(X, np.memmap) and X.dtype in (np.float32, np.float64)):
        X = np.asarray(X, dtype=np.float64)
    if X.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {X.shape}).")
    if X.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {X.shape[0]} sample(s) but at least {min_samples} are needed."
        )
    rows = _nonfinite_rows(X)
    if rows.size:
        shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
        raise ValueError(
            f"{name} contains NaN or infinity in {rows.size} row(s) (row {shown}). "
            "Remove or impute those rows before fitting."
        )
    return X


def _nonfinite_rows(X, block: int = 1 << 16) -> np.ndarray:
    """Indices of the rows holding NaN or inf, checked in blocks (constant extra memory)."""
    bad = [
        start + np.flatnonzero(~np.isfinite(X[start : start + block]).all(axis=1))
        for start in range(0, X.shape[0], block)
    ]
    return np.concatenate(bad) if bad else np.empty(0, dtype=np.intp)


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, requiring ``value >= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}.")
    return int(value)


def check_nonnegative(value, name: str) -> float:
    """Return ``value`` as a float, requiring a finite value >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a non-negative number; got {value!r}.")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value}.")
    return float(value)


def check_covariance_type(covariance_type: str) -> str:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {', '.join(map(repr, COVARIANCE_TYPES))}; "
            f"got {covariance_type!r}."
        )
    return covariance_type


def check_weights(weights, n_components: int | None = None) -> np.ndarray:
    """Mixture weights: shape (K,), non-negative, summing to 1."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1:
        raise ValueError(f"weights must be 1-D of shape (n_components,); got {weights.shape}.")
    if n_components is not None and weights.shape[0] != n_components:
        raise ValueError(
            f"weights has {weights.shape[0]} entries but n_components is {n_components}."
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"weights must be finite and non-negative; got {weights}.")
    total = weights.sum()
    if not np.isclose(total, 1.0, rtol=0, atol=1e-6):
        raise ValueError(
            f"weights must sum to 1 (they are the probabilities P(z = k)); they sum to "
            f"{total:.6g}. Divide them by their sum."
        )
    return weights


def check_means(means, n_components: int | None = None, n_features: int | None = None):
    """Component means: shape (K, d), finite."""
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2:
        raise ValueError(
            f"means must be 2-D of shape (n_components, n_features); got {means.shape}."
        )
    if n_components is not None and means.shape[0] != n_components:
        raise ValueError(f"means has {means.shape[0]} rows but n_components is {n_components}.")
    if n_features is not None and means.shape[1] != n_features:
        raise ValueError(
            f"means has {means.shape[1]} columns but the data has {n_features} features."
        )
    if not np.all(np.isfinite(means)):
        raise ValueError("means contains NaN or infinity.")
    return means


def covariance_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    """The array shape of the covariances for each covariance type (as in scikit-learn)."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def check_covariances(covariances, covariance_type: str, n_components: int, n_features: int):
    """Covariances of the right shape, symmetric and positive definite."""
    check_covariance_type(covariance_type)
    covariances = np.asarray(covariances, dtype=np.float64)
    expected = covariance_shape(covariance_type, n_components, n_features)
    if covariances.shape != expected:
        raise ValueError(
            f"covariances for covariance_type={covariance_type!r} must have shape "
            f"{expected} (n_components={n_components}, n_features={n_features}); "
            f"got {covariances.shape}."
        )
    if not np.all(np.isfinite(covariances)):
        raise ValueError("covariances contains NaN or infinity.")
    if covariance_type in ("diag", "spherical"):
        bad = np.flatnonzero(
            np.any(np.atleast_2d(covariances.reshape(n_components, -1)) <= 0, axis=1)
        )
        if bad.size:
            raise ValueError(
                f"{covariance_type} covariances must be strictly positive; component(s) "
                f"{bad.tolist()} are not."
            )
        return covariances
    stack = covariances[None] if covariance_type == "tied" else covariances
    for k, cov in enumerate(stack):
        where = "the tied covariance" if covariance_type == "tied" else f"covariance {k}"
        if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12):
            raise ValueError(
                f"{where} is not symmetric, so it is not a covariance matrix; "
                "use its symmetric part (S + S.T) / 2 if that is what was meant."
            )
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"{where} is not positive definite. Give a positive-definite matrix, "
                "for example by adding a small multiple of the identity."
            ) from None
    return covariances


def check_covariance_layout(covariances, covariance_type: str) -> np.ndarray:
    """Covariances as float64 in the layout of ``covariance_type``, for any K and d.

    Only the number of dimensions (and, for full and tied, square matrices) is
    checked: what :func:`gmmlib.precision_cholesky` needs before factorising.
    """
    check_covariance_type(covariance_type)
    covariances = np.asarray(covariances, dtype=np.float64)
    ndim, layout = {
        "full": (3, "(n_components, n_features, n_features)"),
        "tied": (2, "(n_features, n_features)"),
        "diag": (2, "(n_components, n_features)"),
        "spherical": (1, "(n_components,)"),
    }[covariance_type]
    square = covariance_type in ("full", "tied")
    if covariances.ndim != ndim or (square and covariances.shape[-1] != covariances.shape[-2]):
        raise ValueError(
            f"covariances for covariance_type={covariance_type!r} must have shape {layout}; "
            f"got {covariances.shape}."
        )
    return covariances


def check_parameters(weights, means, covariances, covariance_type, n_features=None):
    """Validate a full parameter set θ = (p, μ, Σ); return float64 arrays."""
    check_covariance_type(covariance_type)
    means = check_means(means, n_features=n_features)
    n_components, n_features = means.shape
    weights = check_weights(weights, n_components)
    covariances = check_covariances(covariances, covariance_type, n_components, n_features)
    return weights, means, covariances


def check_mean(mean, n_features: int) -> np.ndarray:
    """One mean vector of shape (n_features,), finite."""
    mean = np.asarray(mean, dtype=np.float64)
    if mean.shape != (n_features,):
        raise ValueError(f"mean must have shape ({n_features},) to match X; got {mean.shape}.")
    return check_means(mean[None], n_features=n_features)[0]


def check_same_components(n_old: int, n_new: int) -> None:
    """θ⁽ᵗ⁾ and θ have the same number of components."""
    if n_old != n_new:
        raise ValueError(
            f"old_means has {n_old} components but means has {n_new}; the current and the "
            "new parameters must describe the same components."
        )


def check_resp(resp, n_samples: int | None = None, n_components: int | None = None):
    """Responsibilities γ: shape (n_samples, n_components), finite, non-negative."""
    resp = np.asarray(resp, dtype=np.float64)
    if resp.ndim != 2:
        raise ValueError(f"resp must be 2-D of shape (n_samples, n_components); got {resp.shape}.")
    if n_samples is not None and resp.shape[0] != n_samples:
        raise ValueError(f"resp has {resp.shape[0]} rows but X has {n_samples} samples.")
    if not np.all(np.isfinite(resp)) or np.any(resp < 0):
        raise ValueError("resp must be finite and non-negative (probabilities γ_ik).")
    if n_components is not None and resp.shape[1] != n_components:
        raise ValueError(
            f"resp has {resp.shape[1]} columns but there are {n_components} components."
        )
    return resp


def check_labels(labels, n_samples: int, n_components: int) -> np.ndarray:
    """Hard assignments z_i: integers of shape (n_samples,) in 0..n_components - 1."""
    labels = np.asarray(labels)
    if labels.shape != (n_samples,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({n_samples},); got {labels.shape}.")
    if labels.min() < 0 or labels.max() >= n_components:
        raise ValueError(f"labels must lie in 0..{n_components - 1}.")
    return labels


def check_gradient_arguments(X, resp, means, covariances):
    """X, γ, μ and full Σ for a gradient of Q: shapes that agree, Σ_k positive definite."""
    X = check_data(X)
    resp = check_resp(resp, X.shape[0])
    means = check_means(means, resp.shape[1], X.shape[1])
    covariances = check_covariances(covariances, "full", resp.shape[1], X.shape[1])
    return X, resp, means, covariances


def check_positive_weights(weights, n_components: int) -> np.ndarray:
    """Weights at which ∂Q/∂p_k = N_k / p_k is defined: one per component, all > 0."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_components,) or not np.all(weights > 0):
        raise ValueError(
            f"weights must be {n_components} strictly positive numbers, one per column of "
            f"resp; got shape {weights.shape}."
        )
    return weights


def check_brute_force_size(n_components: int, n_samples: int, maximum: int) -> None:
    """At most ``maximum`` assignments Z for the sum over all K^N of them."""
    if n_components**n_samples > maximum:
        raise ValueError(
            f"{n_components}**{n_samples} assignments is too many to enumerate; the brute "
            "force is a check for tiny data (use q_function for real data)."
        )


def check_enough_samples(n_components: int, n_samples: int, *, weighted: bool = False) -> None:
    """At least one sample (with positive weight, if ``weighted``) per component."""
    if n_samples < n_components:
        which = " with positive weight" if weighted else ""
        raise ValueError(
            f"n_components={n_components} needs at least {n_components} samples{which}; "
            f"got {n_samples}. Use fewer components or more data."
        )


# -- the estimator's own arguments --------------------------------------------------------
#: The starting methods of :func:`gmmlib.initial_responsibilities` (``init_params``).
INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


def check_init_params(init_params: str) -> str:
    """One of ``INIT_METHODS``."""
    if init_params not in INIT_METHODS:
        raise ValueError(
            f"init_params must be one of {', '.join(map(repr, INIT_METHODS))}; got {init_params!r}."
        )
    return init_params


def check_verbose(verbose) -> int:
    """Any integer (a bool counts as one)."""
    if not isinstance(verbose, numbers.Integral):
        raise ValueError(f"verbose must be an integer; got {verbose!r}.")
    return verbose


def check_param_names(params, valid) -> None:
    """Every name in ``params`` is one of the estimator's parameters ``valid``."""
    for name in params:
        if name not in valid:
            raise ValueError(f"Unknown parameter {name!r}; valid ones are {sorted(valid)}.")


class NotFittedError(ValueError, AttributeError):
    """The model was used before ``fit`` (a ValueError and AttributeError, as in scikit-learn)."""


def check_is_fitted(estimator) -> None:
    """Raise :class:`gmmlib.NotFittedError` unless ``fit`` has set ``means_``."""
    if not hasattr(estimator, "means_"):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate data before using this method."
        )


def check_n_features(X, n_features_in: int, estimator: str = "GaussianMixture") -> None:
    """New data have the columns the model was fitted with."""
    if X.shape[1] != n_features_in:
        raise ValueError(
            f"X has {X.shape[1]} features, but this {estimator} was fitted with "
            f"{n_features_in} features; pass data with the same columns."
        )


def check_warm_start(n_features_fitted: int, n_features: int) -> None:
    """A warm start continues on data with the columns of the previous fit."""
    if n_features_fitted != n_features:
        raise ValueError(
            f"warm_start: the model was fitted with {n_features_fitted} features and X "
            f"has {n_features}; set warm_start=False to fit afresh."
        )


# -- results: a covariance that collapsed, a likelihood that is no longer finite ----------
COLLAPSE_HINT = (
    "This happens when a component collapses onto a single point or a lower-dimensional "
    "set (too few samples in it, or duplicated samples). Increase reg_covar (e.g. 1e-6 "
    "or more, relative to the scale of the data), use fewer components, or standardise "
    "the data."
)

#: A variance at or below (this × |mean|)² is rounding noise, not spread: the
#: component sits on a single value of that feature (its likelihood → +∞).
_COLLAPSE_RTOL = 1e-13
#: A correlation matrix whose smallest eigenvalue is at or below this is singular
#: up to rounding: the component lies on a line or plane (likelihood → +∞).
_COLLAPSE_CORR_EIG = 1e-12


def not_positive_definite(k: int, covariance_type: str) -> ValueError:
    """The error for covariance ``k`` (or the tied one) whose Cholesky factorisation failed.

    Returned, not raised: the core that factorises raises it, since only the
    factorisation can tell.
    """
    who = "The tied covariance" if covariance_type == "tied" else f"Component {k}"
    return ValueError(
        f"{who} has a covariance matrix that is not positive definite. " + COLLAPSE_HINT
    )


def check_positive_variances(covariances: np.ndarray) -> np.ndarray:
    """Diag or spherical variances that are finite and strictly positive."""
    if np.any(covariances <= 0) or not np.all(np.isfinite(covariances)):
        bad = np.flatnonzero(np.any(~(covariances.reshape(covariances.shape[0], -1) > 0), axis=1))
        raise ValueError(
            f"Component(s) {bad.tolist()} have a zero or negative variance. " + COLLAPSE_HINT
        )
    return covariances


def check_not_collapsed(means, covariances, covariance_type: str = "full") -> None:
    r"""Raise if a fitted component has collapsed onto a point, a line or a plane.

    When a component's samples all share one value of a feature, its variance in
    that feature should be 0; in floating point it comes out as rounding noise of
    order :math:`(\varepsilon |\mu|)^2` (e.g. 1e-31), a positive-definite matrix
    whose likelihood is meaninglessly large. A variance
    :math:`\sigma^2_{kj} \le (10^{-13}\,|\mu_{kj}|)^2` is treated as that collapse,
    and so (full and tied) is a correlation matrix whose smallest eigenvalue is
    at most :math:`10^{-12}`: the samples lie on a line or plane.

    Raises
    ------
    ValueError
        Naming the component(s) and suggesting ``reg_covar``.
    """
    mag = np.abs(np.asarray(means, dtype=np.float64))
    cov = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        var = np.diagonal(cov, axis1=1, axis2=2)
    elif covariance_type == "tied":
        var, mag = np.diag(cov)[None], mag.max(axis=0, keepdims=True)
    elif covariance_type == "diag":
        var = cov
    else:
        var, mag = cov[:, None], mag.max(axis=1, keepdims=True)
    bad = np.any(var <= (_COLLAPSE_RTOL * mag) ** 2, axis=1)
    if covariance_type in ("full", "tied"):
        # A component squeezed onto a line or plane has normal-sized variances but a
        # correlation matrix that is singular up to rounding; the scale-free test
        # is its smallest eigenvalue.
        stack = cov[None] if covariance_type == "tied" else cov
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = 1.0 / np.sqrt(np.diagonal(stack, axis1=1, axis2=2))
            corr = stack * scale[:, :, None] * scale[:, None, :]
        flat = ~np.all(np.isfinite(corr), axis=(1, 2))
        flat[~flat] = np.linalg.eigvalsh(corr[~flat])[:, 0] <= _COLLAPSE_CORR_EIG
        bad |= flat
    bad = np.flatnonzero(bad)
    if bad.size:
        if covariance_type == "tied":
            who = "The tied covariance has"
        else:
            who = f"Component(s) {bad.tolist()} have"
        raise ValueError(
            f"{who} collapsed: its covariance is singular up to rounding (a zero variance, "
            "or all its samples on a line or plane), so the likelihood → +inf. " + COLLAPSE_HINT
        )


def check_finite_log_likelihood(history) -> np.ndarray:
    """The log-likelihood of every EM iteration is finite."""
    history = np.asarray(history)
    if not np.all(np.isfinite(history)):
        raise ValueError(
            "The log-likelihood became NaN or infinite during EM. "
            "Increase reg_covar, standardise the data, or use fewer components."
        )
    return history


def check_optional_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """``check_sample_weight``, but ``None`` stays ``None`` (no array of ones is made)."""
    return None if sample_weight is None else check_sample_weight(sample_weight, n_samples)


def check_sample_weight(sample_weight, n_samples: int) -> np.ndarray:
    """Per-sample weights: shape (n_samples,), finite, non-negative, not all zero."""
    if sample_weight is None:
        return np.ones(n_samples)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per sample; got {w.shape}."
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        bad = np.flatnonzero(~(np.isfinite(w) & (w >= 0)))
        raise ValueError(
            f"sample_weight must be finite and non-negative; sample(s) {bad[:5].tolist()} are not."
        )
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight.")
    return w


BACKENDS = ("auto", "numba", "numpy")


def check_backend(backend: str) -> str:
    """The block kernel of :class:`gmmlib.EMEngine`: "auto", "numba" or "numpy".

    Whether Numba is installed for "numba" is the engine's question (it says what to
    install); this checks the spelling.
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(
            f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}."
        )
    return backend


def check_rows(X):
    """Data that :class:`gmmlib.EMEngine` reads block by block: 2-D, at least one row.

    An array with a 2-D shape (an ndarray, a ``numpy.memmap``, a Dask array) is
    returned as it is, never copied or read; anything else goes through
    ``np.asarray(X, dtype=np.float64)``.
    """
    if getattr(X, "ndim", None) != 2:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(
                f"X must be 2-D, of shape (n_samples, n_features); got shape {X.shape}."
            )
    if X.shape[0] < 1:
        raise ValueError("X has no rows: EM needs at least one sample.")
    return X
