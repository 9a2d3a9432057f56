"""
The hub's REST API (FastAPI) and the dashboard it serves, read from a :class:`TwinState`.

``create_app`` builds the app; uvicorn serves it in a thread of the hub process. Reads need no
token. Writes — acknowledge an anomaly, switch corrective actions on or off (the governor still
decides every command), start a what-if job — need ``Authorization: Bearer <token>`` and are
possible only when the hub was given a token file. Every error is JSON ``{"detail": ...}``:
401 without or with a wrong token, 403 when writes are off, 404 for an unknown joint, anomaly
or job, 409 when the twin cannot do it now (or the anomaly was acknowledged before), 422 for a
malformed request (non-finite numbers too; they are echoed as strings; a body that is not
JSON, ``application/json``, says so; an echoed input is cut to :data:`ECHO_MAX_CHARS`
characters and lone surrogates in it are shown as U+FFFD), 413 for a body larger than
:data:`MAX_BODY_BYTES` (refused before it is read further, and before the token is checked),
429 when the what-if queue is full. The schema is at ``/openapi.json``; the live stream
(server-sent events) at ``/api/v1/stream``; the dashboard at ``/``.
"""
import asyncio
import hmac
import importlib.resources
import json
import math
import mimetypes
import re
import threading
import time
from typing import Annotated, Any, Dict, List, Literal, Optional

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, create_model, \
    Field, StrictBool, StrictFloat, StrictStr
from robot_twin.hub.jobs import JobRejected, RESULT_FILES
from robot_twin.hub.state import AlreadyAcknowledged, check_note, NOTE_MAX_CHARS
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from twin_anomaly.rul_monitor import MAINTENANCE_ACTIONS
from twin_bridge.ledger import to_json_value

API = '/api/v1'
STREAM_PERIOD_S = 0.2
STREAM_STALE_REFRESH_S = 1.0
"""While the robot's data is degraded the stream sends an update this often (ages move on)."""
MAX_BODY_BYTES = 64 * 1024
"""Largest request body, bytes: a larger one is a 413."""
ECHO_MAX_CHARS = 200
"""Longest text (and most list items) an error echoes back of the offending input."""
INTERFACE_HEADER = 'X-Robot-Twin-Interface'
"""Header the dashboard sends with its writes (``dashboard``), for the lifecycle log."""
_SURROGATE = re.compile('[\ud800-\udfff]')
DASHBOARD_FILES = {'index.html', 'app.js', 'style.css'}


class Problem(BaseModel):
    """An error: what was wrong and what to do."""

    detail: Any = Field(description='What was wrong (a text, or the list of invalid fields).')


#: check_note's rule in the schema, so that clients (and schema fuzzers) know it: no control
#: characters but tab and line breaks
NOTE_PATTERN = r'^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$'


class AcknowledgeRequest(BaseModel):
    """Body of an acknowledgement."""

    model_config = ConfigDict(extra='forbid')
    note: Annotated[StrictStr, AfterValidator(check_note)] = Field(
        '', max_length=NOTE_MAX_CHARS, pattern=NOTE_PATTERN,
        description='Free text kept with the anomaly (no control characters but tab and '
                    'line breaks).')


FiniteFloat = Annotated[StrictFloat, Field(allow_inf_nan=False)]


class PayloadRequest(BaseModel):
    """Body that tells the twin what the robot carries from now on (/twin/payload)."""

    model_config = ConfigDict(extra='forbid')
    mass_kg: StrictFloat = Field(ge=0.0, le=1e6, allow_inf_nan=False,
                                 description='Mass of the load, kg (0: nothing carried).')
    com_m: List[FiniteFloat] = Field(
        [0.0, 0.0, 0.0], min_length=3, max_length=3,
        description='Centre of mass, m, in the payload frame (the frame the tool is on).')
    inertia_kgm2: List[FiniteFloat] = Field(
        [0.0] * 6, min_length=6, max_length=6,
        description='Inertia about the centre of mass, kg·m^2: ixx, ixy, ixz, iyy, iyz, izz.')


class CorrectiveRequest(BaseModel):
    """Body that switches corrective actions."""

    model_config = ConfigDict(extra='forbid')
    enabled: StrictBool = Field(description='true lets the governor command the robot.')


def maintenance_request_model(joints):
    """Return the body model of a maintenance declaration, with this robot's joints."""
    joint = Literal[tuple(joints)] if joints else StrictStr
    return create_model(
        'MaintenanceRequest', __config__=ConfigDict(extra='forbid'),
        joint=(joint, Field(description='The joint the maintenance was done on.')),
        action=(Literal[MAINTENANCE_ACTIONS], Field(
            description='What was done: ' + ', '.join(MAINTENANCE_ACTIONS) + '.')),
        note=(Annotated[StrictStr, AfterValidator(check_note)], Field(
            '', max_length=NOTE_MAX_CHARS, pattern=NOTE_PATTERN,
            description='Free text for the lifecycle log (no control characters but tab and '
                        'line breaks).')))


def _json_integer(value):
    """Accept an integer as JSON Schema means it (3 or 3.0), not true, '3' or 3.5."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise ValueError('must be an integer')
    return int(value)


JsonInt = Annotated[int, BeforeValidator(_json_integer)]


def job_request_model(scenarios, max_samples):
    """Return the body model of a what-if job, with this hub's scenarios and limit."""
    kind = Literal[tuple(scenarios)] if scenarios else StrictStr
    return create_model(
        'JobRequest', __config__=ConfigDict(extra='forbid'),
        scenario=(kind, Field(description='A packaged scenario (GET /api/v1/whatif/scenarios).')),
        samples=(JsonInt, Field(ge=1, le=max(1, max_samples), description='Variants.')),
        seed=(JsonInt, Field(0, ge=0, le=2 ** 31 - 1, description='Randomization seed.')))


class Corrective(BaseModel):
    """The bridge's corrective_actions.enabled as the hub last read it."""

    enabled: Optional[bool] = Field(description='null when the bridge could not be asked.')
    error: str = ''
    updated: Optional[float] = None
    ledger_error: Optional[str] = Field(
        None, description='After a switch: why it was not written to the lifecycle log '
                          'by the hub (null: written, or no log configured).')


class Episode(BaseModel):
    """One anomaly episode of a joint."""

    id: int  # noqa: A003 (the API's field name)
    joint: str
    fault_type: str
    since: Optional[float]
    opened: float
    closed: Optional[float]
    active: bool
    peak_score: Optional[float]
    message: str
    acknowledged_at: Optional[float]
    acknowledged_by: str
    note: str
    status: str = Field(description='active, cleared, or "unknown: the twin stopped '
                                    'reporting" (the /twin/anomaly status of the joint is '
                                    'stale)')
    ledger_error: Optional[str] = None


class Job(BaseModel):
    """A what-if job."""

    model_config = ConfigDict(extra='allow')
    id: str  # noqa: A003 (the API's field name)
    scenario: str
    samples: int
    seed: int
    status: str = Field(description='queued, running, done or failed')
    submitted: float
    started: Optional[float]
    finished: Optional[float]
    returncode: Optional[int]
    error: str
    digest: Optional[Dict[str, Any]]
    files: List[str]


class Health(BaseModel):
    """The hub is up; whether the robot's data is live; what it serves."""

    status: Literal['ok', 'degraded'] = Field(
        description='degraded: the hub serves, but the robot data is missing or stale '
                    '(see reasons)')
    reasons: List[str]
    data_age_s: Optional[float] = Field(
        description='Seconds since the newest measured joint sample arrived (null: none yet).')
    robot: str
    joints: List[str]
    writes_enabled: bool
    samples_received: Dict[str, int]
    connections: Optional[Dict[str, int]] = Field(
        None, description='HTTP connections: open now, max (api.max_connections), refused '
                          '(beyond max), timed_out (no whole request in '
                          'api.request_timeout_s) and slow_readers_closed (took none of '
                          'an answer for api.write_timeout_s) since the hub started.')


def _interface(request):
    """Return where a write came from, for the lifecycle log: ``dashboard`` or ``REST``."""
    return 'dashboard' if request.headers.get(INTERFACE_HEADER, '').lower() == 'dashboard' \
        else 'REST'


def _errors(*codes):
    return {code: {'model': Problem} for code in (422,) + codes}


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f'{type(value).__name__} is not JSON serializable')


def _sse(event, data):
    return f'event: {event}\ndata: {json.dumps(data, default=_json_default)}\n\n'


def dashboard_file(name):
    """Return the bytes of a dashboard file (index.html, app.js, style.css)."""
    return importlib.resources.files('robot_twin.hub').joinpath('dashboard', name).read_bytes()


def create_app(state, actions, *, token=None, jobs=None, connections=None):
    """
    Build the hub's FastAPI app.

    Parameters
    ----------
    state : robot_twin.hub.state.TwinState
        What the API reads.
    actions : robot_twin.hub.server.HubActions
        The writes: ``acknowledge`` and ``set_corrective``.
    token : str, optional
        Bearer token for writes; None = read-only API (writes answer 403).
    jobs : robot_twin.hub.jobs.WhatIfJobs, optional
        What-if job runner; None = jobs answer 409.
    connections : callable, optional
        ``connections() -> dict``: the server's connection counters, shown in /health
        (:meth:`robot_twin.hub.server.ConnectionGuard.counters`); None = not shown.

    """
    app = FastAPI(
        title='robot_twin hub', version='1',
        description='The digital twin of a robot arm, outside ROS: joint state (measured, '
                    'predicted, residual), sync health, anomalies, remaining useful life, the '
                    'lifecycle log, identified parameters and what-if jobs. Writes need '
                    '`Authorization: Bearer <token>`. Live updates: server-sent events at '
                    f'`{API}/stream`.')
    bearer = HTTPBearer(auto_error=False, description="The token of the hub's token file.")
    stopping = threading.Event()       # set by the hub on shut-down: streams end
    app.state.stopping = stopping
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    def writer(credentials: HTTPAuthorizationCredentials = Depends(bearer)):
        if token is None:
            raise HTTPException(403, 'writes are disabled on this hub: start it with '
                                     '--api-token-file FILE (robot-twin up) to allow them')
        if credentials is None:
            raise HTTPException(401, 'this request changes the twin: send the header '
                                     'Authorization: Bearer <token>',
                                headers={'WWW-Authenticate': 'Bearer'})
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(401, 'wrong bearer token',
                                headers={'WWW-Authenticate': 'Bearer error="invalid_token"'})
        return True

    JobRequest = job_request_model(jobs.scenarios() if jobs else (),   # noqa: N806 - a class
                                   jobs.max_samples if jobs else 1)
    MaintenanceRequest = maintenance_request_model(state.joint_names)  # noqa: N806 - a class

    @app.exception_handler(Exception)
    async def unexpected(_request, exc):   # a bug: still a JSON body that says what happened
        return JSONResponse({'detail': _echo(f'internal error: {type(exc).__name__}: {exc}',
                                             limit=1000)}, 500)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        errors = exc.errors()
        if any(tuple(e.get('loc', ())) == ('body',) and isinstance(e.get('input'), bytes)
               for e in errors):          # not parsed as JSON: the Content-Type was not JSON
            kind = request.headers.get('content-type') or 'no Content-Type'
            return JSONResponse({'detail': f'the body must be JSON, sent as Content-Type: '
                                           f'application/json (got {_echo(kind)})'}, 422)
        return JSONResponse({'detail': jsonable_errors(errors)}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        headers = dict(exc.headers or {})
        if exc.status_code == 400:          # a body that is not JSON: malformed, like the rest
            return JSONResponse({'detail': f'malformed request: {exc.detail}'}, 422)
        if exc.status_code == 405:          # Allow lists every method of the path
            headers['Allow'] = ', '.join(sorted(_methods(app, request.scope)))
        return JSONResponse({'detail': exc.detail}, exc.status_code, headers=headers)

    @app.head(f'{API}/health', include_in_schema=False)
    def health_probe():                 # uptime probes: 200 while the hub serves
        return Response(media_type='application/json')

    @app.get(f'{API}/health', response_model=Health, tags=['state'])
    def health():
        """
        Whether the hub runs (200), whether the robot's data is live, what it has received.

        ``status`` is ``degraded``, with the ``reasons``, while the robot's data is missing or
        stale; the answer is still 200 (the hub itself serves).
        """
        return {**state.health(), 'robot': state.robot_name, 'joints': state.joint_names,
                'writes_enabled': token is not None, 'samples_received': state.counters(),
                'connections': connections() if connections else None}

    @app.get(f'{API}/state', tags=['state'])
    def full_state() -> Dict[str, Any]:
        """Everything at once: joints, sync, anomalies, RUL, log, parameters, jobs."""
        return state.snapshot()

    @app.get(f'{API}/joints', tags=['state'])
    def joints() -> List[Dict[str, Any]]:
        """
        Return per joint: measured, predicted, residual, anomaly status, RUL.

        Position rad, velocity rad/s, effort N·m (m, m/s, N for prismatic joints); each of
        measured, predicted and residual has ``age_s`` (since the hub received it) and
        ``stale`` (no newer sample for more than 1 s).
        """
        return state.joints()

    @app.get(f'{API}/joints/{{name}}', tags=['state'], responses=_errors(404))
    def joint(name: str = Path(max_length=200)) -> Dict[str, Any]:
        """Return the state of a single joint, as /joints shows it."""
        for entry in state.joints():
            if entry['name'] == name:
                return entry
        raise HTTPException(404, f'no joint {name!r}; the robot has '
                                 f'{", ".join(state.joint_names)}')

    @app.get(f'{API}/series', tags=['state'], responses=_errors())
    def series(since: int = Query(0, ge=0, description='Sequence number already seen.'),
               max_points: int = Query(2000, ge=1, le=10000)) -> Dict[str, Any]:
        """
        Return the effort samples after sequence number ``since``.

        Measured, predicted and residual, N·m, in model joint order, with the newest sequence
        number (``seq``).
        """
        return state.series_since(since, max_points)

    @app.get(f'{API}/sync', tags=['state'])
    def sync() -> Dict[str, Any]:
        """Return the bridge's sync health (/twin/status): level, latency, drift, counters."""
        return state.sync()

    @app.get(f'{API}/anomalies', tags=['anomalies'], responses=_errors())
    def anomalies(active: bool = Query(False, description='Only alarms still raised.')) \
            -> Dict[str, Any]:
        """Robot-level anomaly status and the per-joint episodes, newest first."""
        return state.anomalies(active_only=active)

    @app.get(f'{API}/anomalies/{{episode_id}}', response_model=Episode, tags=['anomalies'],
             responses=_errors(404))
    def anomaly(episode_id: int = Path(ge=1, le=2 ** 62)):
        """One anomaly episode."""
        for episode in state.anomalies()['episodes']:
            if episode['id'] == episode_id:
                return episode
        raise HTTPException(404, f'no anomaly {episode_id}')

    @app.post(f'{API}/anomalies/{{episode_id}}/acknowledge', response_model=Episode,
              tags=['anomalies'], responses=_errors(401, 403, 404, 409))
    def acknowledge(body: AcknowledgeRequest, episode_id: int = Path(ge=1, le=2 ** 62),
                    _auth: bool = Depends(writer)):
        """
        Acknowledge an anomaly (kept by the hub; written to the lifecycle log if any).

        The first acknowledgement stands: a second one is a conflict (409) that says who
        acknowledged the anomaly and when.
        """
        try:
            return actions.acknowledge(episode_id, 'api', body.note)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        except AlreadyAcknowledged as exc:
            raise HTTPException(409, str(exc)) from None

    @app.get(f'{API}/rul', tags=['health'])
    def rul() -> Dict[str, Any]:
        """Remaining useful life per joint (hours, with its interval), health index, advice."""
        return state.rul()

    @app.get(f'{API}/ledger', tags=['health'], responses=_errors())
    def ledger(limit: int = Query(20, ge=1, le=200)) -> Dict[str, Any]:
        """Return the last entries of the lifecycle log (none while no log is configured)."""
        out = state.ledger()
        out['entries'] = out['entries'][-limit:]
        return out

    @app.get(f'{API}/parameters', tags=['health'])
    def parameters() -> Dict[str, Any]:
        """Return the identified dynamics the twin uses (params.yaml of sysid), if any."""
        return state.parameters()

    @app.get(f'{API}/corrective-actions', response_model=Corrective, tags=['actions'])
    def corrective():
        """Whether the bridge may send corrective commands (its governor decides each)."""
        return state.corrective()

    @app.put(f'{API}/corrective-actions', response_model=Corrective, tags=['actions'],
             responses=_errors(401, 403, 409))
    async def set_corrective(request: Request, body: CorrectiveRequest,
                             _auth: bool = Depends(writer)):
        """
        Switch corrective actions on or off.

        Sets corrective_actions.enabled on the bridge; the governor still checks every command.
        Each switch is recorded in the lifecycle log (``corrective_actions_switched``).
        """
        via = _interface(request)
        ok, message, ledger_error = await run_in_threadpool(
            actions.switch_corrective, body.enabled, via)
        if not ok:
            raise HTTPException(409, message)
        return {**state.corrective(), 'ledger_error': ledger_error or None}

    @app.put(f'{API}/payload', tags=['actions'], responses=_errors(401, 403, 409))
    async def set_payload(body: PayloadRequest, _auth: bool = Depends(writer)) \
            -> Dict[str, Any]:
        """
        Tell the twin what the robot carries from now on (published on /twin/payload).

        Checked as the twin checks it: a well-formed body that is no rigid body, or a load this
        arm cannot carry, is a conflict with the robot (409, with the reason). The twin pauses
        its load checks for payload_settle_s while the load moves (README).
        """
        try:
            ok, message = await run_in_threadpool(actions.set_payload, body.mass_kg,
                                                  body.com_m, body.inertia_kgm2)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        if not ok:
            raise HTTPException(409, message)
        return {'message': message, **body.model_dump()}

    @app.post(f'{API}/maintenance', tags=['health'], responses=_errors(401, 403, 409))
    async def declare_maintenance(request: Request, body: MaintenanceRequest,
                                  _auth: bool = Depends(writer)) -> Dict[str, Any]:
        """
        Declare maintenance done on a joint (published on /twin/maintenance).

        The twin's anomaly node learns the joint's health anew (its RUL reports
        ``collecting evidence: new baseline after maintenance`` meanwhile) and writes
        ``maintenance_done`` to the lifecycle log. 409 when the hub is not connected to the
        twin or no twin_anomaly listens (nothing was declared).
        """
        via = _interface(request)
        try:
            ok, message = await run_in_threadpool(actions.declare_maintenance, body.joint,
                                                  body.action, body.note, via)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        if not ok:
            raise HTTPException(409, message)
        return {'message': message, **body.model_dump()}

    @app.get(f'{API}/whatif/scenarios', tags=['what-if'])
    def scenarios() -> List[str]:
        """Scenario names a what-if job may use."""
        return jobs.scenarios() if jobs is not None else []

    @app.get(f'{API}/whatif/jobs', response_model=List[Job], tags=['what-if'])
    def list_jobs():
        """Every what-if job of this hub, newest first."""
        return state.jobs()

    @app.post(f'{API}/whatif/jobs', response_model=Job, status_code=202, tags=['what-if'],
              responses=_errors(401, 403, 409, 429))
    def start_job(body: JobRequest, _auth: bool = Depends(writer)):
        """Start a what-if job (``robot-twin whatif`` in a worker process, low priority)."""
        if jobs is None:
            raise HTTPException(409, 'this hub runs no what-if jobs')
        try:
            return jobs.submit(body.scenario, body.samples, body.seed)
        except JobRejected as exc:
            raise HTTPException(exc.status, str(exc)) from None

    @app.get(f'{API}/whatif/jobs/{{job_id}}', response_model=Job, tags=['what-if'],
             responses=_errors(404))
    def get_job(job_id: str = Path(max_length=100)):
        """One what-if job: status, digest of its summary, result files."""
        try:
            return state.job(job_id)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None

    @app.get(f'{API}/whatif/jobs/{{job_id}}/files/{{name}}', tags=['what-if'],
             responses={**_errors(404), 200: {'content': {
                 'application/json': {}, 'text/csv': {}, 'image/png': {}, 'text/plain': {}}}})
    def job_file(job_id: str = Path(max_length=100), name: str = Path(max_length=100)):
        """Return a result file of a job: summary.json, samples.csv, run.json, plots, log.txt."""
        if jobs is None or name not in RESULT_FILES:
            raise HTTPException(404, f'no file {name!r}; files are {", ".join(RESULT_FILES)}')
        try:
            path = jobs.file_path(job_id, name)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        kind = mimetypes.guess_type(name)[0] or 'text/plain'
        return FileResponse(path, media_type=kind)

    @app.get(f'{API}/stream', include_in_schema=False)
    async def stream(request: Request):
        """Server-sent events: ``snapshot`` once, then ``update`` when the state changes."""
        return StreamingResponse(_events(state, request, stopping),
                                 media_type='text/event-stream',
                                 headers={'Cache-Control': 'no-cache'})

    @app.get('/', include_in_schema=False)
    def index():
        return Response(dashboard_file('index.html'), media_type='text/html')

    @app.get('/dashboard/{name}', include_in_schema=False)
    def static(name: str):
        if name not in DASHBOARD_FILES:
            raise HTTPException(404, f'no dashboard file {name!r}')
        return Response(dashboard_file(name), media_type=mimetypes.guess_type(name)[0])

    return app


def jsonable_errors(errors):
    """
    Pydantic's error list as plain JSON (its ``ctx`` may hold exceptions).

    The offending ``input`` is kept, with every NaN or infinite number in it as a string
    (``'NaN'``, ``'Infinity'``, ``'-Infinity'``), which strict JSON cannot carry, cut to
    :data:`ECHO_MAX_CHARS` (:func:`_echo`); a lone surrogate (which UTF-8 cannot carry) is
    shown as U+FFFD.
    """
    out = []
    for error in errors:
        entry = {k: _echo(error[k]) for k in ('type', 'loc', 'msg') if k in error}
        if 'input' in error:
            entry['input'] = _echo(to_json_value(error['input']))
        out.append(entry)
    return out


def _echo(value, limit=ECHO_MAX_CHARS, depth=0):
    """
    Return ``value`` (JSON-ready) fit to be echoed: UTF-8-encodable and short.

    Text is cut to ``limit`` characters (with ``...``) and its lone surrogates replaced by
    U+FFFD; lists and objects keep their first ``limit // 10`` items, three levels deep.
    """
    if isinstance(value, str):
        text = _SURROGATE.sub('\ufffd', value)
        return text if len(text) <= limit else text[:limit] + '...'
    if isinstance(value, bytes):
        return _echo(value.decode('utf-8', 'replace'), limit, depth)
    items = max(1, limit // 10)
    if isinstance(value, (list, tuple)):
        if depth >= 3:
            return '...'
        out = [_echo(v, limit, depth + 1) for v in list(value)[:items]]
        return out + ['...'] if len(value) > items else out
    if isinstance(value, dict):
        if depth >= 3:
            return '...'
        out = {_echo(str(k), limit, depth + 1): _echo(v, limit, depth + 1)
               for k, v in list(value.items())[:items]}
        if len(value) > items:
            out['...'] = f'{len(value) - items} more'
        return out
    return value


class BodyLimit:
    """
    ASGI middleware: a request body larger than ``limit`` bytes is a 413, read no further.

    A declared ``Content-Length`` above the limit is refused before any byte of the body is
    read; a chunked body is read up to the limit, then refused. It runs before the routes, so
    before the token is checked.
    """

    def __init__(self, app, limit=MAX_BODY_BYTES):
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        length = dict(scope.get('headers') or ()).get(b'content-length', b'')
        try:
            declared = int(length) if length else None
        except ValueError:
            declared = None
        if declared is not None and declared > self.limit:
            return await self._refuse(send, declared)
        if declared is not None or scope.get('method') in ('GET', 'HEAD', 'OPTIONS'):
            return await self.app(scope, receive, send)
        chunks, size = [], 0         # chunked or undeclared: read it here, up to the limit
        while True:
            message = await receive()
            if message['type'] != 'http.request':
                return
            chunks.append(message.get('body', b''))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._refuse(send, None)
            if not message.get('more_body', False):
                break
        body, sent = b''.join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {'type': 'http.request', 'body': body, 'more_body': False}
        return await self.app(scope, replay, send)

    async def _refuse(self, send, declared):
        size = f'{declared} bytes' if declared is not None else 'more bytes'
        data = json.dumps({'detail': f'the request body has {size}; at most {self.limit} '
                                     'are accepted'}).encode()
        await send({'type': 'http.response.start', 'status': 413,
                    'headers': [(b'content-type', b'application/json'),
                                (b'content-length', str(len(data)).encode()),
                                (b'connection', b'close')]})
        await send({'type': 'http.response.body', 'body': data})


def _methods(app, scope):
    """Every HTTP method some route of ``app`` serves at the path of ``scope``."""
    methods = set()
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            methods |= set(getattr(route, 'methods', ()) or ())
    return methods or {'GET'}


async def _events(state, request, stopping):
    """Yield server-sent events: a full snapshot first, then what changed every STREAM_PERIOD_S."""
    snapshot = state.snapshot()
    series = state.series_since(0)
    yield _sse('snapshot', {'state': snapshot, 'series': series})
    version, events, seq = snapshot['version'], snapshot['events'], series['seq']
    degraded = snapshot['health']['status'] != 'ok'
    pushed = time.monotonic()
    while not stopping.is_set() and not await request.is_disconnected():
        await asyncio.sleep(STREAM_PERIOD_S)
        # the version also moves when data turns stale; while degraded, ages move on
        if state.version == version and not (
                degraded and time.monotonic() - pushed >= STREAM_STALE_REFRESH_S):
            yield ': idle\n\n'          # keeps proxies and the browser's connection alive
            continue
        pushed = time.monotonic()
        current = state.snapshot(events=False)
        degraded = current['health']['status'] != 'ok'
        series = state.series_since(seq)
        update = {'state': current, 'series': series}
        if current['events'] != events:
            update['events'] = {'anomalies': state.anomalies(), 'rul': state.rul(),
                                'ledger': state.ledger(), 'jobs': state.jobs(),
                                'parameters': state.parameters()}
        version, events, seq = current['version'], current['events'], series['seq']
        yield _sse('update', update)
