"""A 2-process gloo worker for the distributed equality test (spawned by test_train.py)."""
import os
import sys

import torch


def worker(rank, world, port, work_dir, data_root, out_file, epochs, per_rank_batch, grid):
    sys.path.insert(0, os.path.dirname(__file__))
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist
    dist.init_process_group('gloo', rank=rank, world_size=world)
    import declip_mm  # noqa: F401
    from _runner_utils import run, student_state, tiny_cfg
    cfg = tiny_cfg(work_dir, data_root, epochs=epochs, batch_size=per_rank_batch, grid=grid, hooks=())
    cfg.launcher = 'pytorch'
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)
    cfg.optim_wrapper.optimizer.eps = 1e-6
    runner = run(cfg)
    if rank == 0:
        torch.save(student_state(runner), out_file)
    dist.barrier()
    dist.destroy_process_group()
