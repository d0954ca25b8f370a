"""Services do the jobs' work (SMTP, S3). They never import Faust, so tests drive them directly.

Nothing is imported here: ``pipeline.handlers.email`` needs only the email templates, and a
service that enqueues jobs must not load the S3 client with them.
"""
