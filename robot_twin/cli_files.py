"""
The files the command line tools are given: problems with them, each said in one line.

- :func:`not_a_regular_file` and :func:`replace_file`: a tool writes its output beside its place
  and then moves it there (an interrupted run leaves no partial file). An existing output that is
  not a regular file (a device such as ``/dev/full``, a FIFO, a socket, a directory) must be
  refused, never replaced by that move.
- :func:`nearest_existing`: where an output whose folders are still to be created would be
  written: the folder to check for permission.
- :func:`yaml_problem`: a YAML file's syntax error as one line naming the file, line and column
  (PyYAML's own message spans several lines).
"""
import os
from pathlib import Path
import stat

_KINDS = ((stat.S_ISDIR, 'a directory'), (stat.S_ISCHR, 'a character device'),
          (stat.S_ISBLK, 'a block device'), (stat.S_ISFIFO, 'a named pipe (FIFO)'),
          (stat.S_ISSOCK, 'a socket'))


def not_a_regular_file(path):
    """
    Return why ``path`` must not be replaced by a file, or None when it may be.

    None when nothing is there or it is a regular file (a symbolic link counts as what it
    points to); otherwise e.g. ``'/dev/full is a character device, not a regular file'``.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:       # nothing there, or its folder is not one: the write says why
        return None
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), 'not a file')
    return f'{path} is {kind}, not a regular file'


def replace_file(partial, path):
    """
    Move the written file ``partial`` onto ``path``, unless ``path`` is not a regular file.

    Raises
    ------
    OSError
        ``path`` exists and is not a regular file (``partial`` is left for the caller to
        remove), or the move failed.

    """
    problem = not_a_regular_file(path)
    if problem:
        raise OSError(f'{problem}; refusing to replace it')
    os.replace(partial, path)


def nearest_existing(path):
    """Return ``path`` (made absolute) or its nearest ancestor that exists."""
    existing = Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def yaml_problem(path):
    """
    Return the syntax error of the YAML file ``path`` as one line, or None if it parses.

    A file that cannot be read is left to the caller (None): its own message says why.
    """
    import yaml
    try:
        text = Path(path).read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError):
        return None
    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = '' if mark is None else f', line {mark.line + 1}, column {mark.column + 1}'
        what = exc.problem or exc.context or 'syntax error'
        if exc.context and exc.problem:
            what += f' ({exc.context})'
        return f'{path}{where}: not valid YAML: {what}'
    except yaml.YAMLError as exc:
        return f'{path}: not valid YAML: ' + ' '.join(str(exc).split())
    return None
