from . import compat  # noqa: F401  (applies the lvis/numpy-2 fix before lvis is imported)
