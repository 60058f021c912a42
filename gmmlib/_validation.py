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
The book, part two, "Singularities: when the likelihood runs off to
infinity" (chapters/practice/06_singularities.ipynb), shows the collapse
messages at work.
"""

from __future__ import annotations

import importlib
import numbers
import sys
import threading
import warnings

import numpy as np

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


class InvalidTypeError(ValueError, TypeError):
    """An argument of the wrong type: a ValueError, as every gmmlib check raises, and a
    TypeError, as Python and scikit-learn (``InvalidParameterError``) raise for it."""


def check_dense(X, name: str = "X") -> None:
    """``X`` is not a SciPy sparse matrix or array (a mixture's covariances are dense)."""
    if type(X).__module__.startswith("scipy.sparse"):
        from scipy import sparse

        if sparse.issparse(X):
            raise InvalidTypeError(
                f"Sparse data was passed for {name}, but dense data is required: the "
                "covariances of a Gaussian mixture are dense whatever the data. Convert it "
                f"with {name}.toarray() (n_samples x n_features x 8 bytes), or reduce its "
                "dimension first (e.g. sklearn.decomposition.TruncatedSVD)."
            )


def _object_to_float(X: np.ndarray, name: str) -> np.ndarray:
    """An object array of numbers as float64 (as scikit-learn converts it)."""
    try:
        return X.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidTypeError(
            f"{name} has dtype object and an entry that is not a number ({err}). Give "
            "numbers only, e.g. encode categorical columns as numbers first."
        ) from None


def check_data(
    X,
    *,
    name: str = "X",
    min_samples: int = 1,
    lazy: bool = False,
    allow_nan: bool = False,
    check_values: bool = True,
) -> np.ndarray:
    """Return ``X`` as a finite float64 array of shape (n_samples, n_features).

    A ``numpy.memmap`` of float32 or float64 is returned as it is, checked block by block;
    a Dask array stays a Dask array (of float32 or float64), checked without being loaded
    (``lazy``: its values are checked chunk by chunk when it is computed, not now).
    With ``allow_nan``, NaN entries (missing values) are kept and only infinity is refused.
    With ``check_values=False`` (an ndarray or memmap) the values are not looked at: the
    caller promises to call :func:`check_finite` before it uses any result computed
    from a non-finite entry (the prediction kernels find such rows on their own).
    """
    check_dense(X, name)
    if is_dask_array(X):
        return _check_dask_data(X, name, min_samples, lazy, allow_nan)
    # np.asarray turns a memmap into a plain view of it: keep the memmap itself (below)
    mapped = X if isinstance(X, np.memmap) and X.dtype in (np.float32, np.float64) else None
    X = np.asarray(X)
    if X.dtype == object:
        X = _object_to_float(X, name)
    _check_kind(X, name)
    # float32 input is computed in float64: the responsibilities and the
    # covariance sums lose too much accuracy in single precision. A memmap is left
    # as it is (the EM engine converts it block by block), so a file larger than
    # memory is never loaded whole.
    X = np.asarray(X, dtype=np.float64) if mapped is None else mapped
    _check_size(X, name, min_samples)
    if check_values:
        check_finite(X, name, allow_nan)
    return X


def check_finite(X, name: str = "X", allow_nan: bool = False) -> None:
    """Raise the error of :func:`check_data` if ``X`` (checked otherwise) holds NaN or
    infinity (only infinity with ``allow_nan``): a block of rows at a time."""
    if allow_nan:
        _refuse_infinite(_nonfinite_rows(X, finite=np.isinf), name)
    else:
        _refuse_nonfinite(_nonfinite_rows(X), name)


def is_dask_array(X) -> bool:
    """Whether ``X`` is a Dask array, without importing Dask (its type comes from dask)."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "map_blocks")


def _check_dask_data(X, name: str, min_samples: int, lazy: bool, allow_nan: bool = False):
    """A Dask array checked lazily: its dtype and shape at once, finiteness by one streamed
    reduction over its chunks (only a count, then the first few bad rows, travel back).

    Returned as a Dask array of float32 or float64 (other dtypes converted chunk by chunk).
    """
    _check_kind(X, name)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if any(np.isnan(n) for n in X.shape):
        raise ValueError(
            f"{name} is a Dask array of unknown chunk sizes (shape {X.shape}). Compute "
            f"them first: {name}.compute_chunk_sizes()."
        )
    _check_size(X, name, min_samples)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})  # chunks of whole rows
    if lazy:
        check = _check_no_inf_chunk if allow_nan else _check_finite_chunk
        return X.map_blocks(check, dtype=X.dtype)
    bad = np.isinf(X).any(axis=1) if allow_nan else ~np.isfinite(X).all(axis=1)
    if int(bad.sum().compute()):
        rows = np.flatnonzero(bad.compute())  # one bool per row: n_samples bytes
        (_refuse_infinite if allow_nan else _refuse_nonfinite)(rows, name)
    return X


def _check_finite_chunk(x, block_info=None):
    """A Dask chunk of whole rows, returned as it is once found finite (rows numbered in
    the whole array)."""
    start = block_info[0]["array-location"][0][0] if block_info else 0
    _refuse_nonfinite(start + _nonfinite_rows(x), "X")
    return x


def _check_no_inf_chunk(x, block_info=None):
    """As ``_check_finite_chunk``, NaN allowed (missing values): infinity only is refused."""
    start = block_info[0]["array-location"][0][0] if block_info else 0
    _refuse_infinite(start + _nonfinite_rows(x, finite=np.isinf), "X")
    return x


def _check_kind(X, name: str) -> None:
    """Numeric, real, 2-D (from the dtype and ndim alone: nothing is read)."""
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise ValueError(
            f"{name} must be numeric; got an array of dtype {X.dtype}. "
            "Convert it with np.asarray(X, dtype=float)."
        )
    if X.ndim == 1:
        raise ValueError(
            f"{name} is 1-D (shape {X.shape}) but a 2-D array of shape "
            "(n_samples, n_features) is expected. Reshape your data: X.reshape(-1, 1) if "
            "it holds one feature, or X.reshape(1, -1) if it is a single sample."
        )
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D, of shape (n_samples, n_features); got shape {X.shape}."
        )
    if np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(
            f"Complex data not supported: {name} is complex, and a Gaussian mixture "
            "needs real data."
        )


def _check_size(X, name: str, min_samples: int) -> None:
    if X.shape[1] < 1:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if X.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {X.shape[0]} sample(s) but at least {min_samples} are needed."
        )


def _shown_rows(rows) -> str:
    return ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")


def _refuse_nonfinite(rows, name: str) -> None:
    if rows.size:
        raise ValueError(
            f"{name} contains NaN or infinity in {rows.size} row(s) (row {_shown_rows(rows)}). "
            "Remove or impute those rows. If NaN marks missing values, "
            'GaussianMixture(missing="em") fits the data as they are, by EM over the '
            "missing entries (and gmmlib's observed_* functions take NaN too)."
        )


def _refuse_infinite(rows, name: str) -> None:
    if rows.size:
        raise ValueError(
            f"{name} contains infinity in {rows.size} row(s) (row {_shown_rows(rows)}). "
            "NaN marks a missing entry, but an infinite value is not missing: replace it "
            "(by NaN if it stands for an unknown value) or remove those rows."
        )


def _nonfinite_rows(X, block: int = 1 << 16, finite=None) -> np.ndarray:
    """Indices of the rows holding NaN or inf, checked in blocks (constant extra memory).

    ``finite=np.isinf`` gives the rows holding inf instead (NaN allowed).
    """

    def bad_entries(x):
        return ~np.isfinite(x) if finite is None else finite(x)

    bad = []
    for start in range(0, X.shape[0], block):
        entries = bad_entries(X[start : start + block])
        # A flat any() is about 15 times faster than any(axis=1) over short rows, and
        # almost every block has nothing to find (predict calls this on every X).
        if entries.any():
            bad.append(start + np.flatnonzero(entries.any(axis=1)))
    return np.concatenate(bad) if bad else np.empty(0, dtype=np.intp)


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, requiring ``value >= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(f"{name} must be an integer; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}.")
    return int(value)


def check_nonnegative(value, name: str) -> float:
    """Return ``value`` as a float, requiring a finite value >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"{name} must be a non-negative number; got {value!r}.")
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
            f"Expected n_samples >= n_components: n_components={n_components} needs at "
            f"least {n_components} samples{which}; got {n_samples}. Use fewer components "
            "or more data."
        )


# -- missing values (NaN in X) -------------------------------------------------------------
#: What :class:`gmmlib.GaussianMixture` does with NaN in X (``missing``).
MISSING = ("raise", "em")


def check_missing(missing) -> str:
    """One of ``MISSING``."""
    if not isinstance(missing, str) or missing not in MISSING:
        raise ValueError(
            f"missing must be 'raise' (NaN in X is an error) or 'em' (NaN entries are "
            f"missing values, fitted by EM over them); got {missing!r}."
        )
    return missing


def check_missing_structure(missing: np.ndarray, name: str = "X") -> None:
    """Data to fit with missing values: no row and no column entirely missing.

    ``missing`` is the (n_samples, n_features) mask of the NaN entries. A row with
    nothing observed carries no information about the mixture (its observed-data
    likelihood is 1 whatever θ); a feature never observed cannot be estimated.
    """
    empty_rows = np.flatnonzero(missing.all(axis=1))
    if empty_rows.size:
        raise ValueError(
            f"{name} has {empty_rows.size} row(s) with every feature missing (NaN) (row "
            f"{_shown_rows(empty_rows)}). Such a row carries no information about the "
            f"mixture: remove it, e.g. {name}[~np.isnan({name}).all(axis=1)]."
        )
    empty_columns = np.flatnonzero(missing.all(axis=0))
    if empty_columns.size:
        raise ValueError(
            f"Feature(s) {empty_columns[:5].tolist()} of {name} are missing (NaN) in every "
            "row: nothing can be learnt about them. Remove those columns."
        )


def check_missing_data(X, *, name: str = "X") -> np.ndarray:
    """Data whose NaN entries are missing values: an in-memory float64 array of shape
    (n_samples, n_features), infinity refused (a Dask array is computed)."""
    X = check_data(X, name=name, allow_nan=True)
    if is_dask_array(X):
        X = X.compute()
    return np.asarray(X, dtype=np.float64)


def dask_with_missing_values() -> ValueError:
    """The error for a Dask array with NaN entries given to a fit with ``missing="em"``."""
    return ValueError(
        'X is a Dask array with NaN entries: missing="em" fits data with missing values '
        "in memory (its rows are regrouped by their pattern of missing entries). Compute "
        "it first, X.compute(), or fill its missing values."
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
        raise InvalidTypeError(f"verbose must be an integer; got {verbose!r}.")
    return verbose


def check_param_names(params, valid) -> None:
    """Every name in ``params`` is one of the estimator's parameters ``valid``."""
    for name in params:
        if name not in valid:
            raise ValueError(f"Unknown parameter {name!r}; valid ones are {sorted(valid)}.")


class NotFittedError(ValueError, AttributeError):
    """The model was used before ``fit`` (a ValueError and AttributeError, as in scikit-learn).

    Once scikit-learn has been imported, the error raised is also an instance of
    ``sklearn.exceptions.NotFittedError``, so that ``except`` clauses written for
    scikit-learn catch it.
    """


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood settled within ``tol``.

    Once scikit-learn has been imported, the warning issued is also an instance of
    ``sklearn.exceptions.ConvergenceWarning``, so that warning filters written for
    scikit-learn apply to it.
    """


# -- scikit-learn's exception classes, without importing scikit-learn ----------------------
# gmmlib never imports scikit-learn itself (that would more than double the time `import
# gmmlib` takes). Code that catches or filters scikit-learn's NotFittedError or
# ConvergenceWarning has imported scikit-learn, so gmmlib looks at the moment it raises or
# warns: if scikit-learn is loaded, the instance is of a subclass of both gmmlib's class
# and scikit-learn's, made once and kept here under a name that pickle finds.
_SKLEARN_TWINS = {
    "NotFittedError": "_SklearnNotFittedError",
    "ConvergenceWarning": "_SklearnConvergenceWarning",
}
_twin_lock = threading.Lock()


def _sklearn_twin(cls, *, import_sklearn: bool = False):
    """``cls``, or the subclass of ``cls`` and of scikit-learn's class of the same name."""
    twin_name = _SKLEARN_TWINS[cls.__name__]
    twin = globals().get(twin_name)
    if twin is not None:
        return twin
    if "sklearn" not in sys.modules and not import_sklearn:
        return cls
    try:
        theirs = getattr(importlib.import_module("sklearn.exceptions"), cls.__name__)
    except (ImportError, AttributeError):  # not installed, or too old to have the class
        return cls
    with _twin_lock:
        if twin_name not in globals():
            globals()[twin_name] = type(
                twin_name,
                (cls, theirs),
                {"__module__": __name__, "__qualname__": twin_name, "__doc__": cls.__doc__},
            )
            # printed in warnings and tracebacks under gmmlib's name; pickled by its own
            globals()[twin_name].__name__ = cls.__name__
    return globals()[twin_name]


def __getattr__(name):
    # Unpickling a twin in a process that has not made it yet.
    for base, twin_name in _SKLEARN_TWINS.items():
        if name == twin_name:
            twin = _sklearn_twin(globals()[base], import_sklearn=True)
            if twin.__qualname__ == twin_name:
                return twin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def not_fitted_error(estimator) -> NotFittedError:
    """The error for a model used before ``fit`` (scikit-learn's wording)."""
    return _sklearn_twin(NotFittedError)(
        f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
        "appropriate arguments before using this estimator."
    )


def check_is_fitted(estimator) -> None:
    """Raise :class:`gmmlib.NotFittedError` unless ``fit`` has set ``means_``."""
    if not hasattr(estimator, "means_"):
        raise not_fitted_error(estimator)


def warn_not_converged(max_iter: int, tol: float, stacklevel: int) -> None:
    """Issue :class:`gmmlib.ConvergenceWarning` (scikit-learn's wording first)."""
    warnings.warn(
        "Best performing initialization did not converge. Try different init parameters, "
        "or increase max_iter, tol, or check for degenerate data. (EM stopped after "
        f"max_iter={max_iter} iterations with the change in mean log-likelihood still above "
        f"tol={tol}.)",
        _sklearn_twin(ConvergenceWarning),
        stacklevel=stacklevel + 1,
    )


def check_n_features(X, n_features_in: int, estimator: str = "GaussianMixture") -> None:
    """New data have the columns the model was fitted with."""
    if X.shape[1] != n_features_in:
        raise ValueError(
            f"X has {X.shape[1]} features, but {estimator} is expecting {n_features_in} "
            f"features as input (the {n_features_in} it was fitted with); pass data with "
            "the same columns."
        )


def check_warm_start(n_features_fitted: int, n_features: int) -> None:
    """A warm start continues on data with the columns of the previous fit."""
    if n_features_fitted != n_features:
        raise ValueError(
            f"warm_start: the model was fitted with {n_features_fitted} features and X "
            f"has {n_features}; set warm_start=False to fit afresh."
        )


def check_bool(value, name: str) -> bool:
    """A bool (``numpy.bool_`` included), as scikit-learn requires for flags."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidTypeError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def check_random_state(random_state) -> np.random.Generator:
    """A ``numpy.random.Generator`` for ``random_state``.

    None (fresh entropy), a seed >= 0 (a new generator each call, so the same
    numbers), a ``numpy.random.Generator`` (used, and advanced, as it is), or a
    legacy ``numpy.random.RandomState`` as scikit-learn takes: the generator is
    seeded from it, so successive calls with the same instance differ, as in
    scikit-learn.
    """
    if random_state is None or isinstance(
        random_state, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)
    ):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**32, size=4, dtype=np.uint64))
    if (
        isinstance(random_state, numbers.Integral)
        and not isinstance(random_state, bool)
        and random_state >= 0
    ):
        return np.random.default_rng(int(random_state))
    raise InvalidTypeError(
        "random_state must be None, an integer seed >= 0, a numpy.random.Generator or a "
        f"numpy.random.RandomState; got {random_state!r}."
    )


def check_n_samples_to_draw(n_samples) -> int:
    """The number of samples :meth:`gmmlib.GaussianMixture.sample` draws: at least 1."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral):
        raise InvalidTypeError(f"n_samples must be an integer; got {n_samples!r}.")
    if n_samples < 1:
        raise ValueError(
            f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least "
            "one sample; pass n_samples >= 1."
        )
    return int(n_samples)


# -- user-given starting parameters of the estimator (scikit-learn's wording first) --------
def _init_array(value, name: str, what: str, expected: tuple, hint: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != expected:
        raise ValueError(
            f"The parameter '{what}' should have the shape of {expected}, but got "
            f"{array.shape}: {name} {hint}."
        )
    if not np.all(np.isfinite(array)):
        nan = " (NaN marks a missing value in X only)" if np.any(np.isnan(array)) else ""
        raise ValueError(
            f"{name} contains NaN or infinity: a starting parameter must be finite{nan}. "
            f"Give finite values, or leave {name} as None."
        )
    return array


def check_weights_init(weights_init, n_components: int) -> np.ndarray:
    """``weights_init``: shape (n_components,), in [0, 1], summing to 1."""
    weights = _init_array(
        weights_init,
        "weights_init",
        "weights",
        (n_components,),
        f"holds one weight per component (n_components={n_components})",
    )
    if np.any(weights < 0) or np.any(weights > 1):
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got min value "
            f"{weights.min():.5f}, max value {weights.max():.5f}: weights_init are the "
            "probabilities P(z = k)."
        )
    if not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-6):
        raise ValueError(
            f"The parameter 'weights' should be normalized, but got sum(weights) = "
            f"{weights.sum():.5f}. Divide weights_init by their sum."
        )
    return weights


def check_means_init(means_init, n_components: int, n_features: int) -> np.ndarray:
    """``means_init``: shape (n_components, n_features), finite."""
    return _init_array(
        means_init,
        "means_init",
        "means",
        (n_components, n_features),
        f"needs one row per component (n_components={n_components}) and one column per "
        f"feature of X ({n_features})",
    )


def check_precisions_init(precisions_init, covariance_type: str, n_components, n_features):
    """``precisions_init`` shaped as ``precisions_`` for the type, symmetric positive definite."""
    what = f"{covariance_type} precision"
    layout = {
        "full": "(n_components, n_features, n_features)",
        "tied": "(n_features, n_features)",
        "diag": "(n_components, n_features)",
        "spherical": "(n_components,)",
    }[covariance_type]
    precisions = _init_array(
        precisions_init,
        "precisions_init",
        what,
        covariance_shape(covariance_type, n_components, n_features),
        f"for covariance_type={covariance_type!r} is shaped {layout}",
    )
    if covariance_type in ("diag", "spherical"):
        if np.any(precisions <= 0):
            raise ValueError(
                f"The parameter '{what}' should be positive: precisions_init holds the "
                "inverse variances 1/σ², which must all be > 0."
            )
        return precisions
    stack = precisions[None] if covariance_type == "tied" else precisions
    for k, matrix in enumerate(stack):
        symmetric = np.allclose(matrix, matrix.T)
        if not (symmetric and np.all(np.linalg.eigvalsh(matrix) > 0)):
            which = "The tied precision" if covariance_type == "tied" else f"Precision {k}"
            raise ValueError(
                f"The parameter '{what}' should be symmetric, positive-definite. {which} is "
                "not: give the inverse of a covariance matrix."
            )
    return precisions


def check_one_covariance_init(precisions_init, covariances_init) -> None:
    """At most one of ``precisions_init`` and ``covariances_init``."""
    if precisions_init is not None and covariances_init is not None:
        raise ValueError(
            "precisions_init and covariances_init were both given; they describe the same "
            "starting covariances (one is the inverse of the other): give one of them."
        )


# -- feature names (a data frame's columns), as scikit-learn records and checks them -------
def feature_names(X):
    """The column names of a data frame whose columns are all named by strings, else None.

    Duck-typed (an object with ``columns`` that is not a NumPy array): a pandas or
    polars data frame. Mixing string and other names is an error, as in scikit-learn.
    """
    if isinstance(X, np.ndarray) or not hasattr(X, "columns"):
        return None
    names = np.asarray(list(X.columns), dtype=object)
    kinds = sorted({type(n).__qualname__ for n in names})
    if len(kinds) > 1 and "str" in kinds:
        raise InvalidTypeError(
            "Feature names are only supported if all input features have string names, "
            f"but X has {kinds} as column name types. Convert them all to strings (for a "
            "pandas data frame, X.columns = X.columns.astype(str)), or pass an array "
            "without column names."
        )
    return names if kinds == ["str"] else None


def _listed(names) -> str:
    shown = [f"- {n}\n" for n in names[:5]]
    return "".join(shown) + ("- ...\n" if len(names) > 5 else "")


def check_feature_names(
    fitted, names, estimator: str = "GaussianMixture", *, stacklevel: int = 2
) -> None:
    """The columns of new data are those the model was fitted on, in the same order.

    ``fitted`` is ``feature_names_in_`` (or None), ``names`` those of the new data
    (:func:`feature_names`). Data without names, where the model had them (or the
    other way round), only warns, as in scikit-learn; ``stacklevel`` is that of the
    warning, counted from this function.
    """
    if fitted is None and names is None:
        return
    if names is None or fitted is None:
        warnings.warn(
            f"X has feature names, but {estimator} was fitted without feature names"
            if fitted is None
            else f"X does not have valid feature names, but {estimator} was fitted with "
            "feature names",
            UserWarning,
            stacklevel=stacklevel,
        )
        return
    if len(fitted) == len(names) and np.all(fitted == names):
        return
    unseen = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))
    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + _listed(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + _listed(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(
        message + "Pass the columns the model was fitted on, in that order: "
        "X[model.feature_names_in_] for a data frame X."
    )


# -- n_init: starts that collapse ----------------------------------------------------------
def warn_start_skipped(start: int, n_init: int, error: Exception, stacklevel: int) -> None:
    """A start of ``n_init`` failed (a component collapsed); the others go on."""
    warnings.warn(
        f"Start {start} of n_init={n_init} failed and was skipped: {error}",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def all_starts_failed(n_init: int, errors) -> ValueError:
    """The error when every one of ``n_init`` starts failed (returned, not raised)."""
    return ValueError(f"All n_init={n_init} starts failed. The first: {errors[0]}")


# -- results: a covariance that collapsed, a likelihood that is no longer finite ----------
COLLAPSE_HINT = (
    "This happens when a component collapses onto a single point or a lower-dimensional "
    "set (too few samples in it, or duplicated samples). Increase reg_covar (e.g. 1e-6 "
    "or more, relative to the scale of the data), use fewer components, or standardise "
    "the data."
)

#: A variance at or below (this × the feature's largest standard deviation over the
#: components)² is rounding noise, not spread: the component sits on a single value
#: of that feature (its likelihood → +∞). Relative to the spread, not to |mean|, so
#: that data far from the origin (timestamps, 1.7e18 ± 1e5) are not called collapsed.
_COLLAPSE_RTOL = 1e-13
#: ... and so is one at or below (this × |mean|)²: values that differ by no more than
#: a few dozen units in their last place (at 1.7e18, a spread of about 2e4).
_COLLAPSE_MAGNITUDE_RTOL = 1e-14
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


def check_finite_covariances(covariances) -> np.ndarray:
    """Covariances computed from the data are finite (they overflow for a spread beyond ~1e154)."""
    covariances = np.asarray(covariances)
    if not np.all(np.isfinite(covariances)):
        raise ValueError(
            "The covariances overflow: the data spread over more than about 1e154, whose "
            "square is beyond the largest float64. Rescale X (for example divide it by its "
            "standard deviation) before fitting."
        )
    return covariances


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
    that feature should be 0; in floating point it comes out as rounding noise (e.g.
    1e-31), a positive-definite matrix whose likelihood is meaninglessly large. A
    variance :math:`\sigma^2_{kj} \le (10^{-13} S_j)^2`, with :math:`S_j` the largest
    standard deviation of feature j over the components, or
    :math:`\sigma^2_{kj} \le (10^{-14}\,|\mu_{kj}|)^2` (values a few dozen units in
    the last place apart), is treated as that collapse, and so (full and tied) is a
    correlation matrix whose smallest eigenvalue is at most :math:`10^{-12}`: the
    samples lie on a line or plane. The thresholds follow the spread, not the
    location: data far from the origin are judged as the same data at 0.

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
    spread = np.sqrt(np.max(var, axis=0, keepdims=True))  # S_j
    floor = np.maximum(_COLLAPSE_RTOL * spread, _COLLAPSE_MAGNITUDE_RTOL * mag)
    bad = np.any(var <= floor**2, axis=1)
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
        nan = np.flatnonzero(np.isnan(w))
        hint = (
            f" sample_weight is NaN at sample(s) {nan[:5].tolist()}: NaN marks a missing "
            "value in X only; give every sample a weight (0 leaves it out)."
            if nan.size
            else ""
        )
        raise ValueError(
            f"sample_weight must be finite and non-negative; sample(s) {bad[:5].tolist()} are "
            f"not.{hint}"
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
