"""The rows of the results table on MNIST-format data (configs/results/): every method on the
student it was made for, each against that student trained alone, in one regime."""
from .report import Row
from .table import Budget, Teacher

CFG = 'configs/results'
#: the full table's budget (tools/benchmark/results.py); the regime: docs/benchmarks.md
BUDGET = Budget(seeds=3, epochs=3, labelled=6000, labelled_per_batch=64)
TEACHERS = [
    Teacher('teacher_cnn', 'CNN teacher', f'{CFG}/resnet-w16_1xb128_fmnist.py', epochs=12),
    Teacher('teacher_vit', 'ViT teacher', f'{CFG}/vit-p7-w128_1xb128_fmnist.py', epochs=15),
]
VIT, CNN = 'small ViT', 'small CNN'
# config names: {student}_{teacher}_1xb128_fmnist-10pct_{method}.py (README, "Config names")
VIT_CNN = f'{CFG}/vit-p7-w64_resnet-w16_1xb128_fmnist-10pct'
DEIT_CNN = f'{CFG}/deit-p7-w64_resnet-w16_1xb128_fmnist-10pct'
VIT_VIT = f'{CFG}/vit-p7-w64_vit-p7-w128_1xb128_fmnist-10pct'
CNN_CNN = f'{CFG}/resnet-w8_resnet-w16_1xb128_fmnist-10pct'
CNN_VIT = f'{CFG}/resnet-w8_vit-p7-w128_1xb128_fmnist-10pct'
# The rows and Cross-Architecture KD + KD (its working variant, docs/cakd.md) are the
# default table (about 100 min from nothing on 2 cores); ``extra`` rows run with --extras.
ROWS = [
    Row('vit_baseline', VIT, 'no distillation', f'{CFG}/vit-p7-w64_1xb128_fmnist-10pct.py'),
    Row('vit_kd', VIT, 'KD', f'{VIT_CNN}_kd.py', 'teacher_cnn'),
    Row('vit_nkd', VIT, 'NKD', f'{VIT_CNN}_nkd.py', 'teacher_cnn'),
    Row('vit_dkd', VIT, 'DKD', f'{VIT_CNN}_dkd.py', 'teacher_cnn'),
    Row('vit_deit', VIT, 'DeiT (hard, distillation token)', f'{DEIT_CNN}_deit.py', 'teacher_cnn'),
    Row('vit_cskd', VIT, 'CSKD', f'{DEIT_CNN}_cskd.py', 'teacher_cnn'),
    Row('vit_vitkd', VIT, 'ViTKD', f'{VIT_VIT}_vitkd.py', 'teacher_vit'),
    Row('vit_vitkd_nkd', VIT, 'ViTKD + NKD', f'{VIT_VIT}_vitkd-nkd.py', 'teacher_vit'),
    Row('cnn_baseline', CNN, 'no distillation', f'{CFG}/resnet-w8_1xb128_fmnist-10pct.py'),
    Row('cnn_kd', CNN, 'KD', f'{CNN_CNN}_kd.py', 'teacher_cnn'),
    Row('cnn_fitnet', CNN, 'FitNet', f'{CNN_CNN}_fitnet.py', 'teacher_cnn'),
    Row('cnn_tat', CNN, 'TaT (one-to-all)', f'{CNN_CNN}_tat.py', 'teacher_cnn'),
    Row('cnn_tat_kd', CNN, 'TaT + KD', f'{CNN_CNN}_tat-kd.py', 'teacher_cnn',
        reference='cnn_kd', extra=True),
    Row('cnn_cakd', CNN, 'Cross-Architecture KD', f'{CNN_VIT}_cakd.py', 'teacher_vit'),
    Row('cnn_cakd_public', CNN, 'Cross-Architecture KD (public code)',
        f'{CNN_VIT}_cakd-public-code.py', 'teacher_vit', extra=True),
    # the reference of the next row: logits alone from the same teacher (docs/cakd.md)
    Row('cnn_kd_vit', CNN, 'KD (ViT teacher)', f'{CNN_VIT}_kd.py', 'teacher_vit', extra=True),
    Row('cnn_cakd_kd', CNN, 'Cross-Architecture KD + KD', f'{CNN_VIT}_cakd-kd.py', 'teacher_vit',
        reference='cnn_kd_vit'),
]
