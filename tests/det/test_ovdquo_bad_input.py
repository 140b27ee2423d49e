"""Bad input through tools/train.py on the tiny OV-DQUO config: an epoch over a mix of an image without any box, an
image with pseudo boxes only, an unreadable image file, pseudo boxes outside / partly outside their image, a pseudo
box of an unknown image and a crowd pseudo box trains to the end with every problem counted; a missing pseudo-label
file and a text-embedding file without the wildcard stop before training with an error naming the file."""
import json
import math
import os.path as osp

import pytest

from .conftest import REPO, load_tool

CFG = osp.join(REPO, 'configs/ovdquo/ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')


def _opts(root, text):
    ann = f'{root}annotations/val.json'
    return ['--cfg-options', f'data_root={root}', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}', f'model.text_embeddings={text}',
            'train_dataloader.batch_size=2', 'default_hooks.checkpoint.interval=100']


@pytest.fixture
def bad_set(tmp_path):
    from declip_mm.datasets.synthetic_det import make_synthetic_ov_det
    root = str(tmp_path / 'synth') + '/'
    paths = make_synthetic_ov_det(root, num_train=6, num_val=2, size=128, seed=1)
    load_tool('tools/gen_text_embeddings.py').main(
        ['--classes', 'circle,square,triangle,cross,ring,diamond', '--extra-classes', 'object', '--out',
         root + 'text.pt', '--tiny', 'eva', '--device', 'cpu', '--no-progress'])
    with open(root + 'annotations/train_base.json') as f:
        train = json.load(f)
    with open(root + 'annotations/train_pseudo.json') as f:
        pseudo = json.load(f)
    imgs = train['images']
    empty, pseudo_only, broken = imgs[0], imgs[1], imgs[2]
    train['annotations'] = [a for a in train['annotations'] if a['image_id'] not in (empty['id'], pseudo_only['id'])]
    pseudo = [p for p in pseudo if p['image_id'] != empty['id']]
    w, h = pseudo_only['width'], pseudo_only['height']
    pseudo += [dict(image_id=pseudo_only['id'], bbox=[10, 10, 30, 40], category_id=-1, pseudo=1, weight=0.9),
               dict(image_id=pseudo_only['id'], bbox=[w + 5, 5, 20, 20], category_id=-1, weight=0.5),  # outside
               dict(image_id=pseudo_only['id'], bbox=[w - 10, h - 10, 30, 30], category_id=-1),  # partly outside
               dict(image_id=99999, bbox=[1, 1, 5, 5], category_id=-1, weight=0.3),  # unknown image
               dict(image_id=imgs[3]['id'], bbox=[1, 1, 50, 50], category_id=-1, iscrowd=1)]  # crowd: dropped
    with open(root + 'annotations/train_base.json', 'w') as f:
        json.dump(train, f)
    with open(root + 'annotations/train_pseudo.json', 'w') as f:
        json.dump(pseudo, f)
    with open(osp.join(root, 'images', 'train', broken['file_name']), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n truncated')
    ids = {i['id'] for i in imgs}
    unknown = sum(p['image_id'] not in ids for p in pseudo)  # the synthetic file also covers novel-only images
    return root, osp.join(root, 'images', 'train', broken['file_name']), unknown


def test_bad_mix_trains_through_an_epoch_with_counts(bad_set, tmp_path):
    root, broken, unknown = bad_set
    runner = load_tool('tools/train.py').main([CFG, '--work-dir', str(tmp_path / 'work')]
                                              + _opts(root, root + 'text.pt'))
    ds = runner.train_dataloader.dataset
    assert len(ds) >= 4 and runner.epoch == 1 and runner.iter == len(ds) // 2  # batch 2: the epoch ran to its end
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss)
    st = ds.pseudo_stats
    assert (st['outside_image_skipped'], st['unknown_image_skipped'], st['crowd_dropped']) == (1, unknown, 1)
    assert st['images_without_box'] == 1  # the image without any box trains (zero denoising loss)
    assert ds.unreadable_images.get(broken, 0) >= 1 and len(ds.unreadable_images) == 1
    assert ds.num_empty_refetched == 0  # the unreadable file is not mistaken for an image without boxes
    assert 'val/coco/novel_ap50' in runner.message_hub.log_scalars  # and it was evaluated


def test_missing_pseudo_file_and_text_without_wildcard_stop_before_training(bad_set, tmp_path):
    root = bad_set[0]
    train = load_tool('tools/train.py')
    with pytest.raises(FileNotFoundError, match='no_such_pseudo.json'):
        train.main([CFG, '--work-dir', str(tmp_path / 'a')] + _opts(root, root + 'text.pt')
                   + ['train_dataloader.dataset.pseudo_ann_file=annotations/no_such_pseudo.json'])
    load_tool('tools/gen_text_embeddings.py').main(
        ['--classes', 'circle,square,triangle,cross,ring,diamond', '--out', root + 'no_object.pt', '--tiny', 'eva',
         '--device', 'cpu', '--no-progress'])
    with pytest.raises(ValueError, match=r"no_object\.pt: no text embedding for the wildcard 'object'"):
        train.main([CFG, '--work-dir', str(tmp_path / 'b')] + _opts(root, root + 'no_object.pt'))
