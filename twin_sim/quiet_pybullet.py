"""
pybullet, imported without the banner its C code prints.

Importing pybullet writes ``pybullet build time: <date>`` to the process's stderr, from C
(file descriptor 2, so ``contextlib.redirect_stderr`` does not catch it). The command line tools
keep stderr for their own messages, one line per problem, so the modules that use pybullet
(:mod:`twin_sim.world`, :mod:`twin_sim.camera`) take it from here: the first import runs with
descriptor 2 on /dev/null. What another thread writes to stderr during that import (a fraction
of a second, once per process) is lost with the banner.

Usage: ``from twin_sim.quiet_pybullet import pybullet``.
"""
import os
import sys

__all__ = ['pybullet']


def _import_without_banner():
    """Return the pybullet module, imported with stderr (descriptor 2) on /dev/null."""
    if 'pybullet' in sys.modules:
        return sys.modules['pybullet']
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import pybullet
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return pybullet


pybullet = _import_without_banner()
