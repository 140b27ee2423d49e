# DeCLIP EVA02-CLIP-B/16 + ProxyCLIP (new combination): DINO ViT-B/8 proxy attention on DeCLIP's last-block values.
# ProxyCLIP's protocol: 80 ImageNet templates, window 336 / stride 112 (set per benchmark), crops zero-padded
# symmetrically to a multiple of 56, classification at the VFM grid, logits averaged over overlaps and resized to
# the original size, x40, softmax, max over a class's names, pixels below prob_thd -> background 0.
# DeCLIP's content path: proj(inner_ln(A V)) with A the proxy attention (no residual / FFN); EVA's own
# position-embedding resize and RoPE for blocks 1..L-1.
model = dict(
    type='DeCLIPZeroShotSegmentor',
    # CLIP's mean / std rounded to 3 decimals, as ProxyCLIP's segmentor normalises (proxyclip_segmentor.py)
    data_preprocessor=dict(
        type='OVSegDataPreProcessor', mean=[122.771, 116.746, 104.094],
        std=[68.501, 66.632, 70.323], bgr_to_rgb=True),
    backbone=dict(type='DeCLIPViT', model_name='EVA02-B-16', checkpoint='checkpoints/declip_eva02_b16.pt',
                  dense_mode='csa', attn_scale='sqrt', out_types=('dense', ), frozen=True),
    text_encoder=dict(type='DeCLIPTextEncoder', model_name='EVA02-B-16', frozen=True),
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
