"""Backoff to abstracted contexts: besides the KN 6-gram (kn.py), models whose 5-call context
has one position replaced by a wildcard (substitution) or is built from the previous 6 calls
with one of them skipped (insertion). Each is smoothed towards the KN probability,
p_j = (c_j(ctx, w) + beta * p_kn) / (c_j(ctx) + beta); a call's surprisal is -log2 of the largest
p_j (or of their mean); trace score the mean."""
import data, kn, math
from collections import defaultdict
tr, va, at, A = data.split()
vocab = data.vocabulary(tr); tok = data.tokenizer(vocab)
m = kn.KN(6, len(vocab) + 1)
for t in tr: m.add(tok(t))
m.finalize()
W = -1
def variants(h):
    """abstracted contexts of the 6 previous calls h (oldest first)"""
    ctx = h[1:]
    out = [('sub', j, ctx[:j] + (W,) + ctx[j + 1:]) for j in range(len(ctx))]
    out += [('skip', j, h[:j] + h[j + 1:]) for j in range(1, len(h))]
    return out
cnt = defaultdict(int); tot = defaultdict(int)
for t in tr:
    s = tok(t)
    for i in range(6, len(s)):
        for v in variants(tuple(s[i - 6:i])):
            cnt[v + (s[i],)] += 1; tot[v] += 1
def surprisals(seq, beta, agg, kinds):
    s = tok(seq); out = []
    for i, w in enumerate(s):
        h5 = tuple(s[max(0, i - 5):i]); pk = m.prob(h5, w)
        ps = [pk]
        if i >= 6:
            for v in variants(tuple(s[i - 6:i])):
                if v[0] in kinds:
                    ps.append((cnt.get(v + (w,), 0) + beta * pk) / (tot.get(v, 0) + beta))
        p = max(ps) if agg == 'max' else sum(ps) / len(ps)
        out.append(-math.log2(p))
    return out
for kinds in (('sub',), ('skip',), ('sub', 'skip')):
    for beta in (1.0, 5.0):
        for agg in ('max', 'mean'):
            f = lambda x: data.mean(surprisals(x, beta, agg, kinds))
            data.report(f'{"+".join(kinds)} beta={beta} {agg}', [f(x) for x in va], [f(x) for x in A])
