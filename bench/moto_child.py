"""A moto DynamoDB server in its own process (as DynamoDB is another machine): prints its URL, runs until
stdin closes. Requests are applied one at a time (tests/htouhui_dynamo.SerialMotoServer: moto's backend has
no lock, real DynamoDB applies each request atomically)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT / "tests")

from htouhui_dynamo import SerialMotoServer  # noqa: E402

server = SerialMotoServer()
server.start()
print(server.url, flush=True)
sys.stdin.read()
server.stop()
