"""What the novel regions consist of: per attack type, the call pairs (previous call, call) whose
KN 6-gram surprisal exceeds 8 bits in most of its traces, with how many validation traces and
training traces (out of fold) hold the same novel pair; the validation's most common novel
pairs; calls and bigrams never seen in training; where the largest group of validation traces
that share novel pairs (those holding read -> times, a program absent from training) ranks
under the covering score. Reads oofcache.pkl (oofcache.py). Prints tables, and
one AUC (the number of distinct unseen call pairs)."""
import data, pickle, statistics
from collections import Counter
tr, va, at, A = data.split()
N = data.names(); inv = {v: k for k, v in N.items()}; nm = lambda c: N.get(c, str(c))
C = pickle.load(open('oofcache.pkl', 'rb'))
def novel(seq, su, t=8):
    return set((nm(seq[i - 1]) if i else '^', nm(seq[i])) for i in range(len(seq)) if su[i] > t)
NV = [novel(x, c[0]) for x, c in zip(va, C['va'])]
NT = [novel(x, c[0]) for x, c in zip(tr, C['tr'])]
cv = Counter(p for s in NV for p in s); ct = Counter(p for s in NT for p in s)
for ty in sorted(set(a[0] for a in at)):
    idx = [i for i in range(len(at)) if at[i][0] == ty]
    ca = Counter(p for i in idx for p in novel(A[i], C['at'][i][0]))
    print(ty, len(idx), 'traces')
    for p, c in ca.most_common(8):
        print(f'   {p}  attack {c}/{len(idx)}  validation {cv[p]}/{len(va)}  training (oof) {ct[p]}/{len(tr)}')
print('validation, most common novel pairs')
for p, c in cv.most_common(12): print(f'   {p} validation {c} training (oof) {ct[p]}')
seen1 = set(c for t in tr for c in t); seen2 = set((t[i], t[i + 1]) for t in tr for i in range(len(t) - 1))
new2 = lambda s: any((s[i], s[i + 1]) not in seen2 for i in range(len(s) - 1))
print('traces holding a call never seen in training: validation', sum(1 for v in va if any(c not in seen1 for c in v)),
      'attack', sum(1 for a in A if any(c not in seen1 for c in a)))
print('traces holding a call pair never seen in training: validation', sum(map(new2, va)), 'of', len(va),
      'attack', sum(map(new2, A)), 'of', len(A))
du2 = lambda s: len(set((s[i], s[i + 1]) for i in range(len(s) - 1)) - seen2)
data.report('number of distinct call pairs never seen in training', [du2(v) for v in va], [du2(x) for x in A])
a, b = inv['read'], inv['times']
clu = [any(v[i] == a and v[i + 1] == b for i in range(len(v) - 1)) for v in va]
sv = [len(c[1]) / len(x) for x, c in zip(va, C['va'])]; sa = [len(c[1]) / len(x) for x, c in zip(A, C['at'])]
order = sorted(range(len(va)), key=lambda i: -sv[i])
print('validation traces holding read -> times:', sum(clu), '; among the 22 / 109 / 400 highest covering scores:',
      [sum(clu[i] for i in order[:k]) for k in (22, 109, 400)])
print('covering score median: that group', round(statistics.median(sv[i] for i in range(len(va)) if clu[i]), 4),
      'other validation', round(statistics.median(sv[i] for i in range(len(va)) if not clu[i]), 4),
      'attack', round(statistics.median(sa), 4))
