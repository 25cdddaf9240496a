"""The operation's helpers: the mapping matrix, early stopping, cache and termination (Polyaxon's names)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bridge.polyaxon.base import NOT_SUPPORTED, PolyaxonModel, error_at


class V1MedianStoppingPolicy(PolyaxonModel):
    """Stop a run whose best metric so far is worse than the median of the other runs at the same step."""

    kind: Literal["median"] = "median"
    evaluation_interval: int | None = Field(default=None, alias="evaluationInterval", ge=1)
    min_interval: int | None = Field(default=None, alias="minInterval", ge=0)
    min_samples: int | None = Field(default=None, alias="minSamples", ge=0)


class V1TruncationStoppingPolicy(PolyaxonModel):
    """Stop the worst `percent` of the runs at each evaluation."""

    kind: Literal["truncation"] = "truncation"
    percent: float = Field(ge=0, le=100)
    evaluation_interval: int = Field(alias="evaluationInterval", ge=1)
    min_interval: int | None = Field(default=None, alias="minInterval", ge=0)
    min_samples: int | None = Field(default=None, alias="minSamples", ge=0)
    include_succeeded: bool | None = Field(default=None, alias="includeSucceeded")


class V1DiffStoppingPolicy(PolyaxonModel):
    """Stop a run whose metric is more than `percent` worse than the best run's at the same step."""

    kind: Literal["diff"] = "diff"
    percent: float = Field(ge=0, le=100)
    evaluation_interval: int = Field(alias="evaluationInterval", ge=1)
    min_interval: int | None = Field(default=None, alias="minInterval", ge=0)
    min_samples: int | None = Field(default=None, alias="minSamples", ge=0)


StoppingPolicy = Annotated[
    V1MedianStoppingPolicy | V1TruncationStoppingPolicy | V1DiffStoppingPolicy,
    Field(discriminator="kind"),
]

Optimization = Literal["maximize", "minimize"]


class V1MetricEarlyStopping(PolyaxonModel):
    """Stop the operation on a metric: a threshold on final outputs, or a policy on intermediate ones."""

    kind: Literal["metric_early_stopping"] = "metric_early_stopping"
    metric: str
    value: float | None = None
    optimization: Optimization
    policy: StoppingPolicy | None = None

    @field_validator("optimization", mode="before")
    @classmethod
    def _normalise_optimization(cls, v: Any) -> Any:
        # Polyaxon's enum accepts maximize/MAXIMIZE/Maximize, and its schema also takes 1 / -1 as numbers.
        if isinstance(v, str):
            return v.lower()
        if isinstance(v, int | float) and not isinstance(v, bool) and v in (1, -1):
            return "maximize" if v == 1 else "minimize"
        return v

    @model_validator(mode="after")
    def _threshold_needs_value(self) -> V1MetricEarlyStopping:
        # Without a policy the rule is a threshold on each run's final output, which needs a value to compare.
        if self.policy is None and self.value is None:
            raise ValueError("`value` is required when no `policy` is given (it is the threshold)")
        return self


class V1FailureEarlyStopping(PolyaxonModel):
    """Stop the operation once `percent` of its runs have failed."""

    kind: Literal["failure_early_stopping"] = "failure_early_stopping"
    # Polyaxon takes any percent; one over 100 can never fire, which the loader warns about.
    percent: float = Field(ge=0)


EarlyStoppingRule = Annotated[
    V1MetricEarlyStopping | V1FailureEarlyStopping,
    Field(discriminator="kind"),
]


# `values: "{{ configs }}"`: the name of the param whose value is the list of runs.
VALUES_REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")


class V1Mapping(PolyaxonModel):
    """`matrix: {kind: mapping}`: one run per dict of params in `values`.

    `values` is optional here so a template (the Kafka service's) can leave it out; `expand_runs` requires it
    when it is given no values of its own. As in Polyaxon it may also be a reference to a param,
    `values: "{{ configs }}"`, which the loader replaces by that param's list.
    """

    kind: Literal["mapping"]
    values: list[dict[str, Any]] | None = None
    # The param named by `values: "{{ name }}"`, until the loader resolves it (then None).
    values_ref: str | None = Field(default=None, exclude=True)
    concurrency: PositiveInt | None = None
    early_stopping: list[EarlyStoppingRule] | None = Field(default=None, alias="earlyStopping")

    @model_validator(mode="before")
    @classmethod
    def _values_reference(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("values"), str):
            return data
        ref = VALUES_REF.fullmatch(data["values"])
        if ref is None:
            shown = data["values"]
            raise error_at(
                "values", f"a list of dicts (one per run) or a reference to a param (`{{{{ name }}}}`), not `{shown}`"
            )
        return {**{k: v for k, v in data.items() if k != "values"}, "values_ref": ref.group(1)}

    @field_validator("kind", mode="before")
    @classmethod
    def _only_mapping(cls, v: Any) -> Any:
        if isinstance(v, str) and v in _OTHER_MATRIX_KINDS:
            raise PydanticCustomError(
                NOT_SUPPORTED,
                "matrix kind `{kind}` is not supported by the bridge; only `mapping`",
                {"kind": v},
            )
        return v


# Polyaxon's other matrix kinds: the optimizer lives outside the bridge and sends a mapping instead.
_OTHER_MATRIX_KINDS = frozenset({"grid", "random", "hyperband", "bayes", "hyperopt", "tpe", "iterative"})


class V1Cache(PolyaxonModel):
    """Reuse a finished run's result for the same component and params (on by default for mapping runs)."""

    disable: bool | None = None
    ttl: int | None = Field(default=None, ge=0)
    io: list[str] | None = None
    sections: list[Literal["containers", "init", "connections"]] | None = None


class V1Termination(PolyaxonModel):
    """Retries and time limits of each run (`timeout` in seconds)."""

    max_retries: int | None = Field(default=None, alias="maxRetries", ge=0)
    ttl: int | None = Field(default=None, ge=0)
    timeout: int | None = Field(default=None, ge=1)

    # Kubernetes-only settings: they would change how a run ends, so they are refused rather than dropped.
    _not_supported = frozenset({"culling", "probe", "podFailurePolicy"})
