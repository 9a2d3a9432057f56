"""
Load on the hub for benchmarks/bench_hub.py: REST requests, a live stream, OPC UA and Foxglove.

Waits until the hub answers, then, until SIGTERM/SIGINT:

- sends REST GET requests at ``--rate`` per second (open loop: a request is started every
  1/rate s whatever the answers do, up to 32 in flight), cycling through /api/v1/state,
  /joints, /series, /anomalies, /rul, /sync and /joints/<name>;
- keeps one server-sent-events stream (/api/v1/stream) open and reads it;
- with ``--opcua``: reads every axis's ActualPosition 10 times a second;
- with ``--foxglove``: subscribes to every Foxglove channel and reads the messages.

On exit it writes to ``--output`` (.json): requests sent, answered, failed, their latency
p50/p99 (ms), bytes of stream received, OPC UA reads and Foxglove messages. Not meant to be used
alone.
"""
import argparse
import asyncio
import json
import signal
import sys
import time

import httpx

PATHS = ('/api/v1/state', '/api/v1/joints', '/api/v1/series?since=0&max_points=100',
         '/api/v1/anomalies', '/api/v1/rul', '/api/v1/sync', '/api/v1/joints/joint3')


async def _rest(client, rate, stop, out):
    pending = set()
    k = 0
    next_t = time.monotonic()
    while not stop.is_set():
        next_t += 1.0 / rate
        if len(pending) < 32:
            pending.add(asyncio.ensure_future(_get(client, PATHS[k % len(PATHS)], out)))
            out['sent'] += 1
        k += 1
        pending = {p for p in pending if not p.done()}
        await asyncio.sleep(max(0.0, next_t - time.monotonic()))
    await asyncio.gather(*pending, return_exceptions=True)


async def _get(client, path, out):
    t0 = time.perf_counter()
    try:
        response = await client.get(path)
        response.read()
        ok = response.status_code == 200
    except httpx.HTTPError:
        ok = False
    if ok:
        out['latency_ms'].append(1e3 * (time.perf_counter() - t0))
    else:
        out['failed'] += 1


async def _stream(client, stop, out):
    async with client.stream('GET', '/api/v1/stream') as response:
        async for chunk in response.aiter_bytes():
            out['stream_bytes'] += len(chunk)
            if stop.is_set():
                return


async def _opcua(endpoint, stop, out):
    from asyncua import Client
    async with Client(endpoint, timeout=10) as client:      # the hub serves REST last
        ns_di = await client.get_namespace_index('http://opcfoundation.org/UA/DI/')
        ns_rob = await client.get_namespace_index('http://opcfoundation.org/UA/Robotics/')
        device_set = await client.nodes.objects.get_child(f'{ns_di}:DeviceSet')
        system = [c for c in await device_set.get_children()
                  if (await c.read_browse_name()).Name != 'DeviceFeatures'][0]
        device = (await (await system.get_child(f'{ns_rob}:MotionDevices')).get_children())[0]
        axes = await (await device.get_child(f'{ns_rob}:Axes')).get_children()
        nodes = [await a.get_child([f'{ns_di}:ParameterSet', f'{ns_rob}:ActualPosition'])
                 for a in axes]
        while not stop.is_set():
            await client.read_values(nodes)
            out['opcua_reads'] += 1
            await asyncio.sleep(0.1)


async def _foxglove(port, stop, out):
    import websockets
    async with websockets.connect(f'ws://127.0.0.1:{port}',
                                  subprotocols=['foxglove.sdk.v1'], max_size=None) as ws:
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(ws.recv(), 0.5)
            except asyncio.TimeoutError:
                continue
            if isinstance(msg, str):
                data = json.loads(msg)
                if data['op'] == 'advertise':
                    await ws.send(json.dumps({'op': 'subscribe', 'subscriptions': [
                        {'id': c['id'], 'channelId': c['id']} for c in data['channels']]}))
            else:
                out['foxglove_messages'] += 1


async def main(args):
    out = {'sent': 0, 'failed': 0, 'latency_ms': [], 'stream_bytes': 0, 'opcua_reads': 0,
           'foxglove_messages': 0}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with httpx.AsyncClient(base_url=args.url, timeout=10.0) as client:
        while not stop.is_set():
            try:
                if (await client.get('/api/v1/health')).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        print('LOAD', flush=True)
        t0 = time.monotonic()
        tasks = [_rest(client, args.rate, stop, out), _stream(client, stop, out)]
        if args.opcua:
            tasks.append(_opcua(args.opcua, stop, out))
        if args.foxglove:
            tasks.append(_foxglove(args.foxglove, stop, out))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        out['errors'] = [repr(r) for r in results if isinstance(r, Exception)]
        out['seconds'] = time.monotonic() - t0
    lat = sorted(out.pop('latency_ms'))
    out['answered'] = len(lat)
    out['p50_ms'] = lat[len(lat) // 2] if lat else None
    out['p99_ms'] = lat[int(0.99 * (len(lat) - 1))] if lat else None
    with open(args.output, 'w', encoding='utf-8') as f:
        json.dump(out, f)
    return 0


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--url', required=True)
    parser.add_argument('--rate', type=float, default=50.0)
    parser.add_argument('--opcua', default='')
    parser.add_argument('--foxglove', type=int, default=0)
    parser.add_argument('--output', required=True)
    sys.exit(asyncio.run(main(parser.parse_args())))
