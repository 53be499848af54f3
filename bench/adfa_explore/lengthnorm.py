"""Length normalisation of the trace score: (sum - a * n) / n^b for the covering segments (a
in multiples of the training out-of-fold rate p0 of segments per call) and for the KN
surprisal sum (a = the training out-of-fold mean surprisal); b = 1 is the plain per-call rate,
b = 0.5 a z-score under a Poisson-like null. Reads oofcache.pkl (oofcache.py)."""
import data, pickle
tr, va, at, A = data.split()
C = pickle.load(open('oofcache.pkl', 'rb'))
def stats(X, S): return [(len(c[1]), sum(c[0]), len(x)) for x, c in zip(X, C[S])]
T = stats(tr, 'tr'); V = stats(va, 'va'); X = stats(A, 'at')
p0 = sum(t[0] for t in T) / sum(t[2] for t in T); m0 = sum(t[1] for t in T) / sum(t[2] for t in T)
print(f'training out of fold: {p0:.4f} segments per call, {m0:.3f} bits per call')
for b in (0.5, 0.75, 0.9, 1.0):
    for mult in (0.5, 1, 2):
        f = lambda t: (t[0] - mult * p0 * t[2]) / t[2] ** b
        data.report(f'segments, b={b} a={mult} p0', [f(t) for t in V], [f(t) for t in X])
    f = lambda t: (t[1] - m0 * t[2]) / t[2] ** b
    data.report(f'surprisal, b={b}', [f(t) for t in V], [f(t) for t in X])
