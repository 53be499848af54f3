"""Both directions: a KN 6-gram model of the reversed traces predicts each call from the five
that follow it; a call's surprisal is the forward one, the backward one, their mean or their
minimum (unexpected from both sides); trace score the mean over calls."""
import data, kn
tr, va, at, A = data.split()
vocab = data.vocabulary(tr); tok = data.tokenizer(vocab)
fw = kn.KN(6, len(vocab) + 1); bw = kn.KN(6, len(vocab) + 1)
for t in tr: fw.add(tok(t)); bw.add(tok(t)[::-1])
fw.finalize(); bw.finalize()
def both(s): s = tok(s); return fw.surprisals(s), bw.surprisals(s[::-1])[::-1]
BV = [both(s) for s in va]; BA = [both(s) for s in A]
for name, f in (('backward', lambda a, b: b), ('mean of both', lambda a, b: (a + b) / 2),
                ('minimum of both', min), ('maximum of both', max)):
    sc = lambda F, B: data.mean([f(a, b) for a, b in zip(F, B)])
    data.report(f'KN 6-gram {name}', [sc(*x) for x in BV], [sc(*x) for x in BA])
