"""The ``robot-twin`` command line (placeholder until the sub-commands land)."""
import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(prog='robot-twin')
    parser.parse_args(argv)
    return 0
