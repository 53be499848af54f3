"""Kneser-Ney orders above 6 (orders.py stops at 6): order 8, 10 and 12, mean surprisal."""
import data, kn
tr, va, at, A = data.split()
vocab = data.vocabulary(tr); tok = data.tokenizer(vocab)
for N in (8, 10, 12):
    m = kn.KN(N, len(vocab) + 1)
    for t in tr: m.add(tok(t))
    m.finalize()
    data.report(f'KN order {N}, mean surprisal', [data.mean(m.surprisals(tok(s))) for s in va],
                [data.mean(m.surprisals(tok(s))) for s in A])
