import data, kn, time, math, pickle
tr,va,at,A=data.split()
vocab=data.vocabulary(tr)
tok=data.tokenizer(vocab)
mean=data.mean
out={}
for N in (2,3,4,5):
    m=kn.KN(N,len(vocab)+1)
    for t in tr: m.add(tok(t))
    m.finalize()
    SV=[m.surprisals(tok(s)) for s in va]; SA=[m.surprisals(tok(s)) for s in A]
    out[N]=(SV,SA)
    data.report(f'order{N} mean',[mean(x) for x in SV],[mean(x) for x in SA])
pickle.dump(out,open('surp_orders.pkl','wb'))
