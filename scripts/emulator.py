"""The AWS emulator (moto server 5.2.5), with DynamoDB's guarantees restored and its cost kept flat.

1. One request at a time. DynamoDB applies each request atomically and isolates transactions from one
   another; Herald's dedupe relies on it. moto does not under concurrent requests, so one lock goes around
   every DynamoDB request (decision 9). DynamoDB calls are short; SQS long polls are not affected.
   Off by default, a fault on purpose: HERALD_EMULATOR_SLOW_EVERY=N and HERALD_EMULATOR_SLOW_MS=ms make every
   Nth DynamoDB request answer that much later, after taking effect (a timed-out write that happened).

2. A cancelled TransactWriteItems puts back only the items it touched. moto deep-copies every table of a
   transaction once per item of the transaction to be able to roll back, so each transaction cost time and
   memory (never given back) in proportion to the whole table: the local stack slowed down quadratically
   with what it had written (decision 10). Here the transaction first keeps copies of exactly the items it
   may write (or that they were absent) and moto's own code runs unchanged except that its table copies are
   made no-ops; on any failure those items are put back. This is only correct because nothing else writes
   meanwhile: the lock (1). It also rolls back what moto did not: a table named by its ARN, and the entries
   before one that holds two operations.

3. A Query on a table's key reads only that partition. moto sorts every item of the table on each Query and
   then keeps the partition's, so a Query cost grew with the table; moto's own code runs on the partition.

4. Only what /moto-api/data.json is read for is remembered. moto keeps every model object it ever created
   (for its dashboard and data.json) and never lets go: every version and copy of every DynamoDB item, every
   SQS message. Memory grew with traffic and data.json walked it all. What SES and SNS sent stays.

5. SQS sends and receives cost the same however deep the queue. For each message sent moto built every
   queue attribute, counting the queue's messages three times, to read one flag; for each message received
   it did so four times to read the retention period. At 2,000 queued messages a batch of ten took 0.7 s to
   send and 1.8 s to receive. Now the retention period is read directly and a send takes no counts.

6. The service a request is for is worked out once per host, not on every request under a global lock
   (moto listed its own package directory each time), and there is no access-log line per request (a fifth
   of the emulator's time under load, and a log that grew without bound). Warnings and errors still log.
   The services Herald uses are loaded before the first request: moto loaded each on its first request,
   under that same lock, and the first SMS of a busy start waited seconds, past its attempt timeout.

7. Requests are counted per service and operation, with the CPU time each took (and, for DynamoDB, the items
   each touched: capacity is billed per item), at GET /moto-api/herald/requests, so `herald bench` can say
   what a notification costs the emulator and where, and estimate what it would cost on AWS.

8. An expression is parsed once, not on every request. moto tokenised and parsed an UpdateExpression twice per
   update (once to check its placeholders, once to apply it) and lexed every ConditionExpression anew: a
   third of an UpdateItem's time for Herald's claim. A client uses a handful of expression strings, so the
   parse of each string is kept. moto's validator deep-copies the parsed tree before it resolves names and
   values into it, and the lexed condition is a tuple of immutable tokens, so a kept parse is never changed.

9. Items are answered as they are stored. moto 5.2 walks every response through a serializer driven by the
   botocore model, which tries each of the ten AttributeValue members on every attribute of every item: a
   quarter of a claim's time, most of a GetItem's. moto already holds the items as DynamoDB JSON, so item
   operations (GetItem, PutItem, UpdateItem, DeleteItem, Query, Scan, BatchGetItem, TransactGetItems) are
   written out with json.dumps, keeping the output shape's top-level members as the serializer does.
   Errors and every other operation still go through moto's serializer.

10. An update expression's shape is checked once. Before it applies an UpdateExpression moto runs ten passes
   over its tree, each a walk of the whole tree; three only check its shape (one clause of each kind, no two
   actions on one path, no key attribute updated), which depends on the expression, its names and the table's
   keys, and never on the values or the item. They ran on every request: a third of a claim's time. Now they
   run once for each expression, names and keys they pass, and every pass still runs on a request they have
   not passed. And the per-request copy of the kept tree (moto deep-copies it so the passes can resolve
   values into it) is made from a pickle of it, a fifth of the deep copy's cost.

The patches lean on moto internals, so the exact source they were reviewed against is pinned below: any
other moto refuses to start rather than run a patch that may have become wrong.

Usage: python scripts/emulator.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import base64
import collections
import copy
import functools
import hashlib
import inspect
import itertools
import json
import logging
import os
import pickle
import werkzeug.test
import sys
import time
import threading

from moto import backends as moto_backends
from moto.core.common_models import BaseModel
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import unix_time
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.parsing.validators import (
    ActionCountValidator,
    OverlappingPathsValidator,
    UpdateExpressionValidator,
    UpdateHashRangeKeyValidator,
    Validator,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.moto_api._internal import urls as moto_api_urls
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main
from moto.sqs.models import Queue, SQSBackend

# The moto internals the patches depend on, and the digest of their source in moto 5.2.5.
_RELIED_ON = [
    DynamoDBBackend.transact_write_items,  # its backup is `copy.deepcopy(table)`, restored by assignment
    DynamoDBBackend.get_table,
    DynamoDBBackend.get_keys_value,  # how a transaction finds an item's key (before it writes the item)
    DynamoDBBackend.get_item,
    DynamoDBBackend.put_item,
    DynamoDBBackend.update_item,  # mutates the stored Item in place
    DynamoDBBackend.delete_item,
    Table.__init__,  # `items`: {hash: Item}, or a defaultdict {hash: {range: Item}}
    Table.put_item,
    Table.get_item,
    Table.delete_item,
    Table.query,  # a base-table query reads `all_items()` and keeps `item.hash_key == hash_key`
    Table.all_items,
    StreamShard.add,
    BaseModel.__new__,  # appends every instance to `instances_tracked`
    SQSBackend.send_message,  # reads queue.attributes for ContentBasedDeduplication, and no count
    SQSBackend.send_message_batch,
    SQSBackend.is_message_valid_based_on_retention_period,
    Queue.add_message,
    Queue.attributes.fget,
    Queue.approximate_number_of_messages.fget,
    Queue.approximate_number_of_messages_delayed.fget,
    Queue.approximate_number_of_messages_not_visible.fget,
    DomainDispatcherApplication.__init__,  # `app_instances`: {backend name: app}, made on first use
    DomainDispatcherApplication.get_application,
    DomainDispatcherApplication.get_backend_for_host,  # a function of the host alone
    moto_backends.list_of_moto_modules,
    BaseResponse.call_action,
    UpdateExpressionParser.make,  # a function of the string alone
    Validator.__init__,  # `self.node_to_validate = deepcopy(expression)`: the parsed tree is never mutated
    Validator.validate,  # each processor in turn, over the tree the previous one returned
    UpdateExpressionValidator.get_ast_processors,  # the three shape checks first
    ActionCountValidator.verify_action_counts,  # the shape checks: raise, or return the node unchanged
    OverlappingPathsValidator.check_for_overlapping_paths,
    UpdateHashRangeKeyValidator.check_for_hash_or_range_key,
    ConditionExpressionParser._lex_condition_expression,  # a function of the expression string alone
    ConditionExpressionParser._parse_paths,  # consumes the deque it is given, builds new nodes
    DynamoResult.__init__,  # the result is already DynamoDB JSON (`dynamo_to_dict`), binary values as bytes
    ActionResult.execute_result,
]
_RELIED_ON_SHA256 = "68c424fd2cb9bdd419ad3abb4297e98c6d23cef444f5049a414a456de01cf260"


def _fingerprint():
    try:
        source = "".join(inspect.getsource(function) for function in _RELIED_ON)
    except (OSError, TypeError):  # replaced by something without source
        return None
    return hashlib.sha256(source.encode()).hexdigest()


if _fingerprint() != _RELIED_ON_SHA256 or dynamodb_models.copy is not copy:
    sys.exit(
        "scripts/emulator.py: the installed moto is not the 5.2.5 its DynamoDB patches were written against "
        "(the source of a function they rely on changed); review the patches, then update _RELIED_ON_SHA256"
    )

# Re-entrant: the patched backend methods below take it too, so they are correct whoever calls them.
_dynamodb_lock = threading.RLock()
_call_action = DynamoHandler.call_action


# A fault on purpose, off unless asked for: every Nth DynamoDB request takes effect, then answers only after
# a delay (HERALD_EMULATOR_SLOW_EVERY=N, HERALD_EMULATOR_SLOW_MS=ms). Set the delay past the SDK's attempt
# timeout and the caller sees a timeout for a write that happened, as on a slow day on AWS.
_slow_every = int(os.environ.get("HERALD_EMULATOR_SLOW_EVERY") or 0)
_slow_seconds = int(os.environ.get("HERALD_EMULATOR_SLOW_MS") or 0) / 1000
_dynamodb_requests = itertools.count(1)


def _one_at_a_time(self):
    with _dynamodb_lock:
        answer = _call_action(self)
        slow = _slow_every > 0 and next(_dynamodb_requests) % _slow_every == 0
    if slow:
        time.sleep(_slow_seconds)  # outside the lock: only this caller waits
    return answer


DynamoHandler.call_action = _one_at_a_time


class _TablesNotCopied:
    """The `copy` module as moto's DynamoDB backend sees it during a transaction: a Table is not copied, so
    moto's whole-table backup is the table itself and its rollback (assigning the backup back) changes
    nothing. Everything else is copied as usual (update_item copies the old item for streams)."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _item_undo(backend, kind, operation):
    """How to put back the one item a transaction operation may write, as it is now."""
    try:
        table = backend.get_table(operation["TableName"])
        hash_key, range_key = backend.get_keys_value(
            table, operation["Item"] if kind == "Put" else operation["Key"]
        )
    except Exception:
        # moto looks the item up with the same calls before it writes it, so this operation fails there (a
        # cancellation reason or a validation error) and writes nothing.
        return lambda: None
    items = table.items
    # `.get`, never `[]`: `items` is a defaultdict, where `[]` adds an empty partition.
    if range_key is None:
        partition, old = None, items.get(hash_key)
    else:
        partition = items.get(hash_key)
        old = None if partition is None else partition.get(range_key)
    # A deep copy: update_item changes the stored Item in place.
    old = copy.deepcopy(old)
    shard = table.stream_shard
    records = shard.items if shard is not None else None
    record_count = len(records) if records is not None else 0

    def undo():
        if range_key is None:
            if old is None:
                items.pop(hash_key, None)
            else:
                items[hash_key] = old
        elif old is not None:
            items[hash_key][range_key] = old
        elif (current := items.get(hash_key)) is not None:
            current.pop(range_key, None)
            # moto's reads create empty partitions; drop one the transaction created.
            if partition is None and not current:
                del items[hash_key]
        if shard is not None:
            # The stream records the transaction's writes added go too, as with moto's table restore.
            del records[record_count:]
            shard.items = records

    return undo


_moto_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    with _dynamodb_lock:
        undos = [
            _item_undo(self, kind, operation)
            for entry in transact_items
            if isinstance(entry, dict)
            for kind, operation in entry.items()
            if isinstance(operation, dict)
        ]
        dynamodb_models.copy = _TablesNotCopied()
        try:
            return _moto_transact_write_items(self, transact_items)
        except BaseException:
            # Cancellations and validation errors, where moto rolls back, and any other failure too (moto
            # keeps what the entries before one with two operations wrote): all or nothing, as in DynamoDB.
            for undo in reversed(undos):
                undo()
            raise
        finally:
            dynamodb_models.copy = copy


DynamoDBBackend.transact_write_items = _transact_write_items

_moto_table_query = Table.query
_table_query_signature = inspect.signature(Table.query)


def _query(self, *args, **kwargs):
    call = _table_query_signature.bind(self, *args, **kwargs).arguments
    hash_key = call.get("hash_key")
    if call.get("index_name") or hash_key is None:
        return _moto_table_query(self, *args, **kwargs)
    with _dynamodb_lock:
        partition = self.items.get(hash_key)
        if partition is None:
            found = []
        elif self.range_key_attr:
            found = list(partition.values())
        else:
            found = [partition]
        # moto filters `all_items()` to this partition, then sorts by range key (unique in a partition), so
        # moto's code run on the partition alone gives the same answer. The instance attribute hides the
        # method for this call only; the lock keeps every other request from seeing it.
        self.all_items = lambda: found
        try:
            return _moto_table_query(self, *args, **kwargs)
        finally:
            del self.all_items


Table.query = _query

# 4. Only the models data.json is read for keep their instances.
_TRACKED_SERVICES = {"ses", "sesv2", "sns"}


def _remembered_only_where_read(cls, *args, **kwargs):
    instance = object.__new__(cls)
    if cls.__module__.split(".")[1] in _TRACKED_SERVICES:
        cls.instances_tracked.append(instance)
    return instance


BaseModel.__new__ = _remembered_only_where_read

# 5. No queue-wide counts where nobody reads them.
_sending = threading.local()


def _uncounted_while_sending(count):
    def counted(self):
        # moto's send path reads `attributes` for one flag; the counts in it go unread.
        return 0 if getattr(_sending, "active", False) else count.fget(self)

    return property(counted)


for _count in (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
):
    setattr(Queue, _count, _uncounted_while_sending(getattr(Queue, _count)))

_moto_send_message = SQSBackend.send_message


def _send_message(self, *args, **kwargs):
    _sending.active = True
    try:
        return _moto_send_message(self, *args, **kwargs)
    finally:
        _sending.active = False


SQSBackend.send_message = _send_message


def _within_retention(self, queue_name, message):
    retain_until = self.get_queue(queue_name).message_retention_period + message.sent_timestamp / 1000
    return retain_until > unix_time()


SQSBackend.is_message_valid_based_on_retention_period = _within_retention

# 6. Routing remembered; no access log.
_moto_modules = tuple(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: _moto_modules
DomainDispatcherApplication.get_backend_for_host = functools.lru_cache(maxsize=4096)(
    DomainDispatcherApplication.get_backend_for_host
)
logging.getLogger("werkzeug").setLevel(logging.WARNING)

_HERALD_SERVICES = ("moto_api", "dynamodb", "sqs", "ses", "sesv2", "sns")
_moto_dispatcher_init = DomainDispatcherApplication.__init__


def _dispatcher_with_services_loaded(self, create_app):
    _moto_dispatcher_init(self, create_app)
    for service in _HERALD_SERVICES:
        self.app_instances[service] = create_app(service)
    # A service's first request also loads its API model and its state for the region: 0.1–0.2 s alone,
    # seconds when a batch of first requests arrives at once under load. One harmless read each, in process.
    region = os.environ.get("AWS_REGION", "us-east-1")
    client = werkzeug.test.Client(self)
    for service, target, body, path in (
        ("sns", None, "Action=ListTopics&Version=2010-03-31", "/"),
        ("sqs", "AmazonSQS.ListQueues", "{}", "/"),
        ("dynamodb", "DynamoDB_20120810.ListTables", "{}", "/"),
        ("ses", None, "Action=ListIdentities&Version=2010-12-01", "/"),
    ):
        headers = {"Authorization": f"AWS4-HMAC-SHA256 Credential=test/20260101/{region}/{service}/aws4_request, "
                   "SignedHeaders=host, Signature=0"}
        if target:
            headers |= {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"}
        elif body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        answer = client.open(path, method="POST" if body else "GET", data=body, headers=headers)
        if answer.status_code != 200:
            print(f"emulator.py: warming {service} {path} answered {answer.status_code}", file=sys.stderr)


DomainDispatcherApplication.__init__ = _dispatcher_with_services_loaded

# 8. Each expression string parsed once.
UpdateExpressionParser.make = classmethod(functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make.__func__))
_moto_lex_condition = ConditionExpressionParser._lex_condition_expression


@functools.lru_cache(maxsize=1024)
def _condition_tokens(expression):
    return tuple(_moto_lex_condition(ConditionExpressionParser(expression, {}, {})))


def _lex_condition_once(self):
    return collections.deque(_condition_tokens(self.condition_expression))


ConditionExpressionParser._lex_condition_expression = _lex_condition_once

# 9. Items answered as they are stored.
_ITEM_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
)


def _base64(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not DynamoDB JSON")


def _item_result_as_json(self, context):
    if context.operation_model.name not in _ITEM_OPERATIONS:
        return ActionResult.execute_result(self, context)
    content_type = f"application/x-amz-json-{context.service_model.metadata.get('jsonVersion', '1.0')}"
    # moto's serializer keeps the output shape's members only (moto adds some of its own); below the top level
    # the result is items, keys and capacities as DynamoDB JSON has them.
    members = context.operation_model.output_shape.members
    result = {name: value for name, value in self.result.items() if name in members and value is not None}
    return 200, {"Content-Type": content_type}, json.dumps(result, default=_base64)


DynamoResult.execute_result = _item_result_as_json

# 10. An update expression's shape checked once.
_SHAPE_CHECKS = (ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator)
# id(parsed tree) -> (the tree, kept alive so its id is not reused; its pickle; the (names, table keys) it
# passed the shape checks with). Trees come from the parse cache (8), a handful per client.
_update_trees = {}


def _kept_update_tree(expression):
    kept = _update_trees.get(id(expression))
    if kept is None:
        if len(_update_trees) >= 4096:
            _update_trees.clear()
        kept = _update_trees[id(expression)] = (expression, pickle.dumps(expression, pickle.HIGHEST_PROTOCOL), set())
    return kept


def _update_validator_init(self, expression, expression_attribute_names, expression_attribute_values, item, table):
    self.expression_attribute_names = expression_attribute_names
    self.expression_attribute_values = expression_attribute_values
    self.item = item
    self.table = table
    self.processors = self.get_ast_processors()
    _, pickled, passed = _kept_update_tree(expression)
    self.node_to_validate = pickle.loads(pickled)
    try:
        shape = (frozenset((expression_attribute_names or {}).items()), tuple(table.table_key_attrs))
        hash(shape)
    except TypeError:  # names that are not strings: moto says what is wrong with them, every time
        self.shape_to_remember = None
        return
    if shape in passed:
        self.processors = [p for p in self.processors if not isinstance(p, _SHAPE_CHECKS)]
        self.shape_to_remember = None
    else:
        self.shape_to_remember = (passed, shape)


def _validate_remembering_shape(self):
    checks_left = sum(isinstance(p, _SHAPE_CHECKS) for p in self.processors)
    node = self.node_to_validate
    for processor in self.processors:
        node = processor.traverse(node)
        if isinstance(processor, _SHAPE_CHECKS):
            checks_left -= 1
            if checks_left == 0 and self.shape_to_remember is not None:
                passed, shape = self.shape_to_remember
                passed.add(shape)
    return node


UpdateExpressionValidator.__init__ = _update_validator_init
UpdateExpressionValidator.validate = _validate_remembering_shape

# 7. Requests counted.
_requests = collections.Counter()
# CPU seconds of this thread only: under the GIL and the DynamoDB lock, waiting costs none, so these add up to
# what each operation costs the emulator's one core.
_cpu_seconds = collections.Counter()


# Items per DynamoDB request, for the benchmark's cost estimate (capacity units are billed per item): a
# transaction or batch holds several, every other item operation one.
_items = collections.Counter()
_MULTI_ITEM_OPERATIONS = {"TransactWriteItems", "TransactGetItems", "BatchWriteItem", "BatchGetItem"}


def _items_in(action, body):
    if action not in _MULTI_ITEM_OPERATIONS:
        return 1
    try:
        request = json.loads(body) if isinstance(body, (str, bytes)) else body
        if action.startswith("Transact"):
            return len(request.get("TransactItems", []))
        tables = request.get("RequestItems", {}).values()
        return sum(len(table) if isinstance(table, list) else len(table.get("Keys", [])) for table in tables)
    except (ValueError, AttributeError, TypeError):
        return 1


def _counted(call_action):
    def counted_call_action(self):
        action = self._get_action()
        operation = f"{self.service_name}.{action}"
        _requests[operation] += 1
        if self.service_name == "dynamodb":
            _items[operation] += _items_in(action, self.body)
        started = time.thread_time()
        try:
            return call_action(self)
        finally:
            _cpu_seconds[operation] += time.thread_time() - started

    return counted_call_action


# Every service's handler ends in the base class's (DynamoDB's through the lock above and its own override).
BaseResponse.call_action = _counted(BaseResponse.call_action)


def _request_counts(request, full_url, headers):
    counts = dict(_requests)
    body = {
        "all": sum(counts.values()),
        "dynamodb": sum(n for operation, n in counts.items() if operation.startswith("dynamodb.")),
        "by_operation": counts,
        "items_by_operation": dict(_items),
        "cpu_seconds_by_operation": {operation: round(seconds, 3) for operation, seconds in _cpu_seconds.items()},
        "process_cpu_seconds": round(time.process_time(), 3),
    }
    return 200, {"Content-Type": "application/json"}, json.dumps(body)


moto_api_urls.url_paths["{0}/moto-api/herald/requests"] = _request_counts


if __name__ == "__main__":
    sys.exit(main())
