"""
Joint mapping between a message's name order and the model's joint order.

ROS-free. A ``sensor_msgs/JointState`` may list its joints in any order and any subset (an arm
and its gripper are often published on separate messages); the twin works in the model's joint
order (``RobotModel.joint_names``). :class:`JointMapper` resolves a message's name list once,
caches the resulting index permutation, and keeps the latest values per joint, so that a partial
message updates only its own joints. A joint's velocity and effort are those of the message that
last gave its position: NaN where that message gave none (an empty array, "not provided"),
never an older message's. It also maps the other way: a model-order command to the
name/value lists of a command message, optionally for the subset of joints a controller owns.

The per-message cost is a list comparison (the name order usually repeats) and one indexed
assignment per field.
"""
import math

import numpy as np


class MappingError(ValueError):
    """A name list or value array cannot be mapped onto the model's joints."""


def format_joint_names(names, limit=6):
    """
    Describe a list of joint names compactly for error messages.

    ``['joint1', ..., 'joint7']`` becomes ``'joint1..joint7'``; other lists are quoted and
    shortened after ``limit`` names.

    Parameters
    ----------
    names : sequence of str
        The names to list.
    limit : int
        Most names listed before the rest is summarized.

    Returns
    -------
    str

    """
    names = [str(n) for n in names]
    if not names:
        return '(no joints)'
    if len(names) >= 3:
        stem = names[0].rstrip('0123456789')
        digits = [n[len(stem):] for n in names]
        if all(n.startswith(stem) for n in names) and all(d.isdigit() for d in digits):
            first = int(digits[0])
            if [int(d) for d in digits] == list(range(first, first + len(names))):
                return f'{names[0]}..{names[-1]}'
    if len(names) <= limit:
        return ', '.join(repr(n) for n in names)
    shown = ', '.join(repr(n) for n in names[:limit])
    return f'{shown}, ... ({len(names)} joints)'


class NameLayout:
    """
    How one message name list maps onto the model's joints (computed once, then cached).

    Attributes
    ----------
    names : tuple of str
        The message's names, in message order.
    model_idx : (k,) intp array
        Model index of each known name, in message order (``k`` known names).
    msg_idx : (k,) intp array or None
        Message position of each known name; None when every name is known and unique (then
        the message's arrays map onto ``model_idx`` as they are).
    unknown : tuple of str
        Names not in the model, in message order; names in ``held`` (joints the model holds
        fixed, see :class:`LayoutCache`) are left out like them but are not unknown.
    duplicates : tuple of str
        Names that occur more than once.
    model_idx_list : list of int
        ``model_idx`` as a Python list (cheaper to iterate for small ``k``).

    """

    __slots__ = ('names', 'model_idx', 'msg_idx', 'unknown', 'duplicates', 'model_idx_list')

    def __init__(self, names, index_of, held=frozenset()):
        self.names = tuple(names)
        seen = set()
        duplicates = []
        unknown = []
        model_idx = []
        msg_idx = []
        for pos, name in enumerate(self.names):
            if name in seen:
                if name not in duplicates:
                    duplicates.append(name)
                continue
            seen.add(name)
            idx = index_of.get(name)
            if idx is None:
                if name not in held:
                    unknown.append(name)
                continue
            model_idx.append(idx)
            msg_idx.append(pos)
        self.unknown = tuple(unknown)
        self.duplicates = tuple(duplicates)
        self.model_idx_list = model_idx
        self.model_idx = np.asarray(model_idx, dtype=np.intp)
        if len(msg_idx) == len(self.names):
            self.msg_idx = None
        else:
            self.msg_idx = np.asarray(msg_idx, dtype=np.intp)


class LayoutCache:
    """
    Cache of :class:`NameLayout` per distinct name list, with a fast path for a repeat.

    Parameters
    ----------
    joint_names : sequence of str
        Model joint names, in model order (unique, non-empty strings).
    max_layouts : int
        Most distinct name lists kept; the cache is cleared when it fills (a robot publishes a
        handful of layouts; a flood of distinct ones is a malformed publisher).
    held : iterable of str
        Joints of the robot that the model holds fixed (``locked_joints``): a message may name
        them; they are left out, and are not unknown.

    """

    def __init__(self, joint_names, max_layouts=64, held=()):
        names = tuple(joint_names)
        if not names:
            raise MappingError('the model has no joints: nothing to map onto')
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise MappingError(f'model joint names must be non-empty strings, got {bad!r}')
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise MappingError(f'model joint names must be unique; duplicated: {dup}')
        if int(max_layouts) < 1:
            raise MappingError(f'max_layouts must be >= 1, got {max_layouts}')
        self.joint_names = names
        self.index_of = {n: i for i, n in enumerate(names)}
        self.held = frozenset(held) - set(names)
        self._max = int(max_layouts)
        self._layouts = {}
        self._last_names = None
        self._last_layout = None

    def get(self, names):
        """
        Return the :class:`NameLayout` of a message name list (cached).

        Parameters
        ----------
        names : list or tuple of str
            The message's ``name`` field.

        Returns
        -------
        NameLayout

        """
        if names == self._last_names:
            return self._last_layout
        key = tuple(names)
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= self._max:
                self._layouts.clear()
            layout = NameLayout(key, self.index_of, self.held)
            self._layouts[key] = layout
        self._last_names = list(key) if isinstance(names, list) else key
        self._last_layout = layout
        return layout


class JointMapper:
    """
    Map joint-state messages (any order, any subset) into model-order arrays, and back.

    Parameters
    ----------
    model_joint_names : sequence of str
        The model's joint names in model order (``RobotModel.joint_names``), ``n`` of them.
    ignore_unknown : bool
        If True, names not in the model are skipped; if False (default) they raise
        :class:`MappingError` (validate messages with
        :class:`twin_bridge.validation.JointStateValidator` first).
    held_joints : iterable of str
        Joints the model holds fixed (``locked_joints``): always skipped.

    Attributes
    ----------
    joint_names : tuple of str
        Model joint names, model order.
    position : (n,) float array, rad (or m for prismatic joints)
        Latest position per joint; NaN until the joint was first received.
    velocity : (n,) float array, rad/s (or m/s)
        Velocity per joint from the message that last updated its position; NaN until then,
        and NaN where that message gave no velocity (messages may omit it).
    effort : (n,) float array, N·m (or N)
        Effort per joint from the message that last updated its position; NaN where that
        message gave none, as for ``velocity``.
    stamp : (n,) float array, s
        Header stamp of the message that last updated each joint's position; NaN until then.

    """

    def __init__(self, model_joint_names, *, ignore_unknown=False, held_joints=()):
        self._cache = LayoutCache(model_joint_names, held=held_joints)
        self.joint_names = self._cache.joint_names
        self.n = len(self.joint_names)
        self.ignore_unknown = bool(ignore_unknown)
        self._subsets = {}
        self.reset()

    def reset(self):
        """Forget every received value (all joints back to never received)."""
        n = self.n
        self.position = np.full(n, np.nan)
        self.velocity = np.full(n, np.nan)
        self.effort = np.full(n, np.nan)
        self.stamp = np.full(n, np.nan)
        self._received = np.zeros((3, n), dtype=bool)
        self._missing = [n, n, n]
        self._marked = {}

    def layout(self, names):
        """Return the cached :class:`NameLayout` of a message name list."""
        return self._cache.get(names)

    def update(self, names, position, velocity=(), effort=(), stamp=math.nan):
        """
        Store one message's values into the model-order arrays.

        Only the joints the message names are updated. An empty ``velocity`` or ``effort``
        means "not provided" (JointState semantics): those joints' values become NaN, so that no
        value of an older message is taken for this one's.

        Parameters
        ----------
        names : list of str
            The message's joint names, ``m`` of them, any order.
        position : (m,) sequence of float
            Positions in message order, rad (m for prismatic joints).
        velocity : (m,) or (0,) sequence of float
            Velocities in message order, rad/s, or empty.
        effort : (m,) or (0,) sequence of float
            Efforts in message order, N·m, or empty.
        stamp : float
            Header stamp of the message, s.

        Returns
        -------
        (k,) intp array
            Model indices of the joints that were updated.

        Raises
        ------
        MappingError
            Duplicated names, unknown names (unless ``ignore_unknown``), or array lengths that
            do not match ``names``.

        """
        layout = self._cache.get(names)
        if layout.duplicates or (layout.unknown and not self.ignore_unknown):
            raise MappingError(self._layout_problem(layout))
        idx = layout.model_idx
        sel = layout.msg_idx
        m = len(layout.names)
        for field, values in ((0, position), (1, velocity), (2, effort)):
            count = len(values)
            target = (self.position, self.velocity, self.effort)[field]
            if count == 0 and field > 0:
                target[idx] = math.nan          # not provided by this message
                continue
            if count != m:
                label = ('position', 'velocity', 'effort')[field]
                raise MappingError(f'{label} has {count} values for {m} joint names')
            if sel is None:
                target[idx] = values
            else:
                target[idx] = np.asarray(values, dtype=float)[sel]
            if self._missing[field]:
                self._mark_received(layout, field, idx)
        self.stamp[idx] = stamp
        return idx

    def _mark_received(self, layout, field, idx):
        """Mark joints as received; once per (layout, field), so repeats cost one lookup."""
        key = (id(layout), field)
        if self._marked.get(key) is layout:
            return
        if len(self._marked) > 256:
            self._marked.clear()
        self._marked[key] = layout
        self._received[field, idx] = True
        self._missing[field] = self.n - int(self._received[field].sum())

    def _layout_problem(self, layout):
        if layout.duplicates:
            return (f'duplicated joint name(s) {list(layout.duplicates)} in message; '
                    'each joint may appear once')
        return (f'unknown joint(s) {list(layout.unknown)}; model has '
                f'{format_joint_names(self.joint_names)}')

    @property
    def all_received(self):
        """Whether every model joint has had a position at least once (bool)."""
        return self._missing[0] == 0

    def never_received(self, field='position'):
        """
        Return the model joints that have never had a value for ``field``.

        Parameters
        ----------
        field : {'position', 'velocity', 'effort'}
            The JointState field to check.

        Returns
        -------
        list of str
            In model order.

        """
        try:
            row = ('position', 'velocity', 'effort').index(field)
        except ValueError:
            raise MappingError(
                f"field must be 'position', 'velocity' or 'effort', got {field!r}") from None
        return [n for n, ok in zip(self.joint_names, self._received[row]) if not ok]

    def indices(self, joints=None):
        """
        Return the model indices of a joint subset (cached per distinct subset).

        Parameters
        ----------
        joints : sequence of str or None
            Joint names (unique, all in the model), or None for every joint in model order.

        Returns
        -------
        (k,) intp array

        """
        if joints is None:
            joints = self.joint_names
        key = tuple(joints)
        idx = self._subsets.get(key)
        if idx is None:
            layout = NameLayout(key, self._cache.index_of)
            if layout.duplicates or layout.unknown:
                raise MappingError(self._layout_problem(layout))
            idx = layout.model_idx
            idx.setflags(write=False)
            if len(self._subsets) >= 64:
                self._subsets.clear()
            self._subsets[key] = idx
        return idx

    def to_model(self, names, values, fill=math.nan):
        """
        Map values given in a message's name order to a model-order array (stateless).

        Parameters
        ----------
        names : sequence of str
            ``m`` unique names, all in the model.
        values : (m,) sequence of float
            One value per name in ``names``.
        fill : float
            Value for model joints that ``names`` does not list.

        Returns
        -------
        (n,) float array

        """
        idx = self.indices(names)
        values = np.asarray(values, dtype=float)
        if values.shape != (len(idx),):
            raise MappingError(
                f'{values.shape[0] if values.ndim == 1 else values.shape} values for '
                f'{len(idx)} joint names')
        out = np.full(self.n, float(fill))
        out[idx] = values
        return out

    def to_message(self, values, joints=None):
        """
        Map a model-order array to the name and value lists of a command message.

        Parameters
        ----------
        values : (n,) sequence of float
            Values in model joint order (positions rad, velocities rad/s or efforts N·m).
        joints : sequence of str or None
            The joints the receiving controller owns, in the order it expects them; None for
            every model joint in model order.

        Returns
        -------
        names : list of str
        values : list of float
            ``values`` of ``joints``, in the order of ``joints``.

        """
        values = np.asarray(values, dtype=float)
        if values.shape != (self.n,):
            raise MappingError(
                f'expected {self.n} values in model joint order, got shape {values.shape}')
        if joints is None:
            return list(self.joint_names), values.tolist()
        idx = self.indices(joints)
        return list(joints), values[idx].tolist()
