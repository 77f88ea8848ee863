"""The pieces of `experiments/prune_speed.py`, one idea a module; the script parses arguments and calls them.

- `config`: the networks (`MODELS`), their training budgets (`BUDGETS`, `QUICK`) and conv implementations.
- `tickets`: units and weights kept by a ticket; `expand` (a compacted ticket back to full shapes).
- `arms`: the trained arms cached in --out/arms (.npz + .json), and when a cached one is reused.
- `training`: phase 1, training every arm of one model (`train_model`).
- `speed`: phase 2, checking every variant against its masked dense net and timing it (`time_all`,
  with `funcnn.timing`).
- `report`: the summary, the markdown table and the figure, all functions of the results' JSON.
"""
