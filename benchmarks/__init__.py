"""funcnn's benchmarks: speed as ratios measured side by side in one run (`python -m benchmarks`)."""
