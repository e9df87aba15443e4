"""The metadata shards: ``metadata/NNNNN.parquet`` (kept photos) and ``dropped/NNNNN.parquet`` per class.

Both are rewritten from the state file at the end of every run (deterministically: search
order), so a resumed run and an uninterrupted one write the same shards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from janus_build import schemas
from janus_build.core.stage import ShardDir, shard_name
from janus_build.fetch.config import FetchConfig
from janus_build.fetch.queries import ClassQueries
from janus_build.fetch.search import class_target
from janus_build.fetch.state import FetchState

ALSO_IN_CLASSES = "also_in_classes"
_TYPES = {
    "class_id": "int32",
    "query_index": "int32",
    "rank": "int32",
    "width": "int32",
    "height": "int32",
    "license_id": "int32",
    "date_upload": "int64",
}


def _kept_rows(cls: ClassQueries, config: FetchConfig, state: FetchState) -> list[dict[str, Any]]:
    rows = []
    for rank, (photo_id, query_index, _, record) in enumerate(
        state.photos(cls.class_id, True, class_target(config, cls))
    ):
        rows.append(
            {
                **record,
                "class_id": cls.class_id,
                "class_name": cls.name,
                "query": cls.queries[query_index].text(),
                "query_index": query_index,
                "rank": rank,
                schemas.SOURCE: "flickr",
                schemas.SOURCE_ID: photo_id,
            }
        )
    return rows


def _dropped_rows(cls: ClassQueries, state: FetchState) -> list[dict[str, Any]]:
    return [
        {
            **record,
            "class_id": cls.class_id,
            "query": cls.queries[query_index].text(),
            schemas.DROPPED_BY: dropped_by,
        }
        for _, query_index, dropped_by, record in state.photos(cls.class_id, False)
    ]


def write_metadata(
    stage: ShardDir, classes: Sequence[ClassQueries], config: FetchConfig, state: FetchState
) -> dict[int, list[dict[str, Any]]]:
    """Write every class's metadata and dropped shards; return the kept rows per class.

    A photo kept by several classes stays in each, with the others in ``also_in_classes``.
    """
    kept = {cls.class_id: _kept_rows(cls, config, state) for cls in classes}
    seen_in: dict[str, list[int]] = {}
    for class_id, rows in kept.items():
        for row in rows:
            seen_in.setdefault(row["photo_id"], []).append(class_id)
    metadata, dropped_dir = stage.sub("metadata"), stage.sub("dropped")
    for cls in classes:
        rows = kept[cls.class_id]
        for row in rows:
            row[ALSO_IN_CLASSES] = [c for c in seen_in[row["photo_id"]] if c != cls.class_id]
        name = shard_name(cls.class_id)
        dropped = _dropped_rows(cls, state)
        dropped_dir.write_table(name, _table(dropped, extra=(schemas.DROPPED_BY,)))
        metadata.write_table(name, _table(rows), schemas.FETCH_METADATA, f"fetch metadata shard {name}")
        metadata.mark_done(name, {"count": len(rows), "dropped": len(dropped)})
    return kept


def _column_type(name: str) -> Any:
    import pyarrow as pa

    if name == ALSO_IN_CLASSES:
        return pa.list_(pa.int32())
    if name in _TYPES:
        return getattr(pa, _TYPES[name])()
    if name in schemas.FETCH_METADATA.names:
        return schemas.FETCH_METADATA.field(name).type
    return pa.string()


def _table(rows: list[dict[str, Any]], extra: Sequence[str] = ()) -> Any:
    import pyarrow as pa

    names = list(schemas.FETCH_METADATA.names) + [n for n in extra if n not in schemas.FETCH_METADATA.names]
    for row in rows:
        names.extend(k for k in row if k not in names)
    fields = [pa.field(name, _column_type(name)) for name in names]
    arrays = [pa.array([row.get(field.name) for row in rows], field.type) for field in fields]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
