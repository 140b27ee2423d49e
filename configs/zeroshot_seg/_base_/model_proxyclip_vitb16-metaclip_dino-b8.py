# ProxyCLIP on MetaCLIP ViT-B/16 (open_clip ViT-B-16-quickgelu, metaclip_fullcc weights) with DINO ViT-B/8.
# ProxyCLIP's protocol: 80 ImageNet templates, window 336 / stride 112 (set per benchmark), crops zero-padded
# symmetrically to a multiple of 56, classification at the VFM grid, logits averaged over overlaps and resized to
# the original size, x40, softmax, max over a class's names, pixels below prob_thd -> background 0.
# pos_embed_resize='dino_scale': as the original's open_clip resizes the 14x14 position grid.
model = dict(
    type='DeCLIPZeroShotSegmentor',
    # CLIP's mean / std rounded to 3 decimals, as ProxyCLIP's segmentor normalises (proxyclip_segmentor.py)
    data_preprocessor=dict(
        type='OVSegDataPreProcessor', mean=[122.771, 116.746, 104.094],
        std=[68.501, 66.632, 70.323], bgr_to_rgb=True),
    backbone=dict(type='DeCLIPViT', model_name='ViT-B-16-quickgelu',
                  checkpoint='checkpoints/metaclip_b16_fullcc2.5b.pt', dense_mode='vanilla', attn_scale='sqrt',
                  pos_embed_resize='dino_scale', out_types=('dense', ), frozen=True),
    text_encoder=dict(type='DeCLIPTextEncoder', model_name='ViT-B-16-quickgelu', frozen=True),
    proxy=dict(
        type='VFMProxyAttention',
        vfm=dict(type='VFMTeacher', name='dino_b8', checkpoint='checkpoints/dino_vitbase8_pretrain.pth'),
        beta=1.2, gamma=3.0),
    class_names=None,  # set per benchmark
    name_sep='; ',
    logit_scale=40.0,
    prob_thd=0.0,
    background_index=0,
    slide_crop=336,
    slide_stride=112,
    pad_multiple=56,
    crops_per_forward=8)
