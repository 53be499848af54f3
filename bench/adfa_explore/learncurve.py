"""Learning curve: the covering score (cover.py) and the KN 6-gram mean surprisal trained on a
random 12.5 / 25 / 50 / 75 % of the training traces (3 draws each, seeds 1-3) and on all of
them, scored on the whole development split; medians over the draws. Whether the figures are
still rising at 100 % says whether more normal training data would help."""
import data, kn, random, statistics
from covering import automaton, segments
tr, va, at, A = data.split()
def figures(sub):
    s = automaton(sub)
    vocab = data.vocabulary(sub); tok = data.tokenizer(vocab)
    m = kn.KN(6, len(vocab) + 1)
    for t in sub: m.add(tok(t))
    m.finalize()
    out = []
    for f in (lambda x: len(segments(s, x)) / len(x), lambda x: data.mean(m.surprisals(tok(x)))):
        v = [f(x) for x in va]; a = [f(x) for x in A]
        out.append((data.auc(v, a), 100 * data.tpr_at(v, a, .05), 100 * data.tpr_at(v, a, .01)))
    return out
for frac in (0.125, 0.25, 0.5, 0.75, 1.0):
    runs = [figures(random.Random(seed).sample(tr, round(frac * len(tr)))) for seed in ((1, 2, 3) if frac < 1 else (1,))]
    for i, name in enumerate(('covering', 'KN 6-gram')):
        med = [statistics.median(r[i][j] for r in runs) for j in range(3)]
        print(f'{name}, {100 * frac:g} % of training ({round(frac * len(tr))} traces): AUC {med[0]:.4f} TPR@5 {med[1]:.1f} TPR@1 {med[2]:.1f}', flush=True)
