"""``make bench``: the pipeline against raw aiokafka, BullMQ and Celery, on one machine."""
