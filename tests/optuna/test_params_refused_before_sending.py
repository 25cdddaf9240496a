"""A trial's params that the bridge's template would refuse are refused in the trial, before anything is sent:
a param the template does not declare (with the closest declared name), a value of the wrong type; the trial
ends FAIL with the reason in its user attributes, and the study stops there (every trial would repeat it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from bridge.errors import ConfigError
from bridge.optuna import BridgeObjective, SuggestionRefused
from tests.optuna.fake_bridge import FakeBridge, Script
from tests.optuna.optuna_support import job_config


@pytest.fixture
def bridge() -> Iterator[FakeBridge]:
    fake = FakeBridge(lambda params: Script(outputs={"loss": 0.1}))
    yield fake
    fake.close()


def test_an_undeclared_param_is_refused_with_the_declared_name_it_resembles(bridge: FakeBridge, tmp_path: Path) -> None:
    config = job_config(tmp_path)
    objective = BridgeObjective(
        "job", space=lambda t: {"name": "x", "step_slep": t.suggest_float("s", 0, 1)}, config=config, client=bridge
    )
    study = optuna.create_study(study_name="refused")

    with pytest.raises(
        SuggestionRefused, match=r"params\.step_slep: .*declares no `step_slep`; did you mean `step_sleep`\?"
    ):
        study.optimize(objective, n_trials=3)

    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert "did you mean `step_sleep`?" in trial.user_attrs["bridge_error"]
    assert bridge.sent == []


def test_a_value_of_the_wrong_type_is_refused_by_the_bridges_own_validation(bridge: FakeBridge, tmp_path: Path) -> None:
    objective = BridgeObjective(
        "job", space=lambda t: {"name": "x", "sleep": "soon"}, config=job_config(tmp_path), client=bridge
    )
    study = optuna.create_study(study_name="wrong-type")

    with pytest.raises(SuggestionRefused, match=r"at suggestions\[0\]\.params\.sleep"):
        study.optimize(objective, n_trials=1)

    assert study.trials[0].user_attrs["bridge_error"].startswith("invalid_params at suggestions[0].params.sleep")
    assert bridge.sent == []


def test_a_template_the_config_does_not_register_is_named_at_once(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"template `jbo` is not in the bridge config's templates \(job\); did you mean `job`\?"
    ):
        BridgeObjective("jbo", space=lambda t: {}, config=job_config(tmp_path))


def test_a_study_name_the_bridge_cannot_take_is_refused(bridge: FakeBridge, tmp_path: Path) -> None:
    objective = BridgeObjective("job", space=lambda t: {"name": "x"}, config=job_config(tmp_path), client=bridge)
    study = optuna.create_study(study_name="my study")

    with pytest.raises(SuggestionRefused, match=r"^study: String should match pattern"):
        study.optimize(objective, n_trials=1)
    assert bridge.sent == []
