"""
The ``robot-twin`` command line: demo, bring-up and the offline tools.

Each sub-command lives in its own module and adds itself with ``add_<name>_parser``; this file
only collects them (see ``robot-twin --help``).
"""
import argparse
import sys


def build_parser():
    """Return the ``robot-twin`` argument parser with every sub-command."""
    from robot_twin.aas_cli import add_aas_parser
    from robot_twin.anomaly_train import add_anomaly_parser
    from robot_twin.bringup import add_up_parser
    from robot_twin.demo import add_demo_parser
    from robot_twin.hil_report_cli import add_hil_report_parser
    from robot_twin.ledger_cli import add_ledger_parser
    from robot_twin.record_cli import add_record_parser
    from robot_twin.replay_cli import add_replay_parser
    from robot_twin.rul_cli import add_rul_parser
    from robot_twin.synth_cli import add_synth_parser
    from robot_twin.sysid_cli import add_excite_parser, add_sysid_parser
    from robot_twin.whatif_cli import add_commission_parser, add_whatif_parser

    parser = argparse.ArgumentParser(
        prog='robot-twin',
        description='A live digital twin for robot arms on ROS 2 (see README.md).')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    add_demo_parser(sub)
    add_up_parser(sub)
    add_sysid_parser(sub)
    add_excite_parser(sub)
    add_whatif_parser(sub)
    add_commission_parser(sub)
    add_ledger_parser(sub)
    add_record_parser(sub)
    add_replay_parser(sub)
    add_rul_parser(sub)
    add_hil_report_parser(sub)
    add_anomaly_parser(sub)
    add_aas_parser(sub)
    add_synth_parser(sub)
    return parser


def main(argv=None):
    """Run ``robot-twin``; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
