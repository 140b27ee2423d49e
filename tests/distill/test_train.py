"""Integration: the tiny config learns, resume is exact, corrupt images are skipped, 2-process DDP == 1 process."""
import os
import os.path as osp
import shutil
import socket

import pytest
import torch

from _runner_utils import CrashAt, RecordLosses, run, student_state, tiny_cfg


def test_tiny_default_config_learns(tmp_path, tiny_data):
    """The embedded default (100 generated images, 3 epochs x 25 iterations) on CPU: both losses drop >= 30 %."""
    root = str(tmp_path / 'data')  # generated at first use by the dataset (synthetic=...)
    cfg = tiny_cfg(tmp_path / 'work', root, hooks=('resume', 'ensemble', 'export', 'vis'))
    rec = RecordLosses()
    runner = run(cfg, [rec])
    assert osp.isfile(osp.join(root, 'annotations.json'))
    first, last = rec.losses[0], rec.losses[-5:]
    for key in ('loss_content', 'loss_context'):
        end = sum(x[key] for x in last) / len(last)
        assert end <= 0.7 * first[key], (key, first[key], end)
    assert len(rec.losses) == 3 * 25
    # the exported backbone loads (weights_only) into DeCLIPViT and reproduces the (ensembled) student
    from declip_mm.models.backbones import DeCLIPViT
    path = osp.join(str(tmp_path / 'work'), 'backbone_epoch_3.pth')
    ck = torch.load(path, map_location='cpu', weights_only=True)
    assert ck['meta']['declip_mm']['dense_mode'] == 'csa' and ck['meta']['declip_mm']['alpha'] == 0.7
    bb = DeCLIPViT(model_name='EVA02-B-16', model_overrides=ck['meta']['declip_mm']['model_overrides'],
                   checkpoint=path, dense_mode='csa', out_types=('dense', ))
    ens = runner.model.ensembled_student_state()
    assert all(torch.equal(v, ens[k]) for k, v in bb.state_dict().items())
    vis = [f for _, _, fs in os.walk(str(tmp_path / 'work')) for f in fs if f.startswith('declip_correlation')]
    assert len(vis) >= 2  # the proxy-token figure was rendered before training and during it


def test_resume_is_exact(tmp_path, tiny_data):
    kw = dict(epochs=2, batch_size=6, lr=1e-3)
    ref = student_state(run(tiny_cfg(tmp_path / 'ref', tiny_data, **kw)))
    work = tmp_path / 'resumed'
    cfg = tiny_cfg(work, tiny_data, checkpoint_iters=7, **kw)  # 5 iterations / epoch: stop inside epoch 2
    with pytest.raises(KeyboardInterrupt):
        run(cfg, [CrashAt(7)])
    assert osp.isfile(osp.join(str(work), 'iter_7.pth'))
    cfg = tiny_cfg(work, tiny_data, checkpoint_iters=7, **kw)
    cfg.resume = True
    rec = RecordLosses()
    runner = run(cfg, [rec])
    assert runner.iter == 10 and len(rec.losses) == 3
    got = student_state(runner)
    for k, v in ref.items():
        assert torch.allclose(v, got[k], atol=1e-6, rtol=0), k


def test_corrupt_image_is_skipped_and_counted(tmp_path, tiny_data):
    root = str(tmp_path / 'data')
    shutil.copytree(tiny_data, root)
    with open(osp.join(root, 'images', '0003.png'), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n this is not an image')
    with open(osp.join(root, 'images', '0007.png'), 'wb') as f:
        f.write(b'')
    cfg = tiny_cfg(tmp_path / 'work', root, epochs=1, batch_size=6)
    with pytest.warns(UserWarning, match='skipping unreadable image'):
        runner = run(cfg)
    assert runner.iter == 5  # the run completed
    ds = runner.train_dataloader.dataset
    assert ds.num_skipped == 2 and sorted(osp.basename(p) for p in ds.skipped_paths) == ['0003.png', '0007.png']
    assert runner.model.num_skipped_images == 2


def _free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_two_process_gloo_equals_one_process(tmp_path, tiny_data):
    import torch.multiprocessing as mp
    from _dist_worker import worker
    grid = [[2, 2]]
    cfg = tiny_cfg(tmp_path / 'single', tiny_data, epochs=1, batch_size=6, grid=grid, hooks=())
    cfg.optim_wrapper.optimizer.eps = 1e-6
    single = student_state(run(cfg))
    out = str(tmp_path / 'dist.pth')
    mp.spawn(worker, args=(2, _free_port(), str(tmp_path / 'dist'), tiny_data, out, 1, 3, grid), nprocs=2,
             join=True)
    dist_state = torch.load(out, map_location='cpu')
    diffs = {k: (v - dist_state[k]).abs().max().item() for k, v in single.items() if v.is_floating_point()}
    assert max(diffs.values()) < 1e-4, sorted(diffs.items(), key=lambda kv: -kv[1])[:5]
    moved = [k for k, v in single.items() if v.is_floating_point() and k in dist_state]
    assert moved
