import data, kn, math, pickle, bisect
tr,va,at,A=data.split()
vocab=data.vocabulary(tr)
BOS=len(vocab)+1; V=BOS+1
tok=lambda s:[BOS]*5+[vocab.get(c,0) for c in s]
m=kn.KN(6,V)
for t in tr: m.add(tok(t))
m.finalize()
def surp(s):
    x=m.surprisals(tok(s)); return x[5:]
SV=[surp(s) for s in va]; SA=[surp(s) for s in A]
pickle.dump((SV,SA),open('surp6bos.pkl','wb'))
mean=data.mean
data.report('bos mean',[mean(x) for x in SV],[mean(x) for x in SA])
for k in (1,3,5,10,20):
    data.report(f'start{k} sum',[sum(x[:k]) for x in SV],[sum(x[:k]) for x in SA])
for k in (5,10):
  for c in (20,50,100):
    f=lambda x:mean(x)+sum(x[:k])/c
    data.report(f'mean+start{k}/{c}',[f(x) for x in SV],[f(x) for x in SA])
