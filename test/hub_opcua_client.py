"""
An OPC UA client of the hub's server, run by test_hub_interfaces.py as a process of its own.

It browses the address space like a factory client would (DeviceSet -> MotionDeviceSystem ->
MotionDevices -> Axes, by browse names), reads every axis's ActualPosition with its
SourceTimestamp a few times (more until the sample has changed), then tries what it may not do
(write a value, call a method anonymously, log in with a wrong password) and what it may with
the token (call SetCorrectiveActions; SetPayload with a possible load, an impossible one and
malformed calls), and prints one JSON document with what it saw.

Usage: ``python hub_opcua_client.py ENDPOINT [--token T] [--rounds N]``
"""
import argparse
import asyncio
import json
import sys

from asyncua import Client, ua

USER = 'robot_twin'


async def _namespaces(client):
    return {name: await client.get_namespace_index(uri) for name, uri in (
        ('di', 'http://opcfoundation.org/UA/DI/'),
        ('rob', 'http://opcfoundation.org/UA/Robotics/'),
        ('twin', 'urn:robot_twin:hub'))}


async def _browse(client, ns):
    """Find the motion device system, its device, and every axis, by browsing."""
    device_set = await client.nodes.objects.get_child(f'{ns["di"]}:DeviceSet')
    systems = []
    for child in await device_set.get_children():
        definition = await child.read_type_definition()
        if definition == ua.NodeId(1002, ns['rob']):          # MotionDeviceSystemType
            systems.append(child)
    system = systems[0]
    devices = await (await system.get_child(f'{ns["rob"]}:MotionDevices')).get_children()
    axes_folder = await devices[0].get_child(f'{ns["rob"]}:Axes')
    axes = {}
    for axis in await axes_folder.get_children():
        if await axis.read_type_definition() == ua.NodeId(16601, ns['rob']):   # AxisType
            name = (await axis.read_browse_name()).Name
            axes[name] = await axis.get_child([f'{ns["di"]}:ParameterSet',
                                               f'{ns["rob"]}:ActualPosition'])
    return system, len(systems), len(devices), axes


async def _try(coro):
    try:
        result = await coro
    except ua.UaStatusCodeError as exc:
        return {'ok': False, 'status': type(exc).__name__}
    except Exception as exc:  # noqa: BLE001 - report what the server did
        return {'ok': False, 'status': f'{type(exc).__name__}: {exc}'}
    return {'ok': True, 'result': result if isinstance(result, (list, bool, str)) else None}


async def _writes(client, ns, system, axes):
    """Try to write a position and to call SetCorrectiveActions; return both outcomes."""
    twin = await system.get_child(f'{ns["twin"]}:RobotTwin')
    first = next(iter(axes.values()))
    write = await _try(first.write_value(ua.Variant(1.0, ua.VariantType.Double)))
    call = await _try(twin.call_method(f'{ns["twin"]}:SetCorrectiveActions', True))
    return write, call


def _doubles(values):
    return ua.Variant([float(v) for v in values], ua.VariantType.Double)


async def _payload_calls(client, ns, system):
    """Call SetPayload: a possible load, one the arm cannot carry, malformed and short calls."""
    twin = await system.get_child(f'{ns["twin"]}:RobotTwin')
    method = f'{ns["twin"]}:SetPayload'
    inertia = _doubles([0.003, 0.0, 0.0, 0.003, 0.0, 0.001])
    calls = {
        'possible': (ua.Variant(1.5, ua.VariantType.Double), _doubles([0.0, 0.0, 0.06]), inertia),
        'too_heavy': (ua.Variant(1e5, ua.VariantType.Double), _doubles([0.0, 0.0, 0.06]),
                      inertia),
        'short_com': (ua.Variant(1.5, ua.VariantType.Double), _doubles([0.0, 0.06]), inertia),
        'text_mass': (ua.Variant('heavy', ua.VariantType.String), _doubles([0.0, 0.0, 0.06]),
                      inertia),
        'two_arguments': (ua.Variant(1.5, ua.VariantType.Double), _doubles([0.0, 0.0, 0.06])),
    }
    return {name: await _try(twin.call_method(method, *args)) for name, args in calls.items()}


async def main(args):
    out = {}
    async with Client(args.endpoint, timeout=10) as client:
        ns = await _namespaces(client)
        system, out['systems'], out['devices'], axes = await _browse(client, ns)
        out['axes'] = sorted(axes)
        rounds = []
        names = list(axes)
        stamps = set()
        while len(rounds) < args.rounds or (len(stamps) < 2 and len(rounds) < 10 * args.rounds):
            # one Read request for every axis, as a client that wants one consistent sample
            values = await client.read_attributes([axes[n] for n in names])
            rounds.append({n: [dv.Value.Value, dv.SourceTimestamp.timestamp()
                               if dv.SourceTimestamp else None]
                           for n, dv in zip(names, values)})
            stamps |= {v[1] for v in rounds[-1].values()}
            await asyncio.sleep(0.3)   # a loaded machine may hold the hub back: read on
        out['rounds'] = rounds
        out['anonymous_write'], out['anonymous_call'] = await _writes(client, ns, system, axes)
        out['anonymous_payload'] = (await _payload_calls(client, ns, system))['possible']
    wrong = Client(args.endpoint, timeout=10)
    wrong.set_user(USER)
    wrong.set_password('not-the-token-' + '0' * 20)
    out['wrong_password'] = await _try(_session(wrong))
    if args.token:
        right = Client(args.endpoint, timeout=10)
        right.set_user(USER)
        right.set_password(args.token)
        async with right:
            ns = await _namespaces(right)
            system, _, _, axes = await _browse(right, ns)
            out['token_write_value'], out['token_call'] = await _writes(right, ns, system, axes)
            out['payload'] = await _payload_calls(right, ns, system)
    print(json.dumps(out), flush=True)
    return 0


async def _session(client):
    async with client:
        return True


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('endpoint')
    parser.add_argument('--token', default='')
    parser.add_argument('--rounds', type=int, default=4)
    sys.exit(asyncio.run(main(parser.parse_args())))
