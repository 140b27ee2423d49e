# CorrCLIP v1 (ICCV 2025) on MetaCLIP ViT-B/16 with DINO ViT-B/8 and class-agnostic region masks (CorrCLIP's published
# SAM 2 masks or tools/gen_masks.py output, one <image stem>.npz per image).
# CorrCLIP's protocol: 80 ImageNet templates, window 336 / stride 112 (set per benchmark), crops zero-padded
# symmetrically to a multiple of 56 (masks padded with 10000), classification at the DINO grid, logits averaged
# over overlaps and resized to the original size, x40, softmax, max over a class's names, pixels below prob_thd
# -> background 0, then the mask vote.
# CorrCLIP's shipped configuration (metaclip_fullcc, ViT-B-16-quickgelu). pos_embed_resize='dino_scale': as the
# original's open_clip resizes the 14x14 position grid.
model = dict(
    type='DeCLIPZeroShotSegmentor',
    # CLIP's mean / std rounded to 3 decimals, as CorrCLIP's segmentor normalises (corrclip_segmentor.py:49-53)
    data_preprocessor=dict(
        type='OVSegDataPreProcessor', mean=[122.771, 116.746, 104.094],
        std=[68.501, 66.632, 70.323], bgr_to_rgb=True),
    backbone=dict(type='DeCLIPViT', model_name='ViT-B-16-quickgelu',
                  checkpoint='checkpoints/metaclip_b16_fullcc2.5b.pt', dense_mode='vanilla', attn_scale='sqrt',
                  pos_embed_resize='dino_scale', out_types=('dense', ), frozen=True),
    text_encoder=dict(type='DeCLIPTextEncoder', model_name='ViT-B-16-quickgelu', frozen=True),
    # CorrCLIP: DINO q + k of the last block, region merging (DBSCAN eps 0.2), restricted attention (tau 4),
    # spatial (blocks 5-9, alpha 1) and semantic (mask class tokens, beta 0.5) branches
    proxy=dict(
        type='CorrCLIPAttention',
        vfm=dict(type='VFMTeacher', name='dino_b8', checkpoint='checkpoints/dino_vitbase8_pretrain.pth'),
        mask_source=dict(type='MaskFileSource', mask_dir=None),  # set per benchmark
        tau=4.0, eps=0.2, min_samples=1, alpha=1.0, beta=0.5, num_spatial='auto', tap='qk', on_missing='error'),
    # CorrCLIP's map correction with the same id maps (read once by the segmentor)
    postprocess=[dict(type='MaskVote', mask_source=None)],
    class_names=None,  # set per benchmark
    name_sep='; ',
    logit_scale=40.0,
    prob_thd=0.0,
    background_index=0,
    slide_crop=336,
    slide_stride=112,
    pad_multiple=56,
    crops_per_forward=8)
custom_hooks = [dict(type='SegPostProcessReportHook')]
