# CAT-Seg with a DeCLIP EVA02-CLIP-L/14-336 encoder (DeCLIP Table 4), trained on COCO-Stuff-171.
# Model only (no data / schedule); used by the training and the evaluation configs.
clip_checkpoint = 'checkpoints/declip_eva02_l14_336.pt'
model = dict(
    type='CATSeg',
    data_preprocessor=dict(
        type='OVSegDataPreProcessor', mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.3231630], bgr_to_rgb=True, size=(384, 384), pad_val=0, seg_pad_val=255),
    backbone=dict(
        type='DeCLIPViT', model_name='EVA02-L-14-336', checkpoint=clip_checkpoint, out_indices=(7, 15),
        out_types=('feats', 'dense'), dense_mode='csa', attn_scale='none', normalize_dense=True,
        trainable=['*attn.q_proj.weight', '*attn.v_proj.weight']),
    text_encoder=dict(
        type='DeCLIPTextEncoder', model_name='EVA02-L-14-336', frozen=False,
        trainable=['*attn.in_proj_weight']),
    decode_head=dict(
        type='CATSegHead', text_dim=768, guidance_in_channels=1024, feature_resolution=(24, 24),
        window_size=12, num_layers=2, hidden_dim=128, num_heads=4, train_pooling_size=(2, 2),
        test_pooling_size=(1, 1), prompt_channel=1, pad_len=256),
    class_names='catseg_coco171',
    template='A photo of a {} in the scene',
    clip_size=336,
    slide_cfg=dict(out_size=640, kernel=384, stride=256, global_view=True),
    ignore_index=255)
