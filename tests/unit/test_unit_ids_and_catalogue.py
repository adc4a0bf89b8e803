"""Contract v1.1 unit ids in registry files, and the procedure catalogue files."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from cli.procedures import read_catalogue
from shared.units import read_registry, registry_from_csv, registry_to_csv

REPO = Path(__file__).resolve().parents[2]
NATIONAL_YAML = """
registry: national-codes
levels:
  - {id: province, name: Cấp tỉnh, name_en: Province level}
  - {id: commune, name: Cấp xã, name_en: Commune level}
units:
  - {id: 000.00.00.H52, name: UBND tỉnh, level: province, parent: null, head: {name: Chủ tịch, email: a@x.example}}
  - {id: 000.00.17.H52, name: Sở A, level: province, parent: 000.00.00.H52, head: {name: Giám đốc, email: b@x.example}}
  - {id: "H52.01 Xã Đức Thọ / Tư pháp", name: Xã, level: commune, parent: 000.00.00.H52, head: {name: Chủ tịch, email: c@x.example}}
  - {id: 000.00.17.h52, name: "<b>khác</b>", level: commune, parent: 000.00.17.H52, head: {name: Chủ tịch, email: d@x.example}}
"""


def test_a_registry_keyed_by_national_codes_loads_from_yaml_and_round_trips_through_csv(
    tmp_path: Path,
) -> None:
    path = tmp_path / "national.yaml"
    path.write_text(NATIONAL_YAML, encoding="utf-8")
    registry = read_registry(path)
    ids = [unit.id for unit in registry.units]
    assert ids == ["000.00.00.H52", "000.00.17.H52", "H52.01 Xã Đức Thọ / Tư pháp", "000.00.17.h52"]
    again = registry_from_csv(registry_to_csv(registry), name=registry.registry)
    assert [u.id for u in again.units] == [
        u.id for u in sorted(registry.units, key=lambda u: u.level != "province")
    ]
    assert {u.id: u.parent for u in again.units} == {u.id: u.parent for u in registry.units}


@pytest.mark.parametrize("bad", ['""', "x" * 65])
def test_a_unit_id_is_1_to_64_characters(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(NATIONAL_YAML.replace("000.00.17.h52, name", f"{bad}, name"), encoding="utf-8")
    with pytest.raises(ValidationError):
        read_registry(path)


def test_the_sample_catalogue_loads_and_a_csv_catalogue_too(tmp_path: Path) -> None:
    sample = read_catalogue(REPO / "deploy/procedures/ha-tinh-sample.yaml")
    assert len(sample.procedures) >= 20 and {p.code for p in sample.procedures} >= {"1.001193", "2.000815"}
    path = tmp_path / "c.csv"
    path.write_text("code,name,field,level\n1.001193,Đăng ký khai sinh,Hộ tịch,commune\n", encoding="utf-8")
    assert read_catalogue(path).procedures[0].field == "Hộ tịch"
    path.write_text(path.read_text(encoding="utf-8") + "1.001193,again,Hộ tịch,commune\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="duplicate procedure code"):
        read_catalogue(path)
