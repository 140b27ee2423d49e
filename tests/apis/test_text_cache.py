"""DeCLIPTextEncoder: prompt-ensemble embeddings (open_clip's zero-shot classifier), memory + disk cache keys."""
import os

import pytest
import torch
import torch.nn.functional as F

from declip_mm.models.backbones import tiny_clip_overrides
from declip_mm.models.text import DeCLIPTextEncoder
from declip_mm.models.text.templates import IMAGENET_TEMPLATES


def tiny_encoder(seed=0, **kw):
    torch.manual_seed(seed)
    return DeCLIPTextEncoder('EVA02-B-16', tiny_clip_overrides('eva'), **kw).eval()


def hand_embed(enc, names, templates, fmt=lambda t, n: t.format(n)):
    """Independent recipe: tokenize -> encode_text -> per-sentence L2 -> mean over templates -> L2."""
    rows = []
    with torch.no_grad():
        for n in names:
            x = enc.clip.encode_text(enc.tokenizer([fmt(t, n) for t in templates]))
            rows.append(F.normalize(F.normalize(x, dim=-1).mean(0), dim=0))
    return torch.stack(rows)


def test_embed_classes_matches_hand_recipe():
    enc = tiny_encoder(batch_size=5)  # 5 // 3 templates -> 1 class per text-tower batch: batching is exercised
    names, templates = ['cat', 'traffic light', 'dog'], ['a photo of a {}.', 'the {}.', 'itap of my {}.']
    with torch.no_grad():
        got = enc.embed_classes(names, templates)
    ref = hand_embed(enc, names, templates)
    assert got.shape == (3, 32)
    assert (got - ref).abs().max() < 1e-5  # catches: no per-sentence norm, mean -> sum without renorm, row order


def test_grad_path_equals_cached_path():
    enc = tiny_encoder()
    for p in enc.parameters():
        p.requires_grad_(True)
    names, templates = ['cat', 'dog'], ['a {}.', 'the {}.']
    g = enc.embed_classes(names, templates)  # grad enabled + trainable: own loop, differentiable
    assert g.requires_grad
    with torch.no_grad():
        c = enc.embed_classes(names, templates)  # open_clip's build_zero_shot_classifier
    assert (g.detach() - c).abs().max() < 1e-5


def test_imagenet_templates_are_open_clips():
    from open_clip import OPENAI_IMAGENET_TEMPLATES
    assert len(IMAGENET_TEMPLATES) == 80
    # pinned against the OpenAI CLIP notebook's list (first, a middle one, last)
    assert IMAGENET_TEMPLATES[0] == 'a bad photo of a {}.' and IMAGENET_TEMPLATES[-1] == 'a tattoo of the {}.'
    assert IMAGENET_TEMPLATES[35] == 'a {} in a video game.'
    assert [t.format('dog') for t in IMAGENET_TEMPLATES] == [f('dog') for f in OPENAI_IMAGENET_TEMPLATES]


def test_memory_cache_keys_on_sentences_not_formatter_name():
    """Issue 9 item 9: two lambdas share a __qualname__; the old key returned the first one's embeddings."""
    enc = tiny_encoder()
    fmts = [lambda t, n: t.format(n), lambda t, n: t.format(n.upper() + ' thing')]
    assert fmts[0].__qualname__ == fmts[1].__qualname__
    with torch.no_grad():
        a = enc.embed_classes(['cat'], ['a {}.'], fmts[0])
        b = enc.embed_classes(['cat'], ['a {}.'], fmts[1])
    ref_b = hand_embed(enc, ['cat'], ['a {}.'], fmts[1])
    assert (b - ref_b).abs().max() < 1e-5
    assert (a - b).abs().max() > 1e-3
    with torch.no_grad():
        assert enc.embed_classes(['cat'], ['a {}.'], fmts[1]) is b  # same sentences + weights: cache hit


def count_text_calls(enc):
    calls = []
    orig = enc.clip.encode_text

    def wrapped(*a, **k):
        calls.append(1)
        return orig(*a, **k)
    enc.clip.encode_text = wrapped
    return calls


def test_disk_cache_hit_and_keys(tmp_path):
    cache = str(tmp_path / 'cache')
    names, templates = ['cat', 'dog'], ['a photo of a {}.', 'the {}.']
    enc = tiny_encoder(cache_dir=cache)
    with torch.no_grad():
        first = enc.embed_classes(names, templates)
    assert len(os.listdir(cache)) == 1
    # a new encoder with the same weights: read from disk, the text tower is not run
    enc2 = tiny_encoder(cache_dir=cache)
    calls = count_text_calls(enc2)
    with torch.no_grad():
        second = enc2.embed_classes(names, templates)
    assert not calls and torch.equal(first, second)
    # other words / templates / weights: new entries, recomputed
    with torch.no_grad():
        enc2.embed_classes(names + ['bird'], templates)
        enc2.embed_classes(names, templates[:1])
    assert len(calls) == 2 and len(os.listdir(cache)) == 3
    enc3 = tiny_encoder(seed=5, cache_dir=cache)  # other weights, same words
    with torch.no_grad():
        third = enc3.embed_classes(names, templates)
    assert (third - hand_embed(enc3, names, templates)).abs().max() < 1e-5
    assert len(os.listdir(cache)) == 4
    # an in-place weight update (an optimizer step) changes the key too
    with torch.no_grad():
        next(enc3.parameters()).add_(0.5)
        fourth = enc3.embed_classes(names, templates)
    assert (fourth - hand_embed(enc3, names, templates)).abs().max() < 1e-5
    assert len(os.listdir(cache)) == 5


def test_corrupt_cache_file_is_recomputed(tmp_path):
    cache = str(tmp_path / 'c')
    enc = tiny_encoder(cache_dir=cache)
    with torch.no_grad():
        a = enc.embed_classes(['cat'], ['a {}.'])
    f = os.path.join(cache, os.listdir(cache)[0])
    with open(f, 'wb') as fh:
        fh.write(b'garbage')
    enc2 = tiny_encoder(cache_dir=cache)
    with pytest.warns(UserWarning, match='unreadable'), torch.no_grad():
        b = enc2.embed_classes(['cat'], ['a {}.'])
    assert torch.allclose(a, b, atol=1e-6)


def test_gen_text_embeddings_shows_progress(tmp_path, capsys):
    from .conftest import load_tool
    tool = load_tool('tools/gen_text_embeddings.py')
    tool.main(['--classes', 'cat,dog,bird', '--out', str(tmp_path / 'e.pt'), '--tiny', 'eva', '--device', 'cpu'])
    cap = capsys.readouterr()
    assert 'encoding 4 names x 63 templates' in cap.out
    assert '4/4' in cap.err  # tqdm over class batches, counted in names (3 + background)
