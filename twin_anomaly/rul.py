"""
Remaining useful life from a joint's degradation history (ROS-free).

Input: the degradation ``d`` of one joint and kind of evidence, one value per health epoch
(:func:`twin_anomaly.health.degradation`: 0 as commissioned, 1 at the configured failure limit)
at operating times ``t`` (hours). Output: :class:`RulEstimate`, the operating hours until
``d`` reaches 1, with a credible interval, or no number and the reason.

Model, and why this one
-----------------------
Friction wear is abrasive: by Archard's law the worn volume grows with sliding distance, so
at a steady duty cycle friction grows linearly in operating time, with random fluctuations.
That is a Wiener degradation process with drift (Wang 2010; Si, Wang, Hu, Zhou, EJOR 2012),
``D(t) = D0 + mu (t - c)_+ + sigma_B B(t)``, observed with the estimation error of each epoch,
``d_k = D(t_k) + e_k``, ``e_k ~ N(0, s^2)``. Wear seldom starts on the first day, so the drift
starts at an unknown onset ``c`` (a hinge); and a joint can also change abruptly (a damaged
bearing) and then stay where it is, so two more families are weighed at each onset: a step
(a level shift without drift) and a step followed by drift. Every model is linear in its
coefficients, so its posterior under the reference prior is a closed-form Student-t (the exact
Bayesian update: no tuning, no sampling error); the onset, the family and the question "is
there a change at all" are settled by Bayesian model comparison: every (family, onset) is a
model, "no change" is another with prior 1/2, and their posterior weights come from Zellner's
g-prior Bayes factors (``g = n``; Liang et al., JASA 2008), also in closed form. The RUL is
the first time ``D`` reaches 1: for a drawn level ``D_now`` and drift ``mu`` it is
``(1 - D_now) / mu`` (``sigma_B = 0``; never when ``mu <= 0``) or an inverse-Gaussian draw with
mean ``(1 - D_now) / mu`` and shape ``(1 - D_now)^2 / sigma_B^2`` (the first-passage law of the
Wiener process); the interval is taken from draws over the models and their Student-t
posteriors (a fixed seed: the same history gives the same answer). ``sigma_B`` is a setting
(default 0): on weeks of epoch estimates it cannot be told apart from the epoch error, which
the posterior already carries.

A particle filter could carry any model but would need tuning and many particles on a 2-core
robot computer; this model is exact, deterministic and costs a few vector operations per
epoch. An exponential (accelerating) degradation law would fit fatigue spalling better than
abrasion; it is not modelled here.

No number is given, with a reason, while there are fewer than ``min_points`` epochs
(``collecting evidence``), while the estimated degradation now is below ``min_degradation``
(``no degradation seen``: the scatter of a healthy joint around its commissioned value must not
turn into a forecast), or while the posterior probability of a positive drift is below
``min_probability`` (``no trend``: e.g. an abrupt change that does not grow further).
"""
from dataclasses import dataclass
import math

import numpy as np
from scipy import stats

__all__ = ['NO_DEGRADATION', 'RulEstimate', 'STABLE', 'TrendSettings', 'estimate_rul']

NO_DEGRADATION = 'no degradation seen'
_MIN_AFTER_ONSET = 3
STABLE = 'no trend'


@dataclass(frozen=True)
class TrendSettings:
    """
    Settings of :func:`estimate_rul`.

    Attributes
    ----------
    interval : float
        Probability of the credible interval, in (0, 1) (0.9: 5 % and 95 % quantiles).
    min_points : int
        Epochs needed (>= 4); a candidate onset needs 3 after it.
    min_degradation : float
        Estimated degradation now below which no number is given, in [0, 1).
    min_probability : float
        Posterior probability of a positive drift needed for a number, in (0, 1).
    diffusion_per_sqrt_hour : float
        ``sigma_B`` of the Wiener process, degradation per sqrt(operating hour), >= 0.
    max_onsets : int
        Candidate onsets tried (spread over the history).
    draws : int
        Posterior draws for the interval.
    seed : int
        Seed of those draws.

    """

    interval: float = 0.9
    min_points: int = 6
    min_degradation: float = 0.05
    min_probability: float = 0.95
    diffusion_per_sqrt_hour: float = 0.0
    max_onsets: int = 40
    draws: int = 4000
    seed: int = 0

    def __post_init__(self):
        checks = (('interval', 0.0 < self.interval < 1.0, 'in (0, 1)'),
                  ('min_points', self.min_points >= 4, '>= 4'),
                  ('min_degradation', 0.0 <= self.min_degradation < 1.0, 'in [0, 1)'),
                  ('min_probability', 0.0 < self.min_probability < 1.0, 'in (0, 1)'),
                  ('diffusion_per_sqrt_hour', self.diffusion_per_sqrt_hour >= 0.0, '>= 0'),
                  ('max_onsets', self.max_onsets >= 1, '>= 1'),
                  ('draws', self.draws >= 100, '>= 100'))
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f'{name} must be {rule}, got {getattr(self, name)!r}')


@dataclass(frozen=True)
class RulEstimate:
    """
    RUL of one joint and kind of evidence.

    Attributes
    ----------
    rul_hours, lower_hours, upper_hours : float
        Median and credible interval of the operating hours until failure; NaN when there is
        no number (``reason`` says why); ``upper_hours`` may be inf (the history cannot rule
        out that the drift stops).
    reason : str
        Empty when there is a number, else e.g. ``'no degradation seen'``. An estimate without
        a reason but without a finite ``rul_hours`` (the default) has no number either.
    degradation : float
        Estimated degradation now (0 commissioned, 1 failed).
    drift_per_hour : float
        Posterior mean drift of the degradation, per operating hour (0 without degradation).
    probability : float
        Posterior probability of a positive drift.
    onset_hours : float
        Most probable onset of the drift (operating hours), NaN without degradation.
    points : int
        Epochs used.

    """

    rul_hours: float = math.nan
    lower_hours: float = math.nan
    upper_hours: float = math.nan
    reason: str = ''
    degradation: float = math.nan
    drift_per_hour: float = 0.0
    probability: float = 0.0
    onset_hours: float = math.nan
    points: int = 0

    @property
    def has_number(self):
        """Return True when the estimate carries an RUL: no reason and a finite median."""
        return not self.reason and math.isfinite(self.rul_hours)


def _family(xtx, xtd, x_now, drift, dd, sst, n, onsets):
    """
    Batched least-squares fits of one model family over its candidate onsets.

    ``xtx`` (C, k, k) and ``xtd`` (C, k) are the normal equations (intercept first),
    ``x_now`` (C, k) the regressors at ``t_now``, ``drift`` (k,) selects the drift.
    Returns the fits padded to 3 coefficients (dict of arrays), degenerate designs dropped.
    """
    k = xtd.shape[1]
    ok = np.linalg.cond(xtx) < 1e12
    xtx, xtd, x_now, onsets = xtx[ok], xtd[ok], x_now[ok], onsets[ok]
    inv = np.linalg.inv(xtx)
    beta = np.einsum('cij,cj->ci', inv, xtd)
    rss = np.maximum(dd - np.einsum('ci,ci->c', beta, xtd), 1e-300)
    r2 = np.clip(1.0 - rss / sst, 0.0, 1.0) if sst > 0.0 else np.zeros_like(rss)
    g = float(n)
    log_bf = 0.5 * (n - k) * math.log1p(g) - 0.5 * (n - 1) * np.log1p(g * (1.0 - r2))
    cov = (rss / (n - k))[:, None, None] * inv
    chol = np.linalg.cholesky(cov + 1e-18 * np.eye(k))

    m = len(beta)
    out = {'beta': np.zeros((m, 3)), 'chol': np.zeros((m, 3, 3)), 'x_now': np.zeros((m, 3)),
           'drift': np.zeros((m, 3)), 'dof': np.full(m, n - k), 'log_bf': log_bf,
           'onset': onsets}
    out['beta'][:, :k] = beta
    out['chol'][:, :k, :k] = chol
    out['x_now'][:, :k] = x_now
    out['drift'][:, :k] = drift
    return out


def _models(t, d, t_now, settings):
    """
    Fit every model of the history, as padded arrays (one row per model).

    Per candidate onset ``c``: a hinge (drift from ``c``), a step (a level shift at ``c``, no
    drift) and a step with drift from ``c``; last, the model without change. The log prior
    gives the model without change 1/2 and shares the rest evenly by family and onset.
    """
    n = t.size
    last = n - _MIN_AFTER_ONSET                     # a drift needs points after its onset
    idx = np.unique(np.linspace(0, last, min(settings.max_onsets, last + 1)).round().astype(int))
    c = t[idx]
    h = np.maximum(t[None, :] - c[:, None], 0.0)             # (C, n)
    s = (t[None, :] >= c[:, None]).astype(float)
    h_now = np.maximum(t_now - c, 0.0)
    big_n, big_s, big_h, hh = float(n), s.sum(1), h.sum(1), (h * h).sum(1)
    dsum, sd, hd, dd = d.sum(), s @ d, h @ d, float(d @ d)
    sst = dd - dsum * dsum / n
    ones = np.ones_like(c)
    step = idx >= 1                                          # points on both sides of a step
    families = [
        _family(np.stack([np.stack([ones * big_n, big_h], -1), np.stack([big_h, hh], -1)], 1),
                np.stack([ones * dsum, hd], -1), np.stack([ones, h_now], -1),
                np.array([0.0, 1.0]), dd, sst, n, c),
        _family(np.stack([np.stack([ones * big_n, big_s], -1),
                          np.stack([big_s, big_s], -1)], 1)[step],
                np.stack([ones * dsum, sd], -1)[step], np.stack([ones, ones], -1)[step],
                np.array([0.0, 0.0]), dd, sst, n, c[step]),
        _family(np.stack([np.stack([ones * big_n, big_s, big_h], -1),
                          np.stack([big_s, big_s, big_h], -1),
                          np.stack([big_h, big_h, hh], -1)], 1)[step],
                np.stack([ones * dsum, sd, hd], -1)[step],
                np.stack([ones, ones, h_now], -1)[step], np.array([0.0, 0.0, 1.0]), dd, sst,
                n, c[step])]
    null = _family(np.full((1, 1, 1), big_n), np.array([[dsum]]), np.ones((1, 1)),
                   np.array([0.0]), dd, sst, n, np.array([np.nan]))
    null['log_bf'] = np.zeros(1)
    present = [f for f in families if len(f['log_bf'])]
    log_prior = np.concatenate(
        [np.full(len(f['log_bf']), math.log(0.5 / len(present) / len(f['log_bf'])))
         for f in present] + [[math.log(0.5)]])
    fits = {key: np.concatenate([f[key] for f in present + [null]]) for key in null}
    return fits, log_prior


def _draw_rul(fits, weights, settings, rng):
    """Posterior draws of the RUL (inf where the degradation stops), ``(draws,)``."""
    m = rng.choice(weights.size, size=settings.draws, p=weights)
    z = np.einsum('kij,kj->ki', fits['chol'][m], rng.standard_normal((settings.draws, 3)))
    dof = fits['dof'][m]
    beta = fits['beta'][m] + np.sqrt(dof / rng.chisquare(dof))[:, None] * z
    return _first_passage(np.einsum('ki,ki->k', beta, fits['x_now'][m]),
                          np.einsum('ki,ki->k', beta, fits['drift'][m]),
                          settings.diffusion_per_sqrt_hour, rng)


def _first_passage(level, mu, sigma_b, rng):
    remaining = 1.0 - level
    rul = np.full(level.shape, np.inf)
    rul[remaining <= 0.0] = 0.0
    go = (remaining > 0.0) & (mu > 0.0)
    mean = remaining[go] / mu[go]
    if sigma_b > 0.0 and mean.size:
        mean = rng.wald(mean, remaining[go] ** 2 / sigma_b ** 2)
    rul[go] = mean
    return rul


def estimate_rul(t, d, t_now, settings=None):
    """
    Estimate the RUL from a degradation history.

    Parameters
    ----------
    t : (N,) operating hours
        Times of the epochs, increasing.
    d : (N,)
        Degradation at those times (0 commissioned, 1 failed); NaN entries are ignored.
    t_now : float, operating hours
        Time the RUL is counted from (usually the last epoch).
    settings : TrendSettings, optional
        Model settings (defaults when omitted).

    Returns
    -------
    RulEstimate

    """
    settings = settings or TrendSettings()
    t = np.asarray(t, dtype=float)
    d = np.asarray(d, dtype=float)
    keep = np.isfinite(t) & np.isfinite(d)
    t, d = t[keep], d[keep]
    n = t.size
    if n < settings.min_points:
        return RulEstimate(reason=f'collecting evidence: {n} of {settings.min_points} epochs',
                           points=n)
    fits, log_prior = _models(t, d, t_now, settings)
    log_w = log_prior + fits['log_bf']
    weights = np.exp(log_w - log_w.max())
    weights /= weights.sum()
    mu = np.einsum('mi,mi->m', fits['drift'], fits['beta'])
    has_drift = fits['drift'].any(axis=1)
    cov = fits['chol'] @ np.swapaxes(fits['chol'], 1, 2)
    se = np.sqrt(np.maximum(np.einsum('mi,mij,mj->m', fits['drift'], cov, fits['drift']),
                            1e-300))
    p_up = np.where(has_drift, stats.t.cdf(mu / se, fits['dof']), 0.0)
    probability = float(weights @ p_up)
    level = float(weights @ np.einsum('mi,mi->m', fits['x_now'], fits['beta']))
    drift = float(weights @ mu)
    onset = float(fits['onset'][int(np.argmax(np.where(has_drift, weights, -1.0)))])
    common = {'degradation': level, 'drift_per_hour': drift, 'probability': probability,
              'points': n}
    if level < settings.min_degradation:
        return RulEstimate(reason=NO_DEGRADATION, **common)
    if level < 1.0 and probability < settings.min_probability:
        return RulEstimate(reason=f'{STABLE}: degradation {level:.2f} is not growing', **common)
    rng = np.random.default_rng(settings.seed)
    draws = _draw_rul(fits, weights, settings, rng)
    q = (1.0 - settings.interval) / 2.0
    lower, median, upper = np.quantile(draws, [q, 0.5, 1.0 - q], method='inverted_cdf')
    if not math.isfinite(median):
        return RulEstimate(reason=NO_DEGRADATION, **common)
    return RulEstimate(rul_hours=float(median), lower_hours=float(lower),
                       upper_hours=float(upper), onset_hours=onset, **common)
