"""Configs renamed to the one naming scheme (README, "Config names"): old path under
``configs/`` -> new path. :func:`renamed_config_error` turns a run of an old name into an error
naming the new one (docs/changelog.md lists the same table)."""
import os.path as osp
from typing import Optional

#: old path -> new path, both relative to ``configs/``
RENAMED_CONFIGS = {
    'cakd/efficientnet-b0_vit-b16_in1k.py':
        'cakd/efficientnet-b0_vit-b16_8xb32_in1k.py',
    'cakd/mobilenet-v2_vit-b16_in1k.py':
        'cakd/mobilenet-v2_vit-b16_8xb32_in1k.py',
    'cakd/resnet18_vit-b16_in1k.py':
        'cakd/resnet18_vit-b16_8xb32_in1k.py',
    'cakd/resnet18_vit-b16_in1k_public-code.py':
        'cakd/resnet18_vit-b16_8xb32_in1k_public-code.py',
    'cakd/resnet18_vit-b16_in1k_public-ramp.py':
        'cakd/resnet18_vit-b16_8xb32_in1k_public-ramp.py',
    'cakd/resnet50_swin-b_in1k.py':
        'cakd/resnet50_swin-b_8xb32_in1k.py',
    'cakd/resnet50_vit-b16_in1k.py':
        'cakd/resnet50_vit-b16_8xb32_in1k.py',
    'cakd/fmnist_resnet-small_vit-small.py':
        'cakd/resnet-small_vit-small_1xb128_fmnist.py',
    'cskd/deit-b_regnety-16gf.py':
        'cskd/deit-b_regnety-16gf_8xb128_in1k.py',
    'cskd/deit-s_regnety-16gf.py':
        'cskd/deit-s_regnety-16gf_8xb128_in1k.py',
    'cskd/deit-t_regnety-16gf.py':
        'cskd/deit-t_regnety-16gf_8xb128_in1k.py',
    'cskd/fmnist_deit-small.py':
        'cskd/deit-small_1xb128_fmnist.py',
    'cskd/fmnist_deit-small_resnet-small.py':
        'cskd/deit-small_resnet-small_1xb128_fmnist.py',
    'deit/deit-tiny-distilled_regnety-160_8xb128_in1k.py':
        'deit/deit-t-distilled_regnety-16gf_8xb64_in1k.py',
    'fmnist/resnet-small_fmnist.py':
        'fmnist/resnet-small_1xb128_fmnist.py',
    'fmnist/vit-small_fmnist.py':
        'fmnist/vit-small_1xb128_fmnist.py',
    'kd/fmnist_vit-small_resnet-small.py':
        'kd/vit-small_resnet-small_1xb128_fmnist.py',
    'kd/fmnist_vit-small_resnet-small_cached.py':
        'kd/vit-small_resnet-small_1xb128_fmnist_cached.py',
    'vitkd/deit-b_deit3-l.py':
        'vitkd/deit-b_deit3-l_8xb128_in1k.py',
    'vitkd/deit-b_deit3-l_nkd.py':
        'vitkd/deit-b_deit3-l_8xb128_in1k_nkd.py',
    'vitkd/deit-s_deit3-b.py':
        'vitkd/deit-s_deit3-b_8xb128_in1k.py',
    'vitkd/deit-s_deit3-b_nkd.py':
        'vitkd/deit-s_deit3-b_8xb128_in1k_nkd.py',
    'vitkd/deit-t_deit3-s.py':
        'vitkd/deit-t_deit3-s_8xb128_in1k.py',
    'vitkd/deit-t_deit3-s_nkd.py':
        'vitkd/deit-t_deit3-s_8xb128_in1k_nkd.py',
    'results/vit_baseline.py':
        'results/vit-p7-w64_1xb128_fmnist-10pct.py',
    'results/vit_kd.py':
        'results/vit-p7-w64_resnet-w16_1xb128_fmnist-10pct_kd.py',
    'results/vit_nkd.py':
        'results/vit-p7-w64_resnet-w16_1xb128_fmnist-10pct_nkd.py',
    'results/vit_dkd.py':
        'results/vit-p7-w64_resnet-w16_1xb128_fmnist-10pct_dkd.py',
    'results/vit_deit.py':
        'results/deit-p7-w64_resnet-w16_1xb128_fmnist-10pct_deit.py',
    'results/vit_cskd.py':
        'results/deit-p7-w64_resnet-w16_1xb128_fmnist-10pct_cskd.py',
    'results/vit_vitkd.py':
        'results/vit-p7-w64_vit-p7-w128_1xb128_fmnist-10pct_vitkd.py',
    'results/vit_vitkd_nkd.py':
        'results/vit-p7-w64_vit-p7-w128_1xb128_fmnist-10pct_vitkd-nkd.py',
    'results/cnn_baseline.py':
        'results/resnet-w8_1xb128_fmnist-10pct.py',
    'results/cnn_kd.py':
        'results/resnet-w8_resnet-w16_1xb128_fmnist-10pct_kd.py',
    'results/cnn_fitnet.py':
        'results/resnet-w8_resnet-w16_1xb128_fmnist-10pct_fitnet.py',
    'results/cnn_tat.py':
        'results/resnet-w8_resnet-w16_1xb128_fmnist-10pct_tat.py',
    'results/cnn_tat_kd.py':
        'results/resnet-w8_resnet-w16_1xb128_fmnist-10pct_tat-kd.py',
    'results/cnn_cakd.py':
        'results/resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_cakd.py',
    'results/cnn_cakd_kd.py':
        'results/resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_cakd-kd.py',
    'results/cnn_cakd_public-code.py':
        'results/resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_cakd-public-code.py',
    'results/cnn_kd_vit-teacher.py':
        'results/resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_kd.py',
    'results/teacher_cnn.py':
        'results/resnet-w16_1xb128_fmnist.py',
    'results/teacher_vit.py':
        'results/vit-p7-w128_1xb128_fmnist.py',
    'downstream/composed_fmnist/tat_deeplabv3plus_r18-w32_r34-w32-d8_1xb8-6e'
    '_composed-fmnist-128x128.py':
        'downstream/composed_fmnist/deeplabv3plus_r18-w32_r34-w32-d8_1xb8-6e'
        '_composed-fmnist-128x128_tat.py',
}


def renamed_config_error(path: str) -> Optional[str]:
    """For a config path that does not exist: the message naming its new name, if the path ends
    with one of the old paths of :data:`RENAMED_CONFIGS`; ``None`` otherwise."""
    if osp.exists(path):
        return None
    path_ = '/' + osp.normpath(path).replace(osp.sep, '/')
    new = next((new for old, new in RENAMED_CONFIGS.items() if path_.endswith('/' + old)), None)
    if new is None:
        return None
    return (f'{path}: this config was renamed to configs/{new} (docs/changelog.md lists every '
            'renamed config)')
