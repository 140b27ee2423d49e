# CorrCLIP v1 (ICCV 2025) on OpenAI CLIP ViT-B/16 with DINO ViT-B/8 and class-agnostic region masks (CorrCLIP's
# published SAM 2 masks or tools/gen_masks.py output, one <image stem>.npz per image).
# CorrCLIP's protocol is ProxyCLIP's (inherited): 80 ImageNet templates, window 336 / stride 112 (set per benchmark),
# crops zero-padded symmetrically to a multiple of 56 (masks padded with 10000), classification at the DINO grid,
# logits averaged over overlaps and resized to the original size, x40, softmax, max over a class's names, pixels
# below prob_thd -> background 0, CLIP's mean / std rounded to 3 decimals (corrclip_segmentor.py:49-53); then the
# mask vote. pos_embed_resize='dino_scale' (inherited): the original's open_clip resizes OpenAI's 14x14 grid.
_base_ = ['./model_proxyclip_vitb16_dino-b8.py']
model = dict(
    # CorrCLIP: DINO q + k of the last block, region merging (DBSCAN eps 0.2), restricted attention (tau 4),
    # spatial (blocks 5-9, alpha 1) and semantic (mask class tokens, beta 0.5) branches
    proxy=dict(
        _delete_=True,
        type='CorrCLIPAttention',
        vfm=dict(type='VFMTeacher', name='dino_b8', checkpoint='checkpoints/dino_vitbase8_pretrain.pth'),
        mask_source=dict(type='MaskFileSource', mask_dir=None),  # set per benchmark
        tau=4.0, eps=0.2, min_samples=1, alpha=1.0, beta=0.5, num_spatial='auto', tap='qk', on_missing='error'),
    # CorrCLIP's map correction with the same id maps (read once by the segmentor)
    postprocess=[dict(type='MaskVote', mask_source=None)])
custom_hooks = [dict(type='SegPostProcessReportHook')]
