# OV-DQUO + DeCLIP ViT-L/14-336, OV-LVIS, 896 x 896: the original ViT-L/14 recipe with the DeCLIP backbone (dense
# CLIP map in 'csa' mode).  Paper (DeCLIP, OV-DQUO): 41.5 box APr.  Text: EVA02-CLIP-L/14-336's text tower:
#   python tools/gen_text_embeddings.py --model EVA02-L-14-336 --checkpoint checkpoints/EVA02_CLIP_L_336_psz14_s6B.pt \
#       --classes lvis_v1 --extra-classes object --out data/text_embeddings/lvis_v1_object_eva02-l14-336.pt
_base_ = ['_base_/models/ovdquo_eva02-l14-336.py', '_base_/datasets/ov_lvis_896.py',
          '_base_/schedules/ovdquo_adamw-constant_ema_35e.py']
model = dict(
    data_preprocessor=_base_.data_preprocessor,
    class_names='lvis_v1',
    novel_classes='lvis_v1',
    text_embeddings='data/text_embeddings/lvis_v1_object_eva02-l14-336.pt',
    category_sampler=dict(type='OVCategorySampler', num_sampled=100, pool='all'),
    novel_boost=8.0,
    backbone=dict(checkpoint='checkpoints/declip_eva02_l14_336.pt', dense_mode='csa'),
    test_cfg=dict(max_per_img=300))
default_hooks = dict(checkpoint=dict(save_best='lvis/bbox_APr', rule='greater'))
