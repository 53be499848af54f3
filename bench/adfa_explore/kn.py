import math
from collections import defaultdict
class KN:
    """Interpolated KN like vigil's NgramLm (continuation counts below top order)."""
    def __init__(s, order, V):
        s.N=order; s.V=V; s.raw=defaultdict(int)
    def add(s, seq):
        N=s.N
        for i in range(len(seq)):
            for n in range(1,min(N,i+1)+1):
                s.raw[tuple(seq[i+1-n:i+1])]+=1
    def finalize(s):
        N=s.N; num=defaultdict(int)
        for g,c in s.raw.items():
            n=len(g)
            if n==N: num[g]+=c
            if n>=2: num[g[1:]]+=1
        for g,c in s.raw.items():
            if len(g)<N and g not in num: num[g]=c
        n1=[0]*(N+1); n2=[0]*(N+1)
        ctx=defaultdict(lambda:[0,0])
        for g,c in num.items():
            n=len(g)
            if c==1: n1[n]+=1
            if c==2: n2[n]+=1
            st=ctx[g[:-1]]; st[0]+=c; st[1]+=1
        s.D=[0.5]*(N+1)
        for n in range(1,N+1):
            d=n1[n]/(n1[n]+2*n2[n]) if n1[n]+2*n2[n]>0 else 0.5
            s.D[n]=min(max(d,0.1),0.95)
        s.num=dict(num); s.ctx=dict(ctx); s.cache={}
    def prob(s, h, w):
        key=(h,w)
        if key in s.cache: return s.cache[key]
        p=1.0/s.V
        for k in range(0,len(h)+1):
            c=h[len(h)-k:]
            st=s.ctx.get(c)
            if st is None or st[0]==0: continue
            cnt=s.num.get(c+(w,),0); d=s.D[k+1]
            p=max(cnt-d,0)/st[0]+d*st[1]/st[0]*p
        p=max(p,1e-12); s.cache[key]=p
        return p
    def surprisals(s, seq):
        N=s.N; out=[]
        for i,w in enumerate(seq):
            h=tuple(seq[max(0,i-N+1):i])
            out.append(-math.log2(s.prob(h,w)))
        return out
