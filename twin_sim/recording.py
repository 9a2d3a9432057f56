"""
Opening a recording: the one way every offline tool (replay, HIL report, sysid) finds one.

A recording is a rosbag2 directory (MCAP or sqlite3 storage, one or several files, with its
``metadata.yaml``), its ``metadata.yaml``, one of its storage files, or a ROS 1 ``.bag`` file.
:func:`open_recording` returns an open ``rosbags.highlevel.AnyReader``; rosbags names ROS 1
message types as ROS 2 does (``sensor_msgs/msg/JointState``), but their messages are ROS 1
serialized, not CDR (``reader.is2`` is False).

Without ``metadata.yaml`` (a recorder that did not close its recording, or a file copied
alone) the storage files are read directly, as one recording. What only ``metadata.yaml``
records is then unknown: a storage file whose messages are compressed one by one (rosbag2's
message compression) is refused with that reason. A killed MCAP recording ends before its
summary and cannot be read (``mcap recover`` rebuilds it).
"""
from pathlib import Path

STORAGE_SUFFIXES = ('.mcap', '.db3')
ROS1_SUFFIX = '.bag'
METADATA = 'metadata.yaml'
ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'
"""The first bytes of a zstd frame; a CDR message starts with ``00 00`` or ``00 01``."""


class RecordingError(ValueError):
    """A path that is not a readable recording; the message says what and what to do."""


def is_recording_path(path):
    """Tell whether ``path`` names a recording rather than another file (a CSV log, say)."""
    path = Path(path)
    return path.is_dir() or path.suffix in STORAGE_SUFFIXES + (ROS1_SUFFIX, '.yaml')


def recording_root(path):
    """
    Return what holds the whole recording ``path`` belongs to (a Path).

    The directory of a storage file that its ``metadata.yaml`` lists (the file may be one of
    several, or compressed message by message: only the directory reads it right), the
    directory of a ``metadata.yaml``, else ``path`` itself.
    """
    path = Path(path)
    if path.name == METADATA:
        return path.parent
    if path.suffix in STORAGE_SUFFIXES and path.name in _listed_files(path.parent):
        return path.parent
    return path


def _listed_files(directory):
    """Return the storage file names the ``metadata.yaml`` of ``directory`` lists (a set)."""
    import yaml
    try:
        text = (directory / METADATA).read_text(encoding='utf-8')
        info = yaml.safe_load(text)['rosbag2_bagfile_information']
        return {Path(name).name for name in info.get('relative_file_paths') or ()}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return set()


def recording_paths(path):
    """
    Return ``(paths, note)``: what rosbags should open for ``path``, and a note or None.

    Raises
    ------
    RecordingError
        ``path`` does not exist, is not a recording, or is a directory without
        ``metadata.yaml`` and without storage files.

    """
    path = Path(path)
    if not path.exists():
        raise RecordingError(f'{path}: no such recording (file or directory)')
    root = recording_root(path)
    if root.is_dir():
        if (root / METADATA).is_file():
            note = None if root == path or path.name == METADATA else (
                f'{path.name} is one file of the recording {root} (its {METADATA} lists it): '
                'read the whole recording')
            return [root], note
        storage = sorted(p for p in root.iterdir() if p.suffix in STORAGE_SUFFIXES)
        if not storage:
            raise RecordingError(f'{path} is not a rosbag2 recording: no {METADATA} and no '
                                 'storage files (.mcap, .db3)')
        names = ', '.join(p.name for p in storage)
        return storage, (f'{path} has no {METADATA} (the recorder did not close it); reading '
                         f'{names} directly')
    if path.suffix not in STORAGE_SUFFIXES + (ROS1_SUFFIX,):
        raise RecordingError(f'{path} is not a recording: give a rosbag2 directory, an .mcap '
                             'or a .db3 file, or a ROS 1 .bag file')
    return [path], None


def open_recording(path, typestore=None):
    """
    Open the recording at ``path`` with rosbags; return ``(reader, note or None)``.

    Parameters
    ----------
    path : str or Path
        A rosbag2 directory, its ``metadata.yaml``, one of its storage files (``.mcap``,
        ``.db3``), or a ROS 1 ``.bag`` file.
    typestore : rosbags Typestore, optional
        Message types for a recording without embedded definitions (default: ROS 2 Kilted's).

    Returns
    -------
    reader : rosbags.highlevel.AnyReader
        Open; the caller closes it.
    note : str or None
        What was done that the user should know (storage files read without metadata.yaml).

    Raises
    ------
    RecordingError
        Missing, not a recording, unreadable, or compressed message by message without the
        ``metadata.yaml`` that says so.

    """
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import get_typestore, Stores
    paths, note = recording_paths(path)
    store = typestore or get_typestore(Stores.ROS2_KILTED)
    try:
        reader = AnyReader(paths, default_typestore=store)
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises many types for a damaged bag
        which = 'one of its MCAP files ends' if len(paths) > 1 else 'its MCAP file ends'
        hint = (f'{which} before its summary: the recorder was killed or the copy cut short '
                '(`mcap recover` of the mcap CLI can rebuild the file)'
                if 'end magic' in str(exc) else 'is it complete?')
        raise RecordingError(f'{path}: cannot read the recording ({type(exc).__name__}: '
                             f'{exc}); {hint}') from None
    if any(p.is_file() and p.suffix in STORAGE_SUFFIXES for p in paths):
        problem = _compressed_messages(reader, path)
        if problem:
            reader.close()
            raise RecordingError(problem)
    return reader, note


def _compressed_messages(reader, path):
    """Return why a storage file read without metadata.yaml cannot be decoded, or ''."""
    try:
        first = next(iter(reader.messages()), None)
    except Exception:  # noqa: BLE001 - damage: the tool's own reading reports it, with where
        return ''
    if first is None or not bytes(first[2][:4]) == ZSTD_MAGIC:
        return ''
    return (f'{path}: its messages are zstd-compressed one by one (rosbag2 message '
            f'compression), which only the {METADATA} of the recording records: put that '
            f'{METADATA} beside the storage file, or decompress the recording '
            '(`ros2 bag convert`)')
