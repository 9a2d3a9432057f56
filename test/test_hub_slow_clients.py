"""
The hub's REST server against slow, idle, non-reading and too many clients, on a real twin_hub.

One ``twin_hub`` process (REST with a token, on a free port of 127.0.0.1, test-unique
ROS_DOMAIN_ID) with a small connection cap and short timeouts given as its parameters (the
params file ``robot-twin up`` writes); the test talks to it over raw sockets and http.client.
No assertion on how fast anything happens: a connection must close within a generous bound
(several times the configured timeout), or stay open while it should.

Clients that do not read their answers ask for the dashboard's script many times over in one
go (pipelined: more than the kernel's socket buffers take, several MB on 127.0.0.1) with a tiny
receive buffer. Not too many of them at once, and nothing else meanwhile: uvicorn's
``limit_concurrency`` (``max_connections`` + 1) counts the handler tasks of all connections, and
a pipelined connection has two for a moment (the answered one and the next); over the limit it
answers a request 503 and closes the connection (the hub's whole answer then fits in the
kernel's buffers: a normal close, no write timeout).
"""
import http.client
import json
import select
import socket
import time

from hub_testing import free_port, HubProcess, wait_http, write_token
import pytest
from robot_twin.config import validate_value
from robot_twin.hub.settings import HubSettings

pytestmark = pytest.mark.integration

MAX_CONNECTIONS = 4
REQUEST_TIMEOUT_S = 3.0
KEEP_ALIVE_S = 2.0
WRITE_TIMEOUT_S = 3.0
BOUND_S = 5 * REQUEST_TIMEOUT_S
"""How long a connection the hub should close may take to close (generous: a loaded machine)."""
LARGE_ANSWER = b'GET /dashboard/app.js HTTP/1.1\r\nHost: x\r\n\r\n'
"""A request for a large answer (the dashboard's script, ~14 kB) on a plain route."""
REPEATS = 800
"""How often a non-reading client asks for it at once (~11 MB of answers)."""


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    from ros_harness import unique_domain_id
    workdir = tmp_path_factory.mktemp('hub')
    token = write_token(workdir / 'token')
    port = free_port()
    process = HubProcess(workdir, unique_domain_id(), {
        'api.address': f'127.0.0.1:{port}', 'api.token_file': str(workdir / 'token'),
        'api.max_connections': MAX_CONNECTIONS, 'api.request_timeout_s': REQUEST_TIMEOUT_S,
        'api.keep_alive_s': KEEP_ALIVE_S, 'api.write_timeout_s': WRITE_TIMEOUT_S}).start()
    try:
        wait_http(f'http://127.0.0.1:{port}/api/v1/health', process)
        yield type('Hub', (), {'process': process, 'port': port, 'token': token})
    finally:
        process.stop()


def _connect(hub):
    sock = socket.create_connection(('127.0.0.1', hub.port), timeout=BOUND_S)
    sock.settimeout(BOUND_S)
    return sock


def _closed_by_hub(sock):
    """
    Wait (up to the socket's timeout) until the hub closes ``sock``; return what it sent.

    Raises socket.timeout when the hub kept it open that long.
    """
    received = b''
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


def _reader(hub, requests):
    """Connect with a tiny receive buffer (a slow link, a stuck proxy) and send ``requests``."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(BOUND_S)
    sock.connect(('127.0.0.1', hub.port))
    sock.sendall(requests)
    return sock


def _reset_by_hub(sock, deadline):
    """Wait, reading nothing, until the hub resets ``sock`` or ``deadline``; return whether."""
    poller = select.poll()
    poller.register(sock, select.POLLERR | select.POLLHUP)
    return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))


def _health(hub):
    """
    GET /api/v1/health with ``Connection: close``; return ``(status, body)``.

    The hub closes the connection itself, so it no longer counts once this returns.
    """
    with _connect(hub) as sock:
        sock.sendall(b'GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
        answer = _closed_by_hub(sock)
    head, _, body = answer.partition(b'\r\n\r\n')
    if not head:
        raise ConnectionResetError('no answer')
    return int(head.split()[1]), json.loads(body)


def _wait_health_ok(hub):
    deadline = time.monotonic() + BOUND_S
    while True:
        try:
            status, body = _health(hub)
        except OSError:
            status, body = None, None
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, (status, body, hub.process.output())
            return body
        time.sleep(0.2)


def test_the_limits_are_parameters_checked_like_the_others():
    assert 'api.max_connections = 0 is out of range' in validate_value(
        'twin_hub', 'api.max_connections', 0)
    assert 'write 10.0' in validate_value('twin_hub', 'api.request_timeout_s', 10)
    assert 'out of range' in validate_value('twin_hub', 'api.keep_alive_s', -1.0)
    assert 'out of range' in validate_value('twin_hub', 'api.write_timeout_s', 0.0)
    assert 'write 20.0' in validate_value('twin_hub', 'api.write_timeout_s', 20)
    settings = HubSettings.from_parameters({'api.max_connections': 8,
                                            'api.request_timeout_s': 2.5,
                                            'api.keep_alive_s': 1.5,
                                            'api.write_timeout_s': 7.5})
    assert (settings.api_max_connections, settings.api_request_timeout_s,
            settings.api_keep_alive_s, settings.api_write_timeout_s) == (8, 2.5, 1.5, 7.5)
    defaults = HubSettings.from_parameters({})
    assert (defaults.api_max_connections, defaults.api_write_timeout_s) == (64, 20.0)


def test_half_a_request_line_is_cut_off(hub):
    with _connect(hub) as sock:
        sock.sendall(b'GET /api/v1/hea')
        assert _closed_by_hub(sock) == b''          # closed, nothing answered
    assert _wait_health_ok(hub)['connections']['timed_out'] >= 1


def test_a_client_trickling_its_headers_is_cut_off(hub):
    """A byte now and then stops uvicorn's keep-alive timer, not the request deadline."""
    with _connect(hub) as sock:
        sock.sendall(b'GET /api/v1/health HTTP/1.1\r\nHost: x\r\n')
        sock.settimeout(0.3)
        deadline = time.monotonic() + BOUND_S
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                sock.sendall(b'X')
                closed = sock.recv(1) == b''
            except socket.timeout:
                continue                            # still open: trickle on
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        assert closed, f'still open after {BOUND_S:g} s of a header byte every 0.3 s'


def test_connections_beyond_the_cap_are_refused_until_idle_ones_time_out(hub):
    _wait_health_ok(hub)            # its connection closed by the hub: nothing else is open
    held = [_connect(hub) for _ in range(MAX_CONNECTIONS)]
    excess = [_connect(hub) for _ in range(3)]
    try:
        for sock in excess:                         # answered 503 and closed at once
            answer = _closed_by_hub(sock)
            assert answer.startswith(b'HTTP/1.1 503 '), answer
            assert b'api.max_connections' in answer
        try:                                        # the idle ones still hold the cap
            status, _ = _health(hub)
        except OSError:
            status = None               # refused with the request unread: may be a reset
        assert status in (503, None)
        for sock in held:                           # sent nothing: closed after the timeout
            assert _closed_by_hub(sock) == b''
    finally:
        for sock in held + excess:
            sock.close()
    after = _wait_health_ok(hub)['connections']     # the hub serves again
    assert after['max'] == MAX_CONNECTIONS and after['refused'] >= 3
    assert after['timed_out'] >= MAX_CONNECTIONS and 1 <= after['open'] <= MAX_CONNECTIONS
    assert 'api.max_connections' in hub.process.output()      # refusals are logged
    assert 'api.request_timeout_s' in hub.process.output()


def test_normal_requests_keep_alive_and_a_large_body_still_work(hub):
    _wait_health_ok(hub)
    conn = http.client.HTTPConnection('127.0.0.1', hub.port, timeout=BOUND_S)
    try:
        conn.request('GET', '/api/v1/health')
        first = conn.getresponse()
        assert first.status == 200
        assert json.loads(first.read())['connections']['max'] == MAX_CONNECTIONS
        local = conn.sock.getsockname()
        conn.request('GET', '/api/v1/joints')       # the same connection, kept alive
        second = conn.getresponse()
        assert second.status == 200 and isinstance(json.loads(second.read()), list)
        assert conn.sock is not None and conn.sock.getsockname() == local
        body = json.dumps({'enabled': False, 'pad': 'x' * 60_000}).encode()   # < 64 kB
        conn.request('PUT', '/api/v1/corrective-actions', body=body, headers={
            'Authorization': f'Bearer {hub.token}', 'Content-Type': 'application/json'})
        third = conn.getresponse()
        detail = json.loads(third.read())['detail']
        assert third.status == 422                  # read and parsed whole: pad is unknown
        assert any(e['loc'] == ['body', 'pad'] for e in detail), detail
        assert conn.sock is not None and conn.sock.getsockname() == local
        conn.request('GET', '/api/v1/health')       # and the connection still serves
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_an_idle_kept_alive_connection_is_closed(hub):
    with _connect(hub) as sock:
        sock.sendall(b'GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n')
        answer = _closed_by_hub(sock)               # answered, then closed when idle
        assert answer.startswith(b'HTTP/1.1 200 '), answer


def test_clients_that_never_read_their_answers_are_reset_and_free_their_slots(hub):
    """Two clients that read nothing (at most 1 + 2 handler tasks: see the module docstring)."""
    _wait_health_ok(hub)
    readers = [_reader(hub, LARGE_ANSWER * REPEATS) for _ in range(2)]
    try:
        deadline = time.monotonic() + BOUND_S       # no request meanwhile: see the docstring
        for sock in readers:
            assert _reset_by_hub(sock, deadline), \
                f'a client that reads nothing still holds its connection after {BOUND_S:g} s'
    finally:
        for sock in readers:
            sock.close()
    after = _wait_health_ok(hub)['connections']     # the slots are free: the hub serves again
    assert after['slow_readers_closed'] >= len(readers) and after['open'] == 1, after
    assert 'api.write_timeout_s' in hub.process.output()      # and it is logged


def test_a_client_reading_slowly_but_steadily_gets_its_whole_answer(hub):
    """
    A few kB every 15 ms (~0.3 MB/s here), 4.5 MB: never a pause of the write timeout's length.

    On 127.0.0.1 the kernel holds MBs and takes more from the hub only in large steps, seconds
    apart at this pace: the hub must count what the kernel still holds as not yet taken.
    """
    before = _wait_health_ok(hub)['connections']['slow_readers_closed']
    conn = http.client.HTTPConnection('127.0.0.1', hub.port, timeout=BOUND_S)
    try:
        conn.request('GET', '/dashboard/app.js')
        script = conn.getresponse().read()
    finally:
        conn.close()
    repeats = 320                                   # ~4.5 MB: more than the kernel buffers
    closing = LARGE_ANSWER.replace(b'\r\n\r\n', b'\r\nConnection: close\r\n\r\n')
    with _reader(hub, LARGE_ANSWER * (repeats - 1) + closing) as sock:
        received = []
        while True:
            chunk = sock.recv(8192)
            if not chunk:
                break
            received.append(chunk)
            time.sleep(0.015)
    answers = b''.join(received)
    assert answers.count(b'HTTP/1.1 200 OK\r\n') == answers.count(script) == repeats
    assert _wait_health_ok(hub)['connections']['slow_readers_closed'] == before
