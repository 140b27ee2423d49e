"""Issue 18: the inference path as a user meets it (defects 2-16, one test each, named after the defect)."""
import glob
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch

from .conftest import CATSEG_CFG, DET_CFG, REPO, ZS_CFG, load_cfg, load_tool, photo_path


@pytest.fixture(scope='module')
def infer_tool():
    return load_tool('tools/infer.py')


@pytest.fixture(scope='module')
def same_name_tree(tmp_path_factory):
    """a/photo.jpg, a/photo.png, b/photo.jpg: three different small photos with one name stem."""
    import mmcv
    root = tmp_path_factory.mktemp('same_names')
    img = mmcv.imread(photo_path())
    os.makedirs(root / 'a')
    os.makedirs(root / 'b')
    mmcv.imwrite(img[:120, :100], str(root / 'a' / 'photo.jpg'))
    mmcv.imwrite(img[200:330, 150:240], str(root / 'a' / 'photo.png'))
    mmcv.imwrite(img[300:400, 300:420], str(root / 'b' / 'photo.jpg'))
    return str(root)


def _no_build(tool, monkeypatch):
    """Make the (slow) model build fail loudly: checks must come before it."""
    def boom(*a, **k):
        raise AssertionError('the model was built before the input was checked')
    monkeypatch.setattr(tool, 'build_inferencer', boom)


# --------------------------------------------------------------------------------------------------- defect 2
def test_d2_unlabelled_pixels_are_not_class_255_with_300_classes(photo, tmp_path, infer_tool):
    """Training-free, 300 classes, a probability threshold: pixels below it are unlabelled, never class #255
    (catches: unlabelled value 255 while 255 is a class index; `present` counting it)."""
    from declip_mm.apis import OVSegInferencer
    names = [f'thing number {i}' for i in range(300)]
    cfg = load_cfg(ZS_CFG)
    cfg.model.save_seg_logits = True
    torch.manual_seed(0)  # the tiny CLIP is random: the same seed builds the same model twice
    free = OVSegInferencer(cfg, None, device='cpu', cache_dir='', show_progress=False)
    ds = free(photo, texts=names, return_datasamples=True)['predictions'][0]
    probs = ds.seg_logits.data  # (300, H, W) class probabilities
    best, arg = probs.max(dim=0)
    thr = float(best.median())
    torch.manual_seed(0)
    thr_inf = OVSegInferencer(ZS_CFG, None, device='cpu', cache_dir='', show_progress=False, prob_thd=thr)
    res = thr_inf(photo, texts=names)
    pred = res['predictions'][0]
    seg = pred['sem_seg']
    dropped = (best < thr).numpy()
    assert 0.2 < dropped.mean() < 0.8
    assert np.array_equal(seg[~dropped], arg.numpy()[~dropped])
    assert set(np.unique(seg[dropped])) == {res['unlabelled']} and res['unlabelled'] >= 300
    # shares of the named classes only: the unlabelled pixels belong to no class
    assert sum(pred['present'].values()) == pytest.approx(1 - dropped.mean())
    share_255 = float(((arg.numpy() == 255) & ~dropped).mean())
    assert pred['present'].get(names[255], 0.0) == pytest.approx(share_255)
    # the CLI's label map: uint16 (more than 255 classes), unlabelled pixels hold the documented value
    import mmcv
    out = str(tmp_path / 'cli')
    vocab = tmp_path / 'v.txt'
    vocab.write_text('\n'.join(names) + '\n')
    torch.manual_seed(0)
    infer_tool.main(['zeroshot', ZS_CFG, photo, '--texts', str(vocab), '--prob-thr', str(thr), '--out-dir', out,
                     '--device', 'cpu', '--cache-dir', ''])
    with open(osp.join(out, 'predictions.json'), encoding='utf-8') as f:
        js = json.load(f)
    lab = mmcv.imread(osp.join(out, js['predictions'][0]['label_map']), flag='unchanged')
    assert lab.dtype == np.uint16 and js['unlabelled'] == res['unlabelled']
    assert np.array_equal(lab, seg)


# --------------------------------------------------------------------------------------------------- defect 3
def test_d3_missing_vocabulary_file_is_an_error(tmp_path, infer_tool, monkeypatch):
    from declip_mm.apis import parse_vocabulary
    for missing in ('missing_file.txt', str(tmp_path / 'classes.json'), 'my_classes.TXT'):
        with pytest.raises(FileNotFoundError, match=r'vocabulary file not found.*' + osp.basename(missing)):
            parse_vocabulary(missing)
    assert parse_vocabulary('traffic light').names == ['traffic light']  # a plain name is still a name
    _no_build(infer_tool, monkeypatch)
    with pytest.raises(SystemExit, match='vocabulary file not found: missing_file.txt'):
        infer_tool.main(['zeroshot', ZS_CFG, photo_path(), '--texts', 'missing_file.txt', '--out-dir',
                         str(tmp_path / 'o')])


# --------------------------------------------------------------------------------------------------- defect 4
def test_d4_output_names_never_collide(same_name_tree, tmp_path, infer_tool, det_ckpt):
    """a/photo.jpg, a/photo.png, b/photo.jpg: three pictures, three label maps, three json files, all distinct
    (catches: output named by basename / by stem)."""
    import mmcv
    from declip_mm.apis.base import output_names
    inputs = [osp.join(same_name_tree, p) for p in ('a/photo.jpg', 'a/photo.png', 'b/photo.jpg')]
    names = output_names(inputs)
    assert names == ['a/photo_jpg', 'a/photo_png', 'b/photo']
    assert output_names([osp.join(same_name_tree, 'a/photo.jpg')]) == ['photo']  # mmdet's name when unique
    out = str(tmp_path / 'zs')
    infer_tool.main(['zeroshot', ZS_CFG] + inputs + ['--texts', 'sky, person', '--out-dir', out, '--device', 'cpu',
                                                     '--cache-dir', ''])
    with open(osp.join(out, 'predictions.json'), encoding='utf-8') as f:
        js = json.load(f)
    maps = [p['label_map'] for p in js['predictions']]
    assert len(set(maps)) == 3 and all(osp.isfile(osp.join(out, m)) for m in maps)
    for p in js['predictions']:  # each label map has the size of its own input
        assert mmcv.imread(osp.join(out, p['label_map']), flag='unchanged').shape == mmcv.imread(p['input']).shape[:2]
    assert len(glob.glob(osp.join(out, 'vis', '**', '*.*'), recursive=True)) == 3
    out = str(tmp_path / 'det')
    infer_tool.main(['det', DET_CFG] + inputs + ['--weights', det_ckpt, '--texts', 'person', '--out-dir', out,
                                                 '--device', 'cpu', '--cache-dir', ''])
    assert sorted(osp.relpath(p, out) for p in glob.glob(osp.join(out, '*', '**', '*.*'), recursive=True)) == [
        'preds/a/photo_jpg.json', 'preds/a/photo_png.json', 'preds/b/photo.json',
        'vis/a/photo_jpg.jpg', 'vis/a/photo_png.png', 'vis/b/photo.jpg']


# --------------------------------------------------------------------------------------------------- defect 5
def test_d5_interrupted_run_keeps_what_was_done(same_name_tree, tmp_path, infer_tool, monkeypatch):
    from declip_mm.apis import OVSegInferencer
    orig = OVSegInferencer.forward
    calls = []

    def forward(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return orig(self, *a, **k)
    monkeypatch.setattr(OVSegInferencer, 'forward', forward)
    out = str(tmp_path / 'o')
    with pytest.raises(KeyboardInterrupt):
        infer_tool.main(['zeroshot', ZS_CFG, osp.join(same_name_tree, 'a'), osp.join(same_name_tree, 'b'),
                         '--texts', 'sky, person', '--out-dir', out, '--device', 'cpu', '--cache-dir', ''])
    with open(osp.join(out, 'predictions.json'), encoding='utf-8') as f:
        js = json.load(f)
    assert js['complete'] is False and len(js['predictions']) == 1
    assert osp.isfile(osp.join(out, js['predictions'][0]['label_map']))
    assert len(glob.glob(osp.join(out, 'vis', '**', '*.*'), recursive=True)) == 1


# --------------------------------------------------------------------------------------------------- defect 6
def test_d6_absent_clip_file_fails_before_encoding(tmp_path, photo, infer_tool):
    from declip_mm.apis import OVSegInferencer
    from declip_mm.models.backbones import tiny_clip_overrides
    from declip_mm.models.text import DeCLIPTextEncoder
    cache = tmp_path / 'cache'
    enc = DeCLIPTextEncoder('EVA02-B-16', tiny_clip_overrides('eva'), checkpoint=str(tmp_path / 'clip.pt'),
                            cache_dir=str(cache))
    with pytest.raises(FileNotFoundError, match='clip.pt'), torch.no_grad():
        enc.embed_classes(['cat'], ['a {}.'])
    assert not cache.exists() or not os.listdir(cache)  # no junk cache entry
    cfg = load_cfg(ZS_CFG, **{'model.text_encoder.checkpoint': str(tmp_path / 'clip.pt')})
    with pytest.raises(FileNotFoundError, match='clip.pt'):
        OVSegInferencer(cfg, None, device='cpu', cache_dir=str(cache), show_progress=False)  # at build
    assert not cache.exists() or not os.listdir(cache)
    with pytest.raises(SystemExit) as e:
        infer_tool.main(['zeroshot', ZS_CFG, photo, '--texts', 'cat', '--out-dir', str(tmp_path / 'o'),
                         '--cfg-options', f'model.text_encoder.checkpoint={tmp_path}/clip.pt', '--device', 'cpu'])
    assert str(e.value).startswith('error:') and 'clip.pt' in str(e.value) and '\n' not in str(e.value)


# --------------------------------------------------------------------------------------------------- defect 7
def test_d7_user_errors_are_one_line_and_found_before_the_build(tmp_path, photo, infer_tool, monkeypatch):
    _no_build(infer_tool, monkeypatch)
    empty = tmp_path / 'empty'
    empty.mkdir()
    a_file = tmp_path / 'file.txt'
    a_file.write_text('x')
    out = str(tmp_path / 'o')
    cases = [
        (['det', DET_CFG, photo, '--texts', 'person, background'], 'reserved'),
        (['det', DET_CFG, photo, '--base-texts', 'dog'], "base texts not in the vocabulary.*'dog'"),
        (['zeroshot', ZS_CFG, str(empty), '--texts', 'cat'], 'no image files in'),
        (['zeroshot', ZS_CFG, str(tmp_path / 'nope.jpg'), '--texts', 'cat'], 'not found'),
        (['zeroshot', ZS_CFG, photo, '--texts', 'cat', '--batch-size', '0'], 'batch-size'),
        (['zeroshot', ZS_CFG, photo, '--texts', 'cat', '--out-dir', str(a_file)], 'is a file'),
        (['zeroshot', ZS_CFG, photo, '--texts', 'cat', '--device', 'cuda:99'], 'cuda'),
        (['zeroshot', ZS_CFG, photo, '--texts', 'cat', '--device', 'gpu'], 'device'),
        (['zeroshot', ZS_CFG, photo, '--texts', 'cat', '--weights', str(tmp_path / 'w.pth')], 'not found'),
    ]
    for argv, msg in cases:
        if '--out-dir' not in argv:
            argv = argv + ['--out-dir', out]
        with pytest.raises(SystemExit) as e:
            infer_tool.main(argv)
        text = str(e.value)
        assert e.value.code not in (0, None) and '\n' not in text.strip(), argv
        assert __import__('re').search(msg, text), (argv, text)
    assert not osp.exists(out)  # nothing written on a refused run


def test_d7_no_readable_image_is_an_error(tmp_path, infer_tool):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not an image')
    out = str(tmp_path / 'o')
    with pytest.raises(SystemExit, match='none of the 1 image.*broken.jpg'), pytest.warns(UserWarning):
        infer_tool.main(['zeroshot', ZS_CFG, str(bad), '--texts', 'cat', '--out-dir', out, '--device', 'cpu',
                         '--cache-dir', ''])
    with open(osp.join(out, 'predictions.json'), encoding='utf-8') as f:
        assert json.load(f)['skipped'][0]['input'] == str(bad)


def test_d7_api_batch_size_and_empty_folder(tmp_path):
    from declip_mm.apis import OVSegInferencer
    inf = OVSegInferencer(ZS_CFG, None, device='cpu', cache_dir='', show_progress=False)
    with pytest.raises(ValueError, match='batch_size'):
        inf(photo_path(), texts='cat', batch_size=0)
    (tmp_path / 'e').mkdir()
    with pytest.raises(ValueError, match='no image files in'):
        inf(str(tmp_path / 'e'), texts='cat')


# --------------------------------------------------------------------------------------------------- defect 8
def test_d8_vocabulary_encoding_shows_progress(photo, capfd):
    from declip_mm.apis import OVSegInferencer
    inf = OVSegInferencer(ZS_CFG, None, device='cpu', cache_dir='', show_progress=True)
    names = [f'thing {i}' for i in range(40)]
    inf.set_vocabulary(names)
    cap = capfd.readouterr()
    assert 'encoding 40 names x 2 templates' in cap.out + cap.err
    assert '40/40' in cap.err  # the bar, counted in names
    inf.set_vocabulary(names[:39])  # same words minus one: encoded again, announced again
    assert 'encoding 39 names' in ''.join(capfd.readouterr())
    inf.set_vocabulary(names[:39])  # cached: silent
    assert 'encoding' not in ''.join(capfd.readouterr())


# --------------------------------------------------------------------------------------------------- defect 9
def test_d9_catseg_says_it_drops_synonyms(catseg_ckpt, photo):
    from declip_mm.apis import OVSegInferencer
    inf = OVSegInferencer(CATSEG_CFG, catseg_ckpt, device='cpu', cache_dir='', show_progress=False)
    with pytest.warns(UserWarning, match=r"first name of each class.*'person': \['woman', 'lady'\]"):
        inf.set_vocabulary('person; woman; lady, wall')
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        inf.set_vocabulary('person, wall')  # no synonyms: no warning


# --------------------------------------------------------------------------------------------------- defect 10
def test_d10_case_only_duplicates_are_refused():
    from declip_mm.apis import parse_vocabulary
    for texts in ('Cat, cat', 'cat, dog, CAT ', ['Dog', ['dog', 'puppy']], 'traffic  light, Traffic light'):
        with pytest.raises(ValueError, match='duplicated'):
            parse_vocabulary(texts)
    assert parse_vocabulary('cat, category').names == ['cat', 'category']
    assert len(parse_vocabulary('catseg_ade847')) == 847  # shared synonyms are fine


# --------------------------------------------------------------------------------------------------- defect 11
def _draw_det(visualizer, name, img):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    ds = DetDataSample()
    ds.pred_instances = InstanceData(bboxes=torch.tensor([[20., 30., 150., 120.]]), labels=torch.tensor([0]),
                                     scores=torch.tensor([0.9]))
    visualizer.dataset_meta = dict(classes=[name], palette=[(220, 20, 60)])
    visualizer.add_datasample('x', img, ds, draw_gt=False, pred_score_thr=0.3)
    return visualizer.get_image()


def test_d11_non_latin_names_are_drawn_in_detection_pictures(det_ckpt):
    """Two different CJK names must give two different label pictures (a font without the glyphs draws the same
    empty boxes for both); a Latin name is drawn exactly as mmdet draws it."""
    import warnings
    from mmdet.visualization import DetLocalVisualizer
    from declip_mm.apis import OVDetInferencer
    inf = OVDetInferencer(DET_CFG, det_ckpt, device='cpu', cache_dir='', show_progress=False)
    img = np.full((160, 200, 3), 128, np.uint8)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        a = _draw_det(inf.visualizer, '东京塔', img)
        b = _draw_det(inf.visualizer, '大阪城', img)
    assert not [x for x in w if 'missing from' in str(x.message)]  # matplotlib: "Glyph ... missing from font"
    label = (slice(20, 60), slice(15, 120))
    assert np.abs(a[label].astype(int) - b[label]).sum() > 500
    stock = DetLocalVisualizer(name='stock_det_vis_d11')
    assert np.array_equal(_draw_det(inf.visualizer, 'cafe', img), _draw_det(stock, 'cafe', img))


# --------------------------------------------------------------------------------------------------- defect 12
def test_d12_legend_lists_every_class_on_small_images():
    from declip_mm.visualization import draw_legend
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255),
               (128, 0, 0), (0, 128, 0), (0, 0, 128), (128, 128, 0)]
    for h in (40, 12, 3):
        img = np.zeros((h, 50, 3), np.uint8)
        out = draw_legend(img, list(range(10)), [f'class {i}' for i in range(10)], palette)
        panel = out[:, 50:]
        assert out.shape[0] >= h and np.array_equal(out[:h, :50], img)
        for c in palette:  # every class has its swatch in the legend
            assert (panel.reshape(-1, 3) == c).all(axis=1).any(), (h, c)


# --------------------------------------------------------------------------------------------------- defect 13
def test_d13_weights_flag_and_no_guessing(det_ckpt, photo, tmp_path, infer_tool, monkeypatch):
    from declip_mm.apis import OVDetInferencer
    tar = str(tmp_path / 'fvit.pth.tar')
    shutil.copy(det_ckpt, tar)
    out = str(tmp_path / 'o')
    infer_tool.main(['det', DET_CFG, photo, '--weights', tar, '--texts', 'person, tie', '--out-dir', out,
                     '--device', 'cpu', '--cache-dir', ''])
    with open(osp.join(out, 'predictions.json'), encoding='utf-8') as f:
        js = json.load(f)
    ref = OVDetInferencer(DET_CFG, det_ckpt, device='cpu', cache_dir='', show_progress=False)(
        photo, texts='person, tie')['predictions'][0]
    assert js['weights'] == tar and js['predictions'][0]['scores'] == pytest.approx(ref['scores'])
    _no_build(infer_tool, monkeypatch)
    with pytest.raises(SystemExit, match='--weights'):  # a checkpoint among the images: not taken for an image
        infer_tool.main(['det', DET_CFG, tar, photo, '--texts', 'person', '--out-dir', out])


# --------------------------------------------------------------------------------------------------- defect 14
def test_d14_help_texts(capsys):
    for tool, expect in (('tools/gen_text_embeddings.py', ['--checkpoint checkpoints/EVA02_CLIP_B_psz16_s8B.pt \\\n']),
                         ('tools/test.py', ['DumpDetResults', '--show-dir: painted']),
                         ('tools/infer.py', ['--weights CKPT'])):
        with pytest.raises(SystemExit):
            load_tool(tool).main(['--help']) if tool != 'tools/test.py' else load_tool(tool).parse_args(['--help'])
        text = capsys.readouterr().out
        for e in expect:
            assert e in text, (tool, e)
    usage = text.split('\n\n')[0]  # infer.py: one clear usage line, no optional checkpoint among the images
    assert 'CHECKPOINT' not in usage and 'IMAGE' in usage


# --------------------------------------------------------------------------------------------------- defect 15
def test_d15_json_keeps_non_ascii_readable(photo, tmp_path, infer_tool, det_ckpt):
    out = str(tmp_path / 'o')
    infer_tool.main(['det', DET_CFG, photo, '--weights', det_ckpt, '--texts', 'café, 东京塔', '--out-dir', out,
                     '--device', 'cpu', '--cache-dir', '', '--no-save-vis'])
    for path in [osp.join(out, 'predictions.json')] + glob.glob(osp.join(out, 'preds', '*.json')):
        with open(path, encoding='utf-8') as f:
            raw = f.read()
        assert '\\u' not in raw and ('café' in raw and '东京塔' in raw or 'label_names' in raw), path
    with open(osp.join(out, 'predictions.json'), encoding='utf-8') as f:
        assert json.load(f)['classes'] == ['café', '东京塔']


# --------------------------------------------------------------------------------------------------- defect 16
def test_d16_voc21_background_is_labelled_background(photo):
    from declip_mm.apis import OVSegInferencer, parse_vocabulary
    voc = parse_vocabulary('cls_voc21')
    assert voc.names[0] == 'background' and voc.synonyms[0][:2] == ['sky', 'wall'] and voc.names[1] == 'aeroplane'
    assert parse_vocabulary('cls_coco_object').names[0] == 'background'
    cfg = load_cfg(ZS_CFG, **{'model.class_names': 'cls_voc21', 'model.prob_thd': 0.4, 'model.background_index': 0})
    inf = OVSegInferencer(cfg, None, device='cpu', cache_dir='', show_progress=False)
    res = inf(photo)
    assert res['classes'][0] == 'background' and res['classes'][15] == 'person'
    assert 'sky' not in res['predictions'][0]['present']


def test_d13_weights_url_passes_the_cli_checks_and_is_downloaded(det_ckpt, photo, tmp_path, infer_tool, monkeypatch):
    """``--weights http://...`` is not refused as a missing file: it is fetched (from a server on 127.0.0.1 that the
    test starts) into the weights cache and gives the same boxes as the local file."""
    import functools
    import http.server
    import threading

    from declip_mm.utils import remote_files
    serve_dir = tmp_path / 'srv'
    serve_dir.mkdir()
    shutil.copy(det_ckpt, serve_dir / 'fvit_tiny.pth')
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')
    monkeypatch.setenv(remote_files.ENV_CACHE_DIR, str(tmp_path / 'cache'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve_dir))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{httpd.server_address[1]}/fvit_tiny.pth'
        out = str(tmp_path / 'o')
        infer_tool.main(['det', DET_CFG, photo, '--weights', url, '--texts', 'person, tie', '--out-dir', out,
                         '--device', 'cpu', '--cache-dir', '', '--no-save-vis'])
    finally:
        httpd.shutdown()
        httpd.server_close()
    with open(osp.join(out, 'predictions.json'), encoding='utf-8') as f:
        js = json.load(f)
    from declip_mm.apis import OVDetInferencer
    ref = OVDetInferencer(DET_CFG, det_ckpt, device='cpu', cache_dir='', show_progress=False)(
        photo, texts='person, tie')['predictions'][0]
    assert js['predictions'][0]['scores'] == pytest.approx(ref['scores'])
    assert osp.isfile(tmp_path / 'cache' / 'fvit_tiny.pth')
