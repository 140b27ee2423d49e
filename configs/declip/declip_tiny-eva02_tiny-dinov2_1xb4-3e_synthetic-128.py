# The embedded default: a tiny random EVA-style CLIP (width 64, 4 blocks) distilled with a tiny random DINOv2-style
# VFM on ~100 generated images (objects of known boxes / masks, created at first use under `data_root`).
# Trains on CPU in about a minute (75 iterations):   python tools/train.py configs/declip/declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py
# or with the before/after report:   python tools/run_default_distill.py
_base_ = ['./_base_/declip_runtime.py', './_base_/declip_schedule.py']

data_root = 'work_dirs/declip_tiny_data/'
det_size = 128          # student canvas: 8 x 8 tokens of 16 px
crop_size = 48          # teacher crops (3 x 3 tokens)
max_crops = 20
batch_size = 4
max_epochs = 3          # 25 iterations per epoch
warmup_iters = 5

tiny_clip = dict(embed_dim=32, text_cfg=dict(width=32, heads=2, layers=2),
                 vision_cfg=dict(timm_kwargs=dict(embed_dim=64, depth=4, num_heads=4)))
model = dict(
    type='DeCLIPDistiller',
    data_preprocessor=dict(type='DeCLIPDataPreprocessor'),
    student=dict(type='DeCLIPViT', model_name='EVA02-B-16', model_overrides=tiny_clip, dense_mode='csa'),
    vfm=dict(type='VFMTeacher', name='dinov2_s',
             model_kwargs=dict(embed_dim=64, depth=2, num_heads=4, img_size=112)),
    distill_mode='decoupled',
    content_weight=1.0,
    context_weight=1.0,     # official 0.1; 1.0 lets the tiny run show both losses learning in 75 iterations
    alpha=0.7,
    max_nonfinite_steps=10)  # NaN/Inf-loss steps skipped before the run stops

train_pipeline = [
    dict(type='DeCLIPGridCrops', det_size=det_size, student_patch=16, vfm_patch=14, crop_size=crop_size,
         max_crops=max_crops, grid='official', seed=0),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    sampler=dict(type='DistillSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='DistillImageDataset', data_root=data_root, ann_file='annotations.json',
                 data_prefix=dict(img=''), pipeline=train_pipeline, synthetic=dict(num_images=100, seed=0)))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1000)

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / warmup_iters, end_factor=1.0, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='DeCLIPCosineLR', warmup_iters=warmup_iters, eta_min=0.0, begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True),
]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
default_hooks = dict(logger=dict(type='LoggerHook', interval=10),
                     checkpoint=dict(type='CheckpointHook', interval=max_epochs, by_epoch=True, max_keep_ckpts=1))
custom_hooks = [
    dict(type='DistillResumeHook'),
    dict(type='DeCLIPEnsembleHook'),
    dict(type='DeCLIPExportHook', interval=max_epochs),
    dict(type='CorrelationVisHook', interval=25, image_index=0),
]
log_processor = dict(window_size=10)
