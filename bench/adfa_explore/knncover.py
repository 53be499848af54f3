# kNN (cosine) on tf-idf 1..3-gram profiles (sublinear or raw term frequency, k = 1, 3, 10),
# and its rank average with the covering score, each ranked among the validation (normal) scores.
exec(open('cover.py').read().split("S={}")[0])
import math, bisect
from collections import Counter
A=[a[2] for a in at]
CV=[len(cover(s))/len(s) for s in va]; CA=[len(cover(s))/len(s) for s in A]
def feats(s,ns):
    c=Counter()
    for n in ns:
        for i in range(len(s)-n+1): c[tuple(s[i:i+n])]+=1
    return c
ns=(1,2,3)
TR=[feats(t,ns) for t in tr]
df=Counter()
for f in TR:
    for g in f: df[g]+=1
N=len(TR)
def vec(f,sub):
    v={g:((1+math.log(c)) if sub else c)*math.log((N+1)/(df.get(g,0)+1)+1) for g,c in f.items()}
    nrm=math.sqrt(sum(x*x for x in v.values())) or 1
    return {g:x/nrm for g,x in v.items()}
for sub in (True,False):
    TV=[vec(f,sub) for f in TR]
    inv={}
    for j,v in enumerate(TV):
        for g,x in v.items(): inv.setdefault(g,[]).append((j,x))
    def score(s):
        v=vec(feats(s,ns),sub); acc=[0.0]*N
        for g,x in v.items():
            for j,y in inv.get(g,()): acc[j]+=x*y
        acc.sort(reverse=True)
        return [1-sum(acc[:k])/k for k in (1,3,10)]
    KV=[score(s) for s in va]; KA=[score(s) for s in A]
    for ki,k in enumerate((1,3,10)):
        kv=[x[ki] for x in KV]; ka=[x[ki] for x in KA]
        data.report(f'tfidf knn k={k} sublinear={sub}',kv,ka)
        # rank among validation normals (calibration data) - average with cover rank
        def rk(ref): r=sorted(ref); return lambda x:(bisect.bisect_left(r,x)+bisect.bisect_right(r,x))/(2*len(r))
        rc=rk(CV); rn=rk(kv)
        for w in (0.3,0.5):
            data.report(f'  rankavg cover w_knn={w}',[w*rn(a)+(1-w)*rc(b) for a,b in zip(kv,CV)],[w*rn(a)+(1-w)*rc(b) for a,b in zip(ka,CA)])
