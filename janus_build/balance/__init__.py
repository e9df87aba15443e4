"""``janus balance``: class rebalancing, data budgets and JANuS shards with provenance.

Modules, in the order a run uses them: :mod:`.spec` (SOURCE syntax), :mod:`.config` (the
frozen options), :mod:`.sources` (slim candidate index per source), :mod:`.select` (the
arithmetic: preference keys, de-duplication, quotas, MetaCLIP sampling), :mod:`.plan` (the
selection plan, ``DIR/_selection.parquet``), :mod:`.reshard` (shards from the plan, validated
images, count check), :mod:`.provenance` (which licence/owner/title wins), :mod:`.card`
(README.md with a Hugging Face header, plot), :mod:`.croissant` (croissant.json) and
:mod:`.build` (the run: plan or resume, reshard, cards).

Python API::

    from janus_build.balance import BalanceConfig, SourceSpec, balance

    result = balance(BalanceConfig(
        out="janus_1x",
        sources=(
            SourceSpec.parse("name=in100,images=in100/images,labels=ground_truth,kind=imagenet"),
            SourceSpec.parse("name=flickr,images=fetch/images,tags=tags.parquet,role=fill,priority=2"),
        ),
        labels="in100", min_per_class=750, budget="1x", budget_unit="in100",
    ))
"""

from __future__ import annotations

from typing import Any

# Everything is imported on first use, so ``janus_build.balance.config`` (the CLI's options)
# loads without pyarrow, numpy or PIL.
_LAZY = {
    "BalanceResult": "janus_build.balance.build",
    "balance": "janus_build.balance.build",
    "run": "janus_build.balance.build",
    "BalanceConfig": "janus_build.balance.config",
    "BudgetError": "janus_build.balance.select",
    "SourceSpec": "janus_build.balance.spec",
    "load_sources_file": "janus_build.balance.spec",
    "parse_budget": "janus_build.balance.spec",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'janus_build.balance' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
