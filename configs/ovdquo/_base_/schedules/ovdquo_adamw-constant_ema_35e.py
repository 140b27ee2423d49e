# OV-DQUO's optimisation, as in its four released configs and training scripts (8 GPUs x 4 images):
# * AdamW lr 1e-4, weight decay 1e-4 on every parameter (no norm / bias exemption), eps 1e-6 (the original's value
#   under --amp), constant LR (its StepLR(50) is never reached), no warm-up;
# * the ViT pyramid's ConvT (neck.necks.0) at lr 1e-5: the original's lr_backbone, given to parameters named
#   "backbone", of which only that ConvT trains (the CLIP tower is frozen);
# * gradient clipping at a global L2 norm of 0.1;
# * AMP: bf16 autocast here (AmpOptimWrapper; tools/train.py falls back to fp16 with loss scaling on GPUs without
#   bf16 and to fp32 without CUDA).  The original trains with fp16 autocast + GradScaler; its deformable attention
#   samples in fp32, as OVDQUO(deform_attn_fp32=True) does;
# * EMA of all weights and buffers, decay 0.99996 (momentum 4e-5), every iteration from the first; validation and
#   test use the EMA weights (EMAHook swaps them in), and mmengine's checkpoints hold the EMA weights in
#   `state_dict` (the raw ones in `ema_state_dict`), as the original evaluates its EMA model.  StateDictEMA is
#   mmengine's ExponentialMovingAverage with the original's per-tensor update counts (see `repeats` below);
# * seed 42, different per rank (the original: 42 + rank).
# Evaluation every epoch from the original's first evaluated epoch (OV-LVIS: 20; OV-COCO configs: 15); the best
# checkpoint by the headline metric is kept.
_base_ = ['../default_runtime.py']  # + mmdet runtime, OVClassCheckHook
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=35, val_begin=20, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',  # the original: fp16 (autocast + dynamic GradScaler)
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-6),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'neck.necks.0.': dict(lr_mult=0.1)}))  # ViTPyramidNeck ConvT: 1e-5
param_scheduler = []  # constant LR
auto_scale_lr = dict(enable=False, base_batch_size=32)
custom_hooks = [
    dict(type='OVClassCheckHook'),
    dict(type='EMAHook', ema_type='StateDictEMA', momentum=4e-5, update_buffers=True, priority=49,
         # as the original's EMA, which walks its state dict: the objectness Linear shared by the 6 decoder layers
         # is listed (and averaged) 12 times per step, each decoder box MLP twice; repeats=None: all once
         repeats={r'bbox_head\.cls_branches\.0\.': 12, r'bbox_head\.reg_branches\.[0-5]\.': 2}),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'))
randomness = dict(seed=42, diff_rank_seed=True)
