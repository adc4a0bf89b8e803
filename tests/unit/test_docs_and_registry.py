"""Committed artefacts match the code: the AsyncAPI document and the shipped unit registries."""

import importlib
import re
from collections import Counter
from pathlib import Path

import pytest

from cli.docs import ASYNCAPI_PATH, render_asyncapi
from shared import topics
from shared.units import read_registry, registry_from_csv, registry_to_csv

UNITS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "units"


def test_asyncapi_document_is_up_to_date() -> None:
    rendered = render_asyncapi()
    assert ASYNCAPI_PATH.read_text(encoding="utf-8") == rendered, (
        "run `dvc docs asyncapi` and commit docs/asyncapi.yaml"
    )
    for topic in (topics.CASE_EVENTS, topics.DOCUMENT_EVENTS, topics.DEAD_LETTERS, topics.CHANGES):
        assert f"address: {topic}" in rendered


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("ha-tinh-2021.yaml", {"province": 21, "district": 13, "commune": 216}),
        ("ha-tinh-2025.yaml", {"province": 15, "commune": 69}),
    ],
)
def test_shipped_registries_load_with_the_public_counts(file: str, expected: dict[str, int]) -> None:
    registry = read_registry(UNITS_DIR / file)
    assert Counter(unit.level for unit in registry.units) == expected
    assert [level.id for level in registry.levels] == list(expected)


def test_registry_csv_round_trip() -> None:
    registry = read_registry(UNITS_DIR / "ha-tinh-2021.yaml")
    again = registry_from_csv(registry_to_csv(registry), name=registry.registry)
    assert sorted(again.units, key=lambda u: u.id) == sorted(registry.units, key=lambda u: u.id)
    assert again.levels == registry.levels


def test_registry_rejects_a_parent_on_a_lower_level() -> None:
    text = registry_to_csv(read_registry(UNITS_DIR / "ha-tinh-2025.yaml"))
    lines = text.splitlines()
    commune = next(line for line in lines if ",commune," in line)
    agency = next(line for line in lines[2:] if ",province," in line)
    broken = agency.replace(",ht,", "," + commune.split(",")[0] + ",")
    with pytest.raises(ValueError, match="lower level"):
        registry_from_csv(
            "\n".join([lines[0], *[line for line in lines[1:] if line != agency], broken]), name="x"
        )


def test_the_readme_event_path_names_functions_that_exist() -> None:
    """The README's path of an event stays true: every `module:function` it names exists, and a bare
    name after it lives in the module named last."""
    readme = (UNITS_DIR.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("The path of a case event, function by function", 1)[1].split("\n\n", 2)[1]
    named = re.findall(r"`([a-z_/]+):([a-z_]+)`|`([a-z_]+)`", section)
    module = None
    checked = 0
    for path, function, bare in named:
        if path:
            package = path.replace("/", ".")
            module = importlib.import_module(
                package if package.startswith("shared") else f"services.{package}"
            )
            name = function
        elif module is not None and hasattr(module, bare):
            name = bare
        else:
            continue  # a word in backquotes that is not one of the module's names (a table, a function in SQL)
        assert callable(getattr(module, name, None)), f"{module.__name__}:{name} is named in the README"
        checked += 1
    assert checked >= 15
