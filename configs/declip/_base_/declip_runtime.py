# Runtime shared by the DeCLIP distillation configs (mmengine Runner, default_scope declip_mm).
default_scope = 'declip_mm'
custom_imports = dict(imports=['declip_mm'], allow_failed_imports=False)

env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0, deterministic=False)
# multi-GPU: mmengine's DDP wrapper with the distiller's own train step (skips steps with a NaN/Inf loss on all ranks)
model_wrapper_cfg = dict(type='declip_mm.DeCLIPDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)  # scoped: mmengine looks wrappers up in its root registry

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=True, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [
    dict(type='DistillResumeHook'),
    dict(type='DeCLIPEnsembleHook'),
    dict(type='DeCLIPExportHook', interval=1),
    dict(type='CorrelationVisHook', interval=1000, image_index=0),
]
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
