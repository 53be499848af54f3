import data, json, pickle
names=data.names()
inv={v:k for k,v in names.items()}
va=data.val(); at=data.attack(); A=[a[2] for a in at]
g=tuple(inv[x] for x in 'poll poll poll clock_gettime'.split())
has=lambda s:any(tuple(s[i:i+4])==g for i in range(len(s)-3))
vi=set(i for i,s in enumerate(va) if has(s)); ai=set(i for i,s in enumerate(A) if has(s))
mean=data.mean
SV,SA=pickle.load(open('surp6.pkl','rb')); NV=[mean(x) for x in SV]; NA=[mean(x) for x in SA]
SVc,SAc=pickle.load(open('surpc6.pkl','rb'))
BV,BA=pickle.load(open('bag.pkl','rb'))
for lab,(v,a) in (('ngram',(NV,NA)),('class',([mean(x) for x in SVc],[mean(x) for x in SAc])),('bag-knn',(BV,BA))):
    data.report(lab+' within poll group',[v[i] for i in vi],[a[i] for i in ai])
    data.report(lab+' poll attacks vs all normals',v,[a[i] for i in ai])
    data.report(lab+' other attacks vs all normals',v,[a[i] for i in range(len(a)) if i not in ai])
    # oracle: non-poll attacks get +inf
    data.report(lab+' ORACLE others perfect',v,[a[i] if i in ai else 1e9 for i in range(len(a))])
print(len(vi),len(ai))
