"""Shared parts of `supermask` and `one_shot`: data and MLPs by preset, a population of dense nets trained together,
IMP tickets at given densities, and the evaluation and fine-tuning of many members in one compiled program."""
