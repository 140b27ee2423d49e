# F-ViT OV-LVIS schedule: 48 epochs, LR x0.1 at epochs 32 and 44, evaluation every 12 epochs; AdamW 1e-4 (wd 0.1),
# grad clip 1.0, warmup 250 iters, fp16 (static loss scale 512), total batch 64 with auto LR scaling.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=48, val_interval=12)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',  # F-ViT: fp16 (static scale 512); fp16 + dynamic scaling on GPUs without bf16
    loss_scale=512.0,
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=48, by_epoch=True, milestones=[32, 44], gamma=0.1),
]
auto_scale_lr = dict(enable=True, base_batch_size=64)
