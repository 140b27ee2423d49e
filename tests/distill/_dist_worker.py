"""A 2-process gloo worker for the distributed equality test (spawned by test_train.py)."""
import os
import sys

import torch


def worker(rank, world, port, work_dir, data_root, out_file, epochs, per_rank_batch, grid, nan_name=None,
           nan_at=None):
    sys.path.insert(0, os.path.dirname(__file__))
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist
    dist.init_process_group('gloo', rank=rank, world_size=world)
    import declip_mm  # noqa: F401
    from _runner_utils import CaptureFirstGrads, NaNAt, RecordLosses, run, student_state, tiny_cfg
    cfg = tiny_cfg(work_dir, data_root, epochs=epochs, batch_size=per_rank_batch, grid=grid, hooks=())
    cfg.launcher = 'pytorch'
    cfg.model_wrapper_cfg.device_ids = None  # CPU / gloo (the config's wrapper is DeCLIPDistributedDataParallel)
    cfg.optim_wrapper.optimizer.eps = 1e-6
    hooks = [RecordLosses(), CaptureFirstGrads()]
    if nan_name:
        hooks.append(NaNAt(nan_name, nan_at))
    runner = run(cfg, hooks)
    m = runner.model.module
    torch.save(dict(state=student_state(runner), losses=hooks[0].losses, grads=hooks[1].grads,
                    skipped=m.skipped_images, nonfinite=m.nonfinite_steps, reports=m.nonfinite_reports,
                    wrapper=type(runner.model).__name__), out_file.format(rank))
    dist.barrier()
    dist.destroy_process_group()
