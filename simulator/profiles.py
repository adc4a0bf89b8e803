"""Who does what: per-level volumes, procedure catalogues and each unit's fixed habits, from the registry.

Levels are data: the first level plays "province agencies", the last "communes", any between "districts".
Yearly volumes are Hà Tĩnh's of 2018 (domain.md §7); a registry without a middle level (the 2025 two-level
model) gives the district volume and catalogue to the communes, which took those procedures over.
"""

import random
from bisect import bisect
from dataclasses import dataclass, replace
from itertools import accumulate

from shared.units import Registry

WORKING_DAYS_PER_YEAR = 250


@dataclass(frozen=True, slots=True)
class Role:
    """How the units of one kind of level behave (numbers per unit unless said otherwise)."""

    name: str
    cases_per_year: int  # the whole role, split over its units
    documents_per_day: float
    catalogue_size: int  # procedures of the role (TTHC catalogue c. 2016)
    # share of the catalogue each unit offers; None: the units split the catalogue (each its own domain)
    offered_share: tuple[float, float] | None
    service_levels: tuple[int, int, int]  # weights of service levels 2, 3, 4
    durations: tuple[int, ...]  # working days, drawn uniformly (repeats weight them)
    online_share: float  # of cases of level 3/4 procedures
    electronic_share: float  # of normal-secrecy documents


PROVINCE = Role(
    "province", 77_833, 20.0, 1_367, None, (30, 40, 30), (1, 3, 5, 5, 7, 7, 10, 10, 12, 15), 0.55, 0.97
)
DISTRICT = Role(
    "district", 119_649, 30.0, 285, (0.7, 0.95), (45, 35, 20), (1, 2, 3, 5, 5, 7, 10, 15), 0.35, 0.95
)
COMMUNE = Role("commune", 675_905, 5.0, 167, (0.6, 0.9), (55, 30, 15), (1, 1, 2, 3, 3, 5, 7), 0.2, 0.85)


@dataclass(frozen=True, slots=True)
class Procedure:
    """A procedure (TTHC) as offered: national code, online service level, deadline in working days."""

    code: str
    service_level: int
    duration_days: int | None  # None: "không có ngày hẹn trả"


@dataclass(frozen=True, slots=True)
class UnitProfile:
    """One unit's fixed habits for the whole simulation."""

    unit_id: str
    role: Role
    cases_per_day: float  # expected at scale 1
    documents_per_day: float
    procedures: tuple[Procedure, ...]
    popularity: tuple[float, ...]  # cumulative weights over `procedures`
    late_rate: float
    dissatisfied_rate: float
    electronic_share: float

    def pick_procedure(self, rng: random.Random) -> Procedure:
        """Draw a procedure, popular ones (Zipf) more often."""
        return self.procedures[bisect(self.popularity, rng.random() * self.popularity[-1])]


def level_roles(registry: Registry) -> dict[str, tuple[Role, float]]:
    """Map each populated level to its role and its yearly case volume."""
    counts = {level.id: sum(unit.level == level.id for unit in registry.units) for level in registry.levels}
    levels = [level.id for level in registry.levels if counts[level.id]]
    if len(levels) == 1:
        return {
            levels[0]: (PROVINCE, PROVINCE.cases_per_year + DISTRICT.cases_per_year + COMMUNE.cases_per_year)
        }
    middle = levels[1:-1]
    roles = {levels[0]: (PROVINCE, float(PROVINCE.cases_per_year))}
    middle_units = sum(counts[level] for level in middle)
    for level in middle:
        roles[level] = (DISTRICT, DISTRICT.cases_per_year * counts[level] / middle_units)
    if middle:
        roles[levels[-1]] = (COMMUNE, float(COMMUNE.cases_per_year))
    else:
        merged = replace(COMMUNE, catalogue_size=COMMUNE.catalogue_size + DISTRICT.catalogue_size)
        roles[levels[-1]] = (merged, float(COMMUNE.cases_per_year + DISTRICT.cases_per_year))
    return roles


def catalogue(role: Role, rng: random.Random, taken: set[str]) -> list[Procedure]:
    """Draw a role's procedure catalogue: unique national-looking codes such as 1.004227."""
    procedures: list[Procedure] = []
    while len(procedures) < role.catalogue_size:
        code = f"{rng.choice('1111112')}.{rng.randrange(1_000, 13_000):06d}"
        if code in taken:
            continue
        taken.add(code)
        level = rng.choices((2, 3, 4), weights=role.service_levels)[0]
        duration = None if rng.random() < 0.03 else rng.choice(role.durations)
        procedures.append(Procedure(code, level, duration))
    return procedures


def offered(
    role: Role, procedures: list[Procedure], position: int, units: int, rng: random.Random
) -> list[Procedure]:
    """Return the fixed subset of the catalogue one unit offers."""
    if role.offered_share is None:  # agencies: each its own domain
        return procedures[position::units] or [rng.choice(procedures)]
    share = rng.uniform(*role.offered_share)
    return rng.sample(procedures, max(1, round(share * len(procedures))))


def build_profiles(registry: Registry, seed: int) -> list[UnitProfile]:
    """Build every unit's profile: volumes split evenly with noise, a few chronically late units."""
    rng = random.Random(f"{seed}/profiles")
    taken: set[str] = set()
    profiles: list[UnitProfile] = []
    for level, (role, volume) in level_roles(registry).items():
        units = [unit.id for unit in registry.units if unit.level == level]
        procedures = catalogue(role, rng, taken)
        weights = [rng.lognormvariate(0.0, 0.35) for _ in units]
        mean = sum(weights) / len(weights)
        for position, (unit_id, weight) in enumerate(zip(units, weights, strict=True)):
            mine = offered(role, procedures, position, len(units), rng)
            rng.shuffle(mine)
            profiles.append(
                UnitProfile(
                    unit_id=unit_id,
                    role=role,
                    cases_per_day=volume / WORKING_DAYS_PER_YEAR / len(units) * weight / mean,
                    documents_per_day=role.documents_per_day * weight / mean,
                    procedures=tuple(mine),
                    popularity=tuple(accumulate(1.0 / rank for rank in range(1, len(mine) + 1))),
                    late_rate=rng.uniform(0.0005, 0.006),
                    dissatisfied_rate=rng.uniform(0.02, 0.07),
                    electronic_share=min(1.0, role.electronic_share + rng.uniform(-0.04, 0.03)),
                )
            )
    return mark_chronically_late(profiles, rng)


def mark_chronically_late(profiles: list[UnitProfile], rng: random.Random) -> list[UnitProfile]:
    """Make ~6% of units (at least one) chronically late: 5-15% of their cases."""
    late = set(rng.sample(range(len(profiles)), max(1, round(0.06 * len(profiles)))))
    return [
        replace(profile, late_rate=rng.uniform(0.05, 0.15)) if n in late else profile
        for n, profile in enumerate(profiles)
    ]
