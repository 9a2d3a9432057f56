"""
Which display samples the hub decodes: few, and the measured and predicted of one robot sample.

ROS-free. The twin's display topics (/twin/joint_states, /twin/predicted_joint_states) may
arrive faster than the hub needs; decoding a message costs more than dropping its bytes.
:class:`DisplayPairing` looks at the header stamp of each serialized message (cheap) and says
which to decode: at most one measured sample per display period, and the prediction carrying
the same stamp — whichever of the two arrives first — so that the residual the hub shows is
measured minus predicted of one robot sample. If the two topics never carry the same samples
(their decimation phases differ), a prediction is still let through every other period and
the state pairs it with the nearest measured sample.
"""


class DisplayPairing:
    """
    Decide which serialized display messages to decode.

    Parameters
    ----------
    period_ns : int
        Display period (ns): at most one measured sample per period is decoded.
    keep : int
        Predictions kept (undecoded) while waiting for their measured sample.

    """

    def __init__(self, period_ns, keep=64):
        self.period_ns = int(period_ns)
        self.keep = int(keep)
        self._next_measured = 0
        self._last_predicted = 0
        self._wanted = None
        self._waiting = {}             # stamp ns -> payload of a prediction not decoded yet

    def measured(self, stamp_ns, now_ns, payload):
        """
        Return ``[(kind, payload), ...]`` to decode for a /twin/joint_states message.

        ``stamp_ns`` is its header stamp, ``now_ns`` a monotonic clock.
        """
        if now_ns < self._next_measured:
            return []
        self._next_measured = now_ns + self.period_ns
        out = [('measured', payload)]
        early = self._waiting.pop(stamp_ns, None)
        if early is not None:          # the prediction of this sample came first
            out.append(('predicted', early))
            self._last_predicted = now_ns
            self._wanted = None
        else:
            self._wanted = stamp_ns
        return out

    def predicted(self, stamp_ns, now_ns, payload):
        """Return ``[(kind, payload), ...]`` to decode for a prediction message."""
        if stamp_ns == self._wanted or now_ns > self._last_predicted + 2 * self.period_ns:
            self._last_predicted = now_ns
            self._wanted = None
            return [('predicted', payload)]
        self._waiting[stamp_ns] = payload
        if len(self._waiting) > self.keep:
            self._waiting.pop(next(iter(self._waiting)))
        return []
