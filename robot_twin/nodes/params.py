"""
Declaring robot_twin's parameters on a node: descriptors from the schema, checked at start-up.

The schema (names, types, ranges, choices, descriptions) is :data:`robot_twin.config.PARAMETERS`;
this module turns it into ``rcl_interfaces`` descriptors (``ros2 param describe`` shows them),
declares them, rejects a bad start-up value with a message naming it, and installs a
set-parameters callback that rejects a bad new value the same way.
"""
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, \
    ParameterType, SetParametersResult
from rclpy.parameter import Parameter
from robot_twin.config import ConfigError, PARAMETERS, validate_value

_KINDS = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
          list: ParameterType.PARAMETER_DOUBLE_ARRAY}


def ros_descriptor(spec):
    """Return the ``rcl_interfaces/ParameterDescriptor`` of ``spec`` (type, range, text)."""
    descriptor = ParameterDescriptor(name=spec.name, type=_KINDS[spec.type],
                                     description=spec.description, read_only=spec.read_only)
    if spec.choices:
        descriptor.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    if spec.type is float and spec.min is not None and spec.max is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.min), to_value=float(spec.max), step=0.0)]
    elif spec.type is int and spec.min is not None and spec.max is not None:
        descriptor.integer_range = [IntegerRange(
            from_value=int(spec.min), to_value=int(spec.max), step=0)]
    return descriptor


def declare_node_parameters(node, executable):
    """
    Declare every parameter of ``executable`` on an rclpy ``node`` and validate them.

    Parameters
    ----------
    node : rclpy.node.Node
        The node; its overrides (params files, ``-p``) apply.
    executable : str
        Key of ``PARAMETERS``.

    Returns
    -------
    dict
        ``{name: value}`` after overrides.

    Raises
    ------
    ConfigError
        Some start-up value is invalid; every problem is listed.

    """
    specs = PARAMETERS[executable]
    values = {}
    for spec in specs:
        if spec.type is list:       # no typed empty default in ROS: declare the type instead
            value = node.declare_parameter(spec.name, Parameter.Type.DOUBLE_ARRAY,
                                           ros_descriptor(spec)).value
            values[spec.name] = () if value is None else tuple(value)
        else:
            values[spec.name] = node.declare_parameter(spec.name, spec.default,
                                                       ros_descriptor(spec)).value
    errors = [e for e in (validate_value(executable, n, v) for n, v in values.items()) if e]
    if errors:
        raise ConfigError(node.get_fully_qualified_name(), errors)
    declared = {spec.name for spec in specs}

    def check(parameters):
        problems = [validate_value(executable, p.name, p.value) for p in parameters
                    if p.name in declared]
        problems = [p for p in problems if p]
        return SetParametersResult(successful=not problems, reason='; '.join(problems))

    node.add_on_set_parameters_callback(check)
    return values


def resolve_node_parameters(params_file, nodes):
    """
    Return the parameters rcl gives each node of ``nodes`` when started with ``params_file``.

    Each node is created, with the file, on a private rclpy context (no executor, destroyed at
    once), so the file's sections reach it by rcl's own rules (``/**``, ``/**/name``, ...)
    and its values are checked as at start-up. Offline tools (``robot-twin replay``) use it
    to run the twin's cores with the values the live nodes would have.

    Parameters
    ----------
    params_file : str
        A ROS 2 parameters file.
    nodes : sequence of (str, str)
        ``(node name, executable)`` pairs; the executable names the schema.

    Returns
    -------
    dict
        ``{node name: {parameter: value}}``, as :func:`declare_node_parameters` returns.

    Raises
    ------
    robot_twin.config.ConfigError
        A value of the file is wrong for its node.

    """
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    out = {}
    for name, executable in nodes:
        context = Context()
        rclpy.init(context=context, args=['--ros-args', '--params-file', str(params_file)])
        try:
            node = Node(name, context=context, start_parameter_services=False)
            try:
                values = declare_node_parameters(node, executable)
            finally:
                node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
        out[name] = values
    return out
