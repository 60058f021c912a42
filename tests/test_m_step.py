"""Each M-step update is the maximiser of Q (eq-weights-update, eq-means-update,
eq-covariances-update), checked numerically: finite differences, a constrained
optimiser, perturbations, and the article's old-means slip."""

import helpers as h
import numpy as np
import pytest
from helpers import COV_TYPES
from scipy.optimize import minimize

import gmmlib

H = 1e-5  # finite-difference step


def _problem(covariance_type, seed=41, n=30, K=3, d=2):
    """Data, responsibilities from old parameters, and the M-step's new parameters."""
    rng = np.random.default_rng(seed)
    X, _, _ = h.blobs(rng, n, K, d, spread=2.0)
    old = h.random_params(rng, K, d, covariance_type, spread=2.0)
    resp = gmmlib.responsibilities(X, *old, covariance_type)
    w = gmmlib.update_weights(resp)
    m = gmmlib.update_means(X, resp)
    c = gmmlib.update_covariances(X, resp, m, covariance_type)
    return rng, X, resp, old, (w, m, c)


def _q(X, resp, params, covariance_type):
    return gmmlib.q_function(X, resp, *params, covariance_type)


def _fd(f, x, direction, step=H):
    return (f(x + step * direction) - f(x - step * direction)) / (2 * step)


def _cov_directions(covariance_type, c):
    """Unit directions in the parameter space of each covariance family (symmetric for
    full and tied: E = e_ij + e_ji)."""
    c = np.asarray(c)
    if covariance_type in ("diag", "spherical"):
        for idx in np.ndindex(c.shape):
            e = np.zeros_like(c)
            e[idx] = 1.0
            yield e
        return
    stack_shape = c.shape if covariance_type == "full" else (1, *c.shape)
    K, d = stack_shape[0], stack_shape[1]
    for k in range(K):
        for i in range(d):
            for j in range(i, d):
                e = np.zeros(stack_shape)
                e[k, i, j] = e[k, j, i] = 1.0
                yield e if covariance_type == "full" else e[0]


def _mean_directions(m):
    for idx in np.ndindex(m.shape):
        e = np.zeros_like(m)
        e[idx] = 1.0
        yield e


# -- the updates are the formulas ------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_updates_are_the_textbook_formulas(covariance_type):
    _, X, resp, _, (w, m, c) = _problem(covariance_type)
    n, K = resp.shape
    d = X.shape[1]
    nk = np.array([sum(resp[i, k] for i in range(n)) for k in range(K)])
    np.testing.assert_allclose(w, nk / n, rtol=1e-12)
    means = np.array([sum(resp[i, k] * X[i] for i in range(n)) / nk[k] for k in range(K)])
    np.testing.assert_allclose(m, means, rtol=1e-12)
    scatter = np.array(
        [
            sum(resp[i, k] * np.outer(X[i] - means[k], X[i] - means[k]) for i in range(n))
            for k in range(K)
        ]
    )
    expected = {
        "full": scatter / nk[:, None, None],
        "tied": scatter.sum(0) / n,
        "diag": np.array([np.diag(scatter[k]) / nk[k] for k in range(K)]),
        "spherical": np.array([np.trace(scatter[k]) / (d * nk[k]) for k in range(K)]),
    }[covariance_type]
    np.testing.assert_allclose(c, expected, rtol=1e-11)
    # m_step is the three updates, covariances with the new means
    for a, b in zip(gmmlib.m_step(X, resp, covariance_type), (w, m, c), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reg_covar_is_added_to_the_diagonal(covariance_type):
    _, X, resp, _, (_, m, c) = _problem(covariance_type)
    reg = 0.25
    c_reg = gmmlib.update_covariances(X, resp, m, covariance_type, reg_covar=reg)
    d = X.shape[1]
    bump = {"full": np.eye(d), "tied": np.eye(d), "diag": 1.0, "spherical": 1.0}[covariance_type]
    np.testing.assert_allclose(c_reg - c, reg * np.broadcast_to(bump, np.shape(c)), atol=1e-13)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_sample_weights_in_the_m_step_equal_repeated_rows(covariance_type):
    rng, X, resp, _, _ = _problem(covariance_type)
    reps = rng.integers(0, 4, size=X.shape[0])
    weighted = gmmlib.m_step(X, resp, covariance_type, sample_weight=reps)
    repeated = gmmlib.m_step(
        np.repeat(X, reps, axis=0), np.repeat(resp, reps, axis=0), covariance_type
    )
    for a, b in zip(weighted, repeated, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


# -- weights: the Lagrange result --------------------------------------------------------
def test_weights_equal_the_constrained_numerical_optimum():
    _, X, resp, _, (w, m, c) = _problem("full")
    K = resp.shape[1]

    def negative_q_weights_part(p):  # the only part of Q that depends on p
        return -np.sum(resp * np.log(p))

    res = minimize(
        negative_q_weights_part,
        np.full(K, 1.0 / K),
        method="SLSQP",
        bounds=[(1e-9, 1.0)] * K,
        constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0}],
        options={"ftol": 1e-15, "maxiter": 500},
    )
    assert res.success
    np.testing.assert_allclose(w, res.x, atol=1e-6)
    assert negative_q_weights_part(w) <= res.fun + 1e-12


def test_lagrange_multiplier_is_minus_n():
    _, X, resp, old, (w, m, c) = _problem("full")
    n = X.shape[0]
    # stationarity of the Lagrangian: ∂Q/∂p_k + λ = 0 for every k, with λ = −N
    np.testing.assert_allclose(gmmlib.q_gradient_weights(resp, w), n, rtol=1e-12)
    # at any other point on the simplex the partial derivatives differ (no common λ)
    assert np.ptp(gmmlib.q_gradient_weights(resp, old[0])) > 1.0


def test_q_gradient_weights_matches_finite_differences():
    rng, X, resp, old, (w, m, c) = _problem("full")
    p = old[0]
    grad = gmmlib.q_gradient_weights(resp, p)
    for _ in range(3):
        delta = rng.standard_normal(p.size)
        delta -= delta.mean()  # stay on the simplex: Σ δ = 0

        def q_along(t, delta=delta):
            return gmmlib.q_function(X, resp, p + t * delta, m, c)

        np.testing.assert_allclose(_fd(q_along, 0.0, 1.0), grad @ delta, rtol=1e-6, atol=1e-6)
        # at the update, Q is flat along the simplex
        fd_at_update = _fd(
            lambda t, delta=delta: gmmlib.q_function(X, resp, w + t * delta, m, c), 0.0, 1.0
        )
        assert abs(fd_at_update) < 1e-5


# -- means and covariances: the gradient of Q vanishes ------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_finite_difference_gradient_in_the_means_vanishes_at_the_update(covariance_type):
    _, X, resp, _, (w, m, c) = _problem(covariance_type)

    def q_of_means(mm):
        return _q(X, resp, (w, mm, c), covariance_type)

    for e in _mean_directions(m):
        assert abs(_fd(q_of_means, m, e)) < 1e-6
    # not vacuous: away from the update the same derivative is far from zero
    shifted = m + 0.3
    assert max(abs(_fd(q_of_means, shifted, e)) for e in _mean_directions(m)) > 0.5


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_finite_difference_gradient_in_the_covariances_vanishes_at_the_update(covariance_type):
    _, X, resp, _, (w, m, c) = _problem(covariance_type)

    def q_of_cov(cc):
        return _q(X, resp, (w, m, cc), covariance_type)

    for e in _cov_directions(covariance_type, c):
        assert abs(_fd(q_of_cov, c, e)) < 1e-5
    scaled = 1.3 * np.asarray(c)
    assert max(abs(_fd(q_of_cov, scaled, e)) for e in _cov_directions(covariance_type, c)) > 0.5


def test_q_gradient_means_matches_finite_differences_at_arbitrary_points():
    rng, X, resp, _, (w, _, _) = _problem("full")
    K, d = resp.shape[1], X.shape[1]
    for _ in range(3):
        m = rng.standard_normal((K, d))
        c = h.random_covariances(rng, K, d, "full")
        grad = gmmlib.q_gradient_means(X, resp, m, c)
        fd = np.zeros_like(m)
        for idx in np.ndindex(m.shape):
            e = np.zeros_like(m)
            e[idx] = 1.0
            fd[idx] = _fd(lambda mm, c=c: gmmlib.q_function(X, resp, w, mm, c), m, e)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


def _fd_cov_gradient(f, c):
    """Gradient matrix of f in each Σ_k from symmetric directions: G_ii = D(e_ii),
    G_ij = D(e_ij + e_ji) / 2."""
    K, d, _ = c.shape
    g = np.zeros_like(c)
    for k in range(K):
        for i in range(d):
            for j in range(i, d):
                e = np.zeros_like(c)
                e[k, i, j] = e[k, j, i] = 1.0
                val = _fd(f, c, e)
                g[k, i, j] = g[k, j, i] = val if i == j else val / 2
    return g


def test_q_gradient_covariances_matches_finite_differences_at_arbitrary_points():
    rng, X, resp, _, (w, _, _) = _problem("full")
    K, d = resp.shape[1], X.shape[1]
    for _ in range(3):
        m = rng.standard_normal((K, d))
        c = h.random_covariances(rng, K, d, "full")
        grad = gmmlib.q_gradient_covariances(X, resp, m, c)
        fd = _fd_cov_gradient(lambda cc, m=m: gmmlib.q_function(X, resp, w, m, cc), c)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)
        # the article's shortcut ∂tr(Σ⁻¹A)/∂Σ = −AΣ⁻² is wrong when A and Σ do not commute
        prec = np.linalg.inv(c)
        nk = resp.sum(0)
        shortcut = np.stack(
            [
                0.5 * (_scatter(X, resp[:, k], m[k]) @ prec[k] @ prec[k] - nk[k] * prec[k])
                for k in range(K)
            ]
        )
        assert np.max(np.abs(shortcut - fd)) > 1e-2


def _scatter(X, r, mean):
    diff = X - mean
    return (r * diff.T) @ diff


def test_q_gradient_vanishes_at_the_m_step():
    _, X, resp, _, (w, m, c) = _problem("full")
    np.testing.assert_allclose(gmmlib.q_gradient_means(X, resp, m, c), 0.0, atol=1e-10)
    np.testing.assert_allclose(gmmlib.q_gradient_covariances(X, resp, m, c), 0.0, atol=1e-9)


# -- the update is a maximum, not just a stationary point -----------------------------------
def _perturb(rng, params, covariance_type, eps):
    w, m, c = params
    w2 = w * np.exp(eps * rng.standard_normal(w.shape))
    w2 /= w2.sum()
    m2 = m + eps * rng.standard_normal(m.shape)
    if covariance_type in ("diag", "spherical"):
        c2 = c * np.exp(eps * rng.standard_normal(np.shape(c)))
    else:
        s = rng.standard_normal(np.shape(c))
        s = (s + np.swapaxes(s, -1, -2)) / 2
        c2 = c + eps * s
    return w2, m2, c2


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_q_does_not_rise_under_perturbations_of_the_update(covariance_type):
    rng, X, resp, old, new = _problem(covariance_type)
    q_best = _q(X, resp, new, covariance_type)
    assert q_best >= _q(X, resp, old, covariance_type)
    for eps in (1e-4, 1e-2, 1e-1):
        for _ in range(15):
            q = _q(X, resp, _perturb(rng, new, covariance_type, eps), covariance_type)
            assert q < q_best
    # each block separately (the others held at the update)
    for _ in range(5):
        w2, m2, c2 = _perturb(rng, new, covariance_type, 1e-3)
        assert _q(X, resp, (w2, new[1], new[2]), covariance_type) < q_best
        assert _q(X, resp, (new[0], m2, new[2]), covariance_type) < q_best
        assert _q(X, resp, (new[0], new[1], c2), covariance_type) < q_best


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_covariance_update_with_the_old_means_gives_a_lower_q(covariance_type):
    _, X, resp, old, (w, m, c) = _problem(covariance_type)
    c_old_means = gmmlib.update_covariances(X, resp, old[1], covariance_type)
    q_new = _q(X, resp, (w, m, c), covariance_type)
    q_article = _q(X, resp, (w, m, c_old_means), covariance_type)
    assert q_article < q_new - 1e-6
    if covariance_type == "full":
        # the old-means matrix is the exact one plus the outer product of the mean shift
        shift = m - old[1]
        np.testing.assert_allclose(
            c_old_means - c, shift[:, :, None] * shift[:, None, :], rtol=1e-10, atol=1e-12
        )


def test_collapsed_component_gives_a_clear_error_not_nan():
    # component 1 owns a single point (at the origin, so its mean is exactly that point)
    X = np.array([[3.0, 2.0], [4.0, 2.5], [5.0, 4.0], [0.0, 0.0]])
    resp = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    w, m, c = gmmlib.m_step(X, resp, "full")
    assert np.all(np.isfinite(c))
    np.testing.assert_array_equal(c[1], 0.0)  # one point: a zero covariance
    with pytest.raises(ValueError, match=r"covariance 1 is not positive definite"):
        gmmlib.log_likelihood(X, w, m, c)
    with pytest.raises(ValueError, match=r"Component 1 .*reg_covar"):
        gmmlib.precision_cholesky(c, "full")
    _, _, c_reg = gmmlib.m_step(X, resp, "full", reg_covar=1e-3)
    np.testing.assert_allclose(c_reg[1], 1e-3 * np.eye(2))
    assert np.isfinite(gmmlib.log_likelihood(X, w, m, c_reg))


@pytest.mark.parametrize(
    ("covariance_type", "frame"),
    [(t, "whitened") for t in COV_TYPES] + [("full", "data"), ("tied", "data")],
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("at", ["old-means", "elsewhere"])
def test_params_from_sums_equals_m_step(covariance_type, frame, weighted, at):
    """The engine's M-step from sums (about centres, whitened by the old factors, or in
    the data's frame as the wide pass gives them: full and tied only) is m_step's."""
    from gmmlib._m_step import params_from_sums

    rng, X, resp, (_, old_means, old_cov), _ = _problem(covariance_type, seed=43, n=200)
    sample_weight = rng.uniform(0.0, 3.0, X.shape[0]) if weighted else None
    centres = old_means if at == "old-means" else old_means + rng.normal(size=old_means.shape)
    prec_chol = gmmlib.precision_cholesky(old_cov, covariance_type)
    w_resp = resp if sample_weight is None else resp * sample_weight[:, None]
    y = X[:, None, :] - centres  # y_ik = x_i - c_k, (N, K, d)
    if covariance_type in ("full", "tied"):
        U = np.broadcast_to(prec_chol, (len(centres), *prec_chol.shape[-2:]))
        z = np.einsum("nkj,kji->nki", y, U)  # z_ik = U_kᵀ y_ik
        sum_zz = np.einsum("nk,nki,nkj->kij", w_resp, z, z)
    else:
        scale = prec_chol[:, None] if covariance_type == "spherical" else prec_chol
        sum_zz = np.einsum("nk,nkj->kj", w_resp, (y * scale) ** 2)
    counts, sum_y = w_resp.sum(axis=0), np.einsum("nk,nkj->kj", w_resp, y)
    if frame == "data":
        sum_zz, prec_chol = np.einsum("nk,nki,nkj->kij", w_resp, y, y), None
    got = params_from_sums(counts, sum_y, sum_zz, centres, prec_chol, covariance_type, 1e-6)
    expected = gmmlib.m_step(X, resp, covariance_type, 1e-6, sample_weight=sample_weight)
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    if frame == "data":
        assert np.array_equal(got[2], np.swapaxes(got[2], -1, -2))  # exactly symmetric
