"""The AWS emulator (moto server), with DynamoDB requests applied one at a time.

DynamoDB applies each request atomically and isolates transactions from one another; Herald's dedupe relies
on it. moto 5.2.5 does not under concurrent requests: it undoes a failed TransactWriteItems by restoring a
copy of each table taken before the transaction began, which drops or resurrects what other requests wrote
in between (seen as two events from sixteen concurrent identical requests). One lock around every DynamoDB
request gives back DynamoDB's guarantees. DynamoDB calls are short; SQS long polls are not affected.

Usage: python scripts/emulator.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_dynamodb_lock = threading.Lock()
_call_action = DynamoHandler.call_action


def _one_at_a_time(self):
    with _dynamodb_lock:
        return _call_action(self)


DynamoHandler.call_action = _one_at_a_time

if __name__ == "__main__":
    sys.exit(main())
