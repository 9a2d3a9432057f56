"""
YAML files read with numbers as people, and rcl, write them.

PyYAML follows YAML 1.1, which takes a number with an exponent for a string unless it has a
dot and a signed exponent: ``1e-3``, ``2e9`` and ``1.0e9`` are text there, ``1.0e+9`` a number.
rcl's parser (``ros2 launch``, ``--params-file``) and YAML 1.2 read all of them as numbers, and
so does every file of the twin (parameters, scenarios, fault and randomization ranges,
thresholds, joint limits): :func:`load_yaml` is :func:`yaml.safe_load` with that one rule added.
"""
import re

import yaml

__all__ = ['load_yaml', 'NumberLoader']


class NumberLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3``, ``1.0e9`` and ``.5e3`` as floats."""


NumberLoader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$'),
    list('-+.0123456789'))


def load_yaml(stream):
    """Parse YAML text or an open file like ``yaml.safe_load``, numbers as rcl reads them."""
    return yaml.load(stream, Loader=NumberLoader)  # noqa: S506 - a SafeLoader subclass
