"""Does a gain at 5 % false alarms hold on both halves of the attack runs (runs 1/5/9 and 3/7,
as docs/user-guide.md checks cover)? The covering score, its mean log segment length, and the
rank average (weight 0.3) of the Mahalanobis distance on surprisal quantiles + covering
features (features.py) with the covering score. Reads oofcache.pkl."""
import data
src = open('features.py').read()
exec(src[:src.find('for k in keys: data.report')])
exec(src[src.find('def standardise'):src.find('cov_t = ')])
T, V, X = standardise(SETS_QC := ['mean', 'q50', 'q75', 'q90', 'q95', 'q99', 'frac>1', 'frac>4', 'frac>8', 'segs/n', 'meanlogseg', 'short/n'])
mt, mv, ma = mahalanobis(T, T), mahalanobis(T, V), mahalanobis(T, X)
cov_t = [f['segs/n'] for f in FT]
comb = lambda m, fs: [0.3 * a + 0.7 * b for a, b in zip(rank_among(mt, m), rank_among(cov_t, [f['segs/n'] for f in fs]))]
cv, ca = comb(mv, FV), comb(ma, FA)
half = lambda i: int(at[i][1].rsplit('_', 1)[1]) in (1, 5, 9)
for name, sv, sa in (('covering', [f['segs/n'] for f in FV], [f['segs/n'] for f in FA]),
                     ('mean log segment', [f['meanlogseg'] for f in FV], [f['meanlogseg'] for f in FA]),
                     ('Mahalanobis 0.3 + covering 0.7', cv, ca)):
    for h, lab in ((True, 'runs 1/5/9'), (False, 'runs 3/7')):
        data.report(f'{name}, {lab}', sv, [sa[i] for i in range(len(A)) if half(i) == h])
