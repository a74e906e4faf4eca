"""A site's catalog merged over the shipped one: an entry naming a shipped model (by its name or any alias)
updates only the fields it gives, other entries are new models validated in full, errors name the file,
the entry and the field; `use_catalog` makes the result what `gpu_spec` answers, process-wide."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aidc.domain.catalog import (
    CatalogError,
    default_catalog,
    gpu_spec,
    load_site_catalog,
    shipped_catalog,
    use_catalog,
)

NEW_MODEL = "{name: Acme X1, aliases: [X1], vendor: Acme, memory_gb: 96, tdp_watts: 500, idle_watts: 60, source: s}"


@pytest.fixture(autouse=True)
def shipped_again() -> Iterator[None]:
    """Every test leaves the process-wide catalog as it found it: the shipped one."""
    yield
    use_catalog(None)


def site(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_an_entry_naming_a_shipped_model_by_alias_updates_only_the_fields_it_gives(tmp_path: Path) -> None:
    catalog = load_site_catalog(site(tmp_path, "- {name: H100, hourly_price_usd: 2.4}\n"))
    shipped = shipped_catalog().spec("H100")
    merged = catalog.spec("H100")
    assert shipped is not None
    assert merged is not None
    assert merged.hourly_price_usd == 2.4
    assert merged.model_dump(exclude={"hourly_price_usd"}) == shipped.model_dump(exclude={"hourly_price_usd"})
    assert len(catalog.gpus) == len(shipped_catalog().gpus)  # updated in place, nothing added


def test_the_full_name_in_a_gpus_list_finds_the_model_too_and_aliases_given_are_added(tmp_path: Path) -> None:
    text = "gpus:\n  - {name: NVIDIA A100-SXM4-80GB, aliases: [lab-a100], list_price_usd: 15000}\n"
    catalog = load_site_catalog(site(tmp_path, text))
    spec = catalog.spec("lab-a100")
    assert spec is not None
    assert (spec.name, spec.list_price_usd) == ("NVIDIA A100 SXM4 80GB", 15000)
    assert "A100" in spec.aliases  # the shipped aliases stay
    assert catalog.spec("A100") == spec


def test_other_entries_are_new_models(tmp_path: Path) -> None:
    catalog = load_site_catalog(site(tmp_path, f"- {NEW_MODEL}\n"))
    spec = catalog.spec("Acme X1")
    assert spec is not None
    assert (spec.vendor, spec.tdp_watts, spec.bf16_tflops) == ("Acme", 500, None)
    assert len(catalog.gpus) == len(shipped_catalog().gpus) + 1


def test_a_new_model_near_a_shipped_name_is_not_taken_for_it(tmp_path: Path) -> None:
    # "H100 Lab" holds every word of "H100": spec() would match it, but only exact names update.
    with pytest.raises(CatalogError, match=r"entry 1 \(H100 Lab\): field vendor: Field required"):
        load_site_catalog(site(tmp_path, "- {name: H100 Lab, hourly_price_usd: 3}\n"))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("- {name: H100, hourly_price_usd: -1}\n", "entry 1 (H100): field hourly_price_usd: Input should be greater"),
        ("- {name: T4, hourly_price_usd: 1}\n- {name: H100, peak: 3}\n", "entry 2 (H100): field peak: Extra inputs"),
        ("- {name: H100, idle_watts: 900}\n", "entry 1 (H100): NVIDIA H100 SXM5 80GB: idle_watts 900 is above"),
        ("- {hourly_price_usd: 2}\n", "entry 1: field name: a GPU model name is required"),
        ("- H100\n", "entry 1: expected a mapping"),
        ("- {name: H100, aliases: [A100]}\n", "entry 1 (H100): field aliases: its names name several models"),
        ("- {name: Z9, aliases: z9, vendor: V}\n", "entry 1 (Z9): field aliases: expected a list"),
        ("gpus: {name: H100}\n", "expected a `gpus:` list"),
        ("- [", "site.yaml"),
        ("- " + NEW_MODEL.replace("[X1]", "[X1, '']") + "\n", "entry 1 (Acme X1): field aliases: an empty alias"),
    ],
)
def test_errors_name_the_file_the_entry_and_the_field(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(CatalogError) as caught:
        load_site_catalog(site(tmp_path, text))
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "site.yaml"))
    assert where in message


def test_a_missing_file_is_a_catalog_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"nope\.yaml"):
        load_site_catalog(tmp_path / "nope.yaml")


def test_entries_apply_in_order_so_a_later_one_updates_a_model_an_earlier_one_added(tmp_path: Path) -> None:
    catalog = load_site_catalog(site(tmp_path, f"- {NEW_MODEL}\n- {{name: X1, hourly_price_usd: 1.5}}\n"))
    spec = catalog.spec("Acme X1")
    assert spec is not None
    assert spec.hourly_price_usd == 1.5
    assert len(catalog.gpus) == len(shipped_catalog().gpus) + 1


def test_an_empty_site_file_changes_nothing(tmp_path: Path) -> None:
    assert load_site_catalog(site(tmp_path, "")) == shipped_catalog()


def test_use_catalog_makes_it_what_gpu_spec_answers_and_none_restores_the_shipped_one(tmp_path: Path) -> None:
    before = gpu_spec("H100")  # cached: use_catalog must clear it
    assert before is not None
    assert before.hourly_price_usd is None
    use_catalog(load_site_catalog(site(tmp_path, f"- {{name: H100, hourly_price_usd: 2.4}}\n- {NEW_MODEL}\n")))
    after = gpu_spec("H100")
    assert after is not None
    assert after.hourly_price_usd == 2.4
    assert gpu_spec("Acme X1") is not None
    assert default_catalog().spec("X1") is not None
    use_catalog(None)
    assert gpu_spec("Acme X1") is None
    assert default_catalog() == shipped_catalog()
