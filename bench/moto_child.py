"""A moto DynamoDB server in its own process (as DynamoDB is another machine): prints its URL, runs until
stdin closes. Requests are applied one at a time (the local stack's `stack.aws.serial_moto_server`: moto's
backend has no lock, real DynamoDB applies each request atomically).

One change to moto, for a cost model closer to DynamoDB's: moto backs up every table a TransactWriteItems
touches with `copy.deepcopy` before applying it (to roll back on failure), so each transaction costs time
in proportion to the table, and a bench writing thousands of notifications slows itself down (seconds per
transaction by the end, then time-outs). DynamoDB's cost does not depend on the table's size. Here the
backup is the table itself: the bench's transactions never fail halfway (fresh notify_no, rising
statuses), and a failed condition on the first item still cancels before anything is written.
"""

import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT / "local")

import moto.dynamodb.models as dynamodb_models  # noqa: E402
from stack.aws import serial_moto_server  # noqa: E402


class _NoTableBackup:
    """moto.dynamodb.models' `copy`: tables are not deep-copied; anything else (an item's old image) is."""

    @staticmethod
    def deepcopy(value: object, memo: object = None) -> object:
        if isinstance(value, getattr(dynamodb_models, "Table")):  # noqa: B009  # not in moto's declared exports
            return value
        return copy.deepcopy(value, memo)  # type: ignore[arg-type]


setattr(dynamodb_models, "copy", _NoTableBackup)  # noqa: B010  # moto's module-level `copy`, not exported

server = serial_moto_server("127.0.0.1", 0)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port}", flush=True)
sys.stdin.read()
server.stop()
