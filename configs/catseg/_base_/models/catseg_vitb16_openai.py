# CAT-Seg with OpenAI CLIP ViT-B/16 at 384 (the official CVPR-2024 setting), trained on COCO-Stuff-171.
# Model only (no data / schedule); used by the training and the evaluation configs.
clip_checkpoint = 'checkpoints/openai_vit_b16.pt'
model = dict(
    type='CATSeg',
    data_preprocessor=dict(
        type='OVSegDataPreProcessor', mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.3231630], bgr_to_rgb=True, size=(384, 384), pad_val=0, seg_pad_val=255),
    backbone=dict(
        type='DeCLIPViT', model_name='ViT-B-16', checkpoint=clip_checkpoint, out_indices=(3, 7),
        out_types=('feats', 'dense'), dense_mode='maskclip_cls', split_qkv=True,
        trainable=['*attn.q_proj_weight', '*attn.v_proj_weight']),
    text_encoder=dict(
        type='DeCLIPTextEncoder', model_name='ViT-B-16', frozen=False,
        split_qkv=True, trainable=['*attn.q_proj_weight', '*attn.v_proj_weight']),
    decode_head=dict(
        type='CATSegHead', text_dim=512, guidance_in_channels=768, feature_resolution=(24, 24),
        window_size=12, num_layers=2, hidden_dim=128, num_heads=4, train_pooling_size=(2, 2),
        test_pooling_size=(1, 1), prompt_channel=1, pad_len=256),
    class_names='catseg_coco171',
    template='A photo of a {} in the scene',
    clip_size=384,
    slide_cfg=dict(out_size=640, kernel=384, stride=256, global_view=True),
    ignore_index=255)
