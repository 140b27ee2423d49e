# F-ViT, vanilla EVA02-CLIP-L/14-336 (frozen), OV-COCO, 896 px.
_base_ = [
    '_base_/fvit_faster-rcnn_eva02-b16.py', '_base_/ov_coco_lsj_896.py', '_base_/schedule_ov_coco_3e.py',
    '_base_/default_runtime.py'
]
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(pad_size_divisor=896,
                           batch_augments=[dict(type='BatchFixedSizePad', size=(896, 896))]),
    backbone=dict(model_name='EVA02-L-14-336', checkpoint='checkpoints/EVA02_CLIP_L_336_psz14_s6B.pt',
                  out_indices=(6, 10, 14, 23)),
    neck=dict(necks=[
        dict(type='mmseg.Feature2Pyramid', embed_dim=1024, rescales=[4, 2, 1, 0.5], norm_cfg=norm_cfg),
        dict(type='FPN', in_channels=[1024, 1024, 1024, 1024], out_channels=256, num_outs=5, norm_cfg=norm_cfg),
    ]),
    rpn_head=dict(anchor_generator=dict(strides=[3.5, 7, 14, 28, 56])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=[3.5, 7, 14, 28]),
        bbox_head=dict(fc_out_channels=768, text_embeddings='data/text_embeddings/coco_eva02-l14-336.pt')))
