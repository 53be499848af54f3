import data, sys, time
from collections import defaultdict
t0=time.time()
tr=data.train(); va=data.val(); at=data.attack()
print('loaded',time.time()-t0,flush=True)
# Suffix automaton over training traces joined with unique separators.
class SAM:
    def __init__(s):
        s.next=[{}]; s.link=[-1]; s.len=[0]; s.last=0
    def extend(s,c):
        cur=len(s.len); s.next.append({}); s.len.append(s.len[s.last]+1); s.link.append(0)
        p=s.last
        while p!=-1 and c not in s.next[p]:
            s.next[p][c]=cur; p=s.link[p]
        if p==-1: s.link[cur]=0
        else:
            q=s.next[p][c]
            if s.len[p]+1==s.len[q]: s.link[cur]=q
            else:
                cl=len(s.len); s.next.append(dict(s.next[q])); s.len.append(s.len[p]+1); s.link.append(s.link[q])
                while p!=-1 and s.next[p].get(c)==q:
                    s.next[p][c]=cl; p=s.link[p]
                s.link[q]=cl; s.link[cur]=cl
        s.last=cur
sam=SAM()
sep=-1
for t in tr:
    for c in t: sam.extend(c)
    sam.extend(sep); sep-=1
print('sam',len(sam.len),time.time()-t0,flush=True)
def cover(seq):
    # greedy: from p, longest match starting at p
    n=len(seq); p=0; segs=[]
    while p<n:
        st=0; l=0
        while p+l<n and seq[p+l] in sam.next[st]:
            st=sam.next[st][seq[p+l]]; l+=1
        if l==0: l=1
        segs.append(l); p+=l
    return segs
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
