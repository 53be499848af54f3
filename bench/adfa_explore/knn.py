import data, math
from collections import Counter
tr,va,at,A=data.split()
def feats(s,ns):
    c=Counter()
    for n in ns:
        for i in range(len(s)-n+1): c[tuple(s[i:i+n])]+=1
    return c
for ns in ((1,2,3),(3,4,5)):
    TR=[feats(t,ns) for t in tr]
    df=Counter()
    for f in TR:
        for g in f: df[g]+=1
    Ntr=len(TR)
    def vec(f):
        v={g:(1+math.log(c))*math.log((Ntr+1)/(df.get(g,0)+1)) for g,c in f.items()}
        nrm=math.sqrt(sum(x*x for x in v.values())) or 1
        return {g:x/nrm for g,x in v.items()}
    TV=[vec(f) for f in TR]
    # inverted index
    inv={}
    for j,v in enumerate(TV):
        for g,x in v.items(): inv.setdefault(g,[]).append((j,x))
    def score(s):
        v=vec(feats(s,ns)); acc=[0.0]*Ntr
        for g,x in v.items():
            for j,y in inv.get(g,()): acc[j]+=x*y
        acc.sort(reverse=True)
        return 1-acc[0], 1-sum(acc[:5])/5
    SVs=[score(s) for s in va]; SAs=[score(s) for s in A]
    data.report(f'knn1 {ns}',[x[0] for x in SVs],[x[0] for x in SAs])
    data.report(f'knn5 {ns}',[x[1] for x in SVs],[x[1] for x in SAs])
