# OV-DQUO on a frozen EVA02-CLIP-L/14-336 (DeCLIPViT), the original OV-LVIS L/14 settings: taps after blocks
# 10 / 14 / 23 (the last one in "maskclip" mode), width 1024, CLIP embeddings 768; everything else as the B/16 model
# (ovdquo_eva02-b16.py).
_base_ = ['./ovdquo_eva02-b16.py']
model = dict(
    text_embeddings='data/text_embeddings/lvis_v1_object_eva02-l14-336.pt',  # classes + 'object'
    backbone=dict(
        model_name='EVA02-L-14-336',
        checkpoint='checkpoints/eva_vitl14_lvis_clipself_patches.pt',
        out_indices=(10, 14, 23)),
    neck=dict(
        necks=[
            dict(type='ViTPyramidNeck', in_channels=1024, rescales=(2, 1, 0.5)),
            dict(type='ChannelMapper', in_channels=[1024, 1024, 1024], kernel_size=1, out_channels=256,
                 act_cfg=None, norm_cfg=dict(type='GN', num_groups=32), bias=True, num_outs=3),
        ]))
