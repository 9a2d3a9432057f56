"""
Name the fault and the faulty joint from the detectors' evidence: features, ONNX model, rules.

When an alarm is raised, the monitor collects its detectors' state into an :class:`Evidence`
(per joint and detector: the smoothed standardized value, the current ratio to the threshold
and the peak ratio of the episode; plus robot-level quantities such as the wrench residual's
alignment with gravity). :func:`feature_rows` turns it into one row per joint that describes
that joint *relative to the others* (its own detectors, the strongest of the other joints, of
the joints before and after it in the chain), so that one model serves any joint of any arm.

:class:`OnnxClassifier` runs a trained model (``robot-twin anomaly train`` writes one; two
ship in ``twin_anomaly/models/``, one per band of joint-state rates, :data:`PACKAGED_MODELS`)
with onnxruntime: the model gives, per row, the
probability of each class of :data:`CLASSES` (a fault type, or ``'none'``: this joint is not
the faulty one). These become one score per hypothesis (a joint fault type on a joint, or a
robot-level fault, :data:`ROBOT_LEVEL`: payload, dropout, delay), :func:`hypotheses`; the best
one is the verdict, ``'unknown'`` below ``min_confidence``. :class:`RuleClassifier` is a
transparent fallback (and the baseline the learned model is measured against) built on the
dominant detector.

One block's evidence can name a steady fault differently from the next (a periodic motion, a
joint-state rate the model was not trained at). :class:`EpisodeVerdict` sums the hypothesis
scores of every block of an alarm episode and reports the hypothesis that leads the sum,
replaced only by one that clearly dominates it; it keeps the same sum for each alarmed joint,
over that joint's hypotheses since its own alarm, so that a second fault on another joint is
named on that joint at once.

The model file carries the feature names and classes it was trained with (ONNX metadata); a
model whose features differ from :data:`FEATURE_NAMES` is refused with a message to retrain.
"""
from dataclasses import dataclass
import importlib.resources
import json
import math
from pathlib import Path

import numpy as np

__all__ = ['CLASSES', 'Evidence', 'EpisodeVerdict', 'FAULT_TYPES', 'FEATURE_NAMES',
           'JOINT_DETECTORS', 'ClassifierError', 'OnnxClassifier', 'PLACED_FROM_OTHERS',
           'ROBOT_FEATURES', 'ROBOT_LEVEL', 'RuleClassifier', 'VERDICT_DOMINANCE', 'Verdict',
           'PACKAGED_MODELS', 'RATE_BAND_BOUNDARY_HZ', 'alarmed_joints', 'decide',
           'default_model_path', 'feature_rows', 'hypotheses', 'load_classifier', 'scores_of']

#: The plant's fault type names (twin_sim.faults), the vocabulary of every verdict.
FAULT_TYPES = ('sensor_bias', 'sensor_noise', 'stuck_sensor', 'dropout', 'delay',
               'friction_increase', 'torque_saturation', 'joint_lock', 'payload_change',
               'collision_force')
#: Fault types of the whole robot or its stream (no faulty joint).
ROBOT_LEVEL = ('dropout', 'delay', 'payload_change')
#: Joint fault types that may be placed on a joint whose own detectors are quiet: a force on a
#: link shows on the joints before it. Every other joint fault shows on its own joint first.
PLACED_FROM_OTHERS = ('collision_force',)
#: Classes of a feature row: a fault type, or ``'none'`` (this joint is not the faulty one).
CLASSES = ('none',) + FAULT_TYPES
#: Per-joint detectors, in the column order of :class:`Evidence` arrays.
JOINT_DETECTORS = ('gmo', 'fric', 'pv_bias', 'pv_jump', 'noise_q', 'noise_qd', 'noise_tau',
                   'stuck_q', 'stuck_qd', 'stuck_tau', 'flat', 'speed')
#: Robot-level evidence, the keys of :attr:`Evidence.robot`.
ROBOT_FEATURES = ('wrench_peak', 'wrench_gravity_cos', 'missing_peak', 'latency_peak',
                  'latency_z', 'payload_cos', 'payload_mass_kg', 'episode_s')
#: Layout of a feature row (see :func:`feature_rows`).
FEATURE_NAMES = tuple(
    [f'own.{k}.{d}' for d in JOINT_DETECTORS for k in ('z', 'ratio', 'peak')]
    + [f'others.{d}.peak' for d in JOINT_DETECTORS]
    + ['proximal.gmo.peak', 'distal.gmo.peak', 'gmo.peak_rank', 'gmo.peak_share',
       'joint.position']
    + [f'robot.{k}' for k in ROBOT_FEATURES])
_PAYLOAD_MASS_SCALE = 5.0     # kg, scale of the implied payload mass feature
#: The episode's age as a feature is capped at this, s. The classifier learns from the first
#: second of an alarm (``robot-twin anomaly train``); a fault that goes on for longer (wear
#: that keeps growing) must not take the model into ages it never saw, where its verdict
#: drifted (a growing friction read as ``sensor_noise`` after some 8 s).
EPISODE_AGE_CAP_S = 1.0
VERDICT_DOMINANCE = 2.0
"""Within an alarm episode, another (fault type, joint) replaces the reported one only once its
summed evidence is this many times the reported one's (:class:`EpisodeVerdict`)."""
RATE_BAND_BOUNDARY_HZ = math.sqrt(500.0 * 1000.0)
"""Joint-state rate, Hz (about 707), from which a stream gets the packaged 1 kHz model; slower
streams get the low-rate one: the geometric mean of 1 kHz and the low-rate model's fastest
training rate, 500 Hz."""
PACKAGED_MODELS = (('fault_classifier.onnx', RATE_BAND_BOUNDARY_HZ),
                   ('fault_classifier_low_rate.onnx', 0.0))
"""The models in ``twin_anomaly/models/``, fastest band first: (file name, the slowest joint-state
rate it serves, Hz). The first was trained on robots streaming at 1 kHz (``robot-twin anomaly
train``), the second on robots streaming at 500, 250, 125 and 100 Hz (``--sample-rates 500 250
125 100``): the evidence of a slower stream (noise levels, run lengths and delays per 20 ms
block) looks different, and the 1 kHz model named a friction step at 125 Hz
``torque_saturation`` at first. :func:`default_model_path` picks one by the stream's rate."""


class ClassifierError(ValueError):
    """A classifier model is missing, unreadable or made for other features."""


@dataclass(frozen=True)
class Evidence:
    """
    The detectors' state while an alarm is raised (joint arrays ``(n, D)``, D detectors).

    Attributes
    ----------
    joint_names : tuple of str
        Model joint order.
    z : (n, D) float array
        Smoothed standardized value of each detector of :data:`JOINT_DETECTORS` (signed; raw
        for counting detectors: run lengths, seconds).
    ratio : (n, D) float array
        Current statistic / threshold (0 for a detector that cannot alarm).
    peak : (n, D) float array
        Largest ratio since the episode began.
    robot : dict
        :data:`ROBOT_FEATURES` -> float (NaN where unknown, e.g. no force-torque sensor).

    """

    joint_names: tuple
    z: np.ndarray
    ratio: np.ndarray
    peak: np.ndarray
    robot: dict


@dataclass(frozen=True)
class Verdict:
    """
    What a classifier says about an alarm.

    Attributes
    ----------
    fault_type : str
        One of :data:`FAULT_TYPES`, or ``'unknown'``.
    joint : str
        The faulty joint; ``''`` for robot-level faults and when unknown.
    confidence : float
        In [0, 1].

    """

    fault_type: str
    joint: str
    confidence: float


def _squash(x):
    """Signed log compression of standardized values (keeps sign and order)."""
    return np.sign(x) * np.log1p(np.abs(x))


def feature_rows(evidence):
    """
    Return the ``(n, len(FEATURE_NAMES))`` float32 feature rows of an :class:`Evidence`.

    Row ``j`` describes joint ``j``: its own detectors (squashed value, ratio, peak ratio),
    the largest peak ratio of each detector over the *other* joints, the largest momentum-
    observer peak ratio of the joints before and after it, its rank and share among the
    joints' momentum-observer peaks, its position in the chain (0 = base, 1 = tip), and the
    robot-level evidence (NaN replaced by 0, ratios compressed like the rest, the episode's
    age capped at :data:`EPISODE_AGE_CAP_S`).
    """
    z = np.nan_to_num(np.asarray(evidence.z, dtype=float))
    ratio = np.nan_to_num(np.asarray(evidence.ratio, dtype=float))
    peak = np.nan_to_num(np.asarray(evidence.peak, dtype=float))
    n, d = peak.shape
    own = np.stack([_squash(z), _squash(ratio), _squash(peak)], axis=2).reshape(n, 3 * d)
    # the largest peak of each detector over the other joints: the top one, or for the
    # joint that holds it, the second
    order = np.sort(peak, axis=0)
    first = order[-1]
    second = order[-2] if n > 1 else np.zeros(d)
    top = np.argmax(peak, axis=0)
    others = np.where(np.arange(n)[:, None] == top[None, :], second[None, :], first[None, :])
    if n == 1:
        others = np.zeros((1, d))
    gmo = peak[:, JOINT_DETECTORS.index('gmo')]
    running = np.maximum.accumulate(gmo)
    proximal = np.concatenate([[0.0], running[:-1]])
    behind = np.maximum.accumulate(gmo[::-1])[::-1]
    distal = np.concatenate([behind[1:], [0.0]])
    rank = np.argsort(np.argsort(-gmo, kind='stable'), kind='stable') / max(n - 1, 1)
    share = gmo / gmo.sum() if gmo.sum() > 0.0 else np.zeros(n)
    position = np.arange(n) / max(n - 1, 1)
    robot = np.array([evidence.robot.get(k, math.nan) for k in ROBOT_FEATURES], dtype=float)
    robot = np.nan_to_num(robot)
    for k in ('wrench_peak', 'missing_peak', 'latency_peak', 'latency_z'):
        i = ROBOT_FEATURES.index(k)
        robot[i] = _squash(robot[i])
    robot[ROBOT_FEATURES.index('payload_mass_kg')] /= _PAYLOAD_MASS_SCALE
    age = ROBOT_FEATURES.index('episode_s')
    robot[age] = min(robot[age], EPISODE_AGE_CAP_S)
    rows = np.concatenate([own, _squash(others), _squash(proximal)[:, None],
                           _squash(distal)[:, None], rank[:, None], share[:, None],
                           position[:, None], np.tile(robot, (n, 1))], axis=1)
    return rows.astype(np.float32)


def alarmed_joints(evidence):
    """Which joints (n,) bool have had a detector at or above its threshold this episode."""
    return np.asarray(evidence.peak, dtype=float).max(axis=1) >= 1.0


def hypotheses(probabilities, joint_names, classes=CLASSES, alarmed=None):
    """
    Return the score of every hypothesis, ``(n + 1, len(FAULT_TYPES))``, from class probabilities.

    Row ``j < n``: each joint fault type on joint ``j``, its probability on that joint's row;
    row ``n``: each robot-level fault type (:data:`ROBOT_LEVEL`, no joint), its mean over the
    rows. Columns in :data:`FAULT_TYPES` order; a type the model lacks scores 0. With
    ``alarmed`` ((n,) bool, :func:`alarmed_joints`) a joint fault other than
    :data:`PLACED_FROM_OTHERS` scores 0 on a joint that did not alarm (when any did): a
    sensor, friction or drive fault that the joint's own detectors do not see is not that
    joint's.

    Parameters
    ----------
    probabilities : (n, K) array
        Per feature row (joint), the probability of each of ``classes``.
    joint_names : sequence of str
        The n joints.
    classes : sequence of str
        The model's classes (``'none'`` and fault types).
    alarmed : (n,) bool array, optional
        The joints whose own detectors alarmed in the episode.

    """
    p = np.asarray(probabilities, dtype=float)
    n = len(joint_names)
    scores = np.zeros((n + 1, len(FAULT_TYPES)))
    mask = None if alarmed is None or not np.any(alarmed) else np.asarray(alarmed, dtype=bool)
    for k, name in enumerate(classes):
        if name not in FAULT_TYPES:
            continue
        f = FAULT_TYPES.index(name)
        if name in ROBOT_LEVEL:
            scores[n, f] = p[:, k].mean()
        elif mask is not None and name not in PLACED_FROM_OTHERS:
            scores[:n, f] = np.where(mask, p[:, k], 0.0)
        else:
            scores[:n, f] = p[:, k]
    return scores


def _hypothesis(index, joint_names):
    """Return ``(fault type, joint)`` of a flat index into a :func:`hypotheses` array."""
    row, f = divmod(int(index), len(FAULT_TYPES))
    return FAULT_TYPES[f], (joint_names[row] if row < len(joint_names) else '')


def decide(probabilities, joint_names, classes=CLASSES, min_confidence=0.5, alarmed=None):
    """
    Turn per-row class probabilities ``(n, K)`` into a :class:`Verdict`.

    The best-scoring hypothesis of :func:`hypotheses` (a joint fault type on the row where it
    is most probable, a robot-level type by its mean over the rows) wins; below
    ``min_confidence`` the verdict is ``'unknown'``.
    """
    scores = hypotheses(probabilities, joint_names, classes, alarmed).ravel()
    best = int(np.argmax(scores))
    if not scores[best] > 0.0 or scores[best] < min_confidence:
        return Verdict('unknown', '', float(max(scores[best], 0.0)))
    return Verdict(*_hypothesis(best, joint_names), float(scores[best]))


def scores_of(classifier, evidence):
    """
    Return a classifier's hypothesis scores (:func:`hypotheses`) for an :class:`Evidence`.

    Its ``scores(evidence)`` where it has one (the trained model); else its verdict
    (``classify(evidence)``) as the only hypothesis, scored with its confidence (the rules,
    or any object with ``classify``). An ``'unknown'`` verdict scores nothing.
    """
    if hasattr(classifier, 'scores'):
        return classifier.scores(evidence)
    names = evidence.joint_names
    verdict = classifier.classify(evidence)
    scores = np.zeros((len(names) + 1, len(FAULT_TYPES)))
    if verdict.fault_type in FAULT_TYPES:
        row = names.index(verdict.joint) if verdict.joint in names else len(names)
        scores[row, FAULT_TYPES.index(verdict.fault_type)] = verdict.confidence
    return scores


class EpisodeVerdict:
    """
    The verdict of one alarm episode, from the hypothesis scores of all its blocks.

    The classifier names a fault from the evidence of the moment, and a steady fault may look
    different from block to block: seen through a periodic motion (a position bias read as a
    collision for half of each motion period), or at a joint-state rate the model was not
    trained at. The reported verdict comes from the sum of every block's scores
    (:func:`hypotheses`) since the alarm was raised, each block weighted by the episode's age
    up to :data:`EPISODE_AGE_CAP_S` (``min(1, (age + block_s) / EPISODE_AGE_CAP_S)``): the
    classifier's evidence still grows in that first second, so its later blocks say more. The
    verdict is ``'unknown'`` until the leading hypothesis' weighted mean score reaches
    ``min_confidence``; that hypothesis is then reported until another one's sum is
    :data:`VERDICT_DOMINANCE` times its own. Its confidence is its weighted mean score.

    Each alarmed joint also gets a verdict of its own (:meth:`of_joint`), by the same rules
    from the hypotheses about it: the joint fault types on that joint and the robot-level
    types (a payload change explains any joint's alarm), summed from the first block at which
    that joint's alarm is raised until it clears. A fault on a second joint within an open
    episode is named there at once, while the episode's verdict still names the first one
    until the second's sum dominates it. A joint names a robot-level type only while the
    episode does too: a joint that alarms as the echo of a fault elsewhere does not see that
    fault among its own hypotheses, and the few blocks some classifier (the rules) reads as a
    robot-level fault would otherwise name it for good; it says ``'unknown'`` instead.

    No clock of its own: the caller passes each block's stamp.

    Parameters
    ----------
    joint_names : sequence of str
        The joints of the score rows.
    min_confidence : float
        A first verdict needs this weighted mean score (else ``'unknown'``): the floor of the
        classifier whose scores are added (0 for one that names verdicts, :func:`scores_of`).
    block_s : float
        The blocks' length, s (the weight of an episode's first block).

    """

    def __init__(self, joint_names, min_confidence=0.5, block_s=0.02):
        self.joint_names = tuple(joint_names)
        self.min_confidence = float(min_confidence)
        self.block_s = float(block_s)
        self.reset()

    def reset(self):
        """Forget the episode (its alarms have cleared)."""
        self.start = None              # stamp of the episode's first block, s
        self.blocks = 0
        self._sum = None               # weighted score sum, flat (n + 1) * len(FAULT_TYPES)
        self._weight = 0.0
        self._shown = None             # flat index of the reported hypothesis, None: unknown
        self._verdict = None
        self._joints = {}              # joint name -> its own EpisodeVerdict, while alarmed

    @property
    def verdict(self):
        """Return the reported :class:`Verdict` (None before the episode's first block)."""
        return self._verdict

    def of_joint(self, name):
        """
        Return joint ``name``'s own :class:`Verdict`, None while its alarm is not raised.

        Its ``joint`` is ``name`` for a joint fault type, ``''`` for a robot-level one, which
        is named only while the episode's verdict names it too (else ``'unknown'``).
        """
        own = self._joints.get(name)
        if own is None:
            return None
        verdict = own.verdict
        if verdict.joint or verdict.fault_type == 'unknown' or (
                self._verdict is not None and self._verdict.fault_type == verdict.fault_type):
            return verdict
        return Verdict('unknown', '', verdict.confidence)

    def add(self, t, scores, alarmed=None):
        """
        Add one block's hypothesis scores at stamp ``t`` (s); return whether the verdict changed.

        The first block of an episode sets the first verdict (no change); a change afterwards
        is a new hypothesis, or the first one named after ``'unknown'``. ``alarmed`` ((n,)
        bool, the joints whose alarm is raised at this block) adds the scores to those joints'
        own verdicts (:meth:`of_joint`) and forgets the others'.
        """
        if alarmed is not None:
            self._add_to_joints(t, scores, alarmed)
        if self.start is None:
            self.start = t
        weight = min(1.0, (t - self.start + self.block_s) / EPISODE_AGE_CAP_S)
        scores = np.asarray(scores, dtype=float).ravel()
        self._sum = weight * scores if self._sum is None else self._sum + weight * scores
        self._weight += weight
        self.blocks += 1
        lead = int(np.argmax(self._sum))
        shown = self._shown
        if shown is None:
            if self._sum[lead] > 0.0 and self._sum[lead] >= self.min_confidence * self._weight:
                shown = lead
        elif lead != shown and self._sum[lead] >= VERDICT_DOMINANCE * self._sum[shown]:
            shown = lead
        before = self._verdict
        if shown is None:
            self._verdict = Verdict('unknown', '', float(self._sum[lead] / self._weight))
        else:
            self._verdict = Verdict(*_hypothesis(shown, self.joint_names),
                                    float(self._sum[shown] / self._weight))
        self._shown = shown
        return before is not None and (before.fault_type, before.joint) != \
            (self._verdict.fault_type, self._verdict.joint)

    def _add_to_joints(self, t, scores, alarmed):
        """Add rows ``j`` and ``n`` of the scores ``(n + 1, F)`` to each alarmed joint ``j``."""
        rows = np.asarray(scores, dtype=float).reshape(len(self.joint_names) + 1, -1)
        joints = {}
        for j in np.flatnonzero(alarmed):
            name = self.joint_names[j]
            own = self._joints.get(name)
            if own is None:
                own = EpisodeVerdict((name,), self.min_confidence, self.block_s)
            own.min_confidence = self.min_confidence
            own.add(t, rows[[j, -1]])
            joints[name] = own
        self._joints = joints


class OnnxClassifier:
    """
    A trained fault classifier run with onnxruntime.

    Parameters
    ----------
    path : str or Path
        ONNX file written by ``robot-twin anomaly train``.
    min_confidence : float
        Verdicts less probable than this are ``'unknown'``.

    Raises
    ------
    ClassifierError
        Missing or unreadable file, or a model made for other features or classes.

    """

    def __init__(self, path, min_confidence=0.5):
        import onnxruntime
        self.path = str(path)
        self.min_confidence = float(min_confidence)
        try:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = onnxruntime.InferenceSession(
                self.path, options, providers=['CPUExecutionProvider'])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
            raise ClassifierError(f'cannot load fault classifier {self.path}: {exc}') from None
        meta = self._session.get_modelmeta().custom_metadata_map
        try:
            features = tuple(json.loads(meta['feature_names']))
            self.classes = tuple(json.loads(meta['classes']))
        except (KeyError, ValueError):
            raise ClassifierError(f'{self.path}: not a robot_twin fault classifier (no '
                                  f'feature_names/classes metadata); rebuild it with '
                                  f'robot-twin anomaly train') from None
        if features != FEATURE_NAMES:
            raise ClassifierError(f'{self.path}: trained on other features than this version '
                                  f'computes ({len(features)} vs {len(FEATURE_NAMES)}); '
                                  f'retrain with robot-twin anomaly train')
        unknown = sorted(set(self.classes) - set(CLASSES))
        if unknown:
            raise ClassifierError(f'{self.path}: unknown classes {unknown}; expected a subset '
                                  f'of {list(CLASSES)}')
        self.metadata = dict(meta)
        self._input = self._session.get_inputs()[0].name
        outputs = self._session.get_outputs()
        self._output = next((o.name for o in outputs if 'prob' in o.name), outputs[-1].name)

    def probabilities(self, rows):
        """Return the class probabilities ``(m, len(classes))`` of feature rows ``(m, F)``."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        return np.asarray(self._session.run([self._output], {self._input: rows})[0])

    def scores(self, evidence):
        """Return the score of every hypothesis (:func:`hypotheses`) for an :class:`Evidence`."""
        p = self.probabilities(feature_rows(evidence))
        return hypotheses(p, evidence.joint_names, self.classes, alarmed_joints(evidence))

    def classify(self, evidence):
        """Return the :class:`Verdict` for an :class:`Evidence`."""
        p = self.probabilities(feature_rows(evidence))
        return decide(p, evidence.joint_names, self.classes, self.min_confidence,
                      alarmed_joints(evidence))


class RuleClassifier:
    """
    Hand-written rules on the dominant detector (fallback and baseline, not a trained model).

    The joint with the largest peak ratio is the faulty one, except that a momentum-observer
    alarm spread over several joints is placed on the most distal joint above threshold (a
    force on a link shows on its joint and the ones before it). The type follows the
    dominant detector: frozen channel -> ``stuck_sensor``; noise level up -> ``sensor_noise``;
    position-velocity inconsistency -> ``sensor_bias``; flat effort -> ``torque_saturation``;
    missing samples -> ``dropout``; latency -> ``delay``; momentum observer with a wrench
    along gravity -> ``payload_change``; on several joints -> ``collision_force``; with the
    joint standing still -> ``joint_lock``; friction-matched -> ``friction_increase``; else
    ``sensor_bias`` (an effort offset).
    """

    def classify(self, evidence):
        """Return the :class:`Verdict` for an :class:`Evidence`."""
        peak = np.nan_to_num(np.asarray(evidence.peak, dtype=float))
        robot = evidence.robot
        names = evidence.joint_names
        if robot.get('missing_peak', 0.0) >= 1.0:
            return Verdict('dropout', '', 0.7)
        if robot.get('latency_peak', 0.0) >= 1.0:
            return Verdict('delay', '', 0.7)
        if peak.max() <= 0.0:
            return Verdict('unknown', '', 0.0)
        j, d = np.unravel_index(int(np.argmax(peak)), peak.shape)
        det = JOINT_DETECTORS[d]
        col = JOINT_DETECTORS.index
        if det.startswith('stuck'):
            return Verdict('stuck_sensor', names[j], 0.7)
        if det.startswith('noise') and evidence.z[j, d] > 0.0:
            return Verdict('sensor_noise', names[j], 0.7)
        if det.startswith('noise'):
            return Verdict('stuck_sensor', names[j], 0.5)
        if det in ('pv_bias', 'pv_jump'):
            return Verdict('sensor_bias', names[j], 0.7)
        if det == 'flat':
            return Verdict('torque_saturation', names[j], 0.7)
        gmo = peak[:, col('gmo')]
        over = np.flatnonzero(gmo >= 1.0)
        if robot.get('wrench_gravity_cos', 0.0) > 0.9 or robot.get('payload_cos', 0.0) > 0.9:
            return Verdict('payload_change', '', 0.6)
        if len(over) > 1:
            return Verdict('collision_force', names[int(over[-1])], 0.6)
        if evidence.z[j, col('speed')] < -3.0:
            return Verdict('joint_lock', names[j], 0.6)
        if peak[j, col('fric')] >= max(1.0, 0.8 * peak[j, col('gmo')]):
            return Verdict('friction_increase', names[j], 0.6)
        return Verdict('sensor_bias', names[j], 0.4)


def default_model_path(sample_rate_hz=None):
    """
    Return the path of the packaged model for a stream at ``sample_rate_hz``, Hz (a Path).

    The first of :data:`PACKAGED_MODELS` whose band holds the rate: the 1 kHz model at or above
    :data:`RATE_BAND_BOUNDARY_HZ`, the low-rate model below it. A rate not known yet (None)
    gets the 1 kHz model. The file may be absent (a broken install).
    """
    name = PACKAGED_MODELS[0][0]
    if sample_rate_hz is not None and math.isfinite(sample_rate_hz):
        name = next((file for file, slowest in PACKAGED_MODELS if sample_rate_hz >= slowest),
                    PACKAGED_MODELS[-1][0])
    return Path(str(importlib.resources.files('twin_anomaly') / 'models' / name))


def load_classifier(model_path='', min_confidence=0.5, sample_rate_hz=None):
    """
    Return the classifier a monitor should use.

    Parameters
    ----------
    model_path : str
        ``''``: the packaged model for ``sample_rate_hz`` (:func:`default_model_path`);
        ``'rules'``: :class:`RuleClassifier`; else an ONNX file (whatever the rate).
    min_confidence : float
        For the ONNX model.
    sample_rate_hz : float, optional
        The robot's joint-state rate, Hz, when known (picks the packaged model).

    Raises
    ------
    ClassifierError
        The model cannot be loaded (a named file that is missing is an error; a missing
        packaged default is too, since the package ships it).

    """
    if model_path == 'rules':
        return RuleClassifier()
    path = Path(model_path) if model_path else default_model_path(sample_rate_hz)
    if not path.is_file():
        raise ClassifierError(f'fault classifier model not found: {path}; pass another '
                              f'model_path, or rules')
    return OnnxClassifier(path, min_confidence)
