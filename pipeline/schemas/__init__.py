"""Job constants, job models and the Avro schemas of lifecycle records."""
