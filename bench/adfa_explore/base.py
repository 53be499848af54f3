import data, kn, time, statistics, math
tr,va,at,A=data.split()
vocab=data.vocabulary(tr)
tok=data.tokenizer(vocab)
t0=time.time()
m=kn.KN(6,len(vocab)+1)
for t in tr: m.add(tok(t))
m.finalize(); print('trained',time.time()-t0,flush=True)
SV=[m.surprisals(tok(s)) for s in va]; SA=[m.surprisals(tok(s)) for s in A]
print('scored',time.time()-t0,flush=True)
import pickle; pickle.dump((SV,SA),open('surp6.pkl','wb'))
mean=data.mean
data.report('mean',[mean(x) for x in SV],[mean(x) for x in SA])
