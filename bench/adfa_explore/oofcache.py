"""Per-call scores of every trace, for the feature scripts: the Kneser-Ney 6-gram surprisals
(kn.py, as base.py) and the covering segment lengths (cover.py's greedy covering). Training
traces are scored out of fold (5 folds by index modulo 5: each fold by a model of the other
four), validation and attack traces by the model of all training traces. Writes oofcache.pkl:
{'tr'|'va'|'at': [(surprisals, segment lengths), ...]}."""
import data, kn, pickle, time
from covering import automaton, segments
tr, va, at, A = data.split()
vocab = data.vocabulary(tr)
F = 5
def build(traces):
    tok = data.tokenizer(vocab)
    m = kn.KN(6, len(vocab) + 1)
    for t in traces: m.add(tok(t))
    m.finalize()
    return m, automaton(traces), tok
t0 = time.time()
out = {'tr': [None] * len(tr)}
for f in range(F):
    m, s, tok = build([t for i, t in enumerate(tr) if i % F != f])
    for i in range(f, len(tr), F):
        out['tr'][i] = (m.surprisals(tok(tr[i])), segments(s, tr[i]))
    print('fold', f, round(time.time() - t0, 1), flush=True)
m, s, tok = build(tr)
out['va'] = [(m.surprisals(tok(x)), segments(s, x)) for x in va]
out['at'] = [(m.surprisals(tok(x)), segments(s, x)) for x in A]
pickle.dump(out, open('oofcache.pkl', 'wb'))
data.report('mean surprisal', [data.mean(x[0]) for x in out['va']], [data.mean(x[0]) for x in out['at']])
data.report('segments per call', [len(x[1]) / len(v) for x, v in zip(out['va'], va)],
            [len(x[1]) / len(a) for x, a in zip(out['at'], A)])
