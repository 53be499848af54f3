# Share of a trace's distinct n-grams (n = 3..8) never seen in training; covering of the
# reversed trace by reversed training traces (same segment count as forward: greedy covering
# with a substring-closed dictionary is minimal).
exec(open('cover.py').read().split("S={}")[0])
A=[a[2] for a in at]
for n in (3,4,5,6,8):
    G=set()
    for t in tr:
        for i in range(len(t)-n+1): G.add(tuple(t[i:i+n]))
    def r(s):
        d=set(tuple(s[i:i+n]) for i in range(len(s)-n+1))
        if not d: return 0
        return sum(1 for g in d if g not in G)/len(d)
    data.report(f'distinct unseen {n}-gram ratio',[r(s) for s in va],[r(s) for s in A])
# reversed cover
rs=SAM(); sep=-1
for t in tr:
    for c in reversed(t): rs.extend(c)
    rs.extend(sep); sep-=1
def rcov(seq):
    seq=seq[::-1]; n=len(seq); p=0; k=0
    while p<n:
        st=0; l=0
        while p+l<n and seq[p+l] in rs.next[st]: st=rs.next[st][seq[p+l]]; l+=1
        p+=max(l,1); k+=1
    return k/n
RV=[rcov(s) for s in va]; RA=[rcov(s) for s in A]
CV=[len(cover(s))/len(s) for s in va]; CA=[len(cover(s))/len(s) for s in A]
data.report('reverse cover',RV,RA)
data.report('fwd+rev cover',[a+b for a,b in zip(RV,CV)],[a+b for a,b in zip(RA,CA)])
