"""Sources outside Kafka bridged onto aegis.transactions: `aegis replay`, `aegis ingest kinesis`.

- replay: a file's rows in publication order (labels when they would have been known);
- conversion: a Kinesis record's data (one JSON object in the user's schema, the config's
  columns) to its checked wire message, and the dead letter of a record that is not one;
- shards: the shard graph (parents before children) and where each shard starts;
- checkpoints: the shards' progress in the result store;
- kinesis: the AWS calls and the bridge itself.

A local Kinesis (moto's server) for tests and benchmarks: aegis_app/harness/kinesis_local.py.
"""
