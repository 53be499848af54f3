"""Likelihood ratio against the trace's own complexity (as Serra et al., ICLR 2020, correct a
generative model's likelihood for out-of-distribution detection): trace score = mean KN 6-gram
surprisal (or covering segments per call) minus lam x the trace's own code length per call,
from a generic compressor (zlib, lzma on the call numbers as 2-byte symbols) or from an
adaptive order-2 model that learns from the trace's own past only (Krichevsky-Trofimov counts,
backing off to order 1 and 0). Reads oofcache.pkl (oofcache.py)."""
import data, pickle, math, zlib, lzma
from collections import defaultdict
tr, va, at, A = data.split()
C = pickle.load(open('oofcache.pkl', 'rb'))
def zl(seq): return 8 * len(zlib.compress(b''.join(c.to_bytes(2, 'little') for c in seq), 9)) / len(seq)
def xz(seq): return 8 * len(lzma.compress(b''.join(c.to_bytes(2, 'little') for c in seq), format=lzma.FORMAT_RAW, filters=[{'id': lzma.FILTER_LZMA2, 'preset': 6}])) / len(seq)
def adaptive(seq, V=400):
    cnt = [defaultdict(lambda: defaultdict(int)) for _ in range(3)]; bits = 0.0
    for i, w in enumerate(seq):
        p = 1.0 / V
        for k in range(3):
            if i < k: break
            d = cnt[k][tuple(seq[i - k:i])]; tot = sum(d.values())
            if tot: p = (d.get(w, 0) + 0.5 * V * p) / (tot + 0.5 * V)  # KT-like, prior = lower order
        bits -= math.log2(p)
        for k in range(3):
            if i >= k: cnt[k][tuple(seq[i - k:i])][w] += 1
    return bits / len(seq)
CX = {'zlib': zl, 'lzma': xz, 'adaptive order-2': adaptive}
base = {'KN mean surprisal': lambda c, s: sum(c[0]) / len(s), 'cover segments per call': lambda c, s: 10 * len(c[1]) / len(s)}
for cname, cf in CX.items():
    cv = [cf(s) for s in va]; ca = [cf(s) for s in A]
    data.report(f'{cname} bits per call alone', cv, ca)
    for bname, bf in base.items():
        bv = [bf(c, s) for c, s in zip(C['va'], va)]; ba = [bf(c, s) for c, s in zip(C['at'], A)]
        for lam in (0.25, 0.5, 1.0):
            data.report(f'{bname} - {lam} x {cname}', [b - lam * x for b, x in zip(bv, cv)], [b - lam * x for b, x in zip(ba, ca)])
