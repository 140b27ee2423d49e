# Embedded default for ProxyCLIP: the training-free segmentor with a tiny random EVA02 CLIP whose last-block
# attention is the proxy attention of a tiny random DINO ViT-B/8-style VFM (2 blocks, width 64), on the synthetic
# scenes, on CPU; overlays go to <work_dir>/<timestamp>/vis_data/vis_image/.
#   python tools/test.py configs/zeroshot_seg/proxyclip_tiny-eva02_tiny-dino-b8_ov-scenes-synthetic.py --work-dir work_dirs/proxyclip_tiny
# ProxyCLIP's protocol scaled down: short side 112, window 64 / stride 32, crops padded to a multiple of 16 (56 in
# the benchmark configs), classification at the VFM grid (8 x 8 for a 64 crop), 2 templates.
_base_ = ['./trainingfree_tiny-eva02_ov-scenes-synthetic.py']

model = dict(
    proxy=dict(
        type='VFMProxyAttention',
        vfm=dict(type='VFMTeacher', name='dino_b8', checkpoint=None,  # random tiny VFM
                 model_kwargs=dict(embed_dim=64, depth=2, num_heads=4)),
        beta=1.2, gamma=3.0),
    pad_multiple=16)
