# Training-free segmentor: vanilla OpenAI CLIP ViT-B/16 (last block as is; Table 5 'CLIP' row); for the EVA-CLIP row use model_name='EVA02-B-16' with the EVA-CLIP release checkpoint.
# 80 ImageNet templates, sliding window 336 / stride 112, crops zero-padded to a patch multiple.
model = dict(
    type='DeCLIPZeroShotSegmentor',
    data_preprocessor=dict(
        type='OVSegDataPreProcessor', mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.3231630], bgr_to_rgb=True),
    backbone=dict(type='DeCLIPViT', model_name='ViT-B-16', checkpoint='checkpoints/openai_vit_b16.pt', dense_mode='vanilla', attn_scale='sqrt', out_types=('dense', ), frozen=True),
    text_encoder=dict(type='DeCLIPTextEncoder', model_name='ViT-B-16', frozen=True),
    class_names=None,  # set per benchmark
    name_sep='; ',
    logit_scale=40.0,
    prob_thd=0.0,
    background_index=0,
    slide_crop=336,
    slide_stride=112)
