"""OV-DQUO's OV-LVIS repeat-factor sampler: repeat factors and per-rank multinomial draws against an independent
numpy / torch computation of the original's formulas, and the relation to mmengine's ClassBalancedDataset."""
import math

import numpy as np
import pytest
import torch


class CatDataset:
    """len + mmdet's get_cat_ids (true labels >= 0, pseudo boxes -1)."""

    def __init__(self, cats):
        self.cats = cats

    def __len__(self):
        return len(self.cats)

    def get_cat_ids(self, idx):
        return list(self.cats[idx])


def lvis_like(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    cats = []
    for i in range(n):
        c = [0] * int(rng.integers(1, 4))          # class 0 in most images, several boxes each
        if i % 20 == 0:
            c += [1]                               # 100 images
        if i % 400 == 7:
            c += [2, 2]                            # 5 images
        if i == 1234:
            c += [3]                               # one image: the rare class
        if i % 50 == 3:
            c = [-1, -1]                           # pseudo boxes only
        if i % 97 == 5:
            c = []                                 # no box at all
        cats.append(c + [-1] * int(rng.integers(0, 3)))
    return cats


def independent_factors(cats, t):
    n = len(cats)
    sets = [set(c for c in cs if c >= 0) for cs in cats]
    classes = sorted(set().union(*sets))
    count = {c: sum(c in s for s in sets) for c in classes}
    r_c = {c: max(1.0, math.sqrt(t / ((count[c] + 0.001) / n))) for c in classes}
    return np.array([max([r_c[c] for c in s], default=1.0) for s in sets])


@pytest.mark.parametrize('t', [1.0, 0.001])
def test_repeat_factors_match_the_formula(t):
    from declip_mm.datasets.samplers import repeat_factors
    cats = lvis_like()
    ours = np.array(repeat_factors(CatDataset(cats), t))
    ref = independent_factors(cats, t)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    if t == 0.001:  # only the rare class is over-sampled: sqrt(0.001 * 2000 / 1.001)
        assert ours[1234] == pytest.approx(math.sqrt(2 / 1.001), rel=1e-12) and (np.delete(ours, 1234) == 1).all()
    else:  # t = 1: every class over-sampled, r(c) = sqrt(N / (n_c + 0.001))
        assert ours[1234] == pytest.approx(math.sqrt(2000 / 1.001), rel=1e-12)
        n1 = sum(1 in cs for cs in cats)  # image 20 holds classes 0 and 1; class 1 is the rarer
        assert ours[20] == pytest.approx(math.sqrt(2000 / (n1 + 0.001)), rel=1e-12)
    assert ours[3] == 1.0 and ours[5] == 1.0  # pseudo-only and empty images


def test_default_threshold_is_the_originals_effective_one():
    from declip_mm.datasets.samplers import RepeatFactorMultinomialSampler
    s = RepeatFactorMultinomialSampler(CatDataset(lvis_like(200)), seed=0)
    assert s.repeat_thr == 1.0
    np.testing.assert_allclose(s.weights, independent_factors(lvis_like(200), 1.0), rtol=1e-12)


@pytest.mark.parametrize('world', [1, 2, 3])
def test_draws_per_rank_match_the_original_rule(monkeypatch, world):
    from declip_mm.datasets import samplers
    cats = lvis_like(101)
    r = independent_factors(cats, 1.0)
    n = len(cats)
    num = math.ceil(n / world)
    for rank in range(world):
        monkeypatch.setattr(samplers, 'get_dist_info', lambda: (rank, world))
        s = samplers.RepeatFactorMultinomialSampler(CatDataset(cats), seed=0)
        assert len(s) == num
        for epoch in (0, 3):
            s.set_epoch(epoch)
            # independent: pad round-robin, this rank's shard, multinomial with replacement, generator seeded epoch
            idx = list(range(n)) + list(range(num * world - n))
            shard = idx[rank::world]
            g = torch.Generator().manual_seed(epoch)
            draw = torch.multinomial(torch.tensor([r[i] for i in shard], dtype=torch.float32), num, True, generator=g)
            assert list(s) == [shard[k] for k in draw.tolist()], (rank, epoch)
    monkeypatch.setattr(samplers, 'get_dist_info', lambda: (0, 1))
    s = samplers.RepeatFactorMultinomialSampler(CatDataset(cats), seed=0)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first  # a new epoch draws anew


def test_rare_images_are_drawn_more_often():
    from declip_mm.datasets.samplers import RepeatFactorMultinomialSampler
    cats = [[0]] * 990 + [[1]] * 10
    s = RepeatFactorMultinomialSampler(CatDataset(cats), repeat_thr=1.0, seed=0)
    draws = []
    for e in range(20):
        s.set_epoch(e)
        draws += list(s)
    rare = np.mean(np.array(draws) >= 990)
    # p(rare) = 10 sqrt(1000 / 10.001) / (10 sqrt(1000 / 10.001) + 990 sqrt(1000 / 990.001)) = 0.0909
    assert rare == pytest.approx(0.0909, abs=0.01)


def test_relation_to_class_balanced_dataset():
    """Same r(I) as mmengine's ClassBalancedDataset up to the +0.001 smoothing of f(c); that wrapper repeats each
    image ceil(r(I)) times (longer epoch) and counts the pseudo label -1 as a class."""
    from mmengine.dataset import BaseDataset, ClassBalancedDataset

    from declip_mm.datasets.samplers import RepeatFactorMultinomialSampler, repeat_factors

    class Tiny(BaseDataset):
        def __init__(self, cats):
            self.cats = cats
            super().__init__(lazy_init=True, serialize_data=False)

        def load_data_list(self):
            return [dict(i=i) for i in range(len(self.cats))]

        def get_cat_ids(self, idx):
            return list(self.cats[idx])

    cats = [[0]] * 950 + [[1]] * 40 + [[2]] * 10
    for t in (1.0, 0.001, 0.02):
        ds = Tiny(cats)
        cbd = ClassBalancedDataset(ds, oversample_thr=t, lazy_init=True)
        theirs = np.array(cbd._get_repeat_factors(ds, t))
        ours = np.array(repeat_factors(ds, t))
        n_c = np.array([950] * 950 + [40] * 40 + [10] * 10)
        # r = max(1, sqrt(t N / n)) vs max(1, sqrt(t N / (n + 0.001)))
        np.testing.assert_allclose(ours, np.maximum(1, theirs * np.sqrt(n_c / (n_c + 0.001))) * (theirs > 1)
                                   + (theirs <= 1), rtol=1e-12)
        cbd.full_init()
        assert len(cbd) == sum(math.ceil(x) for x in theirs)
        assert len(RepeatFactorMultinomialSampler(ds, t, seed=0)) == len(ds)
    ds = Tiny([[0], [-1, -1], [0]])
    assert ClassBalancedDataset(ds, 1.0, lazy_init=True)._get_repeat_factors(ds, 1.0)[1] > 1  # counts -1
    assert repeat_factors(ds, 1.0)[1] == 1.0


def test_built_from_the_registries():
    from mmdet.registry import DATA_SAMPLERS as DET_SAMPLERS
    from mmengine.registry import init_default_scope

    import declip_mm.datasets  # noqa: F401
    init_default_scope('mmdet')
    s = DET_SAMPLERS.build(dict(type='RepeatFactorMultinomialSampler', repeat_thr=0.001),
                           default_args=dict(dataset=CatDataset([[0], [1]]), seed=5))
    assert s.seed == 5 and s.repeat_thr == 0.001
