"""`bridge serve`: one replica, broker-neutral (it sees the broker through `bridge.kafka.base` only).

The walk of one suggestion: consume.py (records in while there is room) -> records.py (one record) ->
intake.py (validated runs, or refusals: answers.py, refusals.py) -> admission.py (new, replay, conflict) ->
registry.py and runs.py (runs in flight) -> operations.py (batching.py, the engine's scheduler) ->
publishing.py (one transactional publisher per input partition) -> the result, and its ledger record.

Around it: ledger/ (the exactly-once state: records, index, topic_ledger, early_start, lease), rebalance.py and
ownership.py (partitions coming and going), reconcile.py (a new partition's ledger taken up again),
control.py (stops from outside), health.py, http.py, telemetry.py, retention.py, and service.py composing them.
"""
