"""Templates, text-embedding generation (tools/gen_text_embeddings.py) and loading (.pt / .npy)."""
import numpy as np
import pytest
import torch

from declip_mm.models.roi_heads import TextEmbeddingClassifier, load_text_embeddings
from declip_mm.models.text.templates import (CATSEG_TEMPLATE, IMAGENET_TEMPLATES, VILD_TEMPLATES, class_sentences,
                                             vild_formatter)
from .conftest import load_tool


def test_templates():
    assert len(VILD_TEMPLATES) == 63 and len(IMAGENET_TEMPLATES) == 80
    assert CATSEG_TEMPLATE == 'A photo of a {} in the scene'
    s = class_sentences('cat')
    assert len(s) == 63 and 'This is a photo of a cat.' in s and 'There is a cat in the scene.' in s
    assert 'itap of my cat.' in s                      # no prefix for non-a/the sentences
    assert 'This is the toy cat.' in s
    assert 'There is an elephant in the scene.' in class_sentences('elephant')
    assert vild_formatter('a photo of {article} {}.', 'traffic_light') == 'This is a photo of a traffic light.'
    assert vild_formatter('{}', 'bus/truck.') == 'bus or truck'


def test_gen_tool_pt_and_npy_match(tmp_path):
    tool = load_tool('tools/gen_text_embeddings.py')
    pt, npy = str(tmp_path / 'e.pt'), str(tmp_path / 'e.npy')
    names = ['cat', 'traffic_light', 'elephant']
    tool.main(['--classes', ','.join(names), '--out', pt, '--npy', npy, '--tiny', 'eva', '--device', 'cpu'])
    d = torch.load(pt)
    assert list(d) == names + ['background']
    assert (tmp_path / 'e.names.txt').read_text().split('\n')[:4] == names + ['background']
    assert all(v.shape == (32, ) and abs(v.norm().item() - 1) < 1e-5 for v in d.values())
    a = load_text_embeddings(pt, names, num_classes=3, dim=32)
    b = load_text_embeddings(npy, names, num_classes=3, dim=32)
    assert a.shape == (4, 32) and torch.allclose(a, b, atol=1e-6)
    # rows follow the requested class order (selection by name)
    c = load_text_embeddings(pt, ['elephant', 'cat', 'traffic light'])
    assert torch.allclose(c[0], a[2]) and torch.allclose(c[1], a[0]) and torch.allclose(c[2], a[1])
    # the recipe: per-template normalise -> mean -> normalise, on the ViLD sentences
    from declip_mm.models.backbones import tiny_clip_overrides
    from declip_mm.models.text import CLIPTextEncoder
    torch.manual_seed(0)
    enc = CLIPTextEncoder('EVA02-B-16', tiny_clip_overrides('eva'))
    with torch.no_grad():
        sent = enc.encode_sentences(class_sentences('traffic_light'))
    ref = torch.nn.functional.normalize(sent.mean(0), dim=0)
    assert torch.allclose(d['traffic_light'], ref, atol=1e-5)
    # classifier built from either file gives the same logits
    x = torch.randn(5, 32)
    ca = TextEmbeddingClassifier(32, 4, text_embeddings=pt, class_names=names)
    cb = TextEmbeddingClassifier(32, 4, text_embeddings=npy, class_names=names)
    assert torch.allclose(ca(x), cb(x), atol=1e-5)


def test_npy_without_names_is_refused_and_rows_follow_names(tmp_path):
    """A .npy carries no names: refused alone; with its names file the rows are selected by name, so a file
    written in another class order still gives each class its own row."""
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(4, 16)).astype(np.float32)  # rows: dog, cat, bird, background
    npy = tmp_path / 'e.npy'
    np.save(npy, arr)
    with pytest.raises(ValueError, match='carries no class names'):
        load_text_embeddings(str(npy), ['cat', 'dog', 'bird'])
    with pytest.raises(ValueError, match='carries no class names'):
        TextEmbeddingClassifier(16, 4, text_embeddings=str(npy), class_names=['cat', 'dog', 'bird'])
    (tmp_path / 'e.names.txt').write_text('dog\ncat\nbird\nbackground\n')
    emb = load_text_embeddings(str(npy), ['cat', 'dog', 'bird'])
    unit = arr / np.linalg.norm(arr, axis=1, keepdims=True)
    assert np.allclose(emb.numpy(), unit[[1, 0, 2, 3]], atol=1e-6)  # cat, dog, bird, background
    # without class_names the classifier takes the file's names (compared with the dataset by OVClassCheckHook)
    clf = TextEmbeddingClassifier(16, 4, text_embeddings=str(npy))
    assert clf.class_names == ['dog', 'cat', 'bird']
    from types import SimpleNamespace

    from declip_mm.models.detectors import check_head_classes
    model = SimpleNamespace(roi_head=SimpleNamespace(bbox_head=SimpleNamespace(num_classes=3, fc_cls=clf)))
    check_head_classes(model, dict(classes=('dog', 'cat', 'bird')))
    with pytest.raises(ValueError, match='class_names differ'):
        check_head_classes(model, dict(classes=('cat', 'dog', 'bird')))
    # names file / array disagree
    (tmp_path / 'e.names.txt').write_text('dog\ncat\nbackground\n')
    with pytest.raises(ValueError, match='3 names'):
        load_text_embeddings(str(npy))
    (tmp_path / 'e.names.txt').write_text('dog\ncat\nbird\nfish\n')
    with pytest.raises(ValueError, match='no "background" row'):
        load_text_embeddings(str(npy))


def test_mismatch_errors(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(4, 16)).astype(np.float32)
    npy = str(tmp_path / 'e.npy')
    np.save(npy, arr)
    (tmp_path / 'e.names.txt').write_text('a\nb\nc\nbackground\n')
    with pytest.raises(ValueError, match='3 class embeddings .* 5 classes'):
        load_text_embeddings(npy, num_classes=5)
    with pytest.raises(ValueError, match='background row'):
        load_text_embeddings(npy, num_classes=4)
    with pytest.raises(ValueError, match='dimension 16'):
        load_text_embeddings(npy, num_classes=3, dim=32)
    pt = str(tmp_path / 'e.pt')
    torch.save({'cat': torch.randn(16), 'background': torch.randn(16)}, pt)
    with pytest.raises(KeyError, match='no text embedding'):
        load_text_embeddings(pt, ['cat', 'dog'])
    with pytest.raises(ValueError, match='class names'):
        TextEmbeddingClassifier(16, 4, text_embeddings=pt, class_names=['cat', 'dog'])
    with pytest.raises(FileNotFoundError):
        load_text_embeddings(str(tmp_path / 'missing.pt'))
