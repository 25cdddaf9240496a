"""`bridge dash`: a read-only live web view of the topics, for people who would otherwise read JSON lines.

board.py      what the dash knows: per-study aggregates and the last runs of each study, bounded; pure
objective.py  which output a study is judged by (`?objective=`, or the metric early stopping rule)
plots.py      the study's plots, drawn as SVG on the server
pages.py      the board as HTML (Jinja2, autoescaped) and as JSON
feed.py       the one consumer: the topics from their start into the board
web.py        aiohttp: pages, JSON, server-sent events, static files; token, Host check, CSP
serve.py      `Dash`: the feed and the web server together, until stopped
"""

from bridge.dash.serve import Dash

__all__ = ["Dash"]
