exec(open('cover.py').read().split("S={}")[0])
import pickle
mean=data.mean
SV,SA=pickle.load(open('surp6.pkl','rb')); NV=[mean(x) for x in SV]; NA=[mean(x) for x in SA]
CV=[len(cover(s))/len(s) for s in va]; CA=[len(cover(a[2]))/len(a[2]) for a in at]
import bisect
for half in ((1,5,9),(3,7)):
    idx=[i for i,a in enumerate(at) if int(a[1].rsplit('_',1)[1]) in half]
    data.report(f'ngram runs {half}',NV,[NA[i] for i in idx])
    data.report(f'cover runs {half}',CV,[CA[i] for i in idx])
# validation halves by index parity
for par in (0,1):
    data.report(f'ngram val half {par}',NV[par::2],NA); data.report(f'cover val half {par}',CV[par::2],CA)
