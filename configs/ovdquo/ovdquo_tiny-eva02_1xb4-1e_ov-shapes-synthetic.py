# A tiny random OV-DQUO on the synthetic open-vocabulary shapes set (6 classes; triangle and ring are novel, trained
# without their boxes): tiny EVA-style DeCLIPViT (width 64, 4 blocks, CLIP width 32), taps after blocks 1 / 2 / 3,
# 256-channel 3-level pyramid, 2 + 2 deformable layers (FFN 256), 30 queries.  Runs on CPU:
#   python tools/make_synthetic_det.py --out data/synthetic_ov_det
#   python tools/train.py configs/ovdquo/ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py \
#       --work-dir work_dirs/ovdquo_tiny
#   python tools/test.py configs/ovdquo/ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py \
#       work_dirs/ovdquo_tiny/epoch_1.pth
# Random CLIP weights: the numbers only show the plumbing.  Without open-world pseudo boxes the wildcard assignment
# is skipped and the denoising queries fall back to the batch's first box (as the original).
_base_ = ['_base_/models/ovdquo_eva02-b16.py', '_base_/default_runtime.py']
data_root = 'data/synthetic_ov_det/'
classes = ('circle', 'square', 'triangle', 'cross', 'ring', 'diamond')
novel_classes = ('triangle', 'ring')
image_size = (128, 128)
dims = 256  # DINO's query position encoding is 4 x 128 sine features: embed_dims stays 256
model = dict(
    num_queries=30,
    class_names=list(classes),
    novel_classes=list(novel_classes),
    text_embeddings=data_root + 'text_embeddings_tiny_eva.pt',
    category_sampler=dict(type='OVCategorySampler', num_sampled=None, pool='base'),
    novel_boost=3.0,
    data_preprocessor=dict(batch_augments=[dict(type='BatchFixedSizePad', size=image_size)]),
    backbone=dict(
        # = declip_mm.models.backbones.tiny_clip_overrides('eva')
        model_overrides=dict(embed_dim=32, text_cfg=dict(width=32, heads=2, layers=2),
                             vision_cfg=dict(timm_kwargs=dict(embed_dim=64, depth=4, num_heads=4))),
        checkpoint=None,
        out_indices=(1, 2, 3)),
    neck=dict(
        necks=[
            dict(type='ViTPyramidNeck', in_channels=64, rescales=(2, 1, 0.5)),
            dict(type='ChannelMapper', in_channels=[64, 64, 64], kernel_size=1, out_channels=dims, act_cfg=None,
                 norm_cfg=dict(type='GN', num_groups=32), bias=True, num_outs=3),
        ]),
    encoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=dims),
            ffn_cfg=dict(embed_dims=dims, feedforward_channels=256))),
    decoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=dims),
            cross_attn_cfg=dict(embed_dims=dims),
            ffn_cfg=dict(embed_dims=dims, feedforward_channels=256))),
    positional_encoding=dict(num_feats=dims // 2),
    bbox_head=dict(embed_dims=dims),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
    test_cfg=dict(max_per_img=100))

metainfo = dict(classes=classes, novel_classes=novel_classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.75, 1.0), keep_ratio=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='OVCocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train_base.json',
        data_prefix=dict(img='images/train/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='OVCocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/val/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OVCocoAP50Metric', ann_file=data_root + 'annotations/val.json', metric='bbox',
                     novel_classes=list(novel_classes))
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4, eps=1e-6),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = []
auto_scale_lr = dict(enable=False, base_batch_size=32)
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(type='CheckpointHook', interval=1))
randomness = dict(seed=0)
