"""local.py's normalisation applied to the covering score: a trace's segments per call minus
(or z-scored by, or divided by) the out-of-fold covering scores of its k most similar training
traces (Euclidean distance between square roots of call frequencies, as local.py). Reads
oofcache.pkl (oofcache.py)."""
import data, pickle, math
from collections import Counter
tr, va, at, A = data.split()
C = pickle.load(open('oofcache.pkl', 'rb'))
seg = lambda X, S: [len(c[1]) / len(x) for x, c in zip(X, C[S])]
OT, SV, SA = seg(tr, 'tr'), seg(va, 'va'), seg(A, 'at')
def bag(s):
    c = Counter(s); n = len(s); return {k: math.sqrt(x / n) for k, x in c.items()}
TB = [bag(t) for t in tr]
def d2(a, b): return sum((a.get(k, 0) - b.get(k, 0)) ** 2 for k in set(a) | set(b))
def nn(s): b = bag(s); return sorted(range(len(tr)), key=lambda j: d2(b, TB[j]))[:100]
NV = [nn(s) for s in va]; NA = [nn(s) for s in A]
def sc(x, nbr, k, mode):
    ref = [OT[j] for j in nbr[:k]]; mu = data.mean(ref); sd = math.sqrt(data.mean([(r - mu) ** 2 for r in ref]))
    return x - mu if mode == 'minus' else (x - mu) / (sd + 0.02) if mode == 'z' else x / (mu + 0.01)
for k in (10, 20, 50, 100):
    for mode in ('minus', 'z', 'ratio'):
        data.report(f'covering, k={k} {mode}', [sc(x, n, k, mode) for x, n in zip(SV, NV)], [sc(x, n, k, mode) for x, n in zip(SA, NA)])
