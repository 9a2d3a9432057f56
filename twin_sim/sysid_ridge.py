"""
Least squares toward a prior, with the prior's weight chosen on held-out blocks of the data.

System identification (:mod:`twin_sim.sysid`) solves, for the full parameter vector ``x``
(inertial parameters of every body, then per-joint terms such as friction and rotor inertia)::

    minimize  || W (A T x - b) ||^2  +  sum_g lambda_g || (x_g - x0_g) / s_g ||^2

``A`` is the regressor in *reduced* coordinates ``T x`` (the identifiable base parameters and
the joint terms), ``W`` weighs each joint's rows by the inverse of its residual level, ``x0``
is the prior (URDF or a params file) and ``s`` the prior's scale per parameter (how far a
parameter may plausibly be from the prior, in its own unit). ``g`` runs over parameter groups
(inertial, joint terms), each with its own weight ``lambda_g``. The data fix the directions
they excite; every direction they do not excite keeps the prior value exactly (it is not in
the range of ``T``), and weakly excited ones are pulled towards it. In Bayesian terms the
solution is the posterior mean under a Gaussian prior ``N(x0, s^2 / lambda)``.

The weights are chosen by blocked cross-validation: the training rows are cut into
contiguous blocks in time; each block is predicted by the fit on the others, for a grid of
weights (decades, refined by half decades), all from per-block normal equations (no
regressor is rebuilt). Of the weights whose cross-validated error is within ``tolerance`` of
the best, the strongest pull to the prior wins: a log that cannot tell better stays at it.

Working on normal equations keeps the memory and time independent of the grid: one
``(p, p)`` solve per weight pair and block, with ``p`` the number of full parameters.
"""
from dataclasses import dataclass

import numpy as np
from scipy import linalg

__all__ = ['RidgeProblem', 'RidgeChoice', 'acceptance']

DEFAULT_FOLDS = 5
DEFAULT_TOLERANCE = 0.01
MEAN_TIE = 1e-3                               # relative: mean RMSEs this close are equal
COARSE_EXPONENTS = np.arange(-3.0, 13.0)      # lambda = 10^k, k = -3..12


@dataclass
class RidgeChoice:
    """
    Outcome of the cross-validation.

    Attributes
    ----------
    lam : (n_groups,)
        The chosen weight of each parameter group (dimensionless: prior units against
        weighted residual units).
    cv_error : float
        Cross-validated weighted squared error per row at ``lam``.
    cv_error_best : float
        The lowest cross-validated error on the grid (``lam`` may be a stronger pull to the
        prior within ``tolerance`` of it).
    cv_error_prior : float
        Cross-validated error of the prior itself (no fit).
    grid : list of tuple
        ``(lam_0, ..., cv_error)`` of every weight pair evaluated.

    """

    lam: np.ndarray
    cv_error: float
    cv_error_best: float
    cv_error_prior: float
    grid: list


class RidgeProblem:
    """
    Weighted least squares toward a prior, in per-block normal equations.

    Parameters
    ----------
    a : (N, m, p_r)
        Regressor in reduced coordinates, per sample and measured joint (already weighted).
    b : (N, m)
        Measured efforts (already weighted).
    transform : (p_r, p)
        ``T``: reduced coordinates of the full parameters.
    x0, scales : (p,)
        Prior and its per-parameter scale (> 0).
    groups : (p,) int
        Group of each full parameter (0 .. n_groups - 1), each with its own weight.
    n_groups : int, optional
        Number of groups (default ``groups.max() + 1``; a group may be empty).
    n_folds : int
        Contiguous blocks of samples for cross-validation (>= 2).

    """

    def __init__(self, a, b, transform, x0, scales, groups, n_groups=None,
                 n_folds=DEFAULT_FOLDS):
        n_samples, _, p_r = a.shape
        self.transform = np.asarray(transform, dtype=float)
        self.x0 = np.asarray(x0, dtype=float)
        self.scales = np.asarray(scales, dtype=float)
        self.groups = np.asarray(groups, dtype=int)
        self.n_groups = int(self.groups.max()) + 1 if n_groups is None else int(n_groups)
        self.n_rows = int(np.prod(b.shape))
        self._map = self.transform * self.scales[None, :]          # reduced <- prior units
        self._x0r = self.transform @ self.x0
        edges = np.linspace(0, n_samples, max(2, int(n_folds)) + 1).astype(int)
        self.folds = []
        for k0, k1 in zip(edges[:-1], edges[1:]):
            ak = a[k0:k1].reshape(-1, p_r)
            bk = b[k0:k1].reshape(-1)
            self.folds.append((ak.T @ ak, ak.T @ bk, float(bk @ bk), len(bk)))
        self.gram = sum(f[0] for f in self.folds)
        self.moment = sum(f[1] for f in self.folds)
        self.energy = sum(f[2] for f in self.folds)

    # ------------------------------------------------------------------ solving
    def _system(self, gram, moment):
        """Hessian and right-hand side in prior units ``u = (x - x0) / s``."""
        hess = self._map.T @ gram @ self._map
        rhs = self._map.T @ (moment - gram @ self._x0r)
        return hess, rhs

    def _ridge(self, lam):
        lam = np.broadcast_to(np.asarray(lam, dtype=float), (self.n_groups,))
        return lam[self.groups]

    def _solve_u(self, hess, rhs, diag):
        # a floor keeps the system positive definite for lam = 0 (plain least squares): the
        # directions the data cannot see have a zero right-hand side and stay at the prior
        floor = 1e-12 * max(float(np.trace(hess)) / len(rhs), 1e-300)
        try:
            return linalg.solve(hess + np.diag(diag + floor), rhs, assume_a='pos')
        except (linalg.LinAlgError, ValueError):
            return np.linalg.lstsq(hess + np.diag(diag + floor), rhs, rcond=None)[0]

    def solve(self, lam):
        """
        Fit on every block.

        Parameters
        ----------
        lam : float or (n_groups,)
            Weight of the prior per group (0: plain least squares, the prior only fills the
            directions the data cannot see).

        Returns
        -------
        x : (p,)
            The full parameters.
        cov : (p, p)
            Their posterior covariance (weighted residual variance times the inverse
            Hessian).

        """
        diag = self._ridge(lam)
        hess, rhs = self._system(self.gram, self.moment)
        u = self._solve_u(hess, rhs, diag)
        x = self.x0 + self.scales * u
        sse = self.error(x)
        floor = 1e-12 * max(float(np.trace(hess)) / len(rhs), 1e-300)
        hinv = np.linalg.pinv(hess + np.diag(diag + floor), hermitian=True)
        dof = float(np.trace(hinv @ hess))
        s2 = sse / max(self.n_rows - dof, 1.0)
        cov = s2 * (self.scales[:, None] * hinv * self.scales[None, :])
        return x, cov

    def error(self, x, fold=None):
        """Weighted sum of squared residuals of ``x`` (p,) on every block, or on one."""
        xr = self.transform @ x
        if fold is None:
            gram, moment, energy = self.gram, self.moment, self.energy
        else:
            gram, moment, energy, _ = self.folds[fold]
        return float(xr @ gram @ xr - 2.0 * moment @ xr + energy)

    # ------------------------------------------------------------------ cross-validation
    def _cv_errors(self, lams):
        """Cross-validated error per row for each weight vector in ``lams`` (L, n_groups)."""
        lams = np.atleast_2d(lams)
        diags = lams[:, self.groups]                               # (L, p)
        total = np.zeros(len(lams))
        for k, (gram_k, moment_k, energy_k, _) in enumerate(self.folds):
            hess, rhs = self._system(self.gram - gram_k, self.moment - moment_k)
            floor = 1e-12 * max(float(np.trace(hess)) / len(rhs), 1e-300)
            systems = hess[None] + np.einsum('lp,pq->lpq', diags + floor, np.eye(len(rhs)))
            try:
                u = np.linalg.solve(systems, np.broadcast_to(rhs, diags.shape)[..., None])
            except np.linalg.LinAlgError:
                u = np.stack([self._solve_u(hess, rhs, d)[:, None] for d in diags])
            xr = self._x0r[None] + (self._map @ u[..., 0].T).T       # (L, p_r)
            total += (np.einsum('lp,pq,lq->l', xr, gram_k, xr) - 2.0 * xr @ moment_k
                      + energy_k)
        return total / self.n_rows

    def cross_validate(self, tolerance=DEFAULT_TOLERANCE, exponents=COARSE_EXPONENTS):
        """
        Choose the group weights by blocked cross-validation (see the module docstring).

        Parameters
        ----------
        tolerance : float
            Relative margin on the best cross-validated error within which the strongest
            pull to the prior is preferred.
        exponents : (k,) float
            Decades of the coarse grid, ``lambda = 10 ** exponent`` per group.

        Returns
        -------
        RidgeChoice

        """
        mesh = np.array(np.meshgrid(*[exponents] * self.n_groups, indexing='ij'))
        coarse = mesh.reshape(self.n_groups, -1).T                  # (L, n_groups) exponents
        errors = self._cv_errors(10.0 ** coarse)
        best = coarse[int(np.argmin(errors))]
        steps = np.array(np.meshgrid(*[(-0.5, 0.0, 0.5)] * self.n_groups, indexing='ij'))
        fine = best[None] + steps.reshape(self.n_groups, -1).T
        fine = fine[np.any(fine != best[None], axis=1)]
        evaluated = np.vstack([coarse, fine])
        errors = np.concatenate([errors, self._cv_errors(10.0 ** fine)])
        best_error = float(errors.min())
        near = np.flatnonzero(errors <= best_error * (1.0 + tolerance))
        pick = near[np.argmax(evaluated[near].sum(axis=1))]
        prior_error = float(self._cv_errors(np.full((1, self.n_groups), 1e30))[0])
        grid = [tuple(10.0 ** e) + (float(err),) for e, err in zip(evaluated, errors)]
        return RidgeChoice(10.0 ** evaluated[pick], float(errors[pick]), best_error,
                           prior_error, grid)


def acceptance(before, after, *, relative_tolerance=0.1, absolute_tolerance=0.01,
               names=None):
    """
    Decide whether an identified model may replace its prior, from held-out RMSE.

    Accepted when the mean held-out RMSE over the joints is not higher than the prior's (by
    more than ``MEAN_TIE`` of it, a tie: a fit that stayed at the prior) and no joint is worse
    than the prior by more than ``relative_tolerance * before + absolute_tolerance``. Every
    RMSE must be finite: a NaN compares false with anything, so a prior (or held-out effort)
    that gives NaN would otherwise pass every test. Not accepted then, since the identified
    model cannot be judged against its prior.

    Parameters
    ----------
    before, after : (m,) N·m
        Held-out torque RMSE of the prior and of the identified model, evaluated joints only.
    relative_tolerance, absolute_tolerance : float
        Per-joint slack (fraction, N·m), finite and >= 0.
    names : list of str, optional
        Names of the joints, for the reason.

    Returns
    -------
    accepted : bool
    reason : str
        One sentence with the figures.
    worse : list of int
        Indices of the joints beyond the per-joint slack.

    Raises
    ------
    ValueError
        A tolerance is negative or not finite.

    """
    for label, value in (('relative_tolerance', relative_tolerance),
                         ('absolute_tolerance', absolute_tolerance)):
        if not (np.isfinite(value) and value >= 0.0):
            raise ValueError(f'{label} must be a finite number >= 0, got {value!r}')
    before = np.atleast_1d(np.asarray(before, dtype=float))
    after = np.atleast_1d(np.asarray(after, dtype=float))
    names = [f'joint {i}' for i in range(len(before))] if names is None else list(names)
    if before.size == 0:
        return False, 'no joint was evaluated on held-out data', []
    mean_b, mean_a = float(np.mean(before)), float(np.mean(after))
    figures = f'mean held-out torque RMSE {mean_b:.3g} N·m with the prior, {mean_a:.3g} N·m ' \
              'identified'
    bad_b = [names[i] for i in np.flatnonzero(~np.isfinite(before))]
    bad_a = [names[i] for i in np.flatnonzero(~np.isfinite(after))]
    if bad_b and bad_a:
        return False, f'no finite held-out torque RMSE on {", ".join(bad_b)}, neither with ' \
                      'the prior nor with the identified model (is the held-out effort ' \
                      'finite?)', []
    if bad_b:
        return False, f'the prior predicts non-finite torques on {", ".join(bad_b)}, so the ' \
                      'identified model cannot be judged against it (is every body of the ' \
                      'URDF or params file valid?)', []
    if bad_a:
        return False, f'the identified model predicts non-finite torques on ' \
                      f'{", ".join(bad_a)}', []
    worse = [int(i) for i in np.flatnonzero(
        after > before * (1.0 + relative_tolerance) + absolute_tolerance)]
    if mean_a > mean_b * (1.0 + MEAN_TIE):
        return False, f'the identified model predicts the held-out data worse than the ' \
                      f'prior ({figures})', worse
    if worse:
        return False, f'the identified model is better on average ({figures}) but worse ' \
                      f'than the prior on {len(worse)} joint(s)', worse
    return True, f'the identified model predicts the held-out data at least as well as ' \
                 f'the prior ({figures})', worse
