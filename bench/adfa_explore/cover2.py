exec(open('cover.py').read().split("S={}")[0])
def cover_self(seq):
    n=len(seq); p=0; segs=0
    loc=SAM()  # SAM of seq[0:p]
    built=0
    while p<n:
        while built<p: loc.extend(seq[built]); built+=1
        st=0; l=0
        while p+l<n and seq[p+l] in sam.next[st]:
            st=sam.next[st][seq[p+l]]; l+=1
        st=0; l2=0
        while p+l2<n and seq[p+l2] in loc.next[st]:
            st=loc.next[st][seq[p+l2]]; l2+=1
        l=max(l,l2,1)
        segs+=1; p+=l
    return segs
def distinct_unseen(seq,k):
    # count distinct k-grams of seq not a substring of training
    seen=set(); cnt=0
    for i in range(len(seq)-k+1):
        g=tuple(seq[i:i+k])
        if g in seen: continue
        seen.add(g)
        st=0; ok=True
        for c in g:
            if c in sam.next[st]: st=sam.next[st][c]
            else: ok=False; break
        if not ok: cnt+=1
    return cnt
S={}
for name,sets in (('val',va),('att',[a[2] for a in at])):
    res=[]
    for s in sets:
        n=len(s); cs=cover_self(s)
        d={'self_segs_per_call':cs/n,'self_segs':cs,'self_segs_sqrt':cs/n**0.5}
        for k in (3,4,6,8):
            du=distinct_unseen(s,k); d[f'du{k}']=du; d[f'du{k}_rate']=du/n; d[f'du{k}_sqrt']=du/n**0.5
        res.append(d)
    S[name]=res
for k in S['val'][0]:
    data.report(k,[x[k] for x in S['val']],[x[k] for x in S['att']])
