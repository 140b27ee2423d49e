# A tiny random OV-DQUO on the synthetic open-vocabulary shapes set (6 classes; triangle and ring are novel, trained
# without their boxes, seen only as open-world pseudo boxes of annotations/train_pseudo.json): tiny EVA-style
# DeCLIPViT (width 64, 4 blocks, CLIP width 32), taps after blocks 1 / 2 / 3, 256-channel 3-level pyramid, 2 + 2
# deformable layers (FFN 256), 30 queries.  Data, pseudo-aware pipeline and data_preprocessor (padding to 128 x 128
# after normalisation) from _base_/datasets/ov_shapes_synthetic.py.  Runs on CPU:
#   python tools/make_synthetic_det.py --out data/synthetic_ov_det
#   python tools/train.py configs/ovdquo/ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py \
#       --work-dir work_dirs/ovdquo_tiny
#   python tools/test.py configs/ovdquo/ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py \
#       work_dirs/ovdquo_tiny/epoch_1.pth
# Random CLIP weights: the numbers only show the plumbing.  Plain fp32 AdamW, no EMA (the full configs use the
# original's EMA with decay 0.99996, which would leave a model this short-trained at its initial weights).
_base_ = ['_base_/models/ovdquo_eva02-b16.py', '_base_/datasets/ov_shapes_synthetic.py', '_base_/default_runtime.py']
dims = 256  # DINO's query position encoding is 4 x 128 sine features: embed_dims stays 256
model = dict(
    num_queries=30,
    class_names=list(_base_.classes),
    novel_classes=list(_base_.novel_classes),
    text_embeddings=_base_.data_root + 'text_embeddings_tiny_eva.pt',  # make_synthetic_det.py: classes + 'object'
    category_sampler=dict(type='OVCategorySampler', num_sampled=None, pool='base'),
    novel_boost=3.0,
    data_preprocessor=_base_.data_preprocessor,
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
