"""The run-queue wait reader (robot_twin/nodes/run_queue.py) on a proc directory of its own."""
import os
import threading

from robot_twin.nodes.run_queue import RunQueueWait

OWN = threading.get_native_id()


def write_thread(root, tid, comm, wait_ns, slices=0):
    """Write thread ``tid``'s ``comm`` and ``schedstat`` (ns on a CPU, ns waiting, slices)."""
    task = root / 'self' / 'task' / str(tid)
    task.mkdir(parents=True, exist_ok=True)
    (task / 'comm').write_text(comm + '\n')
    # rewritten in place: a reader's open file sees the new values, as with /proc
    with open(task / 'schedstat', 'w') as f:
        f.write(f'123456 {wait_ns} {slices}\n')


def test_it_sums_the_callers_and_the_dds_receive_threads_waits(tmp_path):
    write_thread(tmp_path, OWN, 'python', 1_000)
    write_thread(tmp_path, 101, 'dds.shm.7411', 50_000)
    write_thread(tmp_path, 102, 'dds.udp.7410', 7_000)
    write_thread(tmp_path, 103, 'dds.ev.0', 0)           # not a receive thread
    write_thread(tmp_path, 104, 'dds.shm.wdog', 0)       # neither
    reader = RunQueueWait(proc=str(tmp_path))
    assert reader.waited_ns(0.0) == 0 and not reader.off   # counted from the first call
    write_thread(tmp_path, OWN, 'python', 3_000)
    write_thread(tmp_path, 101, 'dds.shm.7411', 60_000)
    write_thread(tmp_path, 103, 'dds.ev.0', 999_000)
    assert reader.waited_ns(0.001) == 2_000 + 10_000
    assert reader.waited_ns(0.002) == 12_000             # nothing new


def test_threads_that_come_go_or_fall_idle_are_followed_at_the_next_look(tmp_path):
    write_thread(tmp_path, OWN, 'python', 0)
    write_thread(tmp_path, 101, 'dds.shm.7411', 0, slices=0)
    write_thread(tmp_path, 102, 'dds.udp.7410', 0, slices=0)
    reader = RunQueueWait(proc=str(tmp_path))
    assert reader.waited_ns(0.0) == 0
    # a second later: 101 carried a stream (woken 1000 times), 102 only discovery (3 times);
    # 105 is new, and its wait so far is not counted
    write_thread(tmp_path, 101, 'dds.shm.7411', 4_000, slices=1000)
    write_thread(tmp_path, 102, 'dds.udp.7410', 500, slices=3)
    write_thread(tmp_path, 105, 'dds.shm.7412', 80_000, slices=2)
    assert reader.waited_ns(1.0) == 4_500
    write_thread(tmp_path, 102, 'dds.udp.7410', 9_000, slices=4)     # no longer read
    write_thread(tmp_path, 105, 'dds.shm.7412', 81_000, slices=2)
    assert reader.waited_ns(1.5) == 5_500
    # 101 ends; at the next look it is dropped, and what is left is still counted
    for name in ('comm', 'schedstat'):
        os.remove(tmp_path / 'self' / 'task' / '101' / name)
    os.rmdir(tmp_path / 'self' / 'task' / '101')
    write_thread(tmp_path, OWN, 'python', 2_000)
    assert reader.waited_ns(2.1) == 7_500


def test_without_proc_or_schedstat_the_wait_is_zero_and_said_once(tmp_path):
    lines = []
    reader = RunQueueWait(log=lines.append, proc=str(tmp_path / 'missing'))
    assert [reader.waited_ns(now) for now in (0.0, 2.0, 4.0)] == [0, 0, 0]
    assert reader.off and len(lines) == 1 and 'run-queue wait unreadable' in lines[0]
    # a /proc without per-thread schedstat (a restricted container)
    (tmp_path / 'self' / 'task' / str(OWN)).mkdir(parents=True)
    lines.clear()
    reader = RunQueueWait(log=lines.append, proc=str(tmp_path))
    assert reader.waited_ns(0.0) == 0 and reader.waited_ns(5.0) == 0
    assert reader.off and len(lines) == 1


def test_unreadable_values_never_raise(tmp_path):
    write_thread(tmp_path, OWN, 'python', 1_000)
    write_thread(tmp_path, 101, 'dds.shm.7411', 1_000)
    reader = RunQueueWait(proc=str(tmp_path))
    assert reader.waited_ns(0.0) == 0
    (tmp_path / 'self' / 'task' / '101' / 'schedstat').write_text('garbage\n')
    write_thread(tmp_path, OWN, 'python', 4_000)
    assert reader.waited_ns(0.1) == 3_000
    assert reader.waited_ns(1.2) == 3_000               # the thread was dropped at the look
