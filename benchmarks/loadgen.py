"""
A small HTTP/1.1 load generator: asyncio (uvloop when installed) over raw sockets with keep-alive.

Unlike ``ab``, which posts one fixed body, it posts a different prepared body per request (distinct
``messageId``\\s, duplicates and out-of-order reports where the input file says so). Requests are prebuilt
bytes, responses are parsed just enough (status line, Content-Length), so a request costs it a few
microseconds: on 2 cores it is not the bottleneck (checked against ``ab`` on the bare endpoint).

    python benchmarks/loadgen.py PORT PATH BODIES.jsonl CONCURRENCY MAX_SECONDS

Targets 127.0.0.1 only; sends each body once and stops, or stops at MAX_SECONDS. Prints one JSON line:
``requests, ok, errors, statuses, seconds, rps, p50_ms, p99_ms``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path


def build_requests(port: int, path: str, bodies: list[bytes]) -> list[bytes]:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    return [(head + f"Content-Length: {len(b)}\r\n\r\n").encode("ascii") + b for b in bodies]


async def client(
    port: int,
    requests: list[bytes],
    cursor: list[int],
    latencies: list[float],
    statuses: dict[int, int],
    deadline: float,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while cursor[0] < len(requests) and time.perf_counter() < deadline:
            request = requests[cursor[0]]
            cursor[0] += 1
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run(port: int, path: str, bodies: list[bytes], concurrency: int, max_seconds: float) -> dict[str, object]:
    requests = build_requests(port, path, bodies)
    cursor = [0]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    deadline = start + max_seconds
    results = await asyncio.gather(
        *(client(port, requests, cursor, latencies, statuses, deadline) for _ in range(concurrency)),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - start
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies),
        "ok": statuses.get(200, 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "client_errors": errors[:5],
        "timed_out": cursor[0] < len(requests),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def main() -> None:
    port, path, bodies_file = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    concurrency, max_seconds = int(sys.argv[4]), float(sys.argv[5])
    bodies = [line.encode("utf-8") for line in bodies_file.read_text().splitlines() if line]
    coro = run(port, path, bodies, concurrency, max_seconds)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coro)
    else:
        result = uvloop.run(coro)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
