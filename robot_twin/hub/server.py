"""
The hub's servers, started and stopped together: REST + dashboard, OPC UA, Foxglove.

ROS-free: the hub node (:mod:`robot_twin.nodes.hub_node`) fills the :class:`TwinState` and gives
a function that sets ``corrective_actions.enabled`` on the bridge; :class:`Hub` does the rest.
Each server runs in threads of its own (uvicorn's event loop, asyncua's event loop, the
Foxglove publisher), so none of them waits for another or for the ROS executor; a housekeeping
thread polls the what-if jobs and re-reads the lifecycle log. A server that cannot start (port
in use, nodesets missing) is a :class:`RuntimeError` naming it, and the others are stopped.
The REST server protects the robot's computer from its clients (:class:`ConnectionGuard`):
connections capped; slow and idle clients, and clients that do not take their answers,
dropped; all counted.
"""
import fcntl
import json
import socket
import struct
import termios
import threading
import time

from robot_twin.cli_files import read_identified_dynamics
from robot_twin.hub.jobs import WhatIfJobs
from robot_twin.hub.lifecycle import append_acknowledgement, append_corrective_switch, \
    read_tail
from twin_sim.urdf_model import ParametersError

LEDGER_ENTRIES = 50
HOUSEKEEPING_S = 0.5
LOG_EVERY_S = 10.0
"""A refused or timed-out client is logged at most this often (s) per kind; all are counted."""


class HubActions:
    """
    The writes every interface offers (the REST API and the OPC UA methods call these).

    Parameters
    ----------
    state : robot_twin.hub.state.TwinState
        Where acknowledgements are kept.
    ledger_path : str
        Lifecycle log the acknowledgements are also written to ('' = none).
    corrective_setter : callable, optional
        ``setter(enabled) -> (ok, message)``: sets ``corrective_actions.enabled`` on the bridge
        (the hub node's parameter client); None = not connected to a bridge.
    on_acknowledged : callable, optional
        ``on_acknowledged(episode dict)`` after each acknowledgement (the node publishes it).
    payload_publisher : callable, optional
        ``publisher(payload)``: publishes a checked :class:`twin_sim.urdf_model.Payload` on
        /twin/payload (the node); None = not connected to the twin.
    model : twin_sim.urdf_model.RobotModel, optional
        The robot, to check a payload against (needed with ``payload_publisher``).
    on_corrective_switched : callable, optional
        ``on_corrective_switched(data)`` after each switch of corrective actions (the node
        publishes it for the twin's lifecycle-log writer).
    maintenance_publisher : callable, optional
        ``publisher(joint, action, by, note) -> int``: publishes a maintenance declaration on
        /twin/maintenance (the node) and returns how many readers (twin_anomaly) it has; None
        = not connected to the twin.

    """

    def __init__(self, state, ledger_path='', corrective_setter=None, on_acknowledged=None,
                 payload_publisher=None, model=None, on_corrective_switched=None,
                 maintenance_publisher=None):
        self.state = state
        self.ledger_path = ledger_path
        self.corrective_setter = corrective_setter
        self.on_acknowledged = on_acknowledged
        self.payload_publisher = payload_publisher
        self.model = model
        self.on_corrective_switched = on_corrective_switched
        self.maintenance_publisher = maintenance_publisher

    def acknowledge(self, episode_id, by, note=''):
        """
        Acknowledge an anomaly episode; return its dict (``ledger_error`` when not logged).

        Raises KeyError for an unknown episode, ValueError for a note the shared check refuses
        and :class:`robot_twin.hub.state.AlreadyAcknowledged` (a ValueError) when the episode
        was acknowledged before.
        """
        episode = self.state.acknowledge(episode_id, by, note)
        if self.on_acknowledged is not None:
            self.on_acknowledged(episode)
        episode['ledger_error'] = (append_acknowledgement(self.ledger_path, episode) or None
                                   if self.ledger_path else None)
        return episode

    def set_payload(self, mass_kg, com_m, inertia_kgm2):
        """
        Tell the twin what the robot carries (/twin/payload); return ``(ok, message)``.

        ``com_m`` (3,) and ``inertia_kgm2`` ``[ixx, ixy, ixz, iyy, iyz, izz]`` are in the
        model's payload frame. Raises ValueError, with the reason, for a load that makes no
        rigid body or that the arm cannot carry (checked here as the twin checks it).
        """
        from twin_sim.urdf_model import Payload
        if self.payload_publisher is None:
            return False, 'this hub is not connected to the twin'
        payload = Payload.from_components(mass_kg, com_m, *inertia_kgm2)
        self.model.check_payload(payload)
        self.payload_publisher(payload)
        return True, f'published on /twin/payload: {payload.mass:g} kg in ' \
                     f'{self.model.payload_frame}'

    def declare_maintenance(self, joint, action, note='', via='REST'):
        """
        Tell the twin that maintenance was done on ``joint``; return ``(ok, message)``.

        Published on /twin/maintenance (volatile: only a twin_anomaly that listens now gets
        it), ``by`` = ``twin_hub (<via>)``; the twin's anomaly node re-learns the joint's health
        and writes ``maintenance_done`` to the lifecycle log. Not ok when the hub is not
        connected to the twin or no twin_anomaly listens. Raises ValueError for a joint the
        robot does not have.
        """
        if joint not in self.state.joint_names:
            raise ValueError(f'no joint {joint!r}; the robot has '
                             f'{", ".join(self.state.joint_names)}')
        if self.maintenance_publisher is None:
            return False, 'this hub is not connected to the twin'
        readers = self.maintenance_publisher(joint, action, f'twin_hub ({via})', note)
        if not readers:
            return False, ('no twin_anomaly node listens on /twin/maintenance: the maintenance '
                           'was not declared (is the twin running, with rul.enabled?)')
        return True, f'published on /twin/maintenance: {action} on {joint}'

    def set_corrective(self, enabled, via='REST'):
        """Ask the bridge to switch corrective actions; return ``(ok, message)``."""
        ok, message, ledger_error = self.switch_corrective(enabled, via)
        return ok, message + (f'; not in the lifecycle log: {ledger_error}'
                              if ok and ledger_error else '')

    def switch_corrective(self, enabled, via='REST'):
        """
        Ask the bridge to switch corrective actions; return ``(ok, message, ledger_error)``.

        ``via`` names the interface (``REST``, ``OPC UA``, ``dashboard``). A switch the bridge
        took is recorded: a ``corrective_actions_switched`` entry (enabled, interface, time,
        the bridge's answer) in the lifecycle log, and ``on_corrective_switched(data)``.
        ``ledger_error`` is '' when the hub wrote the entry (or has no log), else why not.
        """
        if self.corrective_setter is None:
            return False, 'this hub is not connected to a twin_bridge', ''
        ok, message = self.corrective_setter(bool(enabled))
        if not ok:
            return ok, message, ''
        data = {'enabled': bool(enabled), 'interface': str(via), 'time': time.time(),
                'message': message}
        if self.on_corrective_switched is not None:
            self.on_corrective_switched(dict(data))
        ledger_error = (append_corrective_switch(self.ledger_path, data)
                        if self.ledger_path else '')
        return ok, message, ledger_error


def load_parameters_document(path):
    """
    Read an identified-dynamics file (params.yaml); return ``(document, error)``.

    A file of another kind (the twin's thresholds, a config) gives ``(None, why)``: it is not
    shown as identified dynamics.
    """
    try:
        return read_identified_dynamics(path), ''
    except ValueError as exc:
        return None, str(exc)


class Hub:
    """
    Start and stop the configured servers around one :class:`TwinState`.

    Parameters
    ----------
    state : robot_twin.hub.state.TwinState
        The store the servers read.
    settings : robot_twin.hub.settings.HubSettings
        Which servers, where, and the token.
    model : twin_sim.urdf_model.RobotModel
        The robot (OPC UA axes, Foxglove scene).
    corrective_setter, on_acknowledged, payload_publisher, on_corrective_switched : callable
        Optional; see :class:`HubActions`.
    maintenance_publisher : callable
        Optional; see :class:`HubActions`.
    log : callable
        ``log(text)`` for start-up lines (the node's logger).

    """

    def __init__(self, state, settings, model, corrective_setter=None, *, on_acknowledged=None,
                 payload_publisher=None, on_corrective_switched=None,
                 maintenance_publisher=None, log=print):
        self.state, self.settings, self.model = state, settings, model
        self.actions = HubActions(state, settings.ledger_path, corrective_setter,
                                  on_acknowledged, payload_publisher, model,
                                  on_corrective_switched, maintenance_publisher)
        self.log = log
        self.jobs = WhatIfJobs(state, settings.whatif_output_dir,
                               max_samples=settings.whatif_max_samples,
                               max_queued=settings.whatif_max_queued,
                               urdf_path=settings.urdf_path)
        self._running = []             # objects with stop(), in start order
        self._stop = threading.Event()
        self._housekeeping = None

    def start(self):
        """Start every configured server; return self. Raises RuntimeError (all stopped)."""
        s = self.settings
        if s.dynamics_params_file:
            document, error = load_parameters_document(s.dynamics_params_file)
            self.state.set_parameters(s.dynamics_params_file, document, error)
            if error:
                self.log(f'dynamics_params_file not shown under /parameters: {error}')
        self._read_ledger()                 # served from the first request on, then re-read
        try:
            if s.opcua is not None:
                from robot_twin.hub.opcua import TwinOpcUaServer
                server = TwinOpcUaServer(self.state, self.model, s.opcua, self.actions,
                                         token=s.token, update_rate_hz=s.opcua_update_rate_hz,
                                         nodeset_dir=s.opcua_nodeset_dir)
                self._running.append(server.start())
                self.log(f'OPC UA server at {server.endpoint}')
            if s.foxglove is not None or s.foxglove_mcap_path:
                from robot_twin.hub.foxglove import FoxglovePublisher
                publisher = FoxglovePublisher(self.state, self.model, s.foxglove,
                                              mcap_path=s.foxglove_mcap_path,
                                              rate_hz=s.foxglove_rate_hz)
                self._running.append(publisher.start())
                if s.foxglove is not None:
                    self.log(f'Foxglove WebSocket server at ws://{s.foxglove[0]}:'
                             f'{s.foxglove[1]}')
                if s.foxglove_mcap_path:
                    self.log(f'recording the Foxglove channels to {s.foxglove_mcap_path}')
            if s.api is not None:           # last: once /api/v1/health answers, all serve
                self._running.append(self._start_api())
        except (RuntimeError, OSError, ParametersError) as exc:
            self.stop()
            raise RuntimeError(str(exc)) from exc
        self._housekeeping = threading.Thread(target=self._keep_house, name='hub-housekeeping',
                                              daemon=True)
        self._housekeeping.start()
        return self

    def _start_api(self):
        from robot_twin.hub.rest import create_app
        host, port = self.settings.api
        guard = ConnectionGuard(self.settings.api_max_connections,
                                self.settings.api_request_timeout_s,
                                self.settings.api_write_timeout_s, log=self.log)
        app = create_app(self.state, self.actions, token=self.settings.token, jobs=self.jobs,
                         connections=guard.counters)
        server = _UvicornThread(app, host, port, guard, self.settings.api_keep_alive_s).start()
        writes = 'writes with the bearer token' if self.settings.token else 'read-only'
        self.log(f'dashboard and REST API at http://{host}:{port}/ ({writes}; schema at '
                 f'/openapi.json)')
        return server

    def _read_ledger(self):
        if self.settings.ledger_path:
            entries, error = read_tail(self.settings.ledger_path, LEDGER_ENTRIES)
            self.state.set_ledger(self.settings.ledger_path, entries, error)

    def _keep_house(self):
        last_ledger = time.monotonic()
        while not self._stop.wait(HOUSEKEEPING_S):
            self.jobs.poll()
            if time.monotonic() - last_ledger >= 1.0:
                last_ledger = time.monotonic()
                self._read_ledger()

    def stop(self):
        """Stop every server (last started first) and a running what-if job."""
        self._stop.set()
        if self._housekeeping is not None:
            self._housekeeping.join(timeout=5.0)
        for server in reversed(self._running):
            server.stop()
        self._running = []
        self.jobs.stop()


class ConnectionGuard:
    """
    The REST server's limits on its clients, and what they did.

    At most ``max_connections`` connections are open at once; one more is answered 503 and
    closed at once (``refused``). A client must send a whole request (line, headers, body)
    within ``request_timeout_s`` of connecting, or of the first byte of its next request on a
    kept-alive connection, else its connection is closed (``timed_out``): a client that sends
    nothing, or a byte now and then (slow-loris), holds no socket for long. Between requests
    uvicorn's keep-alive timeout applies; a request once received has no deadline here (a
    what-if result or the live stream may take long). An answer must move, though: while more
    of it waits than the transport's high-water mark (asyncio's ``pause_writing``), a client
    that takes none of it for ``write_timeout_s`` has its connection reset and its answer
    dropped (``slow_readers_closed``): a client that stopped reading (a laptop closed
    mid-download, a stuck proxy) holds no socket and no buffered answer for ever, one that
    reads slowly keeps going. Each kind is logged at most every :data:`LOG_EVERY_S`, with its
    count so far.
    """

    def __init__(self, max_connections, request_timeout_s, write_timeout_s, log=print):
        self.max_connections = int(max_connections)
        self.request_timeout_s = float(request_timeout_s)
        self.write_timeout_s = float(write_timeout_s)
        self.log = log
        self.refused = 0
        self.timed_out = 0
        self.slow_readers_closed = 0
        self.connections = ()          # uvicorn's set of open connections, once it serves
        self._logged = {}              # kind -> time.monotonic() of its last log line

    def counters(self):
        """
        Return the connections open now, their maximum, and the counts since the start.

        Keys ``open``, ``max``, ``refused``, ``timed_out``, ``slow_readers_closed``.
        """
        return {'open': len(self.connections), 'max': self.max_connections,
                'refused': self.refused, 'timed_out': self.timed_out,
                'slow_readers_closed': self.slow_readers_closed}

    def on_refused(self, client):
        """Count (and log) a connection refused because ``max_connections`` are open."""
        self.refused += 1
        self._log('refused', f'REST API: refused a connection from {_peer(client)}: '
                             f'{self.max_connections} are open (api.max_connections); '
                             f'{self.refused} refused so far')

    def on_timed_out(self, client):
        """Count (and log) a connection closed because its request did not arrive in time."""
        self.timed_out += 1
        self._log('timed_out', f'REST API: closed the connection of {_peer(client)}: no whole '
                               f'request within {self.request_timeout_s:g} s '
                               f'(api.request_timeout_s); {self.timed_out} closed so far')

    def on_slow_reader(self, client):
        """Count (and log) a connection reset because its client stopped taking its answer."""
        self.slow_readers_closed += 1
        self._log('slow_reader', f'REST API: reset the connection of {_peer(client)}: it took '
                                 f'none of its answer for {self.write_timeout_s:g} s '
                                 f'(api.write_timeout_s); {self.slow_readers_closed} reset '
                                 'so far')

    def _log(self, kind, text):
        now = time.monotonic()
        if now - self._logged.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[kind] = now
            self.log(text)


def _peer(client):
    return f'{client[0]}:{client[1]}' if client else 'a client'


def _unsent_bytes(transport):
    """
    Return how many bytes of ``transport``'s answers its client has not taken yet.

    asyncio's write buffer plus, on Linux, the socket's send queue (sent, not acknowledged):
    the kernel may hold megabytes, and takes more from asyncio only in large steps, so the
    write buffer alone can stand still for long while a slow client reads steadily.
    """
    unsent = transport.get_write_buffer_size()
    sock = transport.get_extra_info('socket')
    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack('i', 0))
    except (AttributeError, OSError):
        return unsent               # no such ioctl here: asyncio's buffer alone
    return unsent + struct.unpack('i', queued)[0]


def _reset(transport):
    """Close ``transport`` at once with a TCP reset: its unsent answer is dropped, not kept."""
    sock = transport.get_extra_info('socket')
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    transport.abort()


def _guarded_protocol(guard):
    """
    Return uvicorn's h11 protocol class with ``guard``'s limits (uvicorn's ``http=``).

    uvicorn itself has no deadline for receiving a request (its keep-alive timer runs only
    between requests and stops at the first byte), hence this subclass: a timer started on
    connection (or on the first byte of a next request) and stopped once h11 has the whole
    request. Nor has it one for sending an answer (its ``transport.close()`` waits for the
    buffered answer to go out, for ever if the client does not read): a second timer runs
    while asyncio has paused writing, and is re-armed while the client takes bytes.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    body = json.dumps({'detail': f'{guard.max_connections} connections are open to this hub '
                                 '(its limit, api.max_connections); try again later'}).encode()
    refusal = (b'HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n'
               b'content-length: %d\r\nconnection: close\r\n\r\n' % len(body)) + body

    class GuardedH11Protocol(H11Protocol):
        deadline = None                 # asyncio.TimerHandle while a request is coming in
        write_check = None              # asyncio.TimerHandle while writing is paused
        unsent = 0                      # _unsent_bytes at the last write check

        def connection_made(self, transport):
            super().connection_made(transport)
            if len(self.connections) > guard.max_connections:
                guard.on_refused(self.client)
                transport.write(refusal)
                transport.close()
            else:
                self._start_deadline()

        def data_received(self, data):
            if self.deadline is None and self.conn.their_state is h11.IDLE:
                self._start_deadline()  # a next request begins on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
                self._stop_deadline()   # the whole request is in (or h11 gave up on it)

        def connection_lost(self, exc):
            self._stop_deadline()
            self._stop_write_check()
            super().connection_lost(exc)

        def pause_writing(self):
            super().pause_writing()
            if self.write_check is None:
                self._start_write_check()

        def resume_writing(self):
            self._stop_write_check()
            super().resume_writing()

        def _start_deadline(self):
            self.deadline = self.loop.call_later(guard.request_timeout_s, self._too_slow)

        def _stop_deadline(self):
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def _too_slow(self):
            self.deadline = None
            if not self.transport.is_closing():
                guard.on_timed_out(self.client)
                self.transport.close()

        def _start_write_check(self):
            self.unsent = _unsent_bytes(self.transport)
            self.write_check = self.loop.call_later(guard.write_timeout_s, self._check_writes)

        def _stop_write_check(self):
            if self.write_check is not None:
                self.write_check.cancel()
                self.write_check = None

        def _check_writes(self):
            if _unsent_bytes(self.transport) < self.unsent:
                self._start_write_check()   # the client took some: it reads, if slowly
            else:                           # even when closing: close() waits for the answer
                self.write_check = None
                guard.on_slow_reader(self.client)
                _reset(self.transport)

    return GuardedH11Protocol


class _UvicornThread:
    """
    uvicorn serving an app from a thread (no signal handlers: the node owns them).

    With ``guard``'s limits (:class:`ConnectionGuard`); ``limit_concurrency`` also answers 503
    when more requests run than ``max_connections`` (handlers of clients gone count too; its
    count includes the asking connection, hence the + 1). No WebSocket: the app has none.
    """

    def __init__(self, app, host, port, guard, keep_alive_s):
        import uvicorn
        self.app = app
        config = uvicorn.Config(app, host=host, port=port, log_level='warning',
                                access_log=False, lifespan='off', timeout_graceful_shutdown=2,
                                http=_guarded_protocol(guard), ws='none',
                                limit_concurrency=guard.max_connections + 1,
                                backlog=max(64, guard.max_connections),
                                timeout_keep_alive=keep_alive_s)
        self.server = uvicorn.Server(config)
        guard.connections = self.server.server_state.connections
        self.address = f'{host}:{port}'
        self._thread = threading.Thread(target=self.server.run, name='hub-api', daemon=True)

    def start(self, timeout_s=30.0):
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f'the REST API cannot serve on {self.address} (address in '
                                   'use or not available here?)')
            time.sleep(0.05)
        return self

    def stop(self):
        self.app.state.stopping.set()
        self.server.should_exit = True
        self._thread.join(timeout=10.0)
