"""
Per-joint health evidence from the twin's residual stream, and the health index (ROS-free).

The twin's effort residual is measured minus predicted effort, where the prediction already
contains the twin's friction model (:class:`twin_sim.friction.FrictionModel`: viscous +
Coulomb + offset). Wear that raises a joint's friction therefore shows as a residual that
follows the velocity: ``r = dfv * qd + dfc * s(qd) + dfo + e``. Over one *health epoch* (a
stretch of operating time, e.g. five minutes) the three terms are identified by least squares on
the friction model's own regressor (:func:`twin_sim.friction.viscous_coulomb_regressor`) from
the samples where the joint moves; an epoch gives independent estimates (a windowed least
squares, not a recursive one), which is what the degradation model wants as observations.

Evidence per joint and epoch (:class:`EpochEvidence`):

- ``friction_nm``: the joint's friction torque at ``reference_speed`` (rad/s), model + identified
  change: ``tau_f(v_ref) + dfv v_ref + dfc``, N·m (``fv v_ref + fc`` for a viscous-Coulomb
  model), with its least-squares standard error;
- ``residual_rms_nm``: RMS of the residual the friction fit does not explain (backlash, a
  damaged gear, a changed load: wear that is not friction), N·m;
- ``torque_margin``: ``1 - q99(|effort| / effort_limit)`` over the epoch (the second worst 1 s
  block), how far the drive works from its URDF effort limit. Not the worst block: one burst
  near the limit (a collision, a stall of a simulated robot) is an event for the anomaly
  detector, not wear, and it made a whole epoch read "at the failure limit" (RUL 0 h on a
  joint without any fault, in the demo); a drive that works near its limit does so again.

Degradation and health (:func:`degradation`): each kind of evidence is scaled so that 0 is its
commissioned value (:class:`Baseline`, the median of the first epochs) and 1 is the failure
value that the configuration gives (:class:`FailureLimits`): for friction an absolute service
friction per joint or a factor of the commissioned friction, for the residual a factor of its
commissioned RMS, for the margin a minimum margin. The health index of a joint is
``clip(1 - max(D), 0, 1)``: 1 as commissioned, 0 at the first failure limit reached.
"""
from dataclasses import dataclass
import warnings

import numpy as np
from twin_sim.friction import DEFAULT_SMOOTH_VELOCITY, viscous_coulomb_regressor

__all__ = ['Baseline', 'EVIDENCE_KINDS', 'EpochAccumulator', 'EpochEvidence', 'FailureLimits',
           'degradation', 'health_index']

#: The kinds of evidence, in the column order of :func:`degradation`.
EVIDENCE_KINDS = ('friction', 'residual', 'torque_margin')
_MAX_CONDITION = 1e8     # a worse-conditioned friction regression is not identifiable


class EpochAccumulator:
    """
    Sufficient statistics of one health epoch, fed block by block.

    Parameters
    ----------
    n : int
        Number of joints.
    moving_speed : float, rad/s
        A joint's sample enters the friction fit only where ``|qd| >`` this.
    smooth_velocity : float, rad/s
        Coulomb smoothing of the twin's friction model (:mod:`twin_sim.friction`).

    """

    def __init__(self, n, moving_speed, smooth_velocity=DEFAULT_SMOOTH_VELOCITY):
        self.n = int(n)
        self.moving_speed = float(moving_speed)
        self.smooth_velocity = float(smooth_velocity)
        self.reset()

    def reset(self):
        """Start a new epoch."""
        n = self.n
        self.ata = np.zeros((n, 3, 3))
        self.atb = np.zeros((n, 3))
        self.btb = np.zeros(n)
        self.count = np.zeros(n, dtype=np.int64)
        self.positive = np.zeros(n, dtype=np.int64)
        self.speed_sum = np.zeros(n)
        self.peak_ratio = np.full(n, np.nan)     # worst block's q99 |effort| / limit
        self.second_ratio = np.full(n, np.nan)   # second worst block's (the margin's)
        self.operating_s = 0.0
        self.t_end = np.nan

    def add_block(self, qd, effort, residual, effort_limit, moving_dt, t_end):
        """
        Add one block of samples.

        Parameters
        ----------
        qd : (N, n) rad/s
            Measured joint velocities, model joint order.
        effort : (N, n) N·m
            Measured joint efforts.
        residual : (N, n) N·m
            Effort residual (measured minus predicted); NaN where the twin had none.
        effort_limit : (n,) N·m
            URDF effort limits (> 0).
        moving_dt : (N,) s
            Operating time each sample stands for (0 where the robot stood still).
        t_end : float, s
            Stamp of the block's last sample.

        """
        if qd.shape[0] == 0:
            return
        finite = np.isfinite(residual) & np.isfinite(qd)
        use = finite & (np.abs(qd) > self.moving_speed)
        y = viscous_coulomb_regressor(np.where(use, qd, 0.0),
                                      smooth_velocity=self.smooth_velocity)   # (N, n, 3)
        r = np.where(use, residual, 0.0)
        w = use.astype(float)
        yw = y * w[..., None]
        self.ata += np.einsum('kni,knj->nij', yw, y)
        self.atb += np.einsum('kni,kn->ni', yw, r)
        self.btb += (r * r).sum(axis=0)
        self.count += use.sum(axis=0)
        self.positive += (use & (qd > 0.0)).sum(axis=0)
        self.speed_sum += np.where(use, np.abs(qd), 0.0).sum(axis=0)
        ratio = np.abs(effort) / effort_limit
        with np.errstate(all='ignore'), warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)   # a joint left out: NaN
            q99 = np.nanquantile(ratio, 0.99, axis=0) if np.isfinite(ratio).any() else \
                np.full(self.n, np.nan)
        # (np.minimum keeps NaN: after the first block there is no second worst yet)
        self.second_ratio = np.fmax(self.second_ratio, np.minimum(self.peak_ratio, q99))
        self.peak_ratio = np.fmax(self.peak_ratio, q99)
        self.operating_s += float(np.sum(moving_dt))
        self.t_end = float(t_end)


@dataclass(eq=False)
class EpochEvidence:
    """
    Health evidence of one epoch, per joint (model joint order; NaN where not identifiable).

    Attributes
    ----------
    friction_nm : (n,) N·m
        Friction torque at the reference speed (model + identified change).
    friction_se_nm : (n,) N·m
        Its least-squares standard error (white-noise assumption: a lower bound).
    delta_viscous, delta_coulomb, offset : (n,) N·m·s/rad, N·m, N·m
        The identified change of the friction parameters and the residual's constant part.
    residual_rms_nm : (n,) N·m
        RMS of the residual the friction fit leaves, over moving samples.
    torque_margin : (n,)
        ``1 - q99(|effort| / limit)``, the second worst block of the epoch (the only one in
        an epoch of one block).
    samples : (n,) int
        Moving samples used in the fit.
    mean_speed : (n,) rad/s
        Mean ``|qd|`` over those samples.

    """

    friction_nm: np.ndarray
    friction_se_nm: np.ndarray
    delta_viscous: np.ndarray
    delta_coulomb: np.ndarray
    offset: np.ndarray
    residual_rms_nm: np.ndarray
    torque_margin: np.ndarray
    samples: np.ndarray
    mean_speed: np.ndarray

    def as_dict(self):
        """Return ``{field: list}`` (JSON-able; NaN stays NaN)."""
        return {k: np.asarray(v).tolist() for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, data, n):
        """Build from :meth:`as_dict` output (None read as NaN); ValueError if malformed."""
        out = {}
        for name in cls.__dataclass_fields__:
            values = data.get(name)
            if not isinstance(values, list) or len(values) != n:
                raise ValueError(f'evidence field {name!r} must be a list of {n} numbers')
            out[name] = np.array([np.nan if v is None else float(v) for v in values])
        out['samples'] = np.nan_to_num(out['samples']).astype(np.int64)
        return cls(**out)


def solve_epoch(acc, model_friction_nm, reference_speed, *, min_samples=200,
                min_sign_fraction=0.1):
    """
    Identify the friction change of one epoch and summarize its evidence.

    Parameters
    ----------
    acc : EpochAccumulator
        The epoch's statistics.
    model_friction_nm : (n,) N·m
        Friction torque of the twin's model at ``reference_speed`` (what the prediction
        already contains), without its constant offset.
    reference_speed : float, rad/s
        Speed at which the friction torque is reported.
    min_samples : int
        Moving samples a joint needs in the epoch.
    min_sign_fraction : float
        Share of those samples each direction of motion needs (else Coulomb friction and a
        constant offset cannot be told apart).

    Returns
    -------
    EpochEvidence

    """
    n = acc.n
    ata, atb, btb, count = acc.ata, acc.atb, acc.btb, acc.count
    positive = acc.positive
    negative = count - positive
    ok = (count >= max(int(min_samples), 4)) & \
        (np.minimum(positive, negative) >= min_sign_fraction * np.maximum(count, 1))
    theta = np.full((n, 3), np.nan)
    se = np.full(n, np.nan)
    rms = np.full(n, np.nan)
    g = np.array([reference_speed, 1.0, 0.0])
    for j in np.flatnonzero(ok):
        a = ata[j]
        if np.linalg.cond(a) > _MAX_CONDITION:
            ok[j] = False
            continue
        th = np.linalg.solve(a, atb[j])
        rss = max(btb[j] - 2.0 * th @ atb[j] + th @ a @ th, 0.0)
        theta[j] = th
        rms[j] = np.sqrt(rss / count[j])
        cov = rss / max(count[j] - 3, 1) * np.linalg.inv(a)
        se[j] = np.sqrt(max(g @ cov @ g, 0.0))
    friction = np.asarray(model_friction_nm, dtype=float) + theta @ g
    with np.errstate(all='ignore'):
        mean_speed = np.where(count > 0, acc.speed_sum / np.maximum(count, 1), np.nan)
    return EpochEvidence(
        friction_nm=friction, friction_se_nm=se, delta_viscous=theta[:, 0],
        delta_coulomb=theta[:, 1], offset=theta[:, 2], residual_rms_nm=rms,
        torque_margin=1.0 - np.where(np.isnan(acc.second_ratio), acc.peak_ratio,
                                     acc.second_ratio),
        samples=count.copy(), mean_speed=mean_speed)


@dataclass(eq=False)
class Baseline:
    """
    The commissioned health evidence per joint (median over the first valid epochs).

    Attributes
    ----------
    friction_nm, residual_rms_nm, torque_margin : (n,)
        As in :class:`EpochEvidence`; NaN for a joint that was never identifiable.
    epochs : int
        Epochs it was learned from.

    """

    friction_nm: np.ndarray
    residual_rms_nm: np.ndarray
    torque_margin: np.ndarray
    epochs: int = 0

    @classmethod
    def from_epochs(cls, evidence):
        """Median over a list of :class:`EpochEvidence` (NaN-aware)."""
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)   # all-NaN joints stay NaN
            med = {k: np.nanmedian(np.stack([getattr(e, k) for e in evidence]), axis=0)
                   for k in ('friction_nm', 'residual_rms_nm', 'torque_margin')}
        return cls(epochs=len(evidence), **med)

    def as_dict(self):
        """Return a JSON-able mapping."""
        return {'friction_nm': self.friction_nm.tolist(),
                'residual_rms_nm': self.residual_rms_nm.tolist(),
                'torque_margin': self.torque_margin.tolist(), 'epochs': int(self.epochs)}

    @classmethod
    def from_dict(cls, data, n):
        """Build from :meth:`as_dict` output; ValueError if malformed."""
        out = {}
        for name in ('friction_nm', 'residual_rms_nm', 'torque_margin'):
            values = data.get(name)
            if not isinstance(values, list) or len(values) != n:
                raise ValueError(f'baseline field {name!r} must be a list of {n} numbers')
            out[name] = np.array([np.nan if v is None else float(v) for v in values])
        return cls(epochs=int(data.get('epochs', 0)), **out)


@dataclass(frozen=True)
class FailureLimits:
    """
    What counts as failed, per kind of evidence (all from configuration).

    Attributes
    ----------
    service_friction_nm : (n,) N·m
        Friction at the reference speed at which a joint must be serviced; NaN: use
        ``friction_factor`` times the commissioned friction.
    friction_factor : float
        Service friction as a multiple of the commissioned one (> 1).
    residual_factor : float
        Failure RMS of the unexplained residual as a multiple of the commissioned one (> 1).
    min_residual_rms_nm : float
        Floor of the commissioned RMS used for ``residual_factor`` (a very clean
        commissioning must not make the limit a hair trigger), N·m.
    min_torque_margin : float
        Failure when the torque margin falls to this, in [0, 1).

    """

    service_friction_nm: np.ndarray
    friction_factor: float = 2.0
    residual_factor: float = 4.0
    min_residual_rms_nm: float = 0.05
    min_torque_margin: float = 0.1

    def friction_limit(self, baseline):
        """Return the service friction per joint (n,), N·m."""
        return np.where(np.isfinite(self.service_friction_nm), self.service_friction_nm,
                        self.friction_factor * baseline.friction_nm)


def degradation(evidence, baseline, limits, commissioned=None):
    """
    Degradation per joint and kind: 0 at the baseline, 1 at the failure limit.

    Parameters
    ----------
    evidence : EpochEvidence
        The epoch's evidence.
    baseline : Baseline
        The evidence that counts as 0: the commissioned one, or per joint the one re-learned
        after a maintenance.
    limits : FailureLimits
        The configured failure limits.
    commissioned : Baseline, optional
        The commissioned evidence the limits that are factors of it are taken from (the
        friction factor, the residual factor); default ``baseline``. A re-learned baseline
        moves the 0, never the failure limit.

    Returns
    -------
    d : (n, 3)
        Columns in :data:`EVIDENCE_KINDS` order; NaN where the evidence or the baseline is
        missing, or the limit does not lie beyond the commissioned value.

    """
    commissioned = baseline if commissioned is None else commissioned
    with np.errstate(all='ignore'):
        f_lim = limits.friction_limit(commissioned)
        span_f = f_lim - baseline.friction_nm
        d_f = np.where(span_f > 0.0, (evidence.friction_nm - baseline.friction_nm) / span_f,
                       np.nan)
        r0 = np.fmax(baseline.residual_rms_nm, limits.min_residual_rms_nm)
        r_lim = limits.residual_factor * np.fmax(commissioned.residual_rms_nm,
                                                 limits.min_residual_rms_nm)
        d_r = np.where(r_lim > r0, (evidence.residual_rms_nm - r0) / (r_lim - r0), np.nan)
        span_m = baseline.torque_margin - limits.min_torque_margin
        d_m = np.where(span_m > 0.0, (baseline.torque_margin - evidence.torque_margin) / span_m,
                       np.nan)
    return np.stack([d_f, d_r, d_m], axis=1)


def health_index(d):
    """
    Health index per joint from :func:`degradation` output.

    Parameters
    ----------
    d : (n, 3)
        Degradation per joint and kind.

    Returns
    -------
    (n,) in [0, 1]
        ``clip(1 - max over kinds of d, 0, 1)``; NaN where no kind has evidence.

    """
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)       # all-NaN joints stay NaN
        worst = np.nanmax(d, axis=1)
    return np.clip(1.0 - worst, 0.0, 1.0)
