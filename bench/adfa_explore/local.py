import data, kn, math, pickle
from collections import Counter
tr,va,at,A=data.split()
vocab=data.vocabulary(tr)
V=len(vocab)+1
tok=data.tokenizer(vocab)
mean=data.mean
try:
    oof=pickle.load(open('oof.pkl','rb'))
except Exception:
    oof=[0]*len(tr); F=5
    for f in range(F):
        m=kn.KN(6,V)
        for i,t in enumerate(tr):
            if i%F!=f: m.add(tok(t))
        m.finalize()
        for i in range(f,len(tr),F): oof[i]=mean(m.surprisals(tok(tr[i])))
    pickle.dump(oof,open('oof.pkl','wb'))
SV,SA=pickle.load(open('surp6.pkl','rb')); NV=[mean(x) for x in SV]; NA=[mean(x) for x in SA]
def bag(s):
    c=Counter(vocab.get(x,0) for x in s); n=len(s)
    v={k:math.sqrt(x/n) for k,x in c.items()}; return v
TB=[bag(t) for t in tr]
def d2(a,b):
    ks=set(a)|set(b); return sum((a.get(k,0)-b.get(k,0))**2 for k in ks)
def nn(s):
    b=bag(s); return sorted(range(len(tr)),key=lambda j:d2(b,TB[j]))
NNV=[nn(s)[:50] for s in va]; NNA=[nn(s)[:50] for s in A]
pickle.dump((NNV,NNA),open('nn.pkl','wb'))
for k in (5,10,20,50):
    def sc(x,nbr,mode):
        ref=[oof[j] for j in nbr[:k]]; mu=mean(ref); sd=math.sqrt(mean([(r-mu)**2 for r in ref]))
        if mode=='diff': return x-mu
        if mode=='z': return (x-mu)/(sd+0.25)
        if mode=='ratio': return x/(mu+0.1)
    for mode in ('diff','z','ratio'):
        data.report(f'local k={k} {mode}',[sc(x,n,mode) for x,n in zip(NV,NNV)],[sc(x,n,mode) for x,n in zip(NA,NNA)])
