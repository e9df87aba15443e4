"""The data contract module validates and orders columns, naming what is wrong."""

from __future__ import annotations

import pyarrow as pa
import pytest

from janus_build import schemas
from janus_build.errors import SchemaError


def test_validate_casts_orders_and_keeps_extra_columns():
    table = pa.table(
        {
            "extra": ["x"],
            "label": pa.array([5], pa.int64()),
            "key": ["k"],
            "labels": [[5]],
            "matched_terms": [["goose"]],
        }
    )
    out = schemas.validate(table, schemas.MATCH_ADDED, "shard 1")
    assert out.column_names == ["key", "label", "labels", "matched_terms", "extra"]
    assert out.schema.field("label").type == pa.int32()


def test_validate_names_missing_columns_and_present_ones():
    with pytest.raises(SchemaError, match=r"shard 7: missing column\(s\) 'label'.*columns present: key"):
        schemas.validate(pa.table({"key": ["a"]}), pa.schema([("key", pa.string()), ("label", pa.int32())]), "shard 7")


def test_validate_rejects_nulls_in_required_fields():
    table = pa.table({"key": ["a", None], "label": [1, 2], "labels": [[1], [2]], "matched_terms": [["a"], ["b"]]})
    with pytest.raises(SchemaError, match="'key' has 1 null"):
        schemas.validate(table, schemas.MATCH_ADDED, "x")


def test_validate_reports_uncastable_types():
    table = pa.table({"key": ["a"], "label": ["not a number"], "labels": [[1]], "matched_terms": [["a"]]})
    with pytest.raises(SchemaError, match="'label' has type string, expected int32"):
        schemas.validate(table, schemas.MATCH_ADDED, "x")
