"""The optimizer's side of the bridge, and the one place to import it from.

    BridgeClient    publish suggestions, await their results by suggestion id (client.py), from one inbox of
                    everything it read (inbox.py), whatever order and however many tasks wait
    WrongLoop       a client's coroutine awaited on another event loop than its own (client.py)
    Study           one study's loop: N trials in flight, a new one per result (study.py)
    Answer          what became of one suggestion sent (answer_book.py)
operations.py reads the operations the bridge builds (`BridgeClient.watch_operations`); progress.py hands the
progress events read to whoever listens (`BridgeClient.listen_progress`); operator.py holds what an operator
reads and sends (`bridge dlq`, `bridge stop`).
"""

from bridge.client.answer_book import Answer
from bridge.client.client import BridgeClient, ResultsTimeout, WrongLoop
from bridge.client.study import Study

__all__ = ["Answer", "BridgeClient", "ResultsTimeout", "Study", "WrongLoop"]
