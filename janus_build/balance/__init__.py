"""``janus balance``: class rebalancing, data budgets and JANuS shards with provenance.

Modules: :mod:`.spec` (SOURCE syntax and the frozen config), :mod:`.sources` (slim candidate
index per source), :mod:`.select` (preference order, de-duplication, quotas, split),
:mod:`.build` (the run: selection, shard writing), :mod:`.card` (dataset card and plot).

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

from janus_build.balance.build import BalanceResult, balance
from janus_build.balance.select import BudgetError
from janus_build.balance.spec import BalanceConfig, SourceSpec, load_sources_file, parse_budget

__all__ = [
    "BalanceConfig",
    "BalanceResult",
    "BudgetError",
    "SourceSpec",
    "balance",
    "load_sources_file",
    "parse_budget",
]
