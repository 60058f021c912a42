"""Compile the EM engine's Numba kernels once, into Numba's on-disk cache.

`make install` runs this, so that the first `make check` does not spend half a minute
compiling: Numba compiles a kernel once per combination of argument types (float64 or
float32, C-ordered, strided or read-only data, with or without weights), and the tests
use about a dozen (and four for data with missing values). Without Numba there is
nothing to compile.
"""

import importlib.util
import tempfile
import warnings

import numpy as np

import gmmlib

if importlib.util.find_spec("numba") is None:
    raise SystemExit(0)

rng = np.random.default_rng(0)
X = rng.normal(size=(300, 3))
w = rng.uniform(0.5, 1.5, size=300)
with tempfile.TemporaryDirectory() as tmp:
    path = f"{tmp}/x.dat"
    for dtype in (np.float64, np.float32):
        mm = np.memmap(path, dtype=dtype, mode="w+", shape=X.shape)
        mm[:] = X
        mm.flush()
        inputs = [X, np.asfortranarray(X), X[:, ::-1], np.memmap(path, dtype, "r", shape=X.shape)]
        if dtype is np.float64:
            readonly = X.copy()
            readonly.flags.writeable = False
            inputs.append(readonly)
        for data in inputs:
            for covariance_type in ("full", "diag"):
                for sample_weight in (None, w):
                    engine = gmmlib.EMEngine(
                        data, covariance_type, 1e-6, sample_weight, block_size=64
                    )
                    weights, means = np.full(2, 0.5), X[:2].copy()
                    covariances = np.eye(3)[None].repeat(2, 0)
                    if covariance_type == "diag":
                        covariances = np.ones((2, 3))
                    with warnings.catch_warnings(), engine:
                        warnings.simplefilter("ignore")
                        prec = gmmlib.precision_cholesky(covariances, covariance_type)
                        engine.step(weights, means, prec)
                        engine.mean_log_likelihood(weights, means, prec)
        del mm

# EM with missing values (gmmlib._missing_engine): the kernels that take a group of rows per
# pattern of missing entries, with and without weights.
holes = X.copy()
holes[::3, 0] = np.nan
# 8 components with full covariances: each pattern through the expanded kernel
for n_components, covariance_type in ((2, "full"), (2, "diag"), (8, "full")):
    for sample_weight in (None, w):
        model = gmmlib.GaussianMixture(
            n_components,
            covariance_type=covariance_type,
            max_iter=2,
            missing="em",
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(holes, sample_weight=sample_weight)
