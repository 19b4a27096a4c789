"""The search: the GP's primitive set, the evolution loop, scoring workers, splits, survivor
admission, checkpoints and run results."""
