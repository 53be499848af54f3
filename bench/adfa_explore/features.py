"""Per-trace feature vectors built from the per-call scores (oofcache.pkl: KN 6-gram surprisals
and covering segments; training traces out of fold) plus length and call-mix features, each
feature's own AUC, and one-class models fit on the training traces' vectors only: kNN distance
(k = 1, 5, 20), an isolation forest and Mahalanobis distance in the training-standardised space; each alone and
rank-averaged with the covering score (ranks among the training out-of-fold scores)."""
import data, pickle, math, bisect
from collections import Counter
tr, va, at, A = data.split()
C = pickle.load(open('oofcache.pkl', 'rb'))
def q(s, p): return s[min(len(s) - 1, int(p * (len(s) - 1)))]
def feats(seq, sc):
    su, seg = sc; n = len(seq); s = sorted(su)
    cnt = Counter(seq); ent = -sum(c / n * math.log2(c / n) for c in cnt.values())
    f = {'mean': sum(su) / n, 'q50': q(s, .5), 'q75': q(s, .75), 'q90': q(s, .9), 'q95': q(s, .95),
         'q99': q(s, .99), 'max': s[-1]}
    for t in (1, 2, 4, 8, 12): f[f'frac>{t}'] = sum(1 for v in su if v > t) / n
    f['segs/n'] = len(seg) / n
    f['meanlogseg'] = -sum(math.log(l) for l in seg) / len(seg)
    f['short/n'] = sum(l for l in seg if l < 8) / n
    f['longest/n'] = max(seg) / n
    f['loglen'] = math.log(n); f['distinct'] = len(cnt); f['entropy'] = ent
    f['distinct/loglen'] = len(cnt) / math.log(n + 2)
    return f
FT = [feats(x, c) for x, c in zip(tr, C['tr'])]
FV = [feats(x, c) for x, c in zip(va, C['va'])]
FA = [feats(x, c) for x, c in zip(A, C['at'])]
keys = list(FT[0])
for k in keys: data.report('feature ' + k, [f[k] for f in FV], [f[k] for f in FA])
def standardise(keys):
    mu = {k: data.mean([f[k] for f in FT]) for k in keys}
    sd = {k: math.sqrt(data.mean([(f[k] - mu[k]) ** 2 for f in FT])) or 1.0 for k in keys}
    z = lambda F: [[(f[k] - mu[k]) / sd[k] for k in keys] for f in F]
    return z(FT), z(FV), z(FA)
def knn_scores(T, X, k, skip_self=False):
    out = []
    for x in X:
        d = sorted(sum((a - b) ** 2 for a, b in zip(x, t)) for t in T)
        d = d[1:] if skip_self else d
        out.append(math.sqrt(data.mean(d[:k])))
    return out
def inverse(M):
    n = len(M); a = [row[:] + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(M)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(a[r][c])); a[c], a[p] = a[p], a[c]
        pv = a[c][c]; a[c] = [v / pv for v in a[c]]
        for r in range(n):
            if r != c and a[r][c]:
                fr = a[r][c]; a[r] = [v - fr * w for v, w in zip(a[r], a[c])]
    return [row[n:] for row in a]
def mahalanobis(T, X, ridge=0.05):
    d = len(T[0]); n = len(T)
    cov = [[sum(t[i] * t[j] for t in T) / n + (ridge if i == j else 0) for j in range(d)] for i in range(d)]
    P = inverse(cov)
    return [sum(x[i] * P[i][j] * x[j] for i in range(d) for j in range(d)) for x in X]
def iforest(T, X, trees=100, sample=256, seed=7):
    """isolation forest (Liu et al. 2008): mean path length over random trees, as 2^(-E h / c)"""
    import random
    rnd = random.Random(seed)
    cn = lambda n: 2 * (math.log(n - 1) + 0.5772156649) - 2 * (n - 1) / n if n > 2 else (1.0 if n == 2 else 0.0)
    def grow(rows, depth):
        if depth >= 8 or len(rows) <= 1: return ('leaf', len(rows))
        d = rnd.randrange(len(T[0])); lo = min(r[d] for r in rows); hi = max(r[d] for r in rows)
        if lo == hi: return ('leaf', len(rows))
        cut = rnd.uniform(lo, hi)
        return ('node', d, cut, grow([r for r in rows if r[d] < cut], depth + 1), grow([r for r in rows if r[d] >= cut], depth + 1))
    forest = [grow(rnd.sample(T, min(sample, len(T))), 0) for _ in range(trees)]
    def path(node, x, depth):
        if node[0] == 'leaf': return depth + cn(node[1])
        return path(node[3] if x[node[1]] < node[2] else node[4], x, depth + 1)
    c = cn(min(sample, len(T)))
    return [2 ** (-data.mean([path(t, x, 0) for t in forest]) / c) for x in X]
def rank_among(ref, xs):
    r = sorted(ref); return [bisect.bisect_left(r, x) / len(r) for x in xs]
cov_t = [f['segs/n'] for f in FT]
def report_with_cover(name, st, sv, sa):
    data.report(name, sv, sa)
    cv = [f['segs/n'] for f in FV]; ca = [f['segs/n'] for f in FA]
    for w in (0.3, 0.5):
        comb = lambda s, c: [w * a + (1 - w) * b for a, b in zip(rank_among(st, s), rank_among(cov_t, c))]
        data.report(f'  rank average with cover, weight {w}', comb(sv, cv), comb(sa, ca))
SETS = {'surprisal quantiles + cover': ['mean', 'q50', 'q75', 'q90', 'q95', 'q99', 'frac>1', 'frac>4', 'frac>8', 'segs/n', 'meanlogseg', 'short/n'],
        'all': keys,
        'scores + length + mix': ['mean', 'q50', 'q90', 'frac>4', 'segs/n', 'meanlogseg', 'loglen', 'distinct', 'entropy']}
for sname, ks in SETS.items():
    T, V, X = standardise(ks)
    for k in (1, 5, 20):
        report_with_cover(f'kNN k={k} on {sname}', knn_scores(T, T, k, True), knn_scores(T, V, k), knn_scores(T, X, k))
    report_with_cover(f'isolation forest on {sname}', iforest(T, T), iforest(T, V), iforest(T, X))
    report_with_cover(f'Mahalanobis on {sname}', mahalanobis(T, T), mahalanobis(T, V), mahalanobis(T, X))
