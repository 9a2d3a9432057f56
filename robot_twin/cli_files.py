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
- :func:`output_problem`: why an output file cannot be written, checked before a long run (a
  fit, variants, training) rather than found at its end.
- :func:`read_project_file`, :func:`read_identified_dynamics`, :func:`params_problem`: the
  project's YAML files look alike (``*.yaml``, several called thresholds); one given where
  another is expected is refused with what it holds (:func:`file_kind`), never read as an
  empty one of the expected kind.
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
    from twin_sim.yaml_numbers import load_yaml
    try:
        text = Path(path).read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError):
        return None
    try:
        load_yaml(text)
    except yaml.YAMLError as exc:
        return _yaml_error_line(path, exc)
    return None


def _yaml_error_line(path, exc):
    """Return PyYAML's error ``exc`` on the file ``path`` as one line (file, line, column)."""
    import yaml
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = '' if mark is None else f', line {mark.line + 1}, column {mark.column + 1}'
        what = exc.problem or exc.context or 'syntax error'
        if exc.context and exc.problem:
            what += f' ({exc.context})'
        return f'{path}{where}: not valid YAML: {what}'
    return f'{path}: not valid YAML: ' + ' '.join(str(exc).split())


def output_problem(path, option, *, folders_created=False):
    """
    Return why the file ``path`` given as ``option`` cannot be written, or None if it may be.

    For a check before a long run, so that the run does not end in an error the user could
    have been told at once: ``path`` is a directory or another non-regular file, or is not
    writable; its folder is a file, does not exist (unless the writer creates the missing
    folders: ``folders_created``) or is not writable. E.g. ``'cannot write --report
    afile/q.json: /tmp/afile is a file, not a folder'``.
    """
    path = Path(path).expanduser()
    head = f'cannot write {option} {path}'
    problem = not_a_regular_file(path)
    if problem:
        return f'{head}: {problem}; give the name of the file to write'
    if path.exists() and not os.access(path, os.W_OK):
        return f'{head}: no permission to write it'
    folder = path.absolute().parent
    existing = nearest_existing(folder)
    if not existing.is_dir():
        return f'{head}: {existing} is a file, not a folder'
    if existing != folder and not folders_created:
        return f'{head}: the folder {folder} does not exist'
    if not os.access(existing, os.W_OK | os.X_OK):
        return f'{head}: no permission to write in {existing}'
    return None


def folder_problem(path, option):
    """
    Return why the folder ``path`` given as ``option`` cannot be written into, or None.

    The folder may not exist yet (the writer creates it and its missing parents); an existing
    file of that name, or a file on the way to it, is a problem, and so is a folder without
    write permission. For a check before a long run, as :func:`output_problem` for a file.
    """
    path = Path(path).expanduser()
    head = f'cannot write into {option} {path}'
    if path.exists() and not path.is_dir():
        return f'{head}: it is a file, not a folder; give a folder for the results'
    existing = nearest_existing(path.absolute())
    if not existing.is_dir():
        return f'{head}: {existing} is a file, not a folder'
    if not os.access(existing, os.W_OK | os.X_OK):
        return f'{head}: no permission to write in {existing}'
    return None


def project_files():
    """
    Return the project's YAML files by their top key: ``{key: (what it holds, where from)}``.

    The twin's files of one kind are easily given where another is expected (all are
    ``*.yaml``, several are called thresholds): :func:`file_kind` says which one a file is.
    """
    from twin_anomaly.detector import THRESHOLDS_FILE_KEY
    from twin_anomaly.monitor import MONITOR_FILE_KEY
    from twin_sim.urdf_model import PARAMS_KEY
    return {
        PARAMS_KEY: ('identified dynamics', 'a params.yaml from robot-twin sysid'),
        MONITOR_FILE_KEY: ("the live twin's saved calibration and anomaly thresholds",
                           'the thresholds_file a twin_anomaly node saved'),
        THRESHOLDS_FILE_KEY: ('anomaly thresholds from robot-twin commission',
                              'the --output of robot-twin commission')}


def file_kind(doc):
    """
    Return what the YAML document ``doc`` holds, in words that follow "holds".

    E.g. ``"anomaly thresholds from robot-twin commission (top key
    'robot_twin_anomaly_thresholds')"``, ``'ROS parameters (a config file such as
    config/twin.yaml)'``, ``'a YAML list'``, ``'a mapping with top keys a, b'``.
    """
    if doc is None:
        return 'nothing (an empty YAML document)'
    if not isinstance(doc, dict):
        return f'a YAML {type(doc).__name__}'
    for key, (what, _source) in project_files().items():
        if key in doc:
            return f'{what} (top key {key!r})'
    if any(isinstance(value, dict) and 'ros__parameters' in value for value in doc.values()):
        return 'ROS parameters (a config file such as config/twin.yaml)'
    keys = ', '.join(map(str, list(doc)[:3])) + (', ...' if len(doc) > 3 else '')
    return f'a mapping with top keys {keys}' if doc else 'an empty mapping'


def expected_file(key):
    """Return what to give instead, for the project's file with top key ``key``."""
    what, source = project_files()[key]
    return f'expected {what}: {source} (top key {key!r})'


def read_project_file(path, key, *, sections=()):
    """
    Read the project's YAML file with top key ``key`` (one of :func:`project_files`); return it.

    Parameters
    ----------
    path : str or Path
        The file.
    key : str
        Its top key, e.g. ``'robot_twin_dynamics'``.
    sections : tuple of str
        Top-level keys that make a document without ``key`` count as one too (identified
        dynamics written without their top key), unless it has another file's top key.

    Returns
    -------
    dict
        The whole document.

    Raises
    ------
    ValueError
        One line that starts with ``path`` and says why it is not such a file: missing, a
        directory (or another non-regular file), not text, not valid YAML (with line and
        column), ``key`` not a mapping, or a file of another kind, named (:func:`file_kind`).

    """
    import yaml
    from twin_sim.yaml_numbers import load_yaml
    path = Path(path)
    expected = expected_file(key)
    if not path.exists():
        raise ValueError(f'{path}: no such file; {expected}')
    problem = not_a_regular_file(path)
    if problem:
        raise ValueError(f'{problem}; {expected}')
    try:
        text = path.read_text(encoding='utf-8')
    except UnicodeDecodeError:
        raise ValueError(f'{path}: not a text file; {expected}') from None
    except OSError as exc:
        raise ValueError(f'{path}: cannot read it ({exc.strerror or exc})') from None
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ValueError(_yaml_error_line(path, exc)) from None
    if isinstance(doc, dict) and key in doc:
        if not isinstance(doc[key], dict):
            raise ValueError(f'{path}: {key!r} must be a mapping; {expected}')
        return doc
    other = isinstance(doc, dict) and any(k in doc for k in project_files())
    if isinstance(doc, dict) and not other and any(k in doc for k in sections):
        return doc
    raise ValueError(f'{path} holds {file_kind(doc)}; {expected}')


def read_identified_dynamics(path):
    """
    Read an identified-dynamics file (a params.yaml from ``robot-twin sysid``); return it.

    The whole document: the dynamics are under its top key ``robot_twin_dynamics`` (or, in a
    document written without that key, at its top level). Raises ValueError as
    :func:`read_project_file` (e.g. for the anomaly thresholds of ``robot-twin commission``).
    """
    from twin_sim.urdf_model import PARAMS_KEY, PARAMS_SECTIONS
    return read_project_file(path, PARAMS_KEY, sections=PARAMS_SECTIONS)


def params_problem(path):
    """Return why ``--params path`` is not identified dynamics, in one line ('' if it is)."""
    if path is None:
        return ''
    try:
        read_identified_dynamics(path)
    except ValueError as exc:
        return f'--params {exc}'
    return ''
