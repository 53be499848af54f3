"""Covering by the few most similar training traces instead of all of them: a normal trace
should be explained mostly by traces of its own program, while a known program doing what only
other programs do is covered cheaply by the whole training set but not by its neighbours.
Neighbours: the k training traces sharing most distinct 3-grams with the trace (share of the
trace's distinct 3-grams). Scores: segments per call covering with the k neighbours only
(k = 1, 3, 10), and the ratio of that to the covering by all training traces (cover.py)."""
import data, math
from covering import automaton, segments
tr, va, at, A = data.split()
grams = lambda s: set(tuple(s[i:i + 3]) for i in range(len(s) - 2)) or {tuple(s)}
TG = [grams(t) for t in tr]
full = automaton(tr)
KS = (1, 3, 10)
def scores(seq):
    g = grams(seq)
    order = sorted(range(len(tr)), key=lambda j: -len(g & TG[j]))
    n = len(seq); glob = len(segments(full, seq)) / n
    out = {'all': glob}
    for k in KS:
        loc = len(segments(automaton([tr[j] for j in order[:k]]), seq)) / n
        out[f'k={k}'] = loc; out[f'k={k} / all'] = loc / glob; out[f'k={k} - all'] = loc - glob
    return out
SV = [scores(s) for s in va]; SA = [scores(s) for s in A]
for key in SV[0]: data.report('segments per call, ' + key, [x[key] for x in SV], [x[key] for x in SA])
