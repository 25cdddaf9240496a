"""The `bridge` command: main.py holds the parser and `main`; each other module is a group of commands, imported
only when one of them runs (`bridge --help` stays light).

    local.py    check, run            a polyaxonfile on this machine
    serve.py    serve, tail, schema   the replica; its topics followed (tail.py); its messages' schemas
    submit.py   submit                one suggestion message, and what became of each suggestion
    ops.py      dlq, stop, logs       what the bridge refused; act on runs
    common.py                         the settings from the flags, the tables they print
"""
