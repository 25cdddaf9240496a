"""What is on the topics, with no I/O: what users and other services rely on (../shared/CONTRACT.md).

topics.py        the topics, by channel, and their default names
messages.py      the messages' models; results.py the runs, their results and progress
dead_letters.py  the dead-letter message, and `DeadLetterError`, why a record was refused
versions.py      every schema by family and version: the one place a new version is added
limits.py        the bounds of one decoded message (size, depth, width, strings, numbers)
codec.py         bytes -> a message, or a `MessageError` that says why not
identity.py      every id and hash, over the one canonical JSON
jsonschema.py    the JSON Schemas and the AsyncAPI document written to schemas/
"""
