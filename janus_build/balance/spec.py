"""Source specifications and the frozen config of ``janus balance``.

A SOURCE is written on the command line as comma-separated ``key=value`` pairs, e.g.::

    name=in100,images=IN100_DIR,labels=ground_truth,kind=imagenet
    name=flickr,images=FETCH_DIR/images,tags=TAGS.parquet,role=fill,priority=2
    name=laion100,images=LAION_IMAGES,match=MATCH_DIR,captions=CAPTION_DIR,weight=0.5

or as ``[[source]]`` tables with the same keys in a TOML file given to ``--sources FILE``
(use the file when a path contains a comma). See docs/balance.md for every key.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from janus_build.errors import ConfigError

#: label sources a ``labels=`` source may declare (tags and match sources get theirs implicitly)
INDEX_LABEL_SOURCES = ("ground_truth", "human", "mapped")
ROLES = ("base", "fill")
BALANCE_POLICIES = ("none", "cap", "equal", "metaclip")
DEDUP_KINDS = ("key", "id", "url", "hash")
DEFAULT_DEDUP = ("key", "id", "url", "hash")
#: caption columns tried in order when a source does not say ``caption=``; the first four come
#: from ``janus caption`` shards, the rest from the source's own metadata
DEFAULT_CAPTION_COLUMNS = (
    "prose_caption",
    "caption_blip_title",
    "caption_blip_spellchecked",
    "caption_blip",
    "caption",
    "TEXT",
    "text",
    "title",
)
PAPER_BUDGET_UNIT = 120_000  # 1x in the paper: about the size of IN100's training set
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SPEC_KEYS = (
    "name",
    "images",
    "labels",
    "label_col",
    "tags",
    "match",
    "captions",
    "caption",
    "kind",
    "priority",
    "weight",
    "role",
)


def _source_kinds() -> tuple[str, ...]:
    from janus_build import schemas  # pyarrow: kept out of the CLI's start-up

    return schemas.SOURCES


@dataclass(frozen=True)
class SourceSpec:
    """One labelled input of ``janus balance``.

    Attributes:
        name: unique name of the source (letters, digits, ``_``, ``-``); used in the card,
            the plot and the ``source_name`` column.
        images: image stage directory (``images.py`` format) holding the source's image bytes.
        labels: labels are a column of the image index; the value is their label source
            (``ground_truth``, ``human`` or ``mapped``).
        label_col: the index column holding those labels (default ``label``, else ``class_id``).
        tags: a ``janus tag export`` table; its ``in`` decisions are the labels (``tagged``).
        match: a ``janus match`` output directory joined to ``images`` on ``key``; the label
            source is the match strategy (``sc``, ``strict``, ``mc``). A ``janus label`` output
            works the same way; its label source is the model's (``zeroshot:ViT-L-14``,
            ``classifier:NAME``): the paper's ``cliplabel`` / ``swinlabel`` datasets.
        captions: optional ``janus caption`` output directory joined on ``key``.
        caption: a caption policy (``gtcaps``, ``classname-only``, ``ttd``, ``title``, ``tags``,
            ``blipcap``, ``annotcap``, ``prose``, ``blipcap+annotcap``; see
            :mod:`janus_build.balance.captions`), or caption columns to try in order,
            ``|``-separated (default: ``--caption``, else :data:`DEFAULT_CAPTION_COLUMNS`).
        kind: provenance ``source`` value: flickr, imagenet, openimages, laion, yfcc, custom
            (default: the name if it is one of those, ``flickr`` for tag sources, else ``custom``).
        priority: smaller is preferred: de-duplication keeps, and ``--min-per-class`` fills
            from, the most preferred source first; within a class selection prefers it too.
        weight: relative sampling weight among sources of equal priority (weighted sampling
            without replacement, Efraimidis-Spirakis keys).
        role: ``base`` sources contribute all their samples; ``fill`` sources only contribute
            what a class needs to reach ``--min-per-class`` (the paper's IN100 rebalancing).
    """

    name: str
    images: str
    labels: str | None = None
    label_col: str | None = None
    tags: str | None = None
    match: str | None = None
    captions: str | None = None
    caption: str | None = None
    kind: str | None = None
    priority: int = 1
    weight: float = 1.0
    role: str = "base"

    def __post_init__(self) -> None:
        where = f"source {self.name!r}"
        if not _NAME.match(self.name or ""):
            raise ConfigError(f"SOURCE name={self.name!r}: use 1-64 letters, digits, '_' or '-'")
        if not self.images:
            raise ConfigError(f"{where}: images=DIR is required (the image stage holding its image bytes)")
        given = [k for k in ("labels", "tags", "match") if getattr(self, k)]
        if not given:
            raise ConfigError(
                f"{where}: no labels; give one of labels=ground_truth|human|mapped (a label column of the "
                "image index), tags=TAGS.parquet (janus tag export) or match=DIR (janus match output)"
            )
        if len(given) > 1:
            raise ConfigError(f"{where}: give only one label source, not {' and '.join(given)}")
        if self.labels and self.labels not in INDEX_LABEL_SOURCES:
            raise ConfigError(f"{where}: labels={self.labels!r}; expected one of {', '.join(INDEX_LABEL_SOURCES)}")
        if self.kind is not None and self.kind not in _source_kinds():
            raise ConfigError(f"{where}: kind={self.kind!r}; expected one of {', '.join(_source_kinds())}")
        if self.role not in ROLES:
            raise ConfigError(f"{where}: role={self.role!r}; expected one of {', '.join(ROLES)}")
        if not (self.weight > 0):
            raise ConfigError(f"{where}: weight={self.weight!r} must be a positive number")

    @property
    def source_kind(self) -> str:
        """The provenance ``source`` value written for this source's samples."""
        if self.kind:
            return self.kind
        if self.name in _source_kinds():
            return self.name
        return "flickr" if self.tags else "custom"

    @property
    def caption_policy(self) -> str | None:
        """The caption policy ``caption=`` names, or None (columns, or nothing given)."""
        from janus_build.balance.captions import POLICIES

        return self.caption if self.caption in POLICIES and self.caption != "columns" else None

    @property
    def caption_columns(self) -> tuple[str, ...]:
        if self.caption and self.caption_policy is None and self.caption != "columns":
            return tuple(c.strip() for c in self.caption.split("|") if c.strip())
        return DEFAULT_CAPTION_COLUMNS

    @classmethod
    def from_mapping(cls, values: dict[str, Any], where: str) -> SourceSpec:
        unknown = [k for k in values if k not in _SPEC_KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_SPEC_KEYS)}")
        if "name" not in values:
            raise ConfigError(f"{where}: name=... is required")
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key == "priority":
                try:
                    kwargs[key] = int(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"{where}: priority={value!r} is not an integer") from None
            elif key == "weight":
                try:
                    kwargs[key] = float(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"{where}: weight={value!r} is not a number") from None
            else:
                kwargs[key] = str(value)
        return cls(**kwargs)

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        """Parse ``name=...,images=...,labels=...`` (see the module docstring).

        Raises:
            ConfigError: malformed pairs, unknown keys, missing name/images/labels.
        """
        values: dict[str, str] = {}
        for part in (p for p in text.split(",") if p.strip()):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(
                    f"SOURCE {text!r}: {part!r} is not key=value (e.g. name=in100,images=DIR,labels=ground_truth)"
                )
            if key in values:
                raise ConfigError(f"SOURCE {text!r}: {key} given twice")
            values[key] = value.strip()
        return cls.from_mapping(values, f"SOURCE {text!r}")

    def resolved(self) -> SourceSpec:
        """The spec with absolute paths (as recorded in the manifest)."""
        paths = {k: str(Path(v).resolve()) for k in ("images", "tags", "match", "captions") if (v := getattr(self, k))}
        return dataclasses.replace(self, **paths)

    def to_text(self) -> str:
        """The spec back as ``key=value`` pairs (defaults left out), as recorded in the manifest."""
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                parts.append(f"{f.name}={value}")
        return ",".join(parts)


def load_sources_file(path: str | Path) -> list[SourceSpec]:
    """Read ``[[source]]`` tables from a TOML file (the same keys as a SOURCE string).

    Relative paths in the file are resolved against the file's directory.
    """
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--sources {path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--sources {path}: unreadable TOML ({exc})") from None
    tables = data.get("source")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"--sources {path}: expected one or more [[source]] tables")
    specs = []
    for i, table in enumerate(tables, start=1):
        table = dict(table)
        for key in ("images", "tags", "match", "captions"):
            if key in table and not Path(str(table[key])).is_absolute():
                table[key] = str(path.parent / str(table[key]))
        specs.append(SourceSpec.from_mapping(table, f"--sources {path}, [[source]] #{i}"))
    return specs


def like_budget(value: str | None) -> Path | None:
    """``--budget like:DIR``: the balance output whose per-class counts the new dataset copies."""
    if value is None or not str(value).startswith("like:"):
        return None
    directory = Path(str(value)[5:])
    if not any(any((directory / split).glob("*.parquet")) for split in ("train", "val")):
        raise ConfigError(f"--budget {value}: {directory} holds no train/ or val/ shard index (a janus balance output)")
    return directory


def parse_budget(value: str | None) -> tuple[float, bool] | None:
    """Parse ``--budget``: ``1x``, ``2x``, ``1/8x``, ``0.5x`` (a multiple) or ``N`` (a sample count).

    Returns ``(number, is_multiple)`` or None (also for ``like:DIR``, see :func:`like_budget`).
    """
    if value is None or str(value).strip() == "" or like_budget(value) is not None:
        return None
    text = str(value).strip().lower().replace("_", "").replace(",", "")
    multiple = text.endswith("x")
    body = text[:-1] if multiple else text
    try:
        if "/" in body:
            num, den = body.split("/", 1)
            number = float(num) / float(den)
        else:
            number = float(body)
    except (ValueError, ZeroDivisionError):
        number = math.nan
    if not math.isfinite(number):  # also nan/inf spelled out, which float() accepts
        raise ConfigError(
            f"--budget {value!r}: expected a multiple such as 1x, 2x, 1/8x, or a sample count such as 120000"
        )
    if number <= 0 or (not multiple and number != int(number)):
        raise ConfigError(f"--budget {value!r}: must be a positive multiple (…x) or a positive whole number of samples")
    return number, multiple


def __getattr__(name: str) -> Any:  # BalanceConfig moved to .config; old imports keep working
    if name == "BalanceConfig":
        from janus_build.balance.config import BalanceConfig

        return BalanceConfig
    raise AttributeError(name)
