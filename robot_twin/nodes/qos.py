"""
Every QoS profile robot_twin uses: the one place the decision is written down.

- The robot's sensor streams are read best-effort (a late sample is worth nothing; a
  best-effort reader matches reliable and best-effort writers alike).
- The twin's own per-sample streams (``/twin/residuals``, ``/twin/wrench_residual``, and the
  display topics) are published best-effort: at 1 kHz a reliable writer costs heartbeats and
  acknowledgements for every reader (BENCHMARKS.md, issue 13). A reader must therefore ask
  for best-effort (``ros2 topic echo``, rosbag2, Foxglove and PlotJuggler adapt on their own;
  in rviz set the display's reliability). ``qos_overrides`` in the params file change it,
  e.g. ``qos_overrides./twin/residuals.publisher.reliability: reliable``.
- Status and commands are reliable; the anomaly and RUL state, and the plant status, are
  latched (reliable, transient-local) so that a late rviz or logger sees the current state.
- The plant plays a ros2_control robot, whose broadcasters publish reliable.
"""
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
try:
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:   # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks
from twin_bridge.intake import INPUT_QUEUE_DEPTH

SENSOR_IN = QoSProfile(depth=INPUT_QUEUE_DEPTH, reliability=ReliabilityPolicy.BEST_EFFORT)
"""The robot's streams: best-effort like sensor data, but 1000 deep (the contract says 10): at
1 kHz a stall of the twin of up to 1 s (the end of commissioning, a slow report, a starved
computer) loses no sample, where 10 would turn a 20 ms stall into a gap
(:data:`twin_bridge.intake.INPUT_QUEUE_DEPTH`). A longer stall loses samples here, which the
anomaly detector counts as the twin's (``dropped_samples``), not the robot's."""
DISPLAY_IN = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
"""The twin's display streams as the hub reads them (``/twin/joint_states`` and the predictions):
100 deep, as the robot's streams were before, so that a hub held up for a moment records what
came meanwhile, and one that fell far behind shows the present, not a second-old backlog."""
STREAM_OUT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
STATUS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
COMMAND = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
ROBOT_STATE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

OVERRIDABLE = QoSOverridingOptions.with_default_policies()
"""Pass as ``qos_overriding_options`` so that ``qos_overrides.<topic>...`` parameters apply."""

# No QoS-event handlers (incompatible QoS, wrong type) on the 1 kHz endpoints: each handler is
# one more entity the executor watches per wake-up. Pass as ``event_callbacks``.
LEAN_SUBSCRIPTION = SubscriptionEventCallbacks(use_default_callbacks=False)
LEAN_PUBLISHER = PublisherEventCallbacks(use_default_callbacks=False)

ACKNOWLEDGEMENTS = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""/twin/acknowledgements (twin_hub -> the lifecycle-log writer): the last 20, latched, so that a
writer that starts later still records them."""
