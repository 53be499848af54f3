import data, kn, time, math, pickle
from collections import defaultdict
tr,va,at,A=data.split()
vocab=data.vocabulary(tr)
tok=data.tokenizer(vocab)
mean=data.mean
m=kn.KN(6,len(vocab)+1)
for t in tr: m.add(tok(t))
m.finalize()
def cached(seq, lam, K=4):
    seq=tok(seq); cnt=defaultdict(int); ctx=defaultdict(int); types=defaultdict(int)
    out=[]
    V=len(vocab)+1
    for i,w in enumerate(seq):
        h=tuple(seq[max(0,i-5):i])
        ps=m.prob(h,w)
        # local interpolated absolute-discount model (Witten-Bell-like), orders 0..K-1 context
        p=1.0/V; d=0.5
        for k in range(0,min(K-1,i)+1):
            c=tuple(seq[i-k:i])
            tot=ctx.get(c,0)
            if tot==0: continue
            p=max(cnt.get(c+(w,),0)-d,0)/tot + d*types[c]/tot*p
        pl=p if i>0 else 1.0/V
        out.append(-math.log2((1-lam)*ps+lam*pl))
        for k in range(0,min(K-1,i)+1):
            c=tuple(seq[i-k:i])
            if cnt.get(c+(w,),0)==0: types[c]+=1
            cnt[c+(w,)]+=1; ctx[c]+=1
    return out
for lam in (0.05,0.2):
    SV=[cached(s,lam) for s in va]; SA=[cached(s,lam) for s in A]
    data.report(f'cache lam={lam}',[mean(x) for x in SV],[mean(x) for x in SA])
