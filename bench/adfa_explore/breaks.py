# Covering break points: distinct break contexts per trace, and breaks weighted by how often
# the same context breaks in out-of-fold covering of the training traces (5 folds).
exec(open('cover.py').read().split("S={}")[0])
import math, bisect
from collections import Counter, defaultdict
A=[a[2] for a in at]
def cover_breaks(s2, seq):
    """segments of the covering by automaton s2 (cover.py's cover), and the break contexts
    (two calls before the break, the call that could not extend the segment)"""
    global sam
    kept, sam = sam, s2
    try: segs = cover(seq)
    finally: sam = kept
    br=[]; p=0
    for l in segs[:-1]:
        p+=l; br.append((seq[p-2] if p>=2 else -9, seq[p-1], seq[p]))
    return segs, br
# C: distinct breaks
def distinct(seq):
    segs,br=cover_breaks(sam,seq)
    return len(segs), len(set(br)), len(set(b[1:] for b in br))
DV=[distinct(s) for s in va]; DA=[distinct(s) for s in A]
for name,f in (('segs/n',lambda d,s: d[0]/len(s)),
               ('distinct3/n',lambda d,s: d[1]/len(s)),
               ('distinct3/sqrt n',lambda d,s: d[1]/math.sqrt(len(s))),
               ('distinct3/log n',lambda d,s: d[1]/math.log(len(s)+2)),
               ('distinct2/sqrt n',lambda d,s: d[2]/math.sqrt(len(s))),
               ('distinct3',lambda d,s: d[1]),
               ('distinct2',lambda d,s: d[2])):
    data.report(name,[f(d,s) for d,s in zip(DV,va)],[f(d,s) for d,s in zip(DA,A)])
# B: out-of-fold break statistics on training
F=5; oofbr=Counter(); oofbr2=Counter(); ncalls=0
for f in range(F):
    s2=SAM(); sep=-1
    for i,t in enumerate(tr):
        if i%F!=f:
            for c in t: s2.extend(c)
            s2.extend(sep); sep-=1
    for i in range(f,len(tr),F):
        segs,br=cover_breaks(s2,tr[i]); ncalls+=len(tr[i])
        for b in set(br): oofbr[b]+=1; 
        for b in set(x[1:] for x in br): oofbr2[b]+=1
print('oof distinct break contexts',len(oofbr),len(oofbr2),flush=True)
def wscore(seq,alpha=1.0):
    segs,br=cover_breaks(sam,seq)
    s=0.0
    for b in br:
        c3=oofbr.get(b,0); c2=oofbr2.get(b[1:],0)
        s+= -math.log((c2+alpha)/(len(tr)+alpha))
    return s/len(seq)
def wscore_d(seq,alpha=1.0):
    segs,br=cover_breaks(sam,seq)
    s=0.0
    for b in set(x[1:] for x in br):
        c2=oofbr2.get(b,0)
        s+= -math.log((c2+alpha)/(len(tr)+alpha))
    return s/math.sqrt(len(seq))
for a in (0.1,1.0):
    data.report(f'weighted breaks a={a}',[wscore(s,a) for s in va],[wscore(s,a) for s in A])
    data.report(f'weighted distinct breaks/sqrt a={a}',[wscore_d(s,a) for s in va],[wscore_d(s,a) for s in A])
