"""Faust agents: one per registered queue (``queues``), the delay tiers, the monitor and the
retention sweep. Importing a module registers its agents on the app; ``pipeline.app`` imports
those the settings' role runs."""
