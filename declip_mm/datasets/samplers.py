"""OV-DQUO's LVIS repeat-factor sampler (multinomial draws with replacement, per rank).

Repeat factors (LVIS paper; OV-DQUO ``datasets/ov_lvis.py``): over the N images of the dataset,

* f(c) = (#images with a true box of class c + 0.001) / N;
* r(c) = max(1, sqrt(t / f(c)));
* r(I) = max over the classes of image I of r(c); 1 for an image without true boxes (pseudo boxes, label -1, do not
  count).

Sampling (OV-DQUO ``datasets/distributed_weighted_sampler.py``): the index list is padded to a multiple of the world
size and split round-robin (``indices[rank::world]``); each rank draws ``ceil(N / world)`` indices of its shard
**with replacement**, with probability proportional to r(I), from a generator seeded with ``seed + epoch``.

The threshold: OV-DQUO's configs set 0.001 but the reader receives ``repeat_threshold and image_set == 'train'``,
i.e. ``True`` (= 1.0), so the published OV-LVIS models were trained with t = 1: r(c) = 1 / sqrt(f(c)) for every
class, a much stronger over-sampling.  ``repeat_thr=1.0`` (the default) reproduces that; ``repeat_thr=0.001`` is the
intended LVIS value.

Compared with mmengine's ``ClassBalancedDataset(oversample_thr=t)``: the same r(I) up to the +0.001 smoothing of
f(c), but that wrapper repeats every image ceil(r(I)) times deterministically (a longer epoch), while this sampler
keeps the epoch at N images and draws them with probability proportional to r(I).  ``ClassBalancedDataset`` would
also count the pseudo boxes' label -1 as a class.
"""
import math
from typing import Iterator, List, Optional, Sized

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmdet.registry import DATA_SAMPLERS as DET_DATA_SAMPLERS
from torch.utils.data import Sampler

from declip_mm.registry import DATA_SAMPLERS, register_everywhere


def repeat_factors(dataset, repeat_thr: float = 1.0) -> List[float]:
    """r(I) for every image of ``dataset`` (anything with ``__len__`` and mmdet's ``get_cat_ids``), see module doc."""
    n = len(dataset)
    if n == 0:
        return []
    cats = [{int(c) for c in dataset.get_cat_ids(i) if c >= 0} for i in range(n)]
    count = {}
    for cs in cats:  # accumulated as the original does: 0.001, then +1 per image
        for c in cs:
            count[c] = count.get(c, 1e-3) + 1
    cat_rep = {c: max(1.0, math.sqrt(repeat_thr / (v / n))) for c, v in count.items()}
    return [max((cat_rep[c] for c in cs), default=1.0) for cs in cats]


@register_everywhere(DATA_SAMPLERS, DET_DATA_SAMPLERS)
class RepeatFactorMultinomialSampler(Sampler):
    """Repeat-factor sampler of OV-DQUO's OV-LVIS training (module doc).

    Args:
        dataset: the training dataset (``get_cat_ids``: true labels >= 0, pseudo -1).
        repeat_thr: t.  1.0 (default) = what OV-DQUO's published models used (its 0.001 became ``True``);
            0.001 = the configured / LVIS value.
        seed: generator seed, offset by the epoch; None -> a random seed shared by all ranks.  The original seeds
            with the epoch alone (seed 0).
        replacement: draw with replacement (the original's setting).
    """

    def __init__(self, dataset: Sized, repeat_thr: float = 1.0, seed: Optional[int] = None,
                 replacement: bool = True) -> None:
        rank, world_size = get_dist_info()
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset
        self.repeat_thr = float(repeat_thr)
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.replacement = replacement
        self.epoch = 0
        self.num_samples = math.ceil(len(dataset) / world_size)
        self.total_size = self.num_samples * world_size
        self.weights = repeat_factors(dataset, self.repeat_thr)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        n = len(self.dataset)
        indices = list(range(n)) * math.ceil(self.total_size / max(n, 1))
        shard = indices[:self.total_size][self.rank:self.total_size:self.world_size]
        weights = torch.tensor([self.weights[i] for i in shard])  # float32, as the original
        draw = torch.multinomial(weights, self.num_samples, self.replacement, generator=g)
        return iter(torch.tensor(shard)[draw].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
