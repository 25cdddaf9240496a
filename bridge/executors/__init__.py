"""Executor adapters: where a run's process actually executes."""
