"""Locality frames (Warrender/Forrest): per-call mismatch (surprisal above a threshold) counted
within a sliding frame of w calls, trace score = the largest count; and the largest mean
surprisal over sliding windows of w calls (a trace shorter than w: its mean). Reads surp6.pkl
(base.py)."""
import data, pickle
SV, SA = pickle.load(open('surp6.pkl', 'rb'))
def max_window_sum(x, w):
    if len(x) <= w: return sum(x) * w / max(len(x), 1)
    s = sum(x[:w]); best = s
    for i in range(w, len(x)):
        s += x[i] - x[i - w]
        if s > best: best = s
    return best
for w in (10, 20, 50, 100, 200):
    data.report(f'max window mean surprisal w={w}',
                [max_window_sum(x, w) / w for x in SV], [max_window_sum(x, w) / w for x in SA])
for t in (4, 8, 12):
    for w in (10, 20, 50):
        f = lambda x: max_window_sum([1.0 if v > t else 0.0 for v in x], w)
        data.report(f'locality frame count >{t} bits w={w}', [f(x) for x in SV], [f(x) for x in SA])
