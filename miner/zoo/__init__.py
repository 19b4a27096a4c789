"""The factor zoo: classic formula sets shipped with the package, to measure mined factors against.

Each set is a YAML file in `miner/zoo/sets/`. Loading one reads the file only: its formulas are
parsed (and the kernels loaded) when something evaluates them.
"""

from miner.zoo.loader import ZooFactor, default_prefix, load_zoo, prefixed, zoo_names

__all__ = ["ZooFactor", "default_prefix", "load_zoo", "prefixed", "zoo_names"]
