"""What tests/tests/emulator_transactions.rs and emulator_query.rs cannot see of scripts/emulator.py's DynamoDB
patches through the API: moto's internal state after a cancelled transaction (no table copy, no empty partition
left, stream records undone),
a table named by its ARN, and the refusal to start on a moto whose patched internals changed.

Usage: .emulator/bin/python scripts/test_emulator.py
"""

import base64
import importlib.util
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).with_name("emulator.py")
spec = importlib.util.spec_from_file_location("herald_emulator", SCRIPT)
emulator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(emulator)  # patches moto in this process

from moto.dynamodb.exceptions import (  # noqa: E402
    ConditionalCheckFailed,
    DuplicateUpdateExpression,
    TransactionCanceledException,
    UpdateHashRangeKeyException,
)
from moto import mock_aws  # noqa: E402
from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: E402
import werkzeug.test  # noqa: E402
from moto.dynamodb.models import DynamoDBBackend  # noqa: E402


def backend_with_table(streams=None):
    backend = DynamoDBBackend("us-east-1", "123456789012")
    table = backend.create_table(
        "t",
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        throughput=None,
        attr=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        global_indexes=None,
        indexes=None,
        streams=streams,
        billing_mode="PAY_PER_REQUEST",
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    backend.put_item("t", {"pk": {"S": "A"}, "sk": {"S": "1"}, "n": {"N": "1"}})
    return backend, table


def key(pk, sk):
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def cancelled_transaction(table_name):
    return [
        {"Put": {"TableName": table_name, "Item": {**key("NEW", "1"), "n": {"N": "5"}}}},
        {
            "Update": {
                "TableName": table_name,
                "Key": key("A", "1"),
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
        {
            "ConditionCheck": {
                "TableName": table_name,
                "Key": key("LOOKED", "1"),
                "ConditionExpression": "attribute_exists(pk)",
            }
        },
    ]


def contents(table):
    """Every partition of the table, empty ones included, with its items."""
    return {
        hash_key.value: {range_key.value: item.to_json() for range_key, item in partition.items()}
        for hash_key, partition in table.items.items()
    }


class CancelledTransactions(unittest.TestCase):
    def test_touch_only_their_items_and_leave_no_partition_behind(self):
        backend, table = backend_with_table()
        before = contents(table)
        with self.assertRaises(TransactionCanceledException):
            backend.transact_write_items(cancelled_transaction("t"))
        self.assertIs(backend.tables["t"], table, "the table was not replaced by a copy")
        self.assertEqual(contents(table), before)  # no empty "NEW" or "LOOKED" partition

    def test_by_table_arn(self):
        backend, table = backend_with_table()
        before = contents(table)
        with self.assertRaises(TransactionCanceledException):
            backend.transact_write_items(cancelled_transaction(table.table_arn))
        self.assertEqual(contents(table), before)

    def test_undo_their_stream_records(self):
        backend, table = backend_with_table({"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        records = len(table.stream_shard.items)
        with self.assertRaises(TransactionCanceledException):
            backend.transact_write_items(cancelled_transaction("t"))
        self.assertEqual(len(table.stream_shard.items), records)
        backend.transact_write_items(cancelled_transaction("t")[:2])
        self.assertEqual(len(table.stream_shard.items), records + 2)


class ExpressionsParsedOnce(unittest.TestCase):
    """One parse of an expression string serves every request that uses it, each with its own names, values
    and item: a kept parse that picked up one request's values would apply them to the next."""

    UPDATE = "SET #field = :value, #count = if_not_exists(#count, :zero) + :step"
    CONDITION = "attribute_exists(pk) AND (#field IN (:a, :b) OR attribute_not_exists(#count) OR #count < :limit)"

    def update(self, backend, item_key, field, value, step, condition_values):
        return backend.update_item(
            "t",
            item_key,
            self.UPDATE,
            {"#field": field, "#count": "count"},
            {":value": {"S": value}, ":zero": {"N": "0"}, ":step": {"N": str(step)}, **condition_values},
            condition_expression=self.CONDITION,
        )

    def test_each_request_applies_its_own_names_values_and_item(self):
        backend, table = backend_with_table()
        backend.put_item("t", {**key("B", "1"), "state": {"S": "queued"}, "count": {"N": "7"}})
        first = {":a": {"S": "x"}, ":b": {"S": "y"}, ":limit": {"N": "100"}}
        self.update(backend, key("A", "1"), "colour", "red", 1, first)
        self.update(backend, key("B", "1"), "state", "sending", 10, {**first, ":limit": {"N": "0"}, ":b": {"S": "queued"}})
        self.update(backend, key("A", "1"), "colour", "blue", 2, first)
        self.assertEqual(table.get_item(*map(DynamoType, ({"S": "A"}, {"S": "1"}))).to_json()["Attributes"],
                         {**key("A", "1"), "n": {"N": "1"}, "colour": {"S": "blue"}, "count": {"N": "3"}})
        self.assertEqual(table.get_item(*map(DynamoType, ({"S": "B"}, {"S": "1"}))).to_json()["Attributes"],
                         {**key("B", "1"), "state": {"S": "sending"}, "count": {"N": "17"}})

    def test_a_condition_is_judged_with_this_requests_values(self):
        backend, _ = backend_with_table()
        passing = {":a": {"S": "x"}, ":b": {"S": "y"}, ":limit": {"N": "100"}}
        self.update(backend, key("A", "1"), "colour", "red", 1, passing)
        with self.assertRaises(ConditionalCheckFailed):
            self.update(backend, key("A", "1"), "colour", "red", 1, {**passing, ":limit": {"N": "0"}})

    def test_are_parsed_once(self):
        emulator.UpdateExpressionParser.make.cache_clear()
        emulator._condition_tokens.cache_clear()
        backend, _ = backend_with_table()
        values = {":a": {"S": "x"}, ":b": {"S": "y"}, ":limit": {"N": "100"}}
        for step in range(3):
            self.update(backend, key("A", "1"), "colour", "red", step, values)
        self.assertEqual(emulator.UpdateExpressionParser.make.cache_info().misses, 1)
        self.assertEqual(emulator._condition_tokens.cache_info().misses, 1)


class ShapesCheckedOnce(unittest.TestCase):
    """A kept shape check answers only for the expression, names and table keys it ran on: the same string
    with other names, or on a table with other keys, is checked again and refused where moto refuses it."""

    UPDATE = "SET #a = :one, #b = :two"
    VALUES = {":one": {"S": "1"}, ":two": {"S": "2"}}

    def update(self, backend, table_name, names):
        return backend.update_item(table_name, key("A", "1"), self.UPDATE, names, self.VALUES)

    def test_other_names_are_checked_again(self):
        backend, table = backend_with_table()
        self.update(backend, "t", {"#a": "colour", "#b": "size"})
        with self.assertRaises(DuplicateUpdateExpression):
            self.update(backend, "t", {"#a": "colour", "#b": "colour"})
        with self.assertRaises(UpdateHashRangeKeyException):
            self.update(backend, "t", {"#a": "colour", "#b": "sk"})
        self.update(backend, "t", {"#a": "colour", "#b": "size"})
        self.assertEqual(table.get_item(DynamoType({"S": "A"}), DynamoType({"S": "1"})).to_json()["Attributes"],
                         {**key("A", "1"), "n": {"N": "1"}, "colour": {"S": "1"}, "size": {"S": "2"}})

    def test_another_tables_keys_are_checked_again(self):
        backend, _ = backend_with_table()
        backend.create_table(
            "by_colour",
            schema=[{"AttributeName": "colour", "KeyType": "HASH"}],
            throughput=None,
            attr=[{"AttributeName": "colour", "AttributeType": "S"}],
            global_indexes=None, indexes=None, streams=None, billing_mode="PAY_PER_REQUEST",
            sse_specification=None, tags=[], deletion_protection_enabled=False, warm_throughput=None,
        )
        names = {"#a": "colour", "#b": "size"}
        self.update(backend, "t", names)
        with self.assertRaises(UpdateHashRangeKeyException):
            backend.update_item("by_colour", {"colour": {"S": "red"}}, self.UPDATE, names, self.VALUES)

    def test_run_once_for_what_passed_them(self):
        backend, _ = backend_with_table()
        checks = []
        verify = emulator.ActionCountValidator.verify_action_counts

        def counted(validator, node):
            checks.append(node)
            return verify(validator, node)

        emulator.ActionCountValidator.verify_action_counts = counted
        try:
            self.update(backend, "t", {"#a": "shape-once-a", "#b": "shape-once-b"})
            first = len(checks)
            for _ in range(2):
                self.update(backend, "t", {"#a": "shape-once-a", "#b": "shape-once-b"})
        finally:
            emulator.ActionCountValidator.verify_action_counts = verify
        # moto calls the check on every node of the tree, so one request makes several calls.
        self.assertGreater(first, 0)
        self.assertEqual(len(checks), first)


class ItemsAnsweredAsStored(unittest.TestCase):
    """Every item response the shortcut makes is the one moto's generic serializer makes, over items of every
    attribute type and every item operation, requested as an SDK does."""

    def request(self, client, operation, body):
        headers = {
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"DynamoDB_20120810.{operation}",
        }
        return client.post("/", data=json.dumps(body), headers=headers)

    def test_every_item_operation_answers_as_moto_does(self):
        compared = []

        def both(result, context):
            ours = emulator._item_result_as_json(result, context)
            moto_own = emulator.ActionResult.execute_result(result, context)
            compared.append(context.operation_model.name)
            self.assertEqual(ours[0], moto_own[0])
            self.assertEqual(ours[1], moto_own[1])
            self.assertEqual(json.loads(ours[2]), json.loads(moto_own[2]), context.operation_model.name)
            return ours

        emulator.DynamoResult.execute_result = both
        self.addCleanup(setattr, emulator.DynamoResult, "execute_result", emulator._item_result_as_json)
        with mock_aws():
            client = werkzeug.test.Client(DomainDispatcherApplication(create_backend_app))
            schema = {
                "TableName": "items",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                "BillingMode": "PAY_PER_REQUEST",
            }
            self.assertEqual(self.request(client, "CreateTable", schema).status_code, 200)
            every_type = {
                "s": {"S": "text ü"}, "n": {"N": "12.5"}, "b": {"B": base64.b64encode(b"\x00\xffbytes").decode()},
                "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]}, "bs": {"BS": [base64.b64encode(b"\x01").decode()]},
                "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}, {"BOOL": False}]}}},
                "t": {"BOOL": True}, "z": {"NULL": True},
            }
            capacity = {"ReturnConsumedCapacity": "TOTAL"}
            for n in range(3):
                item = {"pk": {"S": "P"}, "sk": {"S": f"{n}"}, **every_type}
                put = {"TableName": "items", "Item": item, "ReturnValues": "ALL_OLD", **capacity}
                self.assertEqual(self.request(client, "PutItem", put).status_code, 200)
            self.request(client, "PutItem", {"TableName": "items", "Item": item, "ReturnValues": "ALL_OLD"})
            key = {"pk": {"S": "P"}, "sk": {"S": "0"}}
            requests = [
                ("GetItem", {"TableName": "items", "Key": key, "ConsistentRead": True, **capacity}),
                ("GetItem", {"TableName": "items", "Key": {"pk": {"S": "none"}, "sk": {"S": "0"}}}),
                ("GetItem", {"TableName": "items", "Key": key, "ProjectionExpression": "b, m.inner"}),
                ("UpdateItem", {"TableName": "items", "Key": key, "UpdateExpression": "SET n = n + :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}}, "ReturnValues": "ALL_NEW"}),
                ("UpdateItem", {"TableName": "items", "Key": key, "UpdateExpression": "SET s = :s",
                                "ExpressionAttributeValues": {":s": {"S": "new"}}, "ReturnValues": "UPDATED_OLD"}),
                ("UpdateItem", {"TableName": "items", "Key": key, "UpdateExpression": "REMOVE z", **capacity}),
                ("Query", {"TableName": "items", "KeyConditionExpression": "pk = :p",
                           "ExpressionAttributeValues": {":p": {"S": "P"}}, "Limit": 2, **capacity}),
                ("Query", {"TableName": "items", "KeyConditionExpression": "pk = :p", "Select": "COUNT",
                           "ExpressionAttributeValues": {":p": {"S": "P"}}}),
                ("Scan", {"TableName": "items", "Limit": 1}),
                ("BatchGetItem", {"RequestItems": {"items": {"Keys": [key, {"pk": {"S": "P"}, "sk": {"S": "9"}}]}}}),
                ("TransactGetItems", {"TransactItems": [{"Get": {"TableName": "items", "Key": key}}]}),
                ("DeleteItem", {"TableName": "items", "Key": key, "ReturnValues": "ALL_OLD", **capacity}),
            ]
            for operation, body in requests:
                answer = self.request(client, operation, body)
                self.assertEqual(answer.status_code, 200, answer.data)
        self.assertEqual(set(compared) & emulator._ITEM_OPERATIONS, emulator._ITEM_OPERATIONS)


class SlowOnPurpose(unittest.TestCase):
    """HERALD_EMULATOR_SLOW_EVERY / _MS: every Nth DynamoDB request takes effect, then answers late."""

    def test_every_nth_request_answers_late_after_taking_effect(self):
        slept = []
        emulator._slow_every, emulator._slow_seconds = 2, 3.5
        real_sleep = emulator.time.sleep
        emulator.time.sleep = slept.append
        self.addCleanup(setattr, emulator, "_slow_every", 0)
        self.addCleanup(setattr, emulator.time, "sleep", real_sleep)
        with mock_aws():
            client = werkzeug.test.Client(DomainDispatcherApplication(create_backend_app))
            emulator._dynamodb_requests = emulator.itertools.count(1)  # after the start's own warm-up reads
            request = ItemsAnsweredAsStored.request
            schema = {
                "TableName": "slow",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
            }
            self.assertEqual(request(self, client, "CreateTable", schema).status_code, 200)
            self.assertEqual(slept, [])
            put = {"TableName": "slow", "Item": {"pk": {"S": "written"}}}
            self.assertEqual(request(self, client, "PutItem", put).status_code, 200)
            self.assertEqual(slept, [3.5], "the second request answered late")
            got = request(self, client, "GetItem", {"TableName": "slow", "Key": {"pk": {"S": "written"}}})
            self.assertEqual(json.loads(got.data)["Item"], {"pk": {"S": "written"}}, "and had taken effect")
            self.assertEqual(slept, [3.5])


class RequestsCounted(unittest.TestCase):
    """/moto-api/herald/requests: requests per operation, and for DynamoDB the items each touched."""

    def test_a_transaction_counts_its_items_and_a_put_one(self):
        with mock_aws():
            client = werkzeug.test.Client(DomainDispatcherApplication(create_backend_app))
            request = ItemsAnsweredAsStored.request
            schema = {
                "TableName": "counted",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
            }
            self.assertEqual(request(self, client, "CreateTable", schema).status_code, 200)
            before = json.loads(emulator._request_counts(None, None, None)[2])
            put = {"TableName": "counted", "Item": {"pk": {"S": "one"}}}
            self.assertEqual(request(self, client, "PutItem", put).status_code, 200)
            three = [{"Put": {"TableName": "counted", "Item": {"pk": {"S": f"t{n}"}}}} for n in range(3)]
            answer = request(self, client, "TransactWriteItems", {"TransactItems": three})
            self.assertEqual(answer.status_code, 200, answer.data)
            after = json.loads(emulator._request_counts(None, None, None)[2])

        def grew(field, operation):
            return after[field].get(operation, 0) - before[field].get(operation, 0)

        self.assertEqual(grew("by_operation", "dynamodb.PutItem"), 1)
        self.assertEqual(grew("items_by_operation", "dynamodb.PutItem"), 1)
        self.assertEqual(grew("by_operation", "dynamodb.TransactWriteItems"), 1)
        self.assertEqual(grew("items_by_operation", "dynamodb.TransactWriteItems"), 3)


class StartUp(unittest.TestCase):
    def test_refuses_a_moto_whose_patched_internals_changed(self):
        with tempfile.TemporaryDirectory() as directory:
            # As if an upgrade had changed one function the patches rely on.
            pathlib.Path(directory, "changed.py").write_text("def all_items(self):\n    return []\n")
            start = (
                "import runpy, sys, changed\n"
                "from moto.dynamodb.models.table import Table\n"
                "Table.all_items = changed.all_items\n"
                f"sys.argv = [{str(SCRIPT)!r}, '--help']\n"
                f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
            )
            result = subprocess.run(
                [sys.executable, "-c", start], capture_output=True, text=True, cwd=directory
            )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("not the 5.2.5 its DynamoDB patches were written against", result.stderr)


if __name__ == "__main__":
    unittest.main()
