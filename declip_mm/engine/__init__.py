from . import hooks  # noqa: F401
from . import ensemble, optim_constructor, schedulers  # noqa: F401,E402  (distillation engine)
