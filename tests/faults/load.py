"""Mixed load against a running server, recording only what the server acknowledged."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Acknowledged:
    events: set[str] = field(default_factory=set)  # idempotency keys of batch events answered 200
    holds: set[str] = field(default_factory=set)  # hold ids answered 201
    settled: dict[str, str] = field(default_factory=dict)  # hold id -> event id answered 200
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[Any] = field(default_factory=list)  # error bodies of 5xx answers
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                self.bodies.append(
                    response.json()
                    if response.headers.get("content-type", "").startswith("application/json")
                    else response.text
                )


def mixed_load(
    base: str, key: str, org: str, members: list[str], stop: threading.Event, ack: Acknowledged, worker: int
) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=5) as client:
        i = 0
        while not stop.is_set():
            i += 1
            member = members[(worker + i) % len(members)]
            try:
                if i % 5 == 0:
                    keys = [f"w{worker}-{uuid.uuid4().hex}" for _ in range(20)]
                    response = client.post(
                        f"/v1/organizations/{org}/usage",
                        json={
                            "events": [
                                {
                                    "idempotency_key": k,
                                    "member_id": member,
                                    "model": "claude-haiku-4-5",
                                    "surface": "api",
                                    "occurred_at": "2026-11-27T10:00:00Z",
                                    "input_tokens": 100,
                                    "output_tokens": 20,
                                }
                                for k in keys
                            ]
                        },
                    )
                    ack.saw(response)
                    if response.status_code == 200:
                        with ack.lock:
                            ack.events.update(keys)
                    continue
                response = client.post(
                    f"/v1/organizations/{org}/holds",
                    json={
                        "idempotency_key": f"h{worker}-{uuid.uuid4().hex}",
                        "member_id": member,
                        "model": "claude-haiku-4-5",
                        "surface": "api",
                        "estimate": {"amount": "0.01"},
                    },
                )
                ack.saw(response)
                if response.status_code != 201:
                    continue
                hold_id = response.json()["id"]
                with ack.lock:
                    ack.holds.add(hold_id)
                if i % 3 == 0:
                    continue  # left open: it must expire later
                settle = client.post(
                    f"/v1/organizations/{org}/holds/{hold_id}/settle",
                    json={"usage": {"input_tokens": 100, "output_tokens": 30}},
                )
                ack.saw(settle)
                if settle.status_code == 200:
                    with ack.lock:
                        ack.settled[hold_id] = settle.json()["event_id"]
            except httpx.HTTPError:
                continue  # no answer: nothing was acknowledged


def run_load(
    base: str, key: str, org: str, members: list[str], workers: int = 6
) -> tuple[threading.Event, Acknowledged, list[threading.Thread]]:
    stop = threading.Event()
    ack = Acknowledged()
    threads = [
        threading.Thread(target=mixed_load, args=(base, key, org, members, stop, ack, w), daemon=True)
        for w in range(workers)
    ]
    for t in threads:
        t.start()
    return stop, ack, threads
