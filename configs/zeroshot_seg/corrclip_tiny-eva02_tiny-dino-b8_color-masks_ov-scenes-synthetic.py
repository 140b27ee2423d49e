# Embedded default for CorrCLIP: the training-free segmentor with a tiny random EVA02 CLIP, CorrCLIP's restricted
# attention from a tiny random DINO ViT-B/8-style VFM (2 blocks, width 64; q + k of its last block), spatial and
# semantic branches, and the mask vote, on the synthetic scenes, on CPU.  Region masks come from the deterministic
# colour-quantisation source (no mask model needed); overlays go to <work_dir>/<timestamp>/vis_data/vis_image/.
#   python tools/test.py configs/zeroshot_seg/corrclip_tiny-eva02_tiny-dino-b8_color-masks_ov-scenes-synthetic.py --work-dir work_dirs/corrclip_tiny
# CorrCLIP's protocol scaled down: short side 112, window 64 / stride 32, crops padded to a multiple of 16 (56 in the
# benchmark configs), classification at the VFM grid (8 x 8 for a 64 crop), 2 templates; the tiny CLIP has 4 blocks,
# so the spatial branch averages block 1 (num_spatial=1).
_base_ = ['./trainingfree_tiny-eva02_ov-scenes-synthetic.py']

model = dict(
    proxy=dict(
        type='CorrCLIPAttention',
        vfm=dict(type='VFMTeacher', name='dino_b8', checkpoint=None,  # random tiny VFM
                 model_kwargs=dict(embed_dim=64, depth=2, num_heads=4)),
        mask_source=dict(type='ColorMaskSource', levels=4, min_area=16),
        tau=4.0, eps=0.2, min_samples=1, alpha=1.0, beta=0.5, num_spatial=1, tap='qk', on_missing='error'),
    postprocess=[dict(type='MaskVote', mask_source=None)],
    pad_multiple=16)
custom_hooks = [dict(type='SegPostProcessReportHook')]
