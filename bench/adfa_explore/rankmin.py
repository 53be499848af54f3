"""Ensembles that let any member vouch for a trace (an idea from Kim et al. 2016's ensemble,
its accumulation of 'highly normal' sequences, not a reproduction of it): each member's score is
ranked among the training traces' out-of-fold scores, and the trace score is the smallest (or
the largest) of the ranks. Members: KN 6-gram mean surprisal, its median, covering segments per
call, mean log segment length. Reads oofcache.pkl (oofcache.py)."""
import data, pickle, math, bisect, itertools
tr, va, at, A = data.split()
C = pickle.load(open('oofcache.pkl', 'rb'))
def med(x): s = sorted(x); return s[len(s) // 2]
M = {'KN mean': lambda c, n: sum(c[0]) / n, 'KN median': lambda c, n: med(c[0]),
     'covering': lambda c, n: len(c[1]) / n, 'mean log segment': lambda c, n: -sum(map(math.log, c[1])) / len(c[1])}
S = {k: {part: [f(c, len(x)) for x, c in zip(X, C[part])] for part, X in (('tr', tr), ('va', va), ('at', A))} for k, f in M.items()}
R = {k: {p: [bisect.bisect_left(sorted(v['tr']), x) / len(v['tr']) for x in v[p]] for p in ('va', 'at')} for k, v in S.items()}
for r in (2, 3, 4):
    for combo in itertools.combinations(M, r):
        for name, agg in (('min', min), ('max', max)):
            f = lambda p: [agg(R[k][p][i] for k in combo) for i in range(len(R[combo[0]][p]))]
            data.report(f'{name} of ranks: {" + ".join(combo)}', f('va'), f('at'))
