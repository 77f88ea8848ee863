"""The strategy experiments' shared plumbing (`pruning_at_init`, `rewinding`): a package, not an experiment."""
