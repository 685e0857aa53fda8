"""Reconciliation throughput: the reconcile function's scheduled run against the sandbox and moto.

The sandbox (its own process) is seeded with users at statuses 1-3 through its bulk seed control and
answers every query after `latency_ms` (its fault control). Our users table (moto, its own process)
holds the same users as registered and waiting. The real reconcile handler (functions/reconcile/app.py,
its environment from the template, RECONCILE_CONCURRENCY queries in flight) walks the unfinished index,
queries the sandbox over HTTP with signed requests, and stores each answer.

Ideal = concurrency / latency (every worker always waiting on Htouhui, nothing else costing time).
Also measured: the same run with no injected latency (what the machine itself allows), and the CPU
seconds per user spent in each process, which explain the gap on a small machine.
"""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.environment import function_environment, functions
from bench.servers import AWS_ENV, Peer
from bench.stats import Figure
from bench.warm import create_tables, environment, put_users, quiet_logs, user_item

TARGET_SHARE = 0.8
TARGET_FLATNESS = 1.2


def seed_sandbox(sandbox: Peer, count: int, id_card: str) -> dict[str, str]:
    """`count` users at Htouhui at statuses 1-3; {third_party_user_id: htouhui_user_id}."""
    chooser = random.Random(7)
    users = [
        {"third_party_user_id": f"recon-{n:05d}", "status": chooser.choice([1, 2, 3]), "id_card": id_card}
        for n in range(count)
    ]
    answer = httpx.post(f"{sandbox.url}/_sandbox/users", json={"users": users}, timeout=60)
    answer.raise_for_status()
    return {user["third_party_user_id"]: user["htouhui_user_id"] for user in answer.json()["users"]}


def set_latency(sandbox: Peer, latency_ms: int) -> None:
    body: dict[str, Any] = (
        {"interface": "query", "latency_ms": latency_ms}
        if latency_ms
        else {
            "interface": "query",
            "clear": True,
        }
    )
    httpx.post(f"{sandbox.url}/_sandbox/faults", json=body, timeout=10).raise_for_status()


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_once(
    *,
    label: str,
    users: dict[str, str],
    id_card: str,
    sandbox: Peer,
    moto: Peer,
    keys_dir: Path,
    concurrency: int,
) -> dict[str, Any]:
    import boto3

    from htouhui import runtime

    table, history = f"users-{label}", f"notifications-{label}"
    env = {
        **function_environment("reconcile", keys_dir=keys_dir),
        **AWS_ENV,
        "AWS_ENDPOINT_URL_DYNAMODB": moto.url,
        "USERS_TABLE": table,
        "NOTIFICATIONS_TABLE": history,
        "HTOUHUI_BASE_URL": sandbox.url,
        "RECONCILE_CONCURRENCY": str(concurrency),
    }
    with environment(env):
        dynamodb = boto3.client("dynamodb")
        create_tables(dynamodb, table, history)
        stamp = "2026-11-28T00:00:00.000Z"
        put_users(dynamodb, table, [user_item(user, htouhui, id_card, stamp) for user, htouhui in users.items()])
        runtime.reset()
        source = functions()
        source.module("reconcile", fresh=True)  # a fresh module each run, as a new execution environment has
        handler, context = source.handler("reconcile"), source.context("reconcile")
        event = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "id": f"bench-{label}", "detail": {}}
        # the run includes loading the keys and building the clients, as a scheduled invocation does
        cpu = {"bench": _self_cpu(), "sandbox": sandbox.cpu_seconds(), "moto": moto.cpu_seconds()}
        with quiet_logs():
            started = time.perf_counter()
            result = handler(event, context)
            seconds = time.perf_counter() - started
        spent = {
            "bench": _self_cpu() - cpu["bench"],
            "sandbox": sandbox.cpu_seconds() - cpu["sandbox"],
            "moto": moto.cpu_seconds() - cpu["moto"],
        }
        runtime.reset()
        remaining = dynamodb.scan(TableName=table, Select="COUNT", FilterExpression="attribute_exists(unfinished)")
    checked = int(result["checked"])
    return {
        "users": len(users),
        "checked": checked,
        "changed": int(result["changed"]),
        "failed": int(result["failed"]),
        "still_unfinished": int(remaining["Count"]),
        "seconds": round(seconds, 3),
        "users_per_second": round(checked / seconds, 1) if seconds else None,
        "ms_per_user": round(seconds / max(1, checked) * 1000, 3),
        "cpu_ms_per_user": {name: round(value / max(1, checked) * 1000, 3) for name, value in spent.items()},
    }


def measure(
    keys_dir: Path,
    sandbox: Peer,
    moto: Peer,
    *,
    users: int = 1000,
    small: int = 100,
    latency_ms: int = 20,
    concurrency: int = 10,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[Figure], dict[str, Any]]:
    from htouhui.models import id_card_check_character

    first17 = "11010519491231002"
    id_card = first17 + id_card_check_character(first17)
    everyone = seed_sandbox(sandbox, users, id_card)
    ordered = sorted(everyone)
    progress(f"reconcile: sandbox seeded with {users} users")
    common = {"id_card": id_card, "sandbox": sandbox, "moto": moto, "keys_dir": keys_dir, "concurrency": concurrency}
    set_latency(sandbox, latency_ms)
    runs = {}
    # the small run first and again last: the machine's warm-up does not flatter either size
    runs["small"] = run_once(label="small", users={u: everyone[u] for u in ordered[:small]}, **common)
    progress(f"reconcile: {small} users in {runs['small']['seconds']} s")
    runs["full"] = run_once(label="full", users=everyone, **common)
    progress(f"reconcile: {users} users in {runs['full']['seconds']} s")
    runs["small_again"] = run_once(label="small2", users={u: everyone[u] for u in ordered[small : 2 * small]}, **common)
    # Where the latency, not the machine, is the limit: the same workers against a slower Htouhui.
    slow_ms, slow_users = 200, max(small, users // 5)
    set_latency(sandbox, slow_ms)
    runs["slow_htouhui"] = run_once(label="slow", users={u: everyone[u] for u in ordered[-slow_users:]}, **common)
    progress(f"reconcile: {slow_users} users at {slow_ms} ms in {runs['slow_htouhui']['seconds']} s")
    set_latency(sandbox, 0)
    runs["no_latency"] = run_once(label="nolatency", users=everyone, **common)
    progress(f"reconcile: {users} users without latency in {runs['no_latency']['seconds']} s")

    ideal = concurrency / (latency_ms / 1000)
    full, none = runs["full"], runs["no_latency"]
    small_ms = min(runs["small"]["ms_per_user"], runs["small_again"]["ms_per_user"])
    cpu = full["cpu_ms_per_user"]
    figures = [
        Figure(
            "reconcile",
            f"{users} users, {latency_ms} ms per query, concurrency {concurrency}",
            full["users_per_second"],
            ideal,
            "users/s",
            target=TARGET_SHARE,
            direction="min",
            note=(
                f"ideal = {concurrency}/{latency_ms} ms; CPU ms per user: ours {cpu['bench']:.1f}, "
                f"sandbox {cpu['sandbox']:.1f}, moto {cpu['moto']:.1f}"
            ),
        ),
        Figure(
            "reconcile",
            "same, no injected latency (the machine's own limit)",
            none["users_per_second"],
            ideal,
            "users/s",
            note="the ceiling this machine allows with every process on it",
        ),
        Figure(
            "reconcile",
            f"{slow_users} users, {slow_ms} ms per query, concurrency {concurrency}",
            runs["slow_htouhui"]["users_per_second"],
            concurrency / (slow_ms / 1000),
            "users/s",
            target=TARGET_SHARE,
            direction="min",
            note="latency-bound: the workers, the paging and the queue reach the ideal when CPU is not the limit",
        ),
        Figure(
            "reconcile",
            f"cost per user, {users} vs {small} users",
            full["ms_per_user"],
            small_ms,
            "ms",
            target=TARGET_FLATNESS,
            note="flat = ratio near 1 (the index is paged, at most 2 x concurrency checks queued)",
        ),
    ]
    raw = {"ideal_users_per_second": ideal, "latency_ms": latency_ms, "concurrency": concurrency, "runs": runs}
    return figures, raw
