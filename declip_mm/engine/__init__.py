from . import hooks  # noqa: F401
from . import ensemble, schedulers  # noqa: F401,E402  (distillation engine)
from .ema import StateDictEMA  # noqa: F401,E402
