"""OV-DQUO under DistributedDataParallel (2 CPU processes, gloo), as tools/dist_train.sh runs it on GPUs: one rank's
batch has true and pseudo boxes, the other rank's image has no box at all.  Every rank must take part in the same
collective operations (matched-box counts, the 'dn_positives' normaliser) and give every trainable parameter a
gradient (mmengine wraps without find_unused_parameters), or DDP fails or hangs; afterwards the ranks' weights agree.
(mmengine's pytorch launcher needs CUDA, so the script itself is tested for its arguments in tests/apis.)"""
import os
import os.path as osp
import socket
from datetime import timedelta

import torch

from .conftest import REPO

CFG = osp.join(REPO, 'configs/ovdquo/ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')


def _free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def worker(rank, world, port, root, out_file):
    import copy
    import warnings
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist
    dist.init_process_group('gloo', rank=rank, world_size=world, timeout=timedelta(seconds=90))
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper
    from mmengine.registry import DATASETS, MODELS, init_default_scope
    from mmengine.structures import InstanceData
    import declip_mm  # noqa: F401
    init_default_scope('mmdet')
    cfg = Config.fromfile(CFG)
    cfg.model.text_embeddings = root + 'text_embeddings_tiny_eva.pt'
    torch.manual_seed(0)  # the same initial weights on both ranks (DDP also broadcasts them)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MODELS.build(cfg.model)
    model.init_weights()
    d = copy.deepcopy(cfg.train_dataloader.dataset)
    d.data_root = root
    ds = DATASETS.build(d)
    import random
    import numpy as np
    random.seed(1)  # the pipeline's flip / crop draws: spawned ranks otherwise start from OS entropy, and a crop
    np.random.seed(1)  # can drop every pseudo (or every true) box (seed 0 drops the one true box)
    sample = ds[0]
    assert sample['data_samples'].gt_instances.pseudo.any() and (~sample['data_samples'].gt_instances.pseudo).any()
    if rank == 1:  # an image without any box (true or pseudo)
        gt = sample['data_samples'].gt_instances
        sample['data_samples'].gt_instances = InstanceData(
            bboxes=gt.bboxes[:0], labels=gt.labels[:0], pseudo=gt.pseudo[:0], pseudo_weights=gt.pseudo_weights[:0])
    ddp = MMDistributedDataParallel(module=model, device_ids=None, broadcast_buffers=False,
                                    find_unused_parameters=False)
    opt = OptimWrapper(torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3))
    before = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    losses = []
    for it in range(3):
        if it == 2:
            model.bbox_head.dn_normalizer = 'dn_positives'  # reduces the positive count on every rank
        log = ddp.train_step(pseudo_collate([copy.deepcopy(sample)]), opt)
        losses.append({k: float(v) for k, v in log.items()})
    after = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    torch.save(dict(losses=losses, moved=max(float((after[k] - before[k]).abs().max()) for k in after),
                    params=after), out_file.format(rank))
    dist.barrier()
    dist.destroy_process_group()


def test_two_ranks_one_without_boxes(tmp_path):
    import torch.multiprocessing as mp
    from declip_mm.datasets.synthetic_det import make_synthetic_ov_det
    from .conftest import load_tool
    root = str(tmp_path / 'synth') + '/'
    make_synthetic_ov_det(root, num_train=2, num_val=1, size=128, seed=0)
    load_tool('tools/gen_text_embeddings.py').main(
        ['--classes', 'circle,square,triangle,cross,ring,diamond', '--extra-classes', 'object', '--out',
         root + 'text_embeddings_tiny_eva.pt', '--tiny', 'eva', '--device', 'cpu', '--no-progress'])
    out = str(tmp_path / 'rank{}.pth')
    mp.spawn(worker, args=(2, _free_port(), root, out), nprocs=2, join=True)
    r0, r1 = (torch.load(out.format(r), weights_only=True) for r in range(2))
    assert r0['moved'] > 1e-4
    for k, v in r0['params'].items():
        torch.testing.assert_close(v, r1['params'][k], rtol=0, atol=1e-6, msg=k)  # the ranks stayed in sync
    for it in range(3):
        # rank 1 has no box: no encoder match, no denoising query; rank 0 has both
        assert r1['losses'][it]['enc_loss_bbox'] == 0.0 and r0['losses'][it]['enc_loss_bbox'] > 0
        assert r1['losses'][it]['dn_loss_cls'] == 0.0 and r0['losses'][it]['dn_loss_cls'] > 0
        assert all(torch.isfinite(torch.tensor(v)) for v in r0['losses'][it].values())
