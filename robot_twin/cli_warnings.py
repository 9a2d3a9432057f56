"""Warnings caught during a command, printed as one line each (the command line tools)."""
import sys


def print_warnings(caught, tag, quiet=False):
    """
    Print each distinct warning of ``caught`` once, as ``<tag>: warning: <message>``.

    Parameters
    ----------
    caught : list of warnings.WarningMessage
        From ``warnings.catch_warnings(record=True)``.
    tag : str
        The command, e.g. ``'robot-twin sysid'``.
    quiet : bool
        Print nothing.

    """
    if quiet:
        return
    seen = set()
    for w in caught:
        text = str(w.message)
        if text not in seen:
            seen.add(text)
            print(f'{tag}: warning: {text}', file=sys.stderr)
