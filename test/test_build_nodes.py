"""
How a process's nodes are built (``robot_twin.nodes.runner.build_nodes``), without ROS.

A node may put off part of its set-up (subscribing to the robot's 1 kHz streams) until every
node of the process is built: ``when_built``. The factories here build plain objects.
"""
import pytest
from robot_twin.nodes.runner import build_nodes, when_built


class Part:
    """A node stand-in that puts off its 'subscription' and notes what happened when."""

    def __init__(self, name, log):
        self.name, self.log = name, log
        log.append(f'built {name}')
        when_built(lambda: log.append(f'subscribed {name}'))

    def destroy_node(self):
        self.log.append(f'destroyed {self.name}')


def test_what_a_node_puts_off_runs_after_the_last_node_is_built():
    log = []
    nodes = build_nodes([lambda built: Part('bridge', log),
                         lambda built: Part(f'mirror after {len(built)}', log),
                         lambda built: Part(f'anomaly after {len(built)}', log)])
    assert [n.name for n in nodes] == ['bridge', 'mirror after 1', 'anomaly after 2']
    assert log == ['built bridge', 'built mirror after 1', 'built anomaly after 2',
                   'subscribed bridge', 'subscribed mirror after 1',
                   'subscribed anomaly after 2']


def test_outside_a_build_it_runs_at_once():
    log = []
    Part('alone', log)
    assert log == ['built alone', 'subscribed alone']


def test_a_node_that_cannot_be_built_stops_the_rest_and_nothing_put_off_runs():
    log = []

    def broken(built):
        raise ValueError('no URDF')
    with pytest.raises(ValueError, match='no URDF'):
        build_nodes([lambda built: Part('bridge', log), broken])
    assert log == ['built bridge', 'destroyed bridge']
    Part('later', log)                      # the next build starts clean
    assert log[-1] == 'subscribed later'


def test_what_was_put_off_that_fails_destroys_the_nodes():
    log = []

    class Refused(Part):

        def __init__(self, name, log):
            super().__init__(name, log)
            when_built(self.fail)

        def fail(self):
            raise ValueError('invalid topic name')
    with pytest.raises(ValueError, match='invalid topic'):
        build_nodes([lambda built: Part('bridge', log), lambda built: Refused('mirror', log)])
    assert log == ['built bridge', 'built mirror', 'subscribed bridge', 'subscribed mirror',
                   'destroyed mirror', 'destroyed bridge']
