"""The limits of this machine, measured in the same run as the pipeline: the raw Kafka
produce → consume rate with the pipeline's own client libraries and no HTTP, and how many
requests per second the receiver answers (and how many httpx, the sender's client, makes).

The load generator runs in its own process (``python -m velourcity_bench.limits hammer ...``)
so that it does not share an event loop, or a core, with the receiver it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import threading
import time
import uuid

import orjson

from pipeline.kafka.connection import aiokafka_kwargs, librdkafka_config
from pipeline.settings import Settings
from velourcity_bench.receiver import run_loop

BODY = b"x" * 1000


def _request(path: str, event_id: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"webhook-id: {event_id}\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


async def _raw_connection(host: str, port: int, path: str, until: float, done: list[int]) -> None:
    """One keep-alive connection, one request at a time (no pipelining), like a client pool."""
    reader, writer = await asyncio.open_connection(host, port)
    request = _request(path, "evt_limit")
    try:
        while time.monotonic() < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            done[0] += 1
    finally:
        writer.close()


async def _httpx_connection(client: object, url: str, until: float, done: list[int]) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    headers = {"webhook-id": "evt_limit", "content-type": "application/json"}
    while time.monotonic() < until:
        response = await client.post(url, content=BODY, headers=headers)
        response.raise_for_status()
        done[0] += 1


async def _aiohttp_connection(session: object, url: str, until: float, done: list[int]) -> None:
    import aiohttp

    assert isinstance(session, aiohttp.ClientSession)
    headers = {"webhook-id": "evt_limit", "content-type": "application/json"}
    while time.monotonic() < until:
        async with session.post(url, data=BODY, headers=headers) as response:
            await response.read()
            response.raise_for_status()
        done[0] += 1


async def hammer(url: str, seconds: float, connections: int, client: str) -> dict[str, float]:
    """Requests per second answered with ``connections`` requests in flight at all times."""
    import httpx

    parsed = httpx.URL(url)
    host, port, path = parsed.host, parsed.port or 80, parsed.path
    done = [0]
    cpu = time.process_time()
    started = time.monotonic()
    until = started + seconds
    if client == "raw":
        await asyncio.gather(
            *(_raw_connection(host, port, path, until, done) for _ in range(connections))
        )
    elif client == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(
                *(_aiohttp_connection(session, url, until, done) for _ in range(connections))
            )
    else:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=10) as http:
            await asyncio.gather(
                *(_httpx_connection(http, url, until, done) for _ in range(connections))
            )
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu
    return {
        "requests": done[0],
        "seconds": elapsed,
        "requests_per_second": done[0] / elapsed,
        "cpu_ms_per_request": cpu * 1000 / max(done[0], 1),
    }


def kafka_rate(settings: Settings, *, seconds: float, size: int = 1000) -> dict[str, float]:
    """Records per second from a confluent-kafka producer (the publisher's settings) through
    the broker to an aiokafka consumer (the workers' client), ``size``-byte values, no HTTP.

    The producer runs for ``seconds`` in a thread while the consumer reads in an event loop;
    the rate is records consumed over the time from the first produce to the last consume."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    topic = settings.topic(f"bench.raw.{uuid.uuid4().hex[:8]}")
    admin = AdminClient(librdkafka_config(settings))
    created = admin.create_topics([NewTopic(topic, num_partitions=settings.delivery_partitions)])
    for future in created.values():
        future.result(30)
    producer = Producer(
        {
            **librdkafka_config(settings),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    values = [os.urandom(size) for _ in range(256)]  # incompressible, unlike repeats (lz4)
    produced = [0]
    first = [0.0]

    def produce() -> None:
        first[0] = time.monotonic()
        until = first[0] + seconds
        while time.monotonic() < until:
            for _ in range(1000):
                try:
                    value = values[produced[0] % len(values)]
                    producer.produce(topic, value=value, key=str(produced[0] % 997).encode())
                    produced[0] += 1
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        producer.flush(60)

    async def consume() -> dict[str, float]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topic,
            **aiokafka_kwargs(settings),
            group_id=f"{topic}-reader",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=500,
        )
        await consumer.start()
        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        consumed, last = 0, time.monotonic()
        deadline = time.monotonic() + seconds + 60
        try:
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    consumed += len(records)
                    last = time.monotonic()
                if not thread.is_alive() and consumed >= produced[0]:
                    break
        finally:
            await consumer.stop()
        thread.join(5)
        elapsed = max(last - first[0], 1e-9)
        return {
            "records": consumed,
            "seconds": elapsed,
            "records_per_second": consumed / elapsed,
            "value_bytes": size,
        }

    try:
        return asyncio.run(consume())
    finally:
        # waited for: a request only queued is lost when the process exits, and each run left
        # its ~3 GB of incompressible records on the broker (71 GB filled a disk here)
        with contextlib.suppress(Exception):
            for future in admin.delete_topics([topic], operation_timeout=30).values():
                future.result(30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Load generator for the receiver's ceiling.")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("hammer")
    load.add_argument("--url", required=True)
    load.add_argument("--seconds", type=float, default=5.0)
    load.add_argument("--connections", type=int, default=50)
    load.add_argument("--client", choices=["raw", "httpx", "aiohttp"], default="raw")
    args = parser.parse_args(argv)
    result: dict[str, float] = {}

    async def go() -> None:
        result.update(await hammer(args.url, args.seconds, args.connections, args.client))

    run_loop(go())
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
