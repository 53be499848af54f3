import data, sys, time
from collections import defaultdict
t0=time.time()
tr=data.train(); va=data.val(); at=data.attack()
print('loaded',time.time()-t0,flush=True)
# Suffix automaton over training traces joined with unique separators (covering.py).
from covering import SAM, segments
sam=SAM()
sep=-1
for t in tr:
    for c in t: sam.extend(c)
    sam.extend(sep); sep-=1
print('sam',len(sam.len),time.time()-t0,flush=True)
def cover(seq):
    return segments(sam, seq)  # reads the global sam at call time (breaks.py swaps it)
import math
def scores(seq):
    segs=cover(seq); n=max(len(seq),1)
    return {'segs_per_call':len(segs)/n,
            'mean_log_seg': -sum(math.log(l) for l in segs)/len(segs) if segs else 0,
            'frac_short': sum(l for l in segs if l<8)/n}
S={}
for name,sets in (('val',va),('att',[a[2] for a in at])):
    S[name]=[scores(s) for s in sets]
print('scored',time.time()-t0,flush=True)
for k in S['val'][0]:
    data.report(k,[x[k] for x in S['val']],[x[k] for x in S['att']])
k='segs_per_call'
neg=[x[k] for x in S['val']]
types=sorted(set(a[0] for a in at))
for ty in types:
    pos=[S['att'][i][k] for i in range(len(at)) if at[i][0]==ty]
    data.report(ty,neg,pos)
import statistics
print('len val median',statistics.median(len(s) for s in va),'att',statistics.median(len(a[2]) for a in at),'train',statistics.median(len(s) for s in tr))
# length AUC
data.report('length',[len(s) for s in va],[len(a[2]) for a in at])
data.report('neg length',[-len(s) for s in va],[-len(a[2]) for a in at])
