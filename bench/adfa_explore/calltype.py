"""Per-call-type normalisation of the KN 6-gram surprisal, learnt from the training traces
scored out of fold (oofcache.pkl): a call's surprisal minus the mean (or divided by the mean,
or z-scored by mean and spread) of that call type's out-of-fold surprisals, so that call types
whose novelty is common among held-out normal traces count less; and the share of a call
type's out-of-fold occurrences above 8 bits used as a down-weight, s * (1 - share). Trace
score the mean over its calls."""
import data, pickle, math
from collections import defaultdict
tr, va, at, A = data.split()
C = pickle.load(open('oofcache.pkl', 'rb'))
acc = defaultdict(list)
for t, c in zip(tr, C['tr']):
    for call, s in zip(t, c[0]): acc[call].append(s)
allv = [s for v in acc.values() for s in v]; gmu = data.mean(allv)
def st(v, prior=20):
    n = len(v); mu = (sum(v) + prior * gmu) / (n + prior)
    sd = math.sqrt((sum((x - mu) ** 2 for x in v) + prior * 4.0) / (n + prior))
    hi = (sum(1 for x in v if x > 8) + 1) / (n + 2)
    return mu, sd, hi
S = {c: st(v) for c, v in acc.items()}; dflt = st([])
def score(seq, su, mode):
    out = []
    for call, s in zip(seq, su):
        mu, sd, hi = S.get(call, dflt)
        out.append(s - mu if mode == 'minus mean' else s / (mu + 0.5) if mode == 'over mean' else
                   (s - mu) / sd if mode == 'z' else s * (1 - hi))
    return data.mean(out)
for mode in ('minus mean', 'over mean', 'z', 'novel-share weight'):
    data.report(f'surprisal per call type, {mode}', [score(x, c[0], mode) for x, c in zip(va, C['va'])],
                [score(x, c[0], mode) for x, c in zip(A, C['at'])])
