# A tiny random OV-DQUO with the ResNet CLIP path on the synthetic open-vocabulary shapes set: the tiny ViT config's
# detector (2 + 2 deformable layers, 30 queries, 256 channels) and data, with the OV-COCO RN model block's ResNet parts
# (_base_/models/ovdquo_clip-r50.py): a tiny CLIPResNet (declip_mm.models.backbones.tiny_resnet_overrides(): one
# bottleneck per stage, width 8 -> C3 / C4 / C5 = 64 / 128 / 256 channels, attention-pool grid 3, CLIP width 32),
# ChannelMapper on C3, C4 with the extra level conv3x3 s2 of the raw C4, ResNetRegionEmbedder (C5 for proposals, C4 ->
# res5 -> attention pool for scores), CLIP mean / std and the batch padded to its largest image as the ResNet recipe.
# Text: make_synthetic_det.py's tiny-CLIP rows (width 32, as this tower's; both towers are random).  Runs on CPU:
#   python tools/make_synthetic_det.py --out data/synthetic_ov_det
#   python tools/train.py configs/ovdquo/ovdquo_tiny-r50-clip_1xb4-1e_ov-shapes-synthetic.py --work-dir work_dirs/x
_base_ = ['ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py']
data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
    std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255],
    bgr_to_rgb=True,
    pad_size_divisor=1,
    pad_value=0)
model = dict(
    data_preprocessor=data_preprocessor,
    region_embedder=dict(type='ResNetRegionEmbedder'),
    backbone=dict(
        _delete_=True,
        type='CLIPResNet',
        model_name='RN50',
        # = declip_mm.models.backbones.tiny_resnet_overrides()
        model_overrides=dict(embed_dim=32, text_cfg=dict(width=32, heads=2, layers=2),
                             vision_cfg=dict(layers=[1, 1, 1, 1], width=8, image_size=96, head_width=32)),
        checkpoint=None,
        out_indices=(1, 2, 3)),
    neck=dict(
        _delete_=True,
        type='ChannelMapper', in_channels=[64, 128], kernel_size=1, out_channels=256, act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32), bias=True, num_outs=3))
