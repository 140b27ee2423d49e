# Training-free segmentor: DeCLIP EVA02-CLIP-B/16 (csa dense features), the paper's Table 5 setting.
# 80 ImageNet templates, sliding window 336 / stride 112, crops zero-padded to a patch multiple.
model = dict(
    type='DeCLIPZeroShotSegmentor',
    data_preprocessor=dict(
        # CLIP's mean / std rounded to 3 decimals, exactly as DeCLIP's training-free evaluator normalises
        type='OVSegDataPreProcessor', mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323], bgr_to_rgb=True),
    backbone=dict(type='DeCLIPViT', model_name='EVA02-B-16', checkpoint='checkpoints/declip_eva02_b16.pt', dense_mode='csa', attn_scale='sqrt', out_types=('dense', ), frozen=True),
    text_encoder=dict(type='DeCLIPTextEncoder', model_name='EVA02-B-16', frozen=True),
    class_names=None,  # set per benchmark
    name_sep='; ',
    logit_scale=40.0,
    prob_thd=0.0,
    background_index=0,
    slide_crop=336,
    slide_stride=112)
