"""DDP wrapper of the distiller: mmengine's ``MMDistributedDataParallel`` whose ``train_step`` is the distiller's.

mmengine's DDP wrapper runs its own train step (forward, ``parse_losses``, ``update_params``) without calling the
model's; this one delegates to ``DeCLIPDistiller.distill_train_step`` so that the non-finite-loss check (skip the
step on every rank, no parameter update) also holds in multi-GPU training. Set by the DeCLIP configs as
``model_wrapper_cfg = dict(type='declip_mm.DeCLIPDistributedDataParallel')``.
"""
from mmengine.model import MMDistributedDataParallel

from declip_mm.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DeCLIPDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` (same arguments) running ``module.distill_train_step(self, ...)``."""

    def train_step(self, data, optim_wrapper):
        return self.module.distill_train_step(self, data, optim_wrapper)
