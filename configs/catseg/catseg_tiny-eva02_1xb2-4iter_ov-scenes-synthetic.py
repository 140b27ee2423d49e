# Embedded default: a tiny random-weight CAT-Seg (EVA02 family, DeCLIP rule) trained a few iterations on the
# generated synthetic scenes (declip_mm/datasets/synthetic_seg.py, written to data_root on first use) and tested
# with the sliding + global inference on CPU; test overlays go to <work_dir>/<timestamp>/vis_data/vis_image/.
#   python tools/train.py configs/catseg/catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py --work-dir work_dirs/catseg_tiny
#   python tools/test.py configs/catseg/catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py work_dirs/catseg_tiny/iter_4.pth
# Sizes are scaled down from the real recipe (CLIP 128 px -> 8x8 grid, Swin window 4 / shift 2, 200 px square,
# 120 px windows at stride 80 + global, pad_len 16); the code path is the same.
_base_ = ['./_base_/default_runtime.py']

data_root = 'data/synthetic_seg'
synth_classes = ['sky', 'grass', 'sand', 'water', 'road', 'building', 'tree', 'car']
tiny_clip = dict(embed_dim=32, text_cfg=dict(width=32, heads=2, layers=2),
                 vision_cfg=dict(timm_kwargs=dict(embed_dim=64, depth=4, num_heads=4)))
model = dict(
    type='CATSeg',
    data_preprocessor=dict(
        type='OVSegDataPreProcessor', mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.3231630], bgr_to_rgb=True, size=(128, 128), pad_val=0, seg_pad_val=255),
    backbone=dict(
        type='DeCLIPViT', model_name='EVA02-B-16', model_overrides=tiny_clip, out_indices=(1, 2),
        out_types=('feats', 'dense'), dense_mode='csa', attn_scale='none', normalize_dense=True,
        trainable=['*attn.q_proj.weight', '*attn.v_proj.weight']),
    text_encoder=dict(type='DeCLIPTextEncoder', model_name='EVA02-B-16', model_overrides=tiny_clip, frozen=False,
                      checkpoint=None,  # random tiny text tower, even when the backbone gets a (visual) file
                      trainable=['*attn.in_proj_weight']),
    decode_head=dict(
        type='CATSegHead', text_dim=32, guidance_in_channels=64, appearance_guidance_proj_dim=32,
        text_guidance_proj_dim=32, decoder_dims=(32, 16), decoder_guidance_dims=(32, 16),
        decoder_guidance_proj_dims=(8, 4), hidden_dim=32, num_heads=4, feature_resolution=(8, 8), window_size=4,
        num_layers=2, pad_len=16),
    class_names=synth_classes,
    clip_size=128,
    slide_cfg=dict(out_size=200, kernel=120, stride=80, global_view=True),
    ignore_index=255)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(400, 128), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(128, 128), cat_max_ratio=1.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.ResizeShortestEdge', scale=112, max_size=400, backend='pillow', interpolation='bilinear'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SyntheticSegDataset', data_root=data_root, split='train', num_images=8,
                 pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticSegDataset', data_root=data_root, split='val', num_images=4, seed=1,
                 pipeline=test_pipeline))
test_evaluator = dict(type='OVSegMetric', ignore_index=255)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0,
                       custom_keys={'backbone': dict(lr_mult=0.01), 'text_encoder': dict(lr_mult=0.01)}))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=4, eta_min=0.0, by_epoch=False, begin=0, end=4)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4)
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4),
    visualization=dict(type='SegVisualizationHook', draw=True, interval=1))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
