"""An independent Delta reader/writer for the tests: Python's deltalake, not our Rust writer.

Commands (JSON on stdout):
  read PATH                        rows (Arrow → Python, binary as hex), version, partition columns
  txn PATH APP_ID...               the txn version recorded for each app id (null when none)
  create PATH SCHEMA_JSON PARTS [CONFIG_JSON]
                                   an empty table: SCHEMA_JSON is [[name, type, nullable], ...],
                                   PARTS a comma-separated list of partition columns, CONFIG_JSON
                                   table properties
  set-txn PATH APP_ID VERSION      commits an empty append carrying a txn action
  append PATH ROWS_JSON            appends rows (a JSON list of objects) in the table's schema
  set-property PATH KEY VALUE      sets a table property (another writer's metadata change)
  add-column PATH NAME TYPE        adds a nullable column (another writer's schema change)
  compact PATH                     compacts the small files (another writer's optimize)
  files PATH                       the data files of the newest version, relative to the table
  checkpoint PATH                  the last checkpoint (_last_checkpoint's version) and the txn
                                   actions its Parquet file holds, read with pyarrow

Object-store tables (s3://...) take their storage options from the KDR_STORAGE_OPTIONS
environment variable (a JSON object).
"""
import decimal
import json
import os
import sys

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

OPTIONS = json.loads(os.environ.get("KDR_STORAGE_OPTIONS") or "{}") or None

TYPES = {
    "string": pa.string(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "binary": pa.binary(),
    "struct<model:string>": pa.struct([pa.field("model", pa.string())]),
    "struct<country:string>": pa.struct([pa.field("country", pa.string())]),
}


def plain(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def read(path):
    dt = DeltaTable(path, storage_options=OPTIONS)
    table = dt.to_pyarrow_table()
    rows = [{k: plain(v) for k, v in row.items()} for row in table.to_pylist()]
    history = dt.history()
    print(json.dumps({
        "version": dt.version(),
        "partition_columns": dt.metadata().partition_columns,
        "files": len(dt.file_uris()),
        "commits": len(history),
        "operations": [h.get("operation") for h in history],
        "rows": rows,
    }))


def txn(path, app_ids):
    dt = DeltaTable(path, storage_options=OPTIONS)
    print(json.dumps({a: dt.transaction_version(a) for a in app_ids}))


def create(path, schema_json, parts, config_json="{}"):
    fields = [pa.field(n, TYPES[t], nullable=bool(nullable)) for n, t, nullable in json.loads(schema_json)]
    schema = pa.schema(fields)
    partition_by = [p for p in parts.split(",") if p]
    write_deltalake(path, schema.empty_table(), partition_by=partition_by or None, mode="error",
                    configuration=json.loads(config_json) or None, storage_options=OPTIONS)
    print(json.dumps({"version": DeltaTable(path, storage_options=OPTIONS).version()}))


def set_txn(path, app_id, version):
    dt = DeltaTable(path, storage_options=OPTIONS)
    empty = pa.schema(dt.schema().to_arrow()).empty_table()
    props = CommitProperties(app_transactions=[Transaction(app_id=app_id, version=int(version))])
    write_deltalake(path, empty, mode="append", commit_properties=props, storage_options=OPTIONS)
    print(json.dumps({"version": DeltaTable(path, storage_options=OPTIONS).version()}))


def append(path, rows_json):
    # "@file": the rows are in a JSON file (a large pre-fill does not fit in an argument).
    if rows_json.startswith("@"):
        with open(rows_json[1:], encoding="utf-8") as f:
            rows_json = f.read()
    dt = DeltaTable(path, storage_options=OPTIONS)
    schema = pa.schema(dt.schema().to_arrow())
    write_deltalake(path, pa.Table.from_pylist(json.loads(rows_json), schema=schema), mode="append",
                    storage_options=OPTIONS)
    print(json.dumps({"version": DeltaTable(path, storage_options=OPTIONS).version()}))


def set_property(path, key, value):
    dt = DeltaTable(path, storage_options=OPTIONS)
    dt.alter.set_table_properties({key: value}, raise_if_not_exists=False)
    print(json.dumps({"version": DeltaTable(path, storage_options=OPTIONS).version()}))


def add_column(path, name, type_name):
    from deltalake.schema import Field, PrimitiveType
    dt = DeltaTable(path, storage_options=OPTIONS)
    dt.alter.add_columns([Field(name, PrimitiveType(type_name), nullable=True)])
    print(json.dumps({"version": DeltaTable(path, storage_options=OPTIONS).version()}))


def compact(path):
    metrics = DeltaTable(path, storage_options=OPTIONS).optimize.compact()
    print(json.dumps({"removed": metrics["numFilesRemoved"], "added": metrics["numFilesAdded"]}))


def files(path):
    root = os.path.abspath(path)
    uris = DeltaTable(path, storage_options=OPTIONS).file_uris()
    local = [u[len("file://"):] if u.startswith("file://") else u for u in uris]
    print(json.dumps(sorted(os.path.relpath(u, root) for u in local)))


def history(path):
    entries = DeltaTable(path, storage_options=OPTIONS).history()
    print(json.dumps([{"version": e.get("version"), "operation": e.get("operation")} for e in entries]))


def delete(path, predicate):
    dt = DeltaTable(path, storage_options=OPTIONS)
    dt.delete(predicate)
    print(json.dumps({"version": DeltaTable(path, storage_options=OPTIONS).version()}))


def describe(path):
    dt = DeltaTable(path, storage_options=OPTIONS)
    fields = json.loads(dt.schema().to_json())["fields"]
    print(json.dumps({
        "columns": [[f["name"], f["type"], f["nullable"]] for f in fields],
        "partition_columns": dt.metadata().partition_columns,
        "configuration": dt.metadata().configuration,
    }))


def checkpoint(path):
    import pyarrow.parquet as pq

    log = os.path.join(path, "_delta_log")
    with open(os.path.join(log, "_last_checkpoint")) as f:
        version = json.load(f)["version"]
    actions = pq.read_table(os.path.join(log, f"{version:020d}.checkpoint.parquet")).to_pylist()
    txns = {a["txn"]["appId"]: a["txn"]["version"] for a in actions if a.get("txn")}
    print(json.dumps({"version": version, "txns": txns}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"read": lambda: read(*args), "txn": lambda: txn(args[0], args[1:]), "create": lambda: create(*args),
     "set-txn": lambda: set_txn(*args), "append": lambda: append(*args),
     "set-property": lambda: set_property(*args), "add-column": lambda: add_column(*args),
     "checkpoint": lambda: checkpoint(*args),
     "compact": lambda: compact(*args), "files": lambda: files(*args),
     "history": lambda: history(*args), "describe": lambda: describe(*args),
     "delete": lambda: delete(*args)}[command]()
    sys.stdout.flush()
    # deltalake's runtime threads can abort the interpreter's teardown ("terminate called without
    # an active exception"); the answer is already written, so leave without it.
    os._exit(0)
