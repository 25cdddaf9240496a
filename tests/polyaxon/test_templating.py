"""Templates render to an argv, never through a shell; the context is Polyaxon's."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.errors import PolyaxonfileError
from bridge.polyaxon import RenderedRun, RunGlobals, V1Component, expand_runs, render_run, validate_templates
from tests.polyaxon.support import component, operation, parse, problems

GLOBALS = RunGlobals(
    run_uuid="4f2c",
    run_name="cnn-3",
    artifacts_path="/w/runs/4f2c",
    run_outputs_path="/w/runs/4f2c/outputs",
    iteration=3,
)
HOSTILE = "; rm -rf ~"


def render(inputs: list[dict[str, Any]], values: dict[str, Any], **container: Any) -> RenderedRun:
    """Expand one run of an inline component (so values are typed as in real use), then render it."""
    op = parse(operation([values], component=component(inputs, **container)))
    assert op.component is not None
    (params,) = expand_runs(op)
    return render_run(op.component, params, GLOBALS)


def test_each_list_element_renders_to_exactly_one_argument() -> None:
    run = render(
        [{"name": "msg", "type": "str"}, {"name": "n", "type": "int"}],
        {"msg": HOSTILE, "n": "3"},
        command=["python3", "-m", "job"],
        args=["--msg={{ msg }}", "{{ msg }}", "--n", "{{ n }}"],
    )

    assert run.argv == ["python3", "-m", "job", f"--msg={HOSTILE}", HOSTILE, "--n", "3"]


def test_a_single_string_args_is_one_argument_as_in_polyaxon() -> None:
    # Polyaxon's idiom: the shell gets the whole line (the bridge used to split it and run only `train`).
    run = render(
        [{"name": "lr", "type": "float"}, {"name": "msg", "type": "str"}],
        {"lr": 0.1, "msg": HOSTILE},
        command=["/bin/sh", "-c"],
        args="train --lr={{ lr }} && echo done",
    )

    assert run.argv == ["/bin/sh", "-c", "train --lr=0.1 && echo done"]


def test_a_single_string_command_is_one_program_name_as_in_polyaxon() -> None:
    run = render([{"name": "lr", "type": "float"}], {"lr": 0.1}, command="python3 train.py --lr={{ lr }}")

    assert run.argv == ["python3 train.py --lr=0.1"]


def test_a_single_string_that_renders_to_a_list_is_its_items() -> None:
    inputs: list[dict[str, Any]] = [{"name": "lr", "type": "float"}, {"name": "msg", "type": "str"}]

    as_args = render(inputs, {"lr": 0.1, "msg": HOSTILE}, args="{{ params.as_args }}")
    literal = render(inputs, {"lr": 0.1, "msg": "x"}, args="['{{ msg }}', {{ lr }}]")
    unset = render([{"name": "seed", "type": "int", "isOptional": True}], {}, command=["echo"], args="{{ seed }}")

    assert as_args.argv == ["echo", "--lr=0.1", f"--msg={HOSTILE}"]
    assert literal.argv == ["echo", "x", "0.1"]
    assert unset.argv == ["echo"]


def test_as_arg_as_str_and_flags_follow_polyaxon() -> None:
    inputs: list[dict[str, Any]] = [
        {"name": "lr", "type": "float"},
        {"name": "layers", "type": "list"},
        {"name": "cfg", "type": "dict"},
        {"name": "verbose", "type": "bool", "isFlag": True},
        {"name": "quiet", "type": "bool", "isFlag": True},
        {"name": "seed", "type": "int", "isOptional": True},
        {"name": "shuffle", "type": "bool"},
    ]
    run = render(
        inputs,
        {
            "lr": "0.1",
            "layers": [64, 32],
            "cfg": {"a": 1},
            "verbose": True,
            "quiet": "false",
            "shuffle": "yes",
        },
        args=[
            "{{ params.lr.as_arg }}",
            "{{ params.layers.as_arg }}",
            "{{ params.cfg.as_str }}",
            "{{ params.verbose.as_arg }}",
            "{{ params.quiet.as_arg }}",
            "{{ params.seed.as_arg }}",
            "{{ verbose }}",
            "{{ quiet }}",
            "{{ params.shuffle.as_str }}",
            "{{ params.lr.value * 10 }}",
            "{{ params.lr.type }}",
        ],
    )

    assert run.argv == [
        "echo",
        "--lr=0.1",
        "--layers=[64,32]",
        '{"a":1}',
        "--verbose",
        "--verbose",
        "true",
        "1.0",
        "float",
    ]


def test_an_unset_optional_is_dropped_when_it_is_the_whole_element() -> None:
    run = render([{"name": "seed", "type": "int", "isOptional": True}], {}, args=["{{ seed }}", "--seed={{ seed }}"])

    # Polyaxon omits an item rendering "None"; inside a longer item the text stays, as in Polyaxon.
    assert run.argv == ["echo", "--seed=None"]


def test_arg_format_shapes_the_argument() -> None:
    inputs: list[dict[str, Any]] = [
        {"name": "lr", "type": "float", "argFormat": "--learning-rate={{ lr }}"},
        {"name": "tag", "type": "str", "argFormat": "-t {{ tag }}", "isOptional": True},
    ]
    run = render(inputs, {"lr": 0.5}, args=["{{ params.lr.as_arg }}", "{{ params.tag.as_arg }}"])

    assert run.argv == ["echo", "--learning-rate=0.5"]


def test_params_as_args_lists_every_non_empty_as_arg() -> None:
    inputs: list[dict[str, Any]] = [
        {"name": "a", "type": "int"},
        {"name": "b", "type": "bool", "isFlag": True},
    ]

    run = render(inputs, {"a": 1, "b": False}, args=["{{ params.as_args | join(' ') }}"])

    assert run.argv == ["echo", "--a=1"]


@pytest.mark.parametrize(
    "container",
    [
        {"args": ["--first", "{{ params.as_args }}"]},
        {"args": ["--first", "{{params.as_args}}"]},
    ],
    ids=["list-item", "no-spaces"],
)
def test_params_as_args_as_a_whole_item_is_one_argument_per_param(container: dict[str, Any]) -> None:
    inputs: list[dict[str, Any]] = [
        {"name": "a", "type": "int"},
        {"name": "b", "type": "bool", "isFlag": True},
        {"name": "msg", "type": "str"},
        {"name": "skip", "type": "bool", "isFlag": True},
    ]

    run = render(inputs, {"a": 1, "b": True, "msg": HOSTILE, "skip": False}, **container)

    # Polyaxon's parser reads the rendered list back as a list: one argv item per as_arg, values kept whole.
    assert run.argv == ["echo", "--first", "--a=1", "--b", f"--msg={HOSTILE}"]


def test_env_and_working_dir_are_templated_and_globals_use_polyaxons_names() -> None:
    run = render(
        [{"name": "lr", "type": "float", "toEnv": "LEARNING_RATE"}],
        {"lr": 0.1},
        args=[
            "{{ globals.uuid }}",
            "{{ globals.run_uuid }}",
            "{{ globals.name }}",
            "{{ globals.iteration }}",
        ],
        env=[
            {"name": "OUT", "value": "{{ globals.run_outputs_path }}"},
            {"name": "ART", "value": "{{ globals.run_artifacts_path }}"},
            {"name": "LR", "value": "{{ lr }}"},
            {"name": "PLAIN", "value": 7},
        ],
        workingDir="{{ globals.artifacts_path }}/code",
    )

    assert run.argv == ["echo", "4f2c", "4f2c", "cnn-3", "3"]
    assert run.env == {
        "OUT": "/w/runs/4f2c/outputs",
        "ART": "/w/runs/4f2c",
        "LR": "0.1",
        "PLAIN": "7",
        "LEARNING_RATE": "0.1",
    }
    assert run.working_dir == "/w/runs/4f2c/code"


@pytest.mark.parametrize(
    ("container", "path"),
    [
        ({"args": ["--a={{ a }}", "x", "{{ nope }}"]}, "component.run.container.args[2]"),
        ({"args": "--a={{ a }} {{ nope }}"}, "component.run.container.args"),
        ({"command": ["python3", "{{ params.nope.as_arg }}"]}, "component.run.container.command[1]"),
        ({"env": [{"name": "X", "value": "{{ nope }}"}]}, "component.run.container.env[0].value"),
        ({"workingDir": "{{ globals.nope }}"}, "component.run.container.workingDir"),
    ],
)
def test_an_unknown_name_fails_validation_naming_its_place(container: dict[str, Any], path: str) -> None:
    found = problems(operation([{"a": 1}], component=component([{"name": "a", "type": "int"}], **container)))

    assert [p.path for p in found] == [path]
    assert "nope" in found[0].message


def test_template_syntax_errors_and_sandbox_escapes_are_problems() -> None:
    found = problems(
        operation([{}], component=component(args=["{{ a", "{{ ''.__class__.__mro__[1].__subclasses__() }}"]))
    )

    assert [p.path for p in found] == ["component.run.container.args[0]", "component.run.container.args[1]"]


def test_a_value_dependent_failure_names_the_run() -> None:
    data = operation([{"a": 2}, {"a": 0}], component=component([{"name": "a", "type": "int"}], args=["{{ 10 // a }}"]))

    (problem,) = problems(data)

    assert problem.path == "component.run.container.args[0]"
    assert problem.message.endswith("(with the params of matrix.values[1])")


def test_validate_templates_checks_a_component_without_any_values() -> None:
    comp = V1Component.model_validate(
        component([{"name": "epochs", "type": "int"}], args=["--e={{ epochs }}", "{{ x }}"])
    )

    with pytest.raises(PolyaxonfileError) as caught:
        validate_templates(comp, source="cnn")

    assert caught.value.source == "cnn"
    assert caught.value.path == "component.run.container.args[1]"


def test_a_template_operation_is_checked_when_parsed() -> None:
    data = operation(component=component([{"name": "epochs", "type": "int"}], args=["{{ epoch }}"]))

    assert [p.path for p in problems(data)] == ["component.run.container.args[0]"]


def test_render_run_raises_when_a_template_fails() -> None:
    comp = V1Component.model_validate(component([{"name": "n", "type": "int"}], args=["{{ 1 // n }}"]))

    with pytest.raises(PolyaxonfileError, match="division"):
        render_run(comp, {"n": 0}, GLOBALS)


@pytest.mark.parametrize(("value", "text"), [(1e-5, "0.00001"), (1e-7, "1e-7"), (0.001, "0.001"), (2.0, "2.0")])
def test_floats_as_text_are_spelled_as_polyaxon_spells_them(value: float, text: str) -> None:
    run = render([{"name": "lr", "type": "float"}], {"lr": value}, args=["{{ params.lr.as_arg }}"])

    assert run.argv == ["echo", f"--lr={text}"]


def test_text_keeps_non_ascii_characters() -> None:
    run = render([{"name": "cfg", "type": "dict"}], {"cfg": {"city": "Zürich"}}, args=["{{ params.cfg.as_str }}"])

    assert run.argv == ["echo", '{"city":"Zürich"}']


@pytest.mark.parametrize(
    "text",
    ["--flag", "", "two\nlines\n", "windows\r\nline\r", "}} %} #}", "100% {not jinja", "tab\there ünï"],
)
def test_text_without_template_syntax_renders_as_jinja_renders_it(text: str) -> None:
    # Plain text skips Jinja (most argv items are plain): what it renders to must not change for that.
    from bridge.polyaxon.sandbox import ENV

    expected = ENV.from_string(text).render()
    run = render([], {}, command=["prog"], args=[text], env=[{"name": "X", "value": text}])

    assert run.env["X"] == expected
    assert run.argv == ["prog", expected] if expected else ["prog"]
