import data, pickle, math
SV,SA=pickle.load(open('surp6.pkl','rb'))
def q(x,p):
    s=sorted(x); return s[min(len(s)-1,int(p*(len(s)-1)))]
mean=data.mean
aggs={
 'mean':mean,
 'median':lambda x:q(x,.5),'q75':lambda x:q(x,.75),'q90':lambda x:q(x,.9),'q95':lambda x:q(x,.95),
 'cap4':lambda x:mean([min(v,4) for v in x]),'cap8':lambda x:mean([min(v,8) for v in x]),
 'trim10':lambda x:mean(sorted(x)[:max(1,int(len(x)*.9))]),
 'frac>4':lambda x:sum(v>4 for v in x)/len(x),'frac>8':lambda x:sum(v>8 for v in x)/len(x),
 'frac>1':lambda x:sum(v>1 for v in x)/len(x),'frac>2':lambda x:sum(v>2 for v in x)/len(x),
 'log1p':lambda x:mean([math.log1p(v) for v in x]),
 'sqrt':lambda x:mean([math.sqrt(v) for v in x]),
}
for k,f in aggs.items():
    data.report(k,[f(x) for x in SV],[f(x) for x in SA])
