"""FetchConfig: validated when built, each message naming the flag; secrets never echoed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from janus_build.errors import ConfigError
from janus_build.fetch.config import VOLATILE, FetchConfig


@pytest.mark.parametrize(
    "change, flag",
    [
        ({"per_class": 0}, "--per-class"),
        ({"calls_per_hour": 0}, "--calls-per-hour"),
        ({"workers": 0}, "--workers"),
        ({"processes": 0}, "--processes"),
        ({"threads": 0}, "--threads"),
        ({"shard_size": 0}, "--shard-size"),
        ({"max_size": 0}, "--max-size"),
        ({"licenses": ()}, "--licenses"),
        ({"licenses": (4, 99)}, "--licenses"),
        ({"api_url": "ftp://example.org/"}, "--api-url"),
        ({"request_timeout": 0}, "--timeout"),
    ],
)
def test_invalid_options_fail_on_construction_naming_the_flag(change, flag):
    with pytest.raises(ConfigError, match=flag):
        FetchConfig(out=Path("o"), **change)


def test_a_rejected_api_url_is_shown_without_its_credentials():
    with pytest.raises(ConfigError) as info:
        FetchConfig(out=Path("o"), api_url="ftp://user:hunter2-pw@example.org/")
    assert "hunter2-pw" not in str(info.value) and "***@example.org" in str(info.value)


def test_paths_and_sequences_are_normalised_and_volatile_fields_exist():
    config = FetchConfig(out="o", queries="q.toml", classes=[291, 2, 2], licenses=[4])  # type: ignore[arg-type]
    assert config.out == Path("o") and config.queries == Path("q.toml")
    assert config.classes == (2, 291) and config.licenses == (4,)
    names = {f.name for f in dataclasses.fields(FetchConfig)}
    assert set(VOLATILE) <= names
    assert "respect_optouts" not in VOLATILE and "licenses" not in VOLATILE  # they change the result
