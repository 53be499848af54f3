import data, json, pickle, math
from collections import Counter
SV,SA=pickle.load(open('surp6.pkl','rb'))
tr,va,at,A=data.split()
vocab=data.vocabulary(tr)
V=len(vocab)+1
def bag(s):
    c=Counter(vocab.get(x,0) for x in s); n=len(s)
    return {k:math.sqrt(x/n) for k,x in c.items()}
TB=[bag(t) for t in tr]
def dist(a,b):
    ks=set(a)|set(b); return sum((a.get(k,0)-b.get(k,0))**2 for k in ks)
def knn(s,k=1):
    b=bag(s); ds=sorted(dist(b,t) for t in TB); return sum(ds[:k])/k
BV=[knn(s) for s in va]; BA=[knn(s) for s in A]
data.report('bag knn1',BV,BA)
mean=data.mean
NV=[mean(x) for x in SV]; NA=[mean(x) for x in SA]
def ranks(ref,xs):
    import bisect; r=sorted(ref); return [bisect.bisect_left(r,x)/len(r) for x in xs]
# rank vs validation? no: rank against training-free reference = the normal val would leak; use raw z by train? simple: rank within all scored
def rnorm(v,a):
    allv=sorted(v+a); import bisect
    f=lambda x:bisect.bisect_left(allv,x)/len(allv)
    return [f(x) for x in v],[f(x) for x in a]
r1v,r1a=rnorm(NV,NA); r2v,r2a=rnorm(BV,BA)
for w in (0.5,0.7):
    data.report(f'rank avg w={w}',[w*a+(1-w)*b for a,b in zip(r1v,r2v)],[w*a+(1-w)*b for a,b in zip(r1a,r2a)])
pickle.dump((BV,BA),open('bag.pkl','wb'))
