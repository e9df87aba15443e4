"""The options of ``janus balance``, with their defaults and validation in one place (light imports)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from janus_build.balance.captions import DEFAULT_TEMPLATE, CaptionRule, check_empty_policy, check_policy, check_template
from janus_build.balance.spec import (
    BALANCE_POLICIES,
    DEDUP_KINDS,
    DEFAULT_DEDUP,
    PAPER_BUDGET_UNIT,
    SourceSpec,
    parse_budget,
)
from janus_build.errors import ConfigError

#: options that never change the result: a run with other values resumes
VOLATILE = ("out", "overwrite", "command", "contamination")


@dataclass(frozen=True)
class BalanceConfig:
    """Options of ``janus balance`` (the CLI maps onto these one to one).

    Attributes:
        out: output directory (``train/``, ``val/``, ``_manifest.json``, ``README.md``, cards, plot).
        sources: the labelled inputs, in command-line order.
        labels: label set (``in100``, ``in1k`` or a TSV file).
        balance: ``none`` keeps the class distribution, ``cap`` caps classes (water-filling a
            budget), ``equal`` gives every class the same target, ``metaclip`` keeps each
            class's samples with probability ``t / max(count, t)``, ``t = max_per_class``
            (Xu et al. 2023, "Demystifying CLIP Data").
        min_per_class: fill classes up to this many samples from ``role=fill`` sources.
        max_per_class: cap every class at this many samples (seeded sampling); the threshold
            ``t`` of ``metaclip``.
        budget: ``1x``, ``2x``, ``4x``, ``10x``, ``20x``, ``1/8x`` or a sample count.
        budget_unit: samples in ``1x``: a number (default 120000, the paper's IN100) or a
            source name (1x = that source's eligible samples).
        seed: sampling seed.
        val_fraction: share of the selected samples held out as ``val`` by a stable hash of the key.
        shard_size: samples per output tar.
        dedup: which duplicate checks run: key, id (photo id), url, hash (exact image bytes).
        unknown_labels: ``error`` or ``drop`` rows whose label is not in the label set.
        missing_images: ``skip`` (report) or ``error`` on labelled rows without image bytes.
        contamination: optional contamination figures to carry into the cards: ``janus dedup``'s
            ``_contamination.json``, or its output directory.
        exclude_keys: parquet files with a ``key`` column (``janus dedup``'s
            ``exclude_keys.parquet``): those source keys are left out before selection.
        caption: the caption policy of every source whose SOURCE spec names none (``gtcaps``,
            ``classname-only``, ``ttd``, ``title``, ``tags``, ``blipcap``, ``annotcap``,
            ``prose``, ``blipcap+annotcap``, ``columns``); None: each source's caption columns.
        caption_template: the ``gtcaps`` template, one ``{}`` for the class name.
        empty_caption: a sample without caption: ``keep`` (empty ``txt``), ``drop`` (index row
            with status ``no_caption``, no tar member) or ``fallback:POLICY``.
        command: the command line that built the dataset (recorded in the cards).
        overwrite: replace an existing output.
    """

    out: str
    sources: tuple[SourceSpec, ...]
    labels: str = "in100"
    balance: str = "none"
    min_per_class: int | None = None
    max_per_class: int | None = None
    budget: str | None = None
    budget_unit: str = str(PAPER_BUDGET_UNIT)
    seed: int = 0
    val_fraction: float = 0.02
    shard_size: int = 10_000
    dedup: tuple[str, ...] = DEFAULT_DEDUP
    unknown_labels: str = "error"
    missing_images: str = "skip"
    exclude_keys: tuple[str, ...] = ()
    caption: str | None = None
    caption_template: str = DEFAULT_TEMPLATE
    empty_caption: str = "keep"
    contamination: str | None = field(default=None, compare=False)
    command: tuple[str, ...] | None = field(default=None, compare=False)
    overwrite: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("janus balance: give at least one SOURCE (or --sources FILE)")
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(
                f"SOURCE: name(s) {', '.join(repr(d) for d in dupes)} given to more than one source; names must be unique"
            )
        self._check_policy()
        if self.caption is not None:
            check_policy(self.caption, "--caption")
        check_template(self.caption_template)
        check_empty_policy(self.empty_caption)
        parse_budget(self.budget)
        self._check_budget_unit(names)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction {self.val_fraction}: expected 0 <= x < 1")
        if self.shard_size < 1:
            raise ConfigError(f"--shard-size {self.shard_size}: must be at least 1")
        bad = [d for d in self.dedup if d not in DEDUP_KINDS]
        if bad:
            raise ConfigError(
                f"--dedup {','.join(self.dedup)}: unknown check(s) {', '.join(bad)}; choose from {', '.join(DEDUP_KINDS)} or none"
            )
        if self.unknown_labels not in ("error", "drop"):
            raise ConfigError(f"--unknown-labels {self.unknown_labels!r}: expected error or drop")
        if self.missing_images not in ("skip", "error"):
            raise ConfigError(f"--missing-images {self.missing_images!r}: expected skip or error")
        if self.contamination is not None and not self.contamination_file().is_file():
            raise ConfigError(
                f"--contamination {self.contamination}: no such file (expected janus dedup's _contamination.json or its DIR)"
            )
        for path in self.exclude_keys:
            if not Path(path).is_file():
                raise ConfigError(f"--exclude-keys {path}: no such file (expected a parquet file with a 'key' column)")

    def caption_rule(self, spec: SourceSpec) -> CaptionRule:
        """How ``spec``'s captions are made: its own ``caption=`` policy, else ``--caption``, else its columns."""
        policy = spec.caption_policy or (None if spec.caption else self.caption) or "columns"
        return CaptionRule(policy, spec.caption_columns, self.caption_template, self.empty_caption)

    def contamination_file(self) -> Path:
        """``--contamination`` as a file: a ``janus dedup`` output directory gives its ``_contamination.json``."""
        path = Path(self.contamination or "")
        return path / "_contamination.json" if path.is_dir() else path

    def _check_policy(self) -> None:
        if self.balance not in BALANCE_POLICIES:
            raise ConfigError(f"--balance {self.balance!r}: expected one of {', '.join(BALANCE_POLICIES)}")
        for flag, value in (("--min-per-class", self.min_per_class), ("--max-per-class", self.max_per_class)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} {value}: must be at least 1")
        if self.min_per_class and self.max_per_class and self.min_per_class > self.max_per_class:
            raise ConfigError(
                f"--min-per-class {self.min_per_class} is larger than --max-per-class {self.max_per_class}"
            )
        if self.balance == "cap" and self.max_per_class is None and self.budget is None:
            raise ConfigError(
                "--balance cap needs --max-per-class N or --budget (the cap is then found by water-filling)"
            )
        if self.balance == "metaclip" and self.max_per_class is None:
            raise ConfigError("--balance metaclip needs --max-per-class T (the threshold t of t / max(count, t))")

    def _check_budget_unit(self, names: list[str]) -> None:
        if not self.budget_unit.isdigit() and self.budget_unit not in names:
            raise ConfigError(
                f"--budget-unit {self.budget_unit!r}: expected a sample count or a source name ({', '.join(names)})"
            )
        if self.budget_unit.isdigit() and int(self.budget_unit) < 1:
            raise ConfigError("--budget-unit must be at least 1")

    def manifest_config(self) -> dict[str, Any]:
        """The config as recorded in the manifest (sources as their spec strings)."""
        raw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "overwrite"}
        raw["sources"] = [s.resolved().to_text() for s in self.sources]
        if self.labels not in ("in100", "in1k") and Path(self.labels).is_file():
            raw["labels"] = str(Path(self.labels).resolve())  # janus train loads the label set from here
        raw["dedup"] = list(self.dedup)
        raw["exclude_keys"] = [str(Path(p).resolve()) for p in self.exclude_keys]
        raw["command"] = list(self.command) if self.command else None
        return raw
