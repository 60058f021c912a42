"""Input checks for gmmlib's public functions.

Every check raises ``ValueError`` with a message that says what was wrong and
what to do about it. The numerical cores never validate: they trust these.
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
