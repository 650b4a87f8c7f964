"""The service: composes core, storage and config into the CLI, watcher, worker, API and scheduler.

Nothing imports this package; it imports the others.
"""
