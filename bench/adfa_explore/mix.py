import data, kn, math, random, pickle, sys, time
from collections import Counter
K=int(sys.argv[1]); LAM=float(sys.argv[2])
tr,va,at,A=data.split()
vocab=data.vocabulary(tr)
V=len(vocab)+1
tok=data.tokenizer(vocab)
def bag(s):
    c=Counter(tok(s)); n=len(s)
    v=[0.0]*V
    for k,x in c.items(): v[k]=math.sqrt(x/n)
    return v
X=[bag(t) for t in tr]
random.seed(1)
def d2(a,b): return sum((x-y)**2 for x,y in zip(a,b))
# kmeans++
cent=[X[random.randrange(len(X))]]
while len(cent)<K:
    ds=[min(d2(x,c) for c in cent) for x in X]; tot=sum(ds); r=random.random()*tot
    for i,d in enumerate(ds):
        r-=d
        if r<=0: cent.append(X[i]); break
for it in range(20):
    asg=[min(range(K),key=lambda k:d2(x,cent[k])) for x in X]
    for k in range(K):
        mem=[X[i] for i in range(len(X)) if asg[i]==k]
        if mem: cent[k]=[sum(col)/len(mem) for col in zip(*mem)]
print('sizes',Counter(asg),flush=True)
g=kn.KN(6,V)
for t in tr: g.add(tok(t))
g.finalize()
ms=[]
for k in range(K):
    m=kn.KN(6,V)
    for i,t in enumerate(tr):
        if asg[i]==k: m.add(tok(t))
    m.finalize(); ms.append(m)
def score(s):
    s=tok(s); best=1e9; per=[]
    for k,m in enumerate(ms):
        tot=0
        for i,w in enumerate(s):
            h=tuple(s[max(0,i-5):i])
            tot+=-math.log2(LAM*m.prob(h,w)+(1-LAM)*g.prob(h,w))
        per.append(tot/len(s))
    return min(per)
t0=time.time()
SV=[score(s) for s in va]; SA=[score(s) for s in A]
print(time.time()-t0)
data.report(f'mixture K={K} lam={LAM} min',SV,SA)
