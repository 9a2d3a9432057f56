"""
What the hub serves and where: its ROS parameters, their checks, and the bring-up's helpers.

The hub (``twin_hub``, :mod:`robot_twin.nodes.hub_node`) is optional and opens no port unless
told: each interface is off while its address is empty. In a config file the interfaces are
sections of the hub node's parameters::

    /**/twin_hub:
      ros__parameters:
        api: {address: '127.0.0.1:8080', token_file: /etc/robot_twin/api_token}
        opcua: {address: '127.0.0.1:4840'}
        foxglove: {address: '127.0.0.1:8765', mcap_path: ''}

``robot-twin up`` turns its flags into the same parameters with :func:`hub_overrides` and
:func:`hub_spec`. Writes (acknowledge, corrective actions on/off, what-if jobs) need the bearer
token of ``api.token_file`` (REST) or that token as the password of user ``robot_twin`` (OPC
UA); without a token file every interface is read-only.
"""
from dataclasses import dataclass, replace
import ipaddress
from pathlib import Path

from robot_twin.cli_files import read_identified_dynamics
# _sections: the config reader's own walker over a params file's sections
from robot_twin.config import _sections, ConfigError, load_rcl_yaml, parameter_spec, PARAMETERS
import yaml

HUB_EXECUTABLE = 'twin_hub'
OPCUA_USER = 'robot_twin'
MIN_TOKEN_CHARS = 16

HUB_PARAMETERS = PARAMETERS[HUB_EXECUTABLE]
"""The ``twin_hub`` node's parameters (defined in robot_twin.config, which owns every
node's parameters, so that config files and launch arguments are checked against them)."""

INTERFACES = ('api', 'opcua', 'foxglove')


def parse_address(text, what):
    """
    Read ``HOST:PORT`` (``[v6]:PORT`` for IPv6) into ``(host, port)``; raise ConfigError.

    An empty host means 127.0.0.1. The host must be an IP address or ``localhost``: the hub
    binds to it, and a name that resolves elsewhere would open a port nobody asked for.
    """
    text = str(text).strip()
    host, sep, port = text.rpartition(':')
    if not sep:
        raise ConfigError(what, [f'{text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)'])
    host = host.strip('[]') or '127.0.0.1'
    if host != 'localhost':
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(what, [f'{host!r} is not an IP address; give the address to '
                                     'bind to (127.0.0.1 for this machine only)']) from None
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise ConfigError(what, [f'port {port!r} is not a number in 1..65535'])
    return host, number


def read_token(path, what='api.token_file'):
    """Return the bearer token in file ``path`` (stripped); raise ConfigError if unusable."""
    try:
        token = Path(path).read_text(encoding='utf-8').strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(what, [f'cannot read the token file {path}: {exc}']) from None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ConfigError(what, [
            f'{path}: the token must be one word of at least {MIN_TOKEN_CHARS} characters '
            '(e.g. python -c "import secrets; print(secrets.token_urlsafe(32))" > FILE)'])
    return token


@dataclass(frozen=True)
class HubSettings:
    """
    The hub's checked settings (see :data:`HUB_PARAMETERS` for each meaning).

    Addresses are ``(host, port)`` or None when the interface is off; ``token`` is None when
    writes are off.
    """

    urdf_path: str = ''
    locked_joints: str = ''
    measured_topic: str = '/twin/joint_states'
    predicted_topic: str = '/twin/predicted_joint_states'
    nice: int = 10
    decode_rate_hz: float = 50.0
    bridge_node: str = 'twin_bridge'
    dynamics_params_file: str = ''
    ledger_path: str = ''
    api: tuple = None
    token: str = None
    api_max_connections: int = 64
    api_request_timeout_s: float = 10.0
    api_keep_alive_s: float = 5.0
    api_write_timeout_s: float = 20.0
    opcua: tuple = None
    opcua_nodeset_dir: str = ''
    opcua_update_rate_hz: float = 10.0
    foxglove: tuple = None
    foxglove_mcap_path: str = ''
    foxglove_rate_hz: float = 20.0
    whatif_output_dir: str = ''
    whatif_max_samples: int = 64
    whatif_max_queued: int = 4

    @property
    def writes_enabled(self):
        """Whether a token was configured (writes are possible with it)."""
        return self.token is not None

    @classmethod
    def from_parameters(cls, values):
        """
        Build the settings from ``{parameter name: value}`` (defaults for missing ones).

        Raises
        ------
        ConfigError
            Listing every unusable value (address, token file, missing files).

        """
        p = {spec.name: spec.default for spec in HUB_PARAMETERS}
        p.update(values)
        errors = []

        def address(name):
            if not p[name]:
                return None
            try:
                return parse_address(p[name], name)
            except ConfigError as exc:
                errors.append(str(exc))
                return None

        addresses = {name: address(f'{name}.address') for name in INTERFACES}
        token = None
        if p['api.token_file']:
            try:
                token = read_token(p['api.token_file'])
            except ConfigError as exc:
                errors.append(str(exc))
        if p['urdf_path'] and not Path(p['urdf_path']).is_file():
            errors.append(f"urdf_path: {p['urdf_path']}: no such file")
        if p['dynamics_params_file']:
            try:                # not shown under /parameters as identified dynamics if not
                read_identified_dynamics(p['dynamics_params_file'])
            except ValueError as exc:
                errors.append(f'dynamics_params_file: {exc}')
        if errors:
            raise ConfigError(HUB_EXECUTABLE, errors)
        return cls(
            urdf_path=p['urdf_path'], locked_joints=p['locked_joints'],
            measured_topic=p['measured_topic'],
            predicted_topic=p['predicted_topic'], nice=p['nice'],
            decode_rate_hz=p['decode_rate_hz'],
            bridge_node=p['bridge_node'], dynamics_params_file=p['dynamics_params_file'],
            ledger_path=p['ledger_path'], api=addresses['api'], token=token,
            api_max_connections=p['api.max_connections'],
            api_request_timeout_s=p['api.request_timeout_s'],
            api_keep_alive_s=p['api.keep_alive_s'],
            api_write_timeout_s=p['api.write_timeout_s'],
            opcua=addresses['opcua'], opcua_nodeset_dir=p['opcua.nodeset_dir'],
            opcua_update_rate_hz=p['opcua.update_rate_hz'], foxglove=addresses['foxglove'],
            foxglove_mcap_path=p['foxglove.mcap_path'], foxglove_rate_hz=p['foxglove.rate_hz'],
            whatif_output_dir=p['whatif.output_dir'],
            whatif_max_samples=p['whatif.max_samples'],
            whatif_max_queued=p['whatif.max_queued'])


# --- for the bring-up (robot-twin up, robot-twin demo) ----------------------------------------

def add_hub_arguments(parser):
    """Add ``--api HOST:PORT --api-token-file F --opcua HOST:PORT --foxglove HOST:PORT``."""
    group = parser.add_argument_group(
        'outside-ROS interfaces (the twin_hub process; each off unless given)')
    group.add_argument('--api', default='', metavar='HOST:PORT',
                       help='REST API (OpenAPI at /openapi.json) and the dashboard at /')
    group.add_argument('--api-token-file', default='', metavar='FILE',
                       help='bearer token for writes (REST; OPC UA user robot_twin); '
                            'without it every interface is read-only')
    group.add_argument('--opcua', default='', metavar='HOST:PORT',
                       help='OPC UA server (OPC 40010-1 Robotics), e.g. 127.0.0.1:4840')
    group.add_argument('--foxglove', default='', metavar='HOST:PORT',
                       help='Foxglove WebSocket server, e.g. 127.0.0.1:8765')
    return group


def hub_overrides(api='', api_token_file='', opcua='', foxglove=''):
    """
    Return the ``twin_hub`` parameter overrides for the given flags (only those given).

    Checks each value now (a clear ConfigError before any process starts).
    """
    overrides = {}
    for name, value in (('api.address', api), ('opcua.address', opcua),
                        ('foxglove.address', foxglove)):
        if value:
            parse_address(value, '--' + name.split('.')[0])
            overrides[name] = str(value)
    if api_token_file:
        read_token(api_token_file, '--api-token-file')
        overrides['api.token_file'] = str(Path(api_token_file).resolve())
    return overrides


def wants_hub(values):
    """Whether hub parameters ``values`` switch any interface on."""
    return any(values.get(f'{name}.address') for name in INTERFACES)


def hub_spec(graph, overrides):
    """
    Return the :class:`robot_twin.graph.ProcessSpec` of the hub beside ``graph``'s processes.

    One process running the node ``twin_hub``: it reads the same config file (its
    ``/**/twin_hub`` section, if any), runs in the graph's namespace, and loads the graph's
    URDF. ``overrides`` usually come from :func:`hub_overrides`; they win over the file.
    """
    from robot_twin.graph import NodeSpec, PACKAGE, ProcessSpec
    parameters = dict(overrides)
    if graph.urdf and 'urdf_path' not in parameters:
        parameters['urdf_path'] = graph.urdf
    node = NodeSpec(HUB_EXECUTABLE, HUB_EXECUTABLE, parameters)
    return ProcessSpec(PACKAGE, HUB_EXECUTABLE, (node,), graph.namespace,
                       params_files=(graph.config.path,))


def configured_hub_parameters(path):
    """
    Return the ``twin_hub`` parameters config file ``path`` sets (``/**``, then ``*/twin_hub``).

    The file has been checked by :func:`robot_twin.config.load_config`; this only reads what
    the hub will get from it, to know whether an interface is on and to print its address.
    """
    try:
        with open(path, encoding='utf-8') as handle:
            sections = dict(_sections(load_rcl_yaml(handle) or {}))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ConfigError):
        return {}
    values = dict(sections.get('/**', {}))
    for key, parameters in sections.items():
        if key.rsplit('/', 1)[-1] == HUB_EXECUTABLE:
            values.update(parameters)
    return {k: v for k, v in values.items() if parameter_spec(HUB_EXECUTABLE, k)}


def with_hub(graph, overrides):
    """
    Return ``(processes, values)``: ``graph``'s processes with the hub, and the hub's parameters.

    The hub runs when the config lists a ``twin_hub`` node (``overrides`` then go to it) or
    when the flags (``overrides``) or the config's ``twin_hub`` section switch an interface on;
    it is then one process of its own (:func:`hub_spec`), last, so that the twin starts first.
    ``values`` (for :func:`hub_urls`) is empty when no hub runs.
    """
    processes = list(graph.processes)
    values = {**configured_hub_parameters(graph.config.path), **overrides}
    listed = [p for p in processes if p.executable == HUB_EXECUTABLE]
    if listed:
        processes = [replace(p, nodes=tuple(
            replace(n, parameters={**n.parameters, **overrides}) for n in p.nodes))
            if p in listed else p for p in processes]
        return processes, values
    if not wants_hub(values):
        return processes, {}
    sim_time = [n.parameters['use_sim_time'] for n in graph.nodes
                if 'use_sim_time' in n.parameters and n.executable != 'twin_plant']
    extra = {'use_sim_time': sim_time[0]} if sim_time else {}
    return processes + [hub_spec(graph, {**extra, **overrides})], values


def hub_urls(values):
    """
    Return one line per interface that ``values`` (hub parameters) switch on.

    For the bring-up to print, e.g. ``dashboard  http://127.0.0.1:8080/``.
    """
    lines = []
    if values.get('api.address'):
        host, port = parse_address(values['api.address'], '--api')
        base = f'http://{_url_host(host)}:{port}'
        writes = 'writes with the bearer token' if values.get('api.token_file') else \
            'read-only'
        lines += [f'dashboard  {base}/', f'REST API   {base}/api/v1 ({writes}; schema '
                                         f'{base}/openapi.json)']
    if values.get('opcua.address'):
        host, port = parse_address(values['opcua.address'], '--opcua')
        lines.append(f'OPC UA     opc.tcp://{_url_host(host)}:{port}/robot_twin/')
    if values.get('foxglove.address'):
        host, port = parse_address(values['foxglove.address'], '--foxglove')
        lines.append(f'Foxglove   ws://{_url_host(host)}:{port} (Open connection -> '
                     'Foxglove WebSocket)')
    return lines


def _url_host(host):
    return f'[{host}]' if ':' in host else host
