"""One operation's life, shared by `bridge run` and `bridge serve`: the plan of its runs and the one scheduler.

plan.py               a validated operation and its mapping values -> the runs, with stable ids
scheduler.py          concurrency, retries, timeouts, stops; attempts.py one attempt of one run
cache.py              Polyaxon's cache: a run equal to an earlier succeeded one is answered from it
early_stopping.py     Polyaxon's `earlyStopping` rules; stopping_policies.py their maths
runtime.py            what every operation of one process shares (executor, ledger, cache)
ports.py              what the engine writes to and tells: the run ledger, the operation's listener
"""
