"""Independent float64 NumPy computations of the formulas in ../shared/REFERENCE.md.

Written sample by sample, deliberately unlike the vectorised torch code they check.
"""
import numpy as np


def softmax(z):
    """Over the last axis."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z):
    """Of a vector."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def conv2d(x, weight, bias=None):
    """x (B, C, h, w), weight (O, C, k, k) with k odd -> (B, O, h, w): stride 1, zero padding
    k // 2, cross-correlation as in torch; one output position at a time."""
    B, C, h, w = x.shape
    k = weight.shape[-1]
    p = k // 2
    padded = np.zeros((B, C, h + 2 * p, w + 2 * p))
    padded[:, :, p:p + h, p:p + w] = x
    out = np.empty((B, weight.shape[0], h, w))
    for b in range(B):
        for i in range(h):
            for j in range(w):
                out[b, :, i, j] = np.tensordot(weight, padded[b, :, i:i + k, j:j + k], axes=3)
    return out if bias is None else out + np.asarray(bias)[None, :, None, None]


def kd(s, t, T):
    B = s.shape[0]
    total = 0.0
    for b in range(B):
        p_t, p_s = softmax(t[b] / T), softmax(s[b] / T)
        total += np.sum(p_t * (np.log(p_t) - np.log(p_s)))
    return total / B * T * T


def deit_soft(s, t, T):
    B, K = s.shape
    total = sum(np.sum(softmax(t[b] / T) * (np.log(softmax(t[b] / T)) - np.log(softmax(s[b] / T))))
                for b in range(B))
    return total * T * T / (B * K)


def deit_hard(s, t):
    return np.mean([-np.log(softmax(s[b])[np.argmax(t[b])]) for b in range(s.shape[0])])


def nkd(s, t, labels, T, gamma):
    B, K = s.shape
    tgt, non = [], []
    for b in range(B):
        g = int(np.argmax(labels[b])) if np.ndim(labels) == 2 else int(labels[b])
        tgt.append(-softmax(t[b])[g] * np.log(softmax(s[b])[g]))
        others = [k for k in range(K) if k != g]
        q_s, q_t = softmax(s[b, others] / T), softmax(t[b, others] / T)
        non.append(-np.sum(q_t * np.log(q_s)))
    return np.mean(tgt) + gamma * T * T * np.mean(non)


def dkd(s, t, labels, alpha, beta, T):
    B, K = s.shape
    tckd = nckd = 0.0
    for b in range(B):
        g = int(np.argmax(labels[b])) if np.ndim(labels) == 2 else int(labels[b])
        p_s, p_t = softmax(s[b] / T), softmax(t[b] / T)
        bs, bt = np.array([p_s[g], 1 - p_s[g]]), np.array([p_t[g], 1 - p_t[g]])
        tckd += np.sum(bt * (np.log(bt) - np.log(bs)))
        others = [k for k in range(K) if k != g]
        q_s, q_t = softmax(s[b, others] / T), softmax(t[b, others] / T)
        nckd += np.sum(q_t * (np.log(q_t) - np.log(q_s)))
    return (alpha * tckd + beta * nckd) * T * T / B
