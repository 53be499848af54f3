# Covering after collapsing immediate repeats of blocks of up to P calls (P = 1, 4, 8) in training
# and scored traces alike, so that a novel loop counts once.
import data, math
exec(open('cover.py').read().split("sam=SAM()")[0])
A=[a[2] for a in at]
def collapse(s,P):
    o=[]
    for c in s:
        o.append(c)
        changed=True
        while changed:
            changed=False
            for p in range(1,P+1):
                if len(o)>=2*p and o[-p:]==o[-2*p:-p]:
                    del o[-p:]; changed=True; break
    return o
for P in (1,4,8):
    trc=[collapse(t,P) for t in tr]; vac=[collapse(t,P) for t in va]; atc=[collapse(t,P) for t in A]
    sam=SAM(); sep=-1
    for t in trc:
        for c in t: sam.extend(c)
        sam.extend(sep); sep-=1
    def cov(seq):
        n=len(seq); p=0; k=0
        while p<n:
            st=0; l=0
            while p+l<n and seq[p+l] in sam.next[st]: st=sam.next[st][seq[p+l]]; l+=1
            p+=max(l,1); k+=1
        return k
    for nm,f in (('segs/collapsed len',lambda s,c: cov(c)/max(len(c),1)),('segs/orig len',lambda s,c: cov(c)/len(s)),('segs/sqrt collapsed',lambda s,c: cov(c)/math.sqrt(max(len(c),1)))):
        data.report(f'collapse P={P} {nm}',[f(s,c) for s,c in zip(va,vac)],[f(s,c) for s,c in zip(A,atc)])
