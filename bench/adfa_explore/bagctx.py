"""Order-free contexts: P(call | the set, or the multiset, of the previous k calls), smoothed
towards the KN 6-gram probability as in gapped.py, p = (c(ctx, w) + beta * p_kn) / (c(ctx) +
beta); a call's surprisal is -log2 of that, or of the larger of it and p_kn; trace score the
mean. Generalises over reorderings of the calls in a context (interleavings in loops)."""
import data, kn, math
from collections import defaultdict
tr, va, at, A = data.split()
vocab = data.vocabulary(tr); tok = data.tokenizer(vocab)
m = kn.KN(6, len(vocab) + 1)
for t in tr: m.add(tok(t))
m.finalize()
def key(h, kind): return tuple(sorted(set(h))) if kind == 'set' else tuple(sorted(h))
for kind in ('set', 'multiset'):
    for k in (3, 5, 8):
        cnt = defaultdict(int); tot = defaultdict(int)
        for t in tr:
            s = tok(t)
            for i in range(k, len(s)):
                c = key(s[i - k:i], kind); cnt[c, s[i]] += 1; tot[c] += 1
        def surprisals(seq, beta, use_max):
            s = tok(seq); out = []
            for i, w in enumerate(s):
                pk = m.prob(tuple(s[max(0, i - 5):i]), w); p = pk
                if i >= k:
                    c = key(s[i - k:i], kind)
                    pb = (cnt.get((c, w), 0) + beta * pk) / (tot.get(c, 0) + beta)
                    p = max(pk, pb) if use_max else pb
                out.append(-math.log2(p))
            return out
        for beta in (1.0,):
            for use_max in (False, True):
                f = lambda x: data.mean(surprisals(x, beta, use_max))
                data.report(f'{kind} of last {k} beta={beta}{" max with KN" if use_max else ""}', [f(x) for x in va], [f(x) for x in A])
