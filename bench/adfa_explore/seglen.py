"""Covering segments weighted by how unusual their length is among the training traces' own
out-of-fold covering segments: a segment of length l costs -log P(L <= l) under that empirical
distribution (short segments cost most); trace score the summed cost per call, or per segment.
Reads oofcache.pkl (oofcache.py)."""
import data, pickle, math, bisect
tr, va, at, A = data.split()
C = pickle.load(open('oofcache.pkl', 'rb'))
L = sorted(l for c in C['tr'] for l in c[1]); n = len(L)
cost = lambda l: -math.log((bisect.bisect_right(L, l) + 0.5) / (n + 1))
for name, f in (('per call', lambda segs, m: sum(map(cost, segs)) / m),
                ('per segment', lambda segs, m: sum(map(cost, segs)) / len(segs))):
    data.report(f'covering segment-length cost {name}', [f(c[1], len(x)) for x, c in zip(va, C['va'])],
                [f(c[1], len(x)) for x, c in zip(A, C['at'])])
