"""`bridge run` and `bridge check` on this machine: the engine with a local executor and a file.

source.py        where the polyaxonfile comes from (a file, stdin, a URL)
hints.py         warnings about params that are valid but probably not meant
run.py           one operation: the scheduler, the local executor, the file ledger, the cache
file_ledger.py   the run ledger in a file, so an interrupted operation resumes
objective.py     what the runs are ranked by; console.py the progress and the results table
"""
