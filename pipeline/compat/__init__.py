"""Every use of a private Faust or aiokafka API, and nothing else: ``transport`` (Faust's Kafka
transport, patched) and ``tables`` (writing a table's changelog in a chosen partition).
``tests/test_compat.py`` checks each private name, so an upgrade that changes one fails there
first."""
