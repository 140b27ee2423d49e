from . import distill_hooks, correlation_vis_hook  # noqa: F401,E402  (distillation hooks)
