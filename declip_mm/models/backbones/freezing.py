"""One rule for which parameters of a CLIP tower train: frozen, all, the last N blocks, or name patterns."""
import fnmatch
from typing import Callable, Optional, Sequence, Union

import torch.nn as nn


def apply_trainable_rule(module: nn.Module, frozen: bool, trainable: Union[None, str, int, Sequence[str]],
                         frozen_patterns: Sequence[str] = (),
                         last_blocks: Optional[Callable[[int], set]] = None) -> set:
    """Set ``requires_grad`` on ``module``'s parameters and return the names left trainable.

    Args:
        frozen: freeze everything (the other arguments are ignored).
        trainable: ``None``/``'all'``; an int N (needs ``last_blocks(N)`` -> names of the last N blocks); or a list
            of fnmatch patterns over ``module.named_parameters()`` names.
        frozen_patterns: fnmatch patterns frozen after ``trainable`` is applied.
    """
    names = [n for n, _ in module.named_parameters()]
    if frozen:
        keep = set()
    elif trainable in (None, 'all'):
        keep = set(names)
    elif isinstance(trainable, int) and not isinstance(trainable, bool):
        if last_blocks is None:
            raise ValueError(f'trainable={trainable}: this module has no numbered blocks; use patterns')
        keep = last_blocks(trainable)
    elif isinstance(trainable, (list, tuple)):
        keep = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in trainable)}
        if not keep:
            raise ValueError(f'trainable patterns {list(trainable)} match no parameter; names look like {names[:3]}')
    else:
        raise ValueError(f"trainable must be None, 'all', an int or a list of patterns, got {trainable!r}")
    keep = {n for n in keep if not any(fnmatch.fnmatchcase(n, p) for p in frozen_patterns)}
    for n, p in module.named_parameters():
        p.requires_grad_(n in keep)
    return keep
