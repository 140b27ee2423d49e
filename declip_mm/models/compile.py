"""Optional ``torch.compile`` of transformer towers and heads ("regional" compilation).

A ViT is compiled block by block: every block of a ``blocks`` / ``resblocks`` ModuleList / Sequential gets
``nn.Module.compile`` (in place; parameters and state-dict keys are unchanged), so the identical blocks share one
compiled graph, compilation is quick and code that calls a block's parts directly (DeCLIP's decoupled last block)
keeps working eagerly. A module without such a list (a decode head, an RoI head) is compiled whole.

Used by ``DeCLIPDistiller(compile=...)`` and, for any other model, by ``CompileModulesHook``.
"""
from typing import Optional

import torch.nn as nn

BLOCK_LISTS = ('blocks', 'resblocks')


def compile_module(module: nn.Module, compile_cfg: Optional[dict] = None) -> int:
    """Compile ``module`` in place (its transformer blocks, else the whole module). Idempotent.

    Args:
        module: a model part (``DeCLIPViT``, ``VFMTeacher``, a head ...).
        compile_cfg: ``torch.compile`` kwargs (``backend``, ``mode``, ``dynamic`` ...).
    Returns:
        the number of modules newly compiled.
    """
    kw = dict(compile_cfg or {})
    blocks = [m for name, m in module.named_modules()
              if isinstance(m, (nn.ModuleList, nn.Sequential)) and name.rsplit('.', 1)[-1] in BLOCK_LISTS]
    targets = [b for lst in blocks for b in lst] if blocks else [module]
    n = 0
    for m in targets:
        if getattr(m, '_declip_compiled', False):
            continue
        m.compile(**kw)
        m._declip_compiled = True
        n += 1
    return n


def resolve_compile_cfg(compile) -> Optional[dict]:  # noqa: A002 - mirrors the config key
    """``False``/``None`` -> None (off); ``True`` -> ``{}``; a dict -> ``torch.compile`` kwargs."""
    if compile is None or compile is False:
        return None
    if compile is True:
        return {}
    if isinstance(compile, dict):
        return dict(compile)
    raise TypeError(f'compile must be a bool or a dict of torch.compile kwargs, got {compile!r}')
