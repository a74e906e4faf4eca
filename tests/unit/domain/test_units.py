import pytest

from aidc.domain.units import format_duration, format_size, parse_duration, parse_gpus, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512MB", 512 * 10**6),
        ("16GB", 16 * 10**9),
        ("16G", 16 * 10**9),
        ("1.5TiB", int(1.5 * 2**40)),
        ("2Gi", 2 * 2**30),
        ("100 KiB", 100 * 1024),
        ("64mib", 64 * 2**20),
        ("1024", 1024),
        ("0", 0),
        (4096, 4096),
    ],
)
def test_parse_size_reads_si_and_binary_units(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "GB", "12 parsecs", "-1GB", "1.2.3GB", "ten GB"])
def test_parse_size_rejects_what_it_cannot_read(bad: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


def test_parse_size_rejects_negative_numbers_and_booleans() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        parse_size(-5)
    with pytest.raises(ValueError, match="boolean"):
        parse_size(True)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h30m", 9000),
        ("2h 30m 15s", 9015),
        ("1d", 86400),
        ("1.5h", 5400),
        ("500ms", 0.5),
        (45, 45),
        ("45", 45),  # a bare number is seconds, as text too
        ("10:30", 630),  # MM:SS
        ("01:02:03", 3723),  # HH:MM:SS
        ("2-00:00:00", 2 * 86400),  # D-HH:MM:SS
        ("1-12", 86400 + 12 * 3600),  # D-HH
    ],
)
def test_parse_duration_reads_compact_and_slurm_forms(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "soon", "2 weeks", "1h-", "h"])
def test_parse_duration_rejects_what_it_cannot_read(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(8, (8, None)), ("8", (8, None)), ("H100:8", (8, "H100")), ("A100-80GB:2", (2, "A100-80GB"))],
)
def test_parse_gpus_reads_count_and_model(value: str | int, expected: tuple[int, str | None]) -> None:
    assert parse_gpus(value) == expected


@pytest.mark.parametrize("bad", ["H100:", ":8", "eight", "H100:-1"])
def test_parse_gpus_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="GPU request"):
        parse_gpus(bad)


def test_formatting_is_compact() -> None:
    assert format_size(2 * 2**30) == "2GiB"
    assert format_size(1536 * 2**20) == "1.5GiB"
    assert format_size(2 * 10**9) == "2GB"
    assert format_size(512 * 10**6) == "512MB"
    assert format_size(1234567) == "1.2MiB"
    assert format_duration(9000) == "2h30m"
    assert format_duration(42) == "42s"
