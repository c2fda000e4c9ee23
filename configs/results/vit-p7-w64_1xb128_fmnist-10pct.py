# The ViT student (patch 7, width 64, 4 blocks) alone: the baseline of every ViT row.
_base_ = ['../_base_/fmnist_results.py', '../_base_/models/fmnist_vit_p7_w64.py']
