# Swap check: mmdet's stock Faster R-CNN R50-FPN config with the ResNet replaced by a frozen DeCLIPViT and the
# F-ViT simple pyramid placed before the stock FPN (plain mmdet detector and heads, closed-vocabulary COCO).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['declip_mm'], allow_failed_imports=False)
model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='DeCLIPViT',
        model_name='EVA02-B-16',
        checkpoint='checkpoints/EVA02_CLIP_B_psz16_s8B.pt',
        out_indices=(3, 5, 7, 11),
        last_feat_mode='maskclip',
        out_types=('feats', ),
        frozen=True),
    neck=dict(
        _delete_=True,
        type='SequentialNeck',
        necks=[
            dict(type='mmseg.Feature2Pyramid', embed_dim=768, rescales=[4, 2, 1, 0.5],
                 norm_cfg=dict(type='SyncBN', requires_grad=True)),
            dict(type='FPN', in_channels=[768, 768, 768, 768], out_channels=256, num_outs=5),
        ]))
