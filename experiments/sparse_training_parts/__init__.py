"""The parts of experiments/sparse_training.py: the SET tutorial's computation (tutorial.py), the library's
methods as one population and the lottery engine's arms (library.py), the figures (figures.py)."""
