"""Faust timers and crontabs that run the scheduled jobs. None are scheduled yet."""
