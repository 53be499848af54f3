# Rank average of the n-gram mean surprisal and the covering score, each ranked among its own
# out-of-fold scores of the training traces (oof.pkl from local.py; the fold indexes here restart
# the plain automaton per trace, an approximation of the generalised one).
exec(open('cover.py').read().split("S={}")[0])
import pickle, bisect
mean=lambda x:sum(x)/len(x)
SV,SA=pickle.load(open('surp6.pkl','rb')); NV=[mean(x) for x in SV]; NA=[mean(x) for x in SA]
CV=[len(cover(s))/len(s) for s in va]; CA=[len(cover(a[2]))/len(a[2]) for a in at]
oof=pickle.load(open('oof.pkl','rb'))  # n-gram out-of-fold on training
# cover OOF on training for the reference ranks
F=5; coof=[0]*len(tr)
for f in range(F):
    s2=SAM()
    for i,t in enumerate(tr):
        if i%F!=f:
            s2.last=0
            for c in t: s2.extend(c)
    for i in range(f,len(tr),F):
        seq=tr[i]; p=0; n=0
        while p<len(seq):
            st=0; l=0
            while p+l<len(seq) and seq[p+l] in s2.next[st]: st=s2.next[st][seq[p+l]]; l+=1
            p+=max(l,1); n+=1
        coof[i]=n/len(seq)
def rk(ref,x): r=sorted(ref); return bisect.bisect_left(r,x)/len(r)+bisect.bisect_right(r,x)/len(r)
for w in (0.5,):
    f=lambda n,c: w*rk(oof,n)+(1-w)*rk(coof,c)
    data.report(f'rank avg (training OOF reference) ngram+cover w={w}',[f(a,b) for a,b in zip(NV,CV)],[f(a,b) for a,b in zip(NA,CA)])
