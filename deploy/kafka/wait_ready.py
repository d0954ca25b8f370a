"""Wait until a Kafka broker answers a metadata request with at least one broker in it.

Used by kafka.sh and the test fixtures: a listening port is not enough, since a KRaft broker
accepts connections before it has registered with its controller.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from aiokafka import AIOKafkaClient  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]


async def broker_ready(bootstrap: str, brokers: int = 1) -> bool:
    """Return whether one metadata round trip to ``bootstrap`` lists ``brokers`` brokers."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await client.bootstrap()
        return len(client.cluster.brokers()) >= brokers
    except (KafkaError, OSError):
        return False
    finally:
        await client.close()


async def wait(bootstrap: str, timeout_s: float, brokers: int = 1) -> bool:
    """Poll until the broker is ready or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await broker_ready(bootstrap, brokers):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--brokers", type=int, default=1, help="ready once the metadata lists this many brokers"
    )
    args = parser.parse_args()
    # Refused connections are the expected answer while the broker starts: keep them quiet.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if asyncio.run(wait(args.bootstrap, args.timeout, args.brokers)):
        return 0
    print(f"no Kafka broker answered on {args.bootstrap} within {args.timeout}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
