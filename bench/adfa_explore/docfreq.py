"""Rarity instead of novelty: for each call, the number of training traces holding the n-gram
that ends at it (document frequency df, 0 if unseen); trace score the mean of
-log((df + 0.5) / (N + 1)) over its calls (N = 833 training traces), n = 3, 4, 6, 8. An n-gram
seen in one training trace counts almost as much as an unseen one."""
import data, math
from collections import defaultdict
tr, va, at, A = data.split()
N = len(tr)
for n in (3, 4, 6, 8):
    df = defaultdict(int)
    for t in tr:
        for g in set(tuple(t[i:i + n]) for i in range(len(t) - n + 1)): df[g] += 1
    def score(s):
        v = [-math.log((df.get(tuple(s[i - n + 1:i + 1]), 0) + 0.5) / (N + 1)) for i in range(n - 1, len(s))]
        return data.mean(v) if v else -math.log(0.5 / (N + 1))
    data.report(f'mean -log document frequency of {n}-grams', [score(s) for s in va], [score(s) for s in A])
