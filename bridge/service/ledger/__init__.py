"""The run ledger of `serve`, the exactly-once state: a compacted topic keyed by run id (records.py), read into
an on-disk index (index.py), written by the scheduler's `RunLedger` port (topic_ledger.py); early_start.py and
lease.py say which runs may start before their records commit, and what a partition's next owner assumes."""
