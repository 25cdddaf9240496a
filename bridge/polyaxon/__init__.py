"""The polyaxonfile: parse it, resolve its component, validate params, expand the mapping, render templates.

    load_operation(path)        read + resolve + validate a file          (loader.py)
    parse_operation(data, ...)  the same from a dict (Kafka templates)    (loader.py)
    expand_runs(op, values)     one dict of typed params per run          (params.py)
    did_you_mean(name, names)   `; did you mean `x`?` for a misspelt name (params.py)
    undeclared_param_warnings   a sentence per param the template does not declare (params.py)
    render_run(component, ...)  argv / env / working dir of one run       (templating.py)

An operation from outside is bounded by a `UrlPolicy` (urlfetch.py: where its urlRef may be fetched from, for
how long, how much) and a `RenderBudget` (sandbox.py: time and size to render one run; `budget_scope` applies
one to every render inside it, `expand_runs` included).

Models are in schema.py (operation, component), inputs.py (IO, params), job.py (job, container) and
automation.py (mapping, early stopping, cache, termination); the template context is in context.py; type parsing
is in types.py. Every problem becomes one bridge.errors.PolyaxonfileError.
"""

from bridge.polyaxon.automation import (
    EarlyStoppingRule,
    V1Cache,
    V1DiffStoppingPolicy,
    V1FailureEarlyStopping,
    V1Mapping,
    V1MedianStoppingPolicy,
    V1MetricEarlyStopping,
    V1Termination,
    V1TruncationStoppingPolicy,
)
from bridge.polyaxon.context import RunGlobals
from bridge.polyaxon.inputs import V1IO, V1Param, V1Validation
from bridge.polyaxon.job import V1Container, V1EnvVar, V1GitInit, V1Init, V1Job
from bridge.polyaxon.loader import ComponentFetchFailed, load_operation, parse_operation
from bridge.polyaxon.params import did_you_mean, expand_runs, undeclared_param_warnings
from bridge.polyaxon.sandbox import RenderBudget, RenderBudgetExceeded, budget_scope
from bridge.polyaxon.schema import V1Component, V1Operation
from bridge.polyaxon.templating import RenderedRun, render_run, validate_templates
from bridge.polyaxon.urlfetch import UrlPolicy

__all__ = [
    "V1IO",
    "ComponentFetchFailed",
    "EarlyStoppingRule",
    "RenderBudget",
    "RenderBudgetExceeded",
    "RenderedRun",
    "RunGlobals",
    "UrlPolicy",
    "V1Cache",
    "V1Component",
    "V1Container",
    "V1DiffStoppingPolicy",
    "V1EnvVar",
    "V1FailureEarlyStopping",
    "V1GitInit",
    "V1Init",
    "V1Job",
    "V1Mapping",
    "V1MedianStoppingPolicy",
    "V1MetricEarlyStopping",
    "V1Operation",
    "V1Param",
    "V1Termination",
    "V1TruncationStoppingPolicy",
    "V1Validation",
    "budget_scope",
    "did_you_mean",
    "expand_runs",
    "load_operation",
    "parse_operation",
    "render_run",
    "undeclared_param_warnings",
    "validate_templates",
]
