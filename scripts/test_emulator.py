"""What tests/tests/emulator_transactions.rs and emulator_query.rs cannot see of scripts/emulator.py's DynamoDB
patches through the API: moto's internal state after a cancelled transaction (no table copy, no empty partition
left, stream records undone),
a table named by its ARN, and the refusal to start on a moto whose patched internals changed.

Usage: .emulator/bin/python scripts/test_emulator.py
"""

import importlib.util
import pathlib
import subprocess
import sys
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).with_name("emulator.py")
spec = importlib.util.spec_from_file_location("herald_emulator", SCRIPT)
emulator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(emulator)  # patches moto in this process

from moto.dynamodb.exceptions import TransactionCanceledException  # noqa: E402
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
