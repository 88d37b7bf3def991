"""Sources outside Kafka bridged onto aegis.transactions: `aegis ingest kinesis`.

- conversion: a Kinesis record's data (one JSON object in the simulator-file columns) to a
  validated Transaction, and the dead letter of a record that is not one;
- shards: the shard graph (parents before children) and where each shard starts;
- checkpoints: the shards' progress in the result store;
- kinesis: the AWS calls and the bridge itself.

A local Kinesis (moto's server) for tests and benchmarks: aegis_app/harness/kinesis_local.py.
"""
